"""torch.hub entry points: ``torch.hub.load("<owner>/resnetlab", "resnet56", weights="cifar10")``, or from a
clone, ``torch.hub.load(path, "resnet20", source="local", weights="cifar10")``. Every registered builder is
exposed, with ``weights=`` as ``resnetlab.create_model`` takes it (``resnetlab models`` lists the names)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))  # a clone, not installed

from resnetlab.models import create_model, list_models  # noqa: E402

dependencies = ["torch", "safetensors"]


def _entry(name):
    def build(weights=None, **kwargs):
        return create_model(name, weights=weights, **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"{name} (resnetlab.create_model); weights: None or the name of its shipped weights."
    return build


globals().update({name: _entry(name) for name in list_models()})

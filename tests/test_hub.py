"""torch.hub.load on a clone: the shipped weights of resnet20, the logits create_model gives."""

import importlib.util
from pathlib import Path

import torch

import resnetlab

ROOT = Path(__file__).parents[1]


def test_hub_loads_the_shipped_weights():
    spec = importlib.util.spec_from_file_location("hubconf", ROOT / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    assert all(callable(getattr(hubconf, name)) for name in resnetlab.list_models())
    hub = torch.hub.load(str(ROOT), "resnet20", source="local", weights="cifar10").eval()
    ours = resnetlab.create_model("resnet20", weights="cifar10").eval()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(hub(x), ours(x))
    assert not torch.equal(ours(x), resnetlab.create_model("resnet20").eval()(x))  # the weights were loaded
    assert torch.hub.load(str(ROOT), "resnet50", source="local", num_classes=3).fc.out_features == 3

"""A minimal model registry: a decorator, a dict, ``create_model`` and ``list_models``."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_FAMILIES: list[Callable[[str], Callable[..., nn.Module] | None]] = []


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a builder under its function name."""
    if fn.__name__ in _MODELS:
        raise ValueError(f"model {fn.__name__!r} is already registered")
    _MODELS[fn.__name__] = fn
    return fn


def register_family(resolve: Callable[[str], Callable[..., nn.Module] | None]) -> None:
    """Register a resolver for names outside the list (e.g. any CIFAR depth 6n+2, ``resnet26``).

    It returns a builder, ``None`` when the name is not its own, or raises ``ValueError``
    explaining why a name of its form is invalid."""
    _FAMILIES.append(resolve)


def list_models() -> list[str]:
    """The registered model names, sorted by family and depth."""

    def key(name: str):
        prefix = name.rstrip("0123456789")
        return prefix, int(name[len(prefix) :] or 0)

    return sorted(_MODELS, key=key)


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model by name, e.g. ``create_model("resnet50", num_classes=10)``."""
    builder = _MODELS.get(name)
    for resolve in _FAMILIES:
        if builder is not None:
            break
        builder = resolve(name)
    if builder is None:
        raise ValueError(
            f"unknown model {name!r}; choose one of {', '.join(list_models())}, "
            "or resnet<depth>/plain<depth> for any CIFAR depth 6n+2"
        )
    return builder(**kwargs)

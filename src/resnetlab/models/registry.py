"""A minimal model registry: a decorator, a dict, ``list_models`` and the builder of a name (``create_model``
builds it, in create.py)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import torch.nn as nn

from ..errors import UnknownArgument, UsageError

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_FAMILIES: list[Callable[[str], Callable[..., nn.Module] | None]] = []
_FORMS: list[str] = []  # what each family's names look like, e.g. "resnet<6n+2>"
_B = TypeVar("_B", bound=Callable[..., nn.Module])


def register_model(fn: _B) -> _B:
    """Register a builder under its function name."""
    if fn.__name__ in _MODELS:
        raise UsageError(f"model {fn.__name__!r} is already registered")
    _MODELS[fn.__name__] = fn
    return fn


def in_family(family: str, depth: int) -> Callable[[_B], _B]:
    """Declare a builder a member of ``family`` (e.g. ``"cifar"``) with ``depth`` layers: what
    ``model_family`` answers, and what recipes decide by (never the digits of a name)."""

    def mark(fn: _B) -> _B:
        fn.family = family, depth  # type: ignore[attr-defined]  # an attribute of the function object
        return fn

    return mark


def takes(keywords: Iterable[str]) -> Callable[[_B], _B]:
    """Declare the keywords a builder written as ``f(**kwargs)`` accepts, as its signature: what
    ``inspect.signature`` and ``builder_takes`` report (not ``**kwargs``)."""
    params = [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY) for k in keywords]

    def mark(fn: _B) -> _B:
        fn.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]  # read by inspect.signature
        return fn

    return mark


def model_family(name: str) -> tuple[str, int] | None:
    """``(family, depth)`` of the builder of ``name``, e.g. ``("cifar", 110)`` for resnet110 and plain110;
    ``None`` for a builder outside the families (the ImageNet nets: resnet152 is not CIFAR)."""
    return getattr(builder(name), "family", None)


def keyword_args(fn: Callable[..., Any]) -> tuple[str, ...]:
    """The keyword-only parameters of ``fn``: what a builder that wraps it may pass through."""
    params = inspect.signature(fn).parameters.values()
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


def check_kwargs(builder: str, kwargs: Mapping[str, Any], valid: Iterable[str], fixed: Mapping[str, str] = {}) -> None:
    """Raise ``TypeError`` at the call site for any keyword ``builder`` does not take, naming the valid
    ones; ``fixed`` maps an argument the builder sets itself to a hint (e.g. which builder takes it)."""
    valid = tuple(valid)
    unknown = [k for k in kwargs if k not in valid]
    if unknown:
        hints = "".join(f" ({fixed[k]})" for k in unknown if k in fixed)
        raise UnknownArgument(
            f"{builder}() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}{hints}; "
            f"valid: {', '.join(valid)}"
        )


def twin_hint(name: str, twin: str | None) -> str:
    """Why ``residual`` is not an argument of ``name``, and which builder has the other setting."""
    kind, other = ("residual", "plain") if "resnet" in name else ("plain", "residual")
    if twin is None:
        return f"{name} is {kind}; it has no {other} twin (build ResNet(..., residual=...) directly)"
    return f"{name} is {kind}; its {other} twin is {twin}()"


def register_family(resolve: Callable[[str], Callable[..., nn.Module] | None], form: str) -> None:
    """Register a resolver for names outside the list (e.g. any CIFAR depth 6n+2, ``resnet26``) and the
    ``form`` of its names for help and errors (``"resnet<6n+2>/plain<6n+2> (any CIFAR depth)"``).

    It returns a builder, ``None`` when the name is not its own, or raises ``ValueError``
    explaining why a name of its form is invalid."""
    _FAMILIES.append(resolve)
    _FORMS.append(form)


def model_forms() -> list[str]:
    """The name forms of the registered families, for help texts and errors."""
    return list(_FORMS)


def list_models() -> list[str]:
    """The registered model names, sorted by family and depth."""

    def key(name: str):
        prefix = name.rstrip("0123456789")
        return prefix, int(name[len(prefix) :] or 0)

    return sorted(_MODELS, key=key)


def builder(name: str) -> Callable[..., nn.Module]:
    builder = _MODELS.get(name)
    for resolve in _FAMILIES:
        if builder is not None:
            break
        builder = resolve(name)  # raises ValueError for a name of its form that is invalid
    if builder is None:
        raise UsageError(f"unknown model {name!r}; choose one of {', '.join(list_models())}, or {'; '.join(_FORMS)}")
    return builder


def has_model(name: str) -> bool:
    """Whether ``name`` is a model the registry builds (a registered name or one of a family's)."""
    try:
        builder(name)
    except UsageError:
        return False
    return True


def builder_takes(name: str, arg: str) -> bool:
    """Whether the builder of ``name`` takes the keyword ``arg`` (e.g. ``input_size``, which a run passes
    from its data to the models that need it; ``shortcut``, which every ResNet takes)."""
    return arg in inspect.signature(builder(name)).parameters

"""What a deployed model needs besides its weights: the preprocessing, the labels and where it came
from. Carried inside every exported file (ONNX ``metadata_props``, OpenVINO ``rt_info``, TorchScript
extra files), so the file alone predicts correctly."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..data.transforms import EvalTransform
from ..errors import UsageError
from ..models import input_shape

KEY = "resnetlab"  # the metadata key in every format


@dataclass(frozen=True)
class DeployInfo:
    model: str  # registry name, e.g. "resnet20"
    input_size: tuple[int, int, int]  # (C, H, W) the network takes
    mean: tuple[float, ...]  # per channel, on the [0, 1] scale: x = (pixels/255 − mean)/std
    std: tuple[float, ...]
    class_names: tuple[str, ...]
    precision: str = "fp32"  # of the exported weights: fp32 | int8
    # the evaluation transform: shorter side to ``resize`` (bilinear), centre crop H×W (``EvalTransform``);
    # files written before it was recorded fit the shorter side straight to H
    resize: int | None = None
    interpolation: str = "bilinear"
    provenance: dict[str, Any] = field(default_factory=dict)  # run folder, iteration, commit, versions

    @classmethod
    def from_checkpoint(cls, meta: dict, source: str | Path) -> DeployInfo:
        c, h, w = input_shape(meta)
        norm = meta["normalization"]
        transform = EvalTransform.of(meta, h)
        config = meta.get("config", {})
        provenance = {
            "checkpoint": str(source),
            "iteration": meta.get("iteration"),
            "data": config.get("data"),
            "recipe": config.get("recipe"),
            "model_args": config.get("model_args", {}),
        }
        return cls(meta["model"], (c, h, w), tuple(norm["mean"]), tuple(norm["std"]), tuple(meta["class_names"]),
                   provenance=provenance, resize=transform.resize, interpolation=transform.interpolation)  # fmt: skip

    @property
    def eval_transform(self) -> EvalTransform:
        return EvalTransform(self.resize or self.input_size[-1], self.input_size[-1], self.interpolation)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str, where: str) -> DeployInfo:
        try:
            d = json.loads(text)
            c, h, w = d.pop("input_size")
            return cls(**{**d, "input_size": (c, h, w), "mean": tuple(d["mean"]), "std": tuple(d["std"]),
                          "class_names": tuple(d["class_names"])})  # fmt: skip
        except (ValueError, TypeError, KeyError) as e:
            raise UsageError(f"{where}: its resnetlab metadata is unreadable ({type(e).__name__}: {e})") from None

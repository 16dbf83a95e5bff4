"""Training configuration: one frozen dataclass, recipes as named sets of its fields.

Each field carries its command-line help (and choices) in its metadata: the ``train`` and
``experiment`` flags are generated from it, so a field, its flag and its help are written once.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..data.sources import SPECS
from ..errors import UnknownArgument, UsageError

# Fields that say how and where a run executes, not what it computes: a resumed run may change them
# (e.g. continue on another machine, with --compile, or in a folder that was moved), at the price of
# bitwise equality with an uninterrupted run.
EXECUTION = (
    "device", "threads", "compile", "channels_last", "eval_every", "tta", "save_every", "keep_checkpoints",
    "dist_timeout", "workers", "out",
)  # fmt: skip

GOYAL_WARMUP_EPOCHS = 5  # Goyal et al. 2017, Sec. 2.2: gradual warm-up over 5 epochs for batches over 256
TTA = ("none", "flip", "flip-translate", "ten-crop")  # as resnetlab.evaluation.TTA (config imports no torch)

# Recipes: named starting points; any field can be overridden after them.
_COSINE = dict(
    epochs=30, batch_size=128, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="cosine",
    warmup_iterations=200, label_smoothing=0.1,
)  # fmt: skip
_IMAGENET = dict(
    batch_size=256, lr=0.1, lr_base_size=256, momentum=0.9, weight_decay=1e-4, schedule="step", mean_std="imagenet"
)  # fmt: skip
RECIPES: dict[str, dict] = {
    # He et al. 2015, Sec. 4.2: SGD with momentum 0.9, weight decay 1e-4, batch 128, lr 0.1 divided
    # by 10 at 32k and 48k iterations, stopping at 64k; 45k/5k train/val split in the paper's tuning.
    "paper-cifar": dict(
        iterations=64_000,
        batch_size=128,
        lr=0.1,
        momentum=0.9,
        weight_decay=1e-4,
        schedule="step",
        milestones=(0.5, 0.75),
    ),
    # He et al. 2015, Sec. 3.4: SGD with momentum 0.9, weight decay 1e-4, batch 256, lr 0.1 divided by 10 when
    # the error plateaus, up to 60e4 iterations (120 epochs of ImageNet); the plateaus as a step schedule at
    # 50% and 75% of the iterations (as most reproductions). Scale augmentation, PCA lighting, ImageNet's
    # mean and std; lr 0.1 per 256 images, with Goyal et al.'s 5-epoch warm-up above 256.
    "paper-imagenet": {**_IMAGENET, "epochs": 120, "milestones": (0.5, 0.75), "augment": "scale", "lighting": 0.1},
    # torchvision's ImageNet reference (references/classification): 90 epochs, lr 0.1 per 256 images divided by
    # 10 at epochs 30 and 60, weight decay 1e-4, random-resized crop and flip.
    "imagenet-step": {**_IMAGENET, "epochs": 90, "milestones": (1 / 3, 2 / 3), "augment": "random-resized-crop"},
    # A short run: cosine decay after a one-epoch-ish warm-up, Nesterov momentum.
    "cosine": _COSINE,
    # The fastest route to the paper's ResNet-20 accuracy (a single view) on a CPU, chosen on a 45k/5k validation
    # split, the test set scored once at the end: 40 epochs (30 fell short there), images downscaled to 24x24 for
    # the first half of the steps (78% of the full-size training FLOP at equal validation accuracy). Each choice
    # and what it measured: docs/performance.md#time-to-accuracy.
    "fast-cifar": {
        **_COSINE,
        "precision": "auto",
        "epochs": 40,
        "batch_size": 256,
        "lr": 0.2,
        "warmup_iterations": 195,
        "small_size": 24,
        "eval_every": 0,
        "tta": "flip",
    },  # fmt: skip
    # 94% on CIFAR-10 on a CPU: ResNet-9 (Page 2018) near airbench's scale (Jordan 2024), with the speed records'
    # ingredients, chosen on a 45k/5k validation split (docs/performance.md#94-on-cifar-10-fast94). Two ablations
    # kept GELU, patch whitening and ghost BN (and dropped EMA), then airbench's whitening layer, optimizer, label
    # smoothing 0.2, alternating flips and identity init; its 2-pixel translation and Page's frozen BN scale were
    # not removed alone. airbench's optimizer in this loop's terms (mean loss): its lr 11.5 per 1024 summed images
    # × (1 + 1/(1 − 0.85)) is 1.5 at batch 1024 with Nesterov momentum 0.85; its decay of 2.0e-3 a step is weight
    # decay 1.33e-3 at that lr, the same a step for the BN biases at 64× the lr; its triangle peaks at 23% of 10
    # epochs (here the warm-up starts at 0 and the decay ends at 0, not at airbench's 0.2 and 0.07 of the peak).
    "fast94": dict(
        model="resnet9",
        model_args={
            "width": 0.5,
            "widths": (64, 128, 384, 768),
            "whiten": 2,
            "whiten_signed": True,
            "activation": "gelu",
            "pool_before_bn": True,
            "identity_init": True,
        },
        precision="auto",
        epochs=12,  # the fewest tried whose validation reached the 20-epoch recipe's (10: short)
        batch_size=1024,
        lr=1.5,
        momentum=0.85,
        nesterov=True,
        weight_decay=1.33e-3,
        schedule="linear",
        warmup_epochs=2.3,
        label_smoothing=0.2,
        flip="alternating",
        translate=2,
        bn_ghost_size=64,
        bn_freeze_weight=True,
        bn_lr_scale=64.0,
        bn_weight_decay=2.1e-5,
        whiten_bias_epochs=3,
        # progressive resizing: 24x24 for the first half of the steps (small_until 0.5), 24% fewer training FLOP;
        # chosen on validation on a lent H200 (94.66% over 8 seeds against the 32x32 recipe's 94.79%), then 5 test
        # seeds on the Zen 4 (docs/performance.md). --small-size 0 is the 32x32 recipe before it.
        small_size=24,
        eval_every=0,
        tta="flip-translate",
    ),
}


def _f(default: Any, help: str, **cli: Any) -> Any:
    """A config field with its command-line help; ``cli`` adds ``choices``, ``metavar``, ``nargs``,
    ``group`` (mutually exclusive flags share one)."""
    make = {"default_factory": default} if callable(default) else {"default": default}
    return field(**make, metadata={"help": help, **cli})


@dataclass(frozen=True)
class TrainConfig:
    model: str = _f("resnet20", "a name from 'resnetlab models' (default resnet20)")
    model_args: dict[str, Any] = _f(
        dict, "a builder argument, e.g. --model-arg stride_in_1x1=true --model-arg shortcut=C (repeatable; "
        "VALUE is read as JSON when it parses)", metavar="KEY=VALUE")  # fmt: skip
    norm: str = _f("bn", "normalization: this project's BN (default), torch.nn.BatchNorm2d, or none",
                   choices=("bn", "torch", "none"))  # fmt: skip
    bn_ghost_size: int = _f(0, "ghost batch norm: statistics over groups of N consecutive images of each process's "
                            "batch (0: off; the speed records' 32 or 64); --norm bn only, not with --sync-bn",
                            metavar="N")  # fmt: skip
    bn_freeze_weight: bool = _f(False, "keep batch norm's scale gamma fixed at 1 (Page's ResNet-9)")
    bn_lr_scale: float = _f(1.0, "batch norm's parameters train at this multiple of the learning rate", metavar="X")
    bn_weight_decay: float | None = _f(None, "weight decay of batch norm's parameters (default: --weight-decay)",
                                       metavar="X")  # fmt: skip
    data: str = _f("default", f"{SPECS} (default: the embedded digits)")
    num_classes: int | None = _f(None, "wds: brace patterns without an _info.json: the classes are 0..N-1",
                                 metavar="N")  # fmt: skip
    subset: int | None = _f(None, "train on the first N training images only", metavar="N")
    val_split: int = _f(0, "hold N training images out for validation (paper: 5000)", metavar="N")
    data_mode: str = _f("auto", "folder: sources: decode every image into memory before training, or stream them "
                        "from disk in worker processes; auto: in memory when the decoded training set takes at most "
                        "25% of physical memory and 4 GB", choices=("auto", "memory", "stream"))  # fmt: skip
    workers: int | None = _f(None, "processes decoding a streamed folder (default: this process's share of the "
                             "CPU cores minus its torch threads, at least 1; 0: in this process)",
                             metavar="N")  # fmt: skip
    image_size: int | None = _f(None, "side in pixels for image folders (default: the model's)", metavar="PX")
    augment: str = _f("pad-crop-flip", "training augmentation: pad-crop-flip (Sec. 4.2: 4-pixel translation and "
                      "flip of the decoded images, on the device); scale (Sec. 3.4: shorter side random in "
                      "[256, 480]·S/224, random S×S crop, flip) or random-resized-crop (torchvision's: 8-100% "
                      "of the area, aspect 3/4-4/3, flip), each file cropped anew in the workers (folder: "
                      "sources, streamed)", choices=("pad-crop-flip", "scale", "random-resized-crop"))  # fmt: skip
    flip: str = _f("random", "pad-crop-flip's mirroring: random (each image, each epoch, p = 0.5: Sec. 4.2) or "
                   "alternating (airbench: a random half in the first epoch, then each image the opposite of its "
                   "previous epoch; in-memory data)", choices=("random", "alternating"))  # fmt: skip
    translate: int | None = _f(None, "pad-crop-flip's translation: zero-pad by PX pixels, crop back at a random "
                               "offset (default: the dataset's; CIFAR-10: 4, Sec. 4.2; airbench: 2; 0: none)",
                               metavar="PX")  # fmt: skip
    lighting: float = _f(0.0, "PCA colour augmentation (Krizhevsky et al., the paper's Sec. 3.4: 0.1) with this "
                         "sigma, on the device (0: off)", metavar="SIGMA")  # fmt: skip
    mean_std: str = _f("data", "input normalization: data (per channel, measured on the training images) or "
                       "imagenet (torchvision's constants)", choices=("data", "imagenet"))  # fmt: skip
    eval_resize: int | None = _f(None, "evaluation: shorter side resized to PX, then the centre --image-size crop "
                                 "(default: round(S/0.875), 256 for 224, with the scale and random-resized-crop "
                                 "augmentations; else S)", metavar="PX")  # fmt: skip
    recipe: str = _f("paper-cifar", "the named recipe the other fields start from", choices=tuple(RECIPES))
    epochs: int | None = _f(None, "passes over the training set", metavar="N", group="budget")
    iterations: int | None = _f(None, "SGD steps in all (paper: 64000)", metavar="N", group="budget")
    batch_size: int = _f(128, "images per step (paper: 128)", metavar="N")
    lr: float = _f(0.1, "peak learning rate (per --lr-base-size images when that is given)", metavar="X")
    lr_base_size: int | None = _f(None, "--lr is the rate of a global batch of N, scaled linearly to --batch-size "
                                  "(Goyal et al.; timm's --lr-base-size)", metavar="N")  # fmt: skip
    momentum: float = _f(0.9, "SGD momentum (paper: 0.9)", metavar="X")
    nesterov: bool = _f(False, "Nesterov momentum")
    weight_decay: float = _f(1e-4, "L2 on every parameter (paper: 1e-4)", metavar="X")
    schedule: str = _f("step", "step: lr/10 at each milestone; cosine or linear: to 0 after a linear warm-up",
                       choices=("step", "cosine", "linear"))  # fmt: skip
    milestones: tuple[float, ...] = _f(
        (0.5, 0.75), "step schedule, fractions of all iterations (paper: 32k and 48k of 64k)", metavar="F", nargs="+"
    )
    warmup_iterations: int = _f(0, "linear warm-up steps from 0 to the peak lr", metavar="N")
    warmup_epochs: float | None = _f(None, "linear warm-up over N epochs instead (default: 5 when --lr-base-size is "
                                     "given and --batch-size exceeds it, Goyal et al.; else none)",
                                     metavar="N")  # fmt: skip
    warmup_lr: float | None = _f(None, "constant lr until the training error is below --warmup-error (Sec. 4.2: "
                                 "0.01; default: 0.01 for CIFAR nets of 110 layers or more under paper-cifar, "
                                 "else off; 0: off)", metavar="X")  # fmt: skip
    warmup_error: float = _f(0.8, "the training error (fraction) that ends the constant warm-up", metavar="X")
    label_smoothing: float = _f(0.0, "cross-entropy label smoothing (paper: 0)", metavar="X")
    ema: float = _f(0.0, "evaluate and save an exponential moving average of the weights with this decay per step "
                    "(e.g. 0.999; 0: off, the paper)", metavar="D")  # fmt: skip
    lookahead: int = _f(0, "Lookahead (Zhang et al. 2019) as airbench ramps it: every K steps the weights return to "
                        "slow weights that follow them, and those are evaluated and saved (0: off; airbench: 5)",
                        metavar="K")  # fmt: skip
    whiten_bias_epochs: int | None = _f(None, "the bias of a signed whitening layer (resnet9 --model-arg whiten=2 "
                                        "--model-arg whiten_signed=true) trains for the first N epochs, then "
                                        "stays (airbench: 3; default: throughout)", metavar="N")  # fmt: skip
    small_size: int = _f(0, "progressive resizing: the augmented batches downscaled to N×N pixels for the first "
                         "--small-until of the iterations (0: off, the paper)", metavar="N")  # fmt: skip
    small_until: float = _f(0.5, "progressive resizing: the fraction of all iterations at --small-size", metavar="F")
    clip_grad_norm: float | None = _f(
        None, "clip the total gradient norm to X before each SGD step (default off); the mean pre-clip norm of "
        "each epoch is logged as grad_norm", metavar="X")  # fmt: skip
    seed: int = _f(0, "initialization, shuffling and augmentation (default 0)")
    device: str = _f("auto", "default auto: CUDA when available", choices=("auto", "cpu", "cuda"))
    threads: int | None = _f(None, "CPU threads for PyTorch (default: PyTorch's)", metavar="N")
    precision: str = _f("fp32", "bf16 autocast (fast only on CPUs with native bf16, e.g. AVX512-BF16/AMX, or GPUs); "
                        "auto: bf16 where the CPU has it natively, else fp32 (decided when the run starts)",
                        choices=("fp32", "bf16", "auto"))  # fmt: skip
    compile: bool | None = _f(None, "torch.compile the model for training steps (fuses BN, ReLU and the addition); "
                              "default off, or the CPU's choice with --precision auto")  # fmt: skip
    channels_last: bool | None = _f(None, "NHWC memory format for the model and its inputs; default off, or the "
                                    "CPU's choice with --precision auto")  # fmt: skip
    sync_bn: bool = _f(True, "under torchrun, batch norm statistics over the global batch (--no-sync-bn: per process)")
    dist_timeout: int = _f(600, "under torchrun, seconds a collective waits for a lost process before all stop",
                           metavar="S")  # fmt: skip
    eval_every: int = _f(1, "epochs between val/test evaluations (0: only after the last epoch)", metavar="N")
    tta: str = _f("none", "test-time augmentation of every evaluation, reported beside the single-view error: "
                  "flip (each image and its mirror), flip-translate (and each shifted by 2 pixels), ten-crop "
                  "(the paper's 10 crops); natural images only", choices=TTA)  # fmt: skip
    save_every: int | None = _f(None, "iterations between checkpoints (default: each epoch)", metavar="N")
    keep_checkpoints: int = _f(3, "newest numbered checkpoints kept (default 3; best and last are always kept)",
                               metavar="N")  # fmt: skip
    weights: str | None = _f(None, "initialize from a resnetlab checkpoint, a torchvision state_dict, or the "
                             "name of the model's shipped weights (e.g. cifar10; see 'resnetlab models')",
                             metavar="FILE_OR_NAME")  # fmt: skip
    out: str = _f("runs/run", "run folder (default runs/<model>-<time>)", metavar="DIR")

    def __post_init__(self):
        if (self.epochs is None) == (self.iterations is None):
            raise UsageError("give exactly one of epochs and iterations")
        if not isinstance(self.eval_every, int) or self.eval_every < 0:
            raise UsageError(f"eval_every must be an integer >= 0 (0: only at the end), got {self.eval_every!r}")
        positive = (
            "epochs",
            "iterations",
            "batch_size",
            "subset",
            "save_every",
            "threads",
            "image_size",
            "eval_resize",
            "num_classes",
            "lr_base_size",
            "dist_timeout",
        )
        for name in positive:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise UsageError(f"{name} must be a positive integer, got {value!r}")
        for f in fields(self):
            allowed = f.metadata.get("choices")
            if allowed and getattr(self, f.name) not in allowed:
                raise UsageError(f"{f.name} must be one of {', '.join(allowed)}, got {getattr(self, f.name)!r}")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 0):
            raise UsageError(
                f"workers must be an integer >= 0 (0: decode in the training process), got {self.workers!r}"
            )
        if self.lr <= 0 or self.weight_decay < 0 or not 0 <= self.label_smoothing < 1:
            raise UsageError("lr must be > 0, weight_decay >= 0 and label_smoothing in [0, 1)")
        if not isinstance(self.small_size, int) or self.small_size < 0 or 0 < self.small_size < 8:
            raise UsageError(f"small_size must be 0 (off) or at least 8 pixels, got {self.small_size!r}")
        if not 0 < self.small_until <= 1:
            raise UsageError(f"small_until must be a fraction in (0, 1], got {self.small_until!r}")
        if self.warmup_lr is not None and self.warmup_lr < 0:
            raise UsageError(f"warmup_lr must be >= 0 (0: off), got {self.warmup_lr!r}")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise UsageError(f"clip_grad_norm must be > 0 (omit it for no clipping), got {self.clip_grad_norm!r}")
        if not isinstance(self.bn_ghost_size, int) or self.bn_ghost_size < 0 or self.bn_ghost_size == 1:
            raise UsageError(f"bn_ghost_size must be 0 (off) or at least 2 images, got {self.bn_ghost_size!r}")
        if (self.bn_ghost_size or self.bn_freeze_weight) and self.norm != "bn":
            raise UsageError(f"--bn-ghost-size and --bn-freeze-weight are options of this project's BN; drop them "
                             f"or use --norm bn (not {self.norm})")  # fmt: skip
        if self.bn_lr_scale <= 0 or (self.bn_weight_decay is not None and self.bn_weight_decay < 0):
            raise UsageError("bn_lr_scale must be > 0 and bn_weight_decay >= 0")
        if self.lighting < 0 or (self.warmup_epochs is not None and self.warmup_epochs < 0):
            raise UsageError(f"lighting and warmup_epochs must be >= 0, got {self.lighting!r}, {self.warmup_epochs!r}")
        if self.translate is not None and (not isinstance(self.translate, int) or self.translate < 0):
            raise UsageError(f"translate must be an integer >= 0 pixels (0: no translation), got {self.translate!r}")
        if self.translate is not None and self.augment != "pad-crop-flip":
            raise UsageError(
                f"--translate sets pad-crop-flip's shift; --augment {self.augment} crops otherwise: drop --translate"
            )
        if not 0 <= self.ema < 1:
            raise UsageError(f"ema must be a decay in [0, 1) (0: off; e.g. 0.999), got {self.ema!r}")
        if not isinstance(self.lookahead, int) or self.lookahead < 0:
            raise UsageError(f"lookahead must be an integer >= 0 steps (0: off; airbench: 5), got {self.lookahead!r}")
        if self.whiten_bias_epochs is not None and (
            not isinstance(self.whiten_bias_epochs, int) or self.whiten_bias_epochs < 0
        ):
            raise UsageError(f"whiten_bias_epochs must be an integer >= 0 epochs, got {self.whiten_bias_epochs!r}")
        if self.lookahead and self.ema:
            raise UsageError("--ema and --lookahead each replace the weights that are evaluated: give one of them")
        if not isinstance(self.model_args, dict) or not all(isinstance(k, str) for k in self.model_args):
            raise UsageError(f"model_args must be a dict of argument names to values, got {self.model_args!r}")

    def total_iterations(self, steps_per_epoch: int) -> int:
        """SGD steps of the whole run: ``iterations``, or ``epochs`` of ``steps_per_epoch``."""
        if self.iterations is not None:
            return self.iterations
        assert self.epochs is not None  # exactly one of the two is set (__post_init__)
        return self.epochs * steps_per_epoch

    @property
    def peak_lr(self) -> float:
        """``lr``, scaled to the batch when it is given per ``lr_base_size`` images."""
        return self.lr * self.batch_size / self.lr_base_size if self.lr_base_size else self.lr

    def warmup_steps(self, steps_per_epoch: int) -> int:
        """Iterations of linear warm-up: ``warmup_epochs`` of them when given (by default 5 when the batch is
        over ``lr_base_size``: Goyal et al.'s gradual warm-up of large batches), else ``warmup_iterations``."""
        epochs = self.warmup_epochs
        if epochs is None and self.lr_base_size and self.batch_size > self.lr_base_size:
            epochs = GOYAL_WARMUP_EPOCHS
        return round(epochs * steps_per_epoch) if epochs else self.warmup_iterations

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def differences(self, saved: dict, execution: bool = True) -> list[str]:
        """Fields whose value differs from a saved config (fields added since it was saved compare
        against their defaults); without ``execution``, only those that change what is computed."""
        mine = json.loads(json.dumps(self.to_json()))
        return [k for k, v in mine.items() if saved_value(saved, k) != v and (execution or k not in EXECUTION)]

    @classmethod
    def from_json(cls, d: dict) -> TrainConfig:
        d = upgrade(d)
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise UsageError(f"unknown config fields {sorted(unknown)}")
        if "milestones" in d:
            d = {**d, "milestones": tuple(d["milestones"])}
        if "model_args" in d:
            d = {**d, "model_args": dict(d["model_args"])}
        return cls(**d)

    def __str__(self) -> str:
        return "\n".join(f"  {k:<18} {json.dumps(v)}" for k, v in self.to_json().items())


def make_config(recipe: str = "paper-cifar", **overrides) -> TrainConfig:
    """A recipe's fields with ``overrides`` on top; ``epochs`` and ``iterations`` replace each other; given
    ``model_args`` go over the recipe's (dropped when another ``model`` is given; so is the recipe's
    ``whiten_bias_epochs`` when the run has no signed whitening layer).
    Without ``out``, the run goes to ``runs/<model>-<date>-<time>``."""
    if recipe not in RECIPES:
        raise UsageError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    unknown = set(overrides) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise UnknownArgument(f"unknown config field(s) {', '.join(sorted(unknown))}")
    values = {**RECIPES[recipe], "recipe": recipe}
    if "epochs" in overrides:
        values["iterations"] = None
    if "iterations" in overrides:
        values["epochs"] = None
    recipe_args = values.pop("model_args", {})  # they belong to the recipe's model; given ones go on top
    if overrides.get("model", values.get("model")) != values.get("model"):
        recipe_args = {}
    values.update(overrides)
    values["model_args"] = {**recipe_args, **values.get("model_args", {})}
    if "whiten_bias_epochs" not in overrides and not values["model_args"].get("whiten_signed"):
        values.pop("whiten_bias_epochs", None)  # the recipe's, for a signed whitening layer this run has not
    model = values.get("model", TrainConfig.model)
    values.setdefault("out", f"runs/{model}-{time.strftime('%Y%m%d-%H%M%S')}")
    if "milestones" in values:
        values["milestones"] = tuple(values["milestones"])
    return TrainConfig(**values)


def upgrade(saved: dict) -> dict:
    """A saved config in today's fields: ``tta_flip: true`` (before ``--tta``) reads as ``tta: flip``."""
    if "tta_flip" not in saved:
        return saved
    old = dict(saved)
    flip = old.pop("tta_flip")
    old.setdefault("tta", "flip" if flip else "none")
    return old


def saved_value(saved: dict, name: str):
    """A field of a saved config (as JSON); a field added since the config was saved has its default."""
    saved = upgrade(saved)
    return saved[name] if name in saved else _defaults()[name]


@functools.lru_cache(maxsize=1)
def _defaults() -> dict:
    return json.loads(json.dumps(dataclasses.asdict(TrainConfig(iterations=1))))


def resume_config(run_dir: str | Path, overrides: dict | None = None) -> TrainConfig:
    """The config saved in a run folder, continuing in that folder wherever it now is. ``overrides``
    (e.g. flags repeated on the command line) must agree with it: a run continues as it started."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise UsageError(f"--resume {run_dir}: no config.json there (is it a run folder?)")
    saved_json = json.loads(path.read_text())
    config = TrainConfig.from_json(saved_json["config"])
    saved = json.loads(json.dumps(config.to_json()))
    overrides = dict(overrides or {})
    out = overrides.pop("out", None)
    if out is not None and Path(out).resolve() != Path(run_dir).resolve():
        raise UsageError(f"--resume {run_dir} continues the run in that folder; drop --out {out}")
    # an execution choice the run resolved when it started (e.g. --precision bf16 where auto chose bf16)
    # agrees with it, as the request itself does
    resolved = saved_json.get("resolved", {})
    agree = {k for k, v in overrides.items() if k in resolved and json.loads(json.dumps(v)) == resolved[k]}
    clash = [
        f"--{k.replace('_', '-')} {v} (the run has {saved[k]})"
        for k, v in overrides.items()
        if k not in EXECUTION and k not in agree and json.loads(json.dumps(v)) != saved.get(k)
    ]
    if clash:
        raise UsageError(
            f"--resume continues the run with its saved config; refusing {', '.join(clash)} "
            f"(only {', '.join('--' + k.replace('_', '-') for k in EXECUTION if k != 'out')} may change)"
        )
    overrides = {k: v for k, v in overrides.items() if k in EXECUTION and k not in agree}
    return dataclasses.replace(config, out=str(run_dir), **overrides)

"""Gradients through depth (He et al. Sec. 1, 4.1; Ioffe & Szegedy Sec. 3.3): per-layer gradient
norms and activation statistics of plain vs residual nets, with and without BN, for ReLU, sigmoid
and tanh, at initialization and after a few SGD steps."""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data import generator, load_data, normalizer, pad_crop_flip
from ..data.dataset import channel_stats
from ..inspect import gradient_flow
from ..models import cifar_resnet
from ..plots import pyplot, save_figure
from .registry import register, setting

FIELDS = ("depth", "residual", "norm", "activation", "phase", "layer", "name", "grad_norm", "input_mean", "input_var")


@dataclass(frozen=True)
class GradientSetup:
    depths: tuple[int, ...] = setting((20, 56, 110), "CIFAR depths, 6n+2", metavar="D", nargs="+")
    activations: tuple[str, ...] = setting(("relu", "sigmoid", "tanh"), "activations", metavar="G", nargs="+")
    norms: tuple[str, ...] = setting(("bn", "none"), "with and without batch norm", metavar="NORM", nargs="+")
    steps: int = setting(20, "SGD steps between the two measurements", metavar="K")
    batch_size: int = setting(128, "images per batch", metavar="N")
    lr: float = setting(0.01, "small enough that no configuration diverges within --steps", metavar="X")
    seed: int = setting(0, "initialization and batches")
    threads: int | None = setting(None, "CPU threads (default: PyTorch's)", metavar="N")


def _measure(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[dict]:
    return [
        {
            "layer": g.index,
            "name": g.name,
            "grad_norm": g.grad_norm,
            "input_mean": g.input_mean,
            "input_var": g.input_var,
        }
        for g in gradient_flow(model, x, y).layers
    ]


def run_gradients(
    data_spec: str, out: str | Path, setup: GradientSetup = GradientSetup(), log=print, threads: int | None = None
) -> list[dict]:
    """Measure every configuration of ``setup`` on batches of ``data_spec`` (with ``threads`` CPU
    threads, default PyTorch's choice); writes ``gradients.csv``, ``gradients.png`` (at init) and
    ``gradients_after.png`` (after the steps)."""
    if threads:
        torch.set_num_threads(threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_data(data_spec)
    normalize = normalizer(*channel_stats(data.x_train), torch.device("cpu"))

    def batch(step: int):
        idx = torch.randint(0, len(data.y_train), (setup.batch_size,), generator=generator(setup.seed, 2, step))
        x = pad_crop_flip(data.x_train[idx], 4, data.flip, generator(setup.seed, 3, step))
        return normalize(x), data.y_train[idx]

    rows = []
    for depth, residual, norm, act in itertools.product(setup.depths, (False, True), setup.norms, setup.activations):
        torch.manual_seed(setup.seed)
        model = cifar_resnet(
            depth,
            residual=residual,
            norm_layer=norm,
            activation=act,
            in_channels=data.image_shape[0],
            num_classes=data.num_classes,
        )
        opt = torch.optim.SGD(model.parameters(), lr=setup.lr, momentum=0.9)
        config = {"depth": depth, "residual": residual, "norm": norm, "activation": act}
        init = _measure(model, *batch(0))
        for step in range(setup.steps):
            x, y = batch(step + 1)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
        after = _measure(model, *batch(0))
        rows += [{**config, "phase": "init", **r} for r in init]
        rows += [{**config, "phase": f"after {setup.steps} steps", **r} for r in after]
        log(
            f"{'resnet' if residual else 'plain'}{depth:<4} {norm:<4} {act:<7} first-layer gradient norm: "
            f"init {init[0]['grad_norm']:.3e}, after {setup.steps} steps {after[0]['grad_norm']:.3e}"
        )
    with open(out / "gradients.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    for phase, name in (("init", "gradients.png"), (f"after {setup.steps} steps", "gradients_after.png")):
        plot_gradients(out / name, [r for r in rows if r["phase"] == phase], setup, phase)
    return rows


def plot_gradients(path: Path, rows: list[dict], setup: GradientSetup, phase: str) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(
        len(setup.norms),
        len(setup.activations),
        figsize=(4.2 * len(setup.activations), 3.4 * len(setup.norms)),
        dpi=110,
        squeeze=False,
        sharex=True,
    )
    for (i, norm), (j, act) in itertools.product(enumerate(setup.norms), enumerate(setup.activations)):
        ax = axes[i][j]
        for k, depth in enumerate(setup.depths):
            for residual, style in ((False, "--"), (True, "-")):
                pts = [
                    (r["layer"], r["grad_norm"])
                    for r in rows
                    if (r["depth"], r["residual"], r["norm"], r["activation"]) == (depth, residual, norm, act)
                ]
                if pts:
                    ax.plot(
                        *zip(*pts), ls=style, color=f"C{k}", lw=1.3, label=f"{'resnet' if residual else 'plain'}{depth}"
                    )
        ax.set_yscale("log")
        ax.set_title(f"{act}, {'BN' if norm == 'bn' else 'no norm'}", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        if i == len(setup.norms) - 1:
            ax.set_xlabel("layer (input → output)")
        if j == 0:
            ax.set_ylabel("‖∂ℓ/∂W‖")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(
        f"per-layer gradient norm, {phase} (dashed: plain, solid: residual; "
        "exact zeros — float32 underflow — cannot be drawn on a log axis)"
    )
    fig.tight_layout()
    save_figure(fig, path)


@register("gradients", "per-layer gradient norms through depth, at init and after a few steps (He et al. Sec. 1)",
          GradientSetup)  # fmt: skip
def _gradients(settings: GradientSetup, data: str | None, out: Path, log) -> object:
    return run_gradients(data or "default", out, settings, log=log, threads=settings.threads)

"""Layer responses (He et al. Fig. 7): the standard deviation of each 3×3 convolution's BN output —
after BN, before the addition and the ReLU — of trained plain and residual nets, in eval mode over the
test images. The paper reads it as: residual functions are generally closer to zero than the plain
layers' responses, and deeper ResNets have smaller responses."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ..checkpoints import load_checkpoint
from ..data import load_data, normalizer
from ..errors import UsageError
from ..nn.norm_inference import conv_bn_pairs
from ..plots import pyplot, save_figure
from .registry import register, setting

FIELDS = ("model", "index", "layer", "std")


def conv3x3_outputs(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(BN name, BN module) for every BN that follows a 3×3 convolution, stem included, in forward order."""
    modules = dict(model.named_modules())
    pairs = [(conv, bn) for conv, bn in conv_bn_pairs(model) if getattr(modules[conv], "kernel_size", None) == (3, 3)]
    return [(bn, modules[bn]) for _, bn in pairs]


class _Moments:
    """Σx and Σx² (float64) of every tensor a module outputs: the std over all elements, over all batches."""

    def __init__(self) -> None:
        self.n, self.sum, self.sq = 0, 0.0, 0.0

    def __call__(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        x = output.detach().double()
        self.n += x.numel()
        self.sum += float(x.sum())
        self.sq += float((x * x).sum())

    def std(self) -> float:
        mean = self.sum / self.n
        return max(self.sq / self.n - mean * mean, 0.0) ** 0.5


@torch.no_grad()
def layer_responses(run: str | Path, data_spec: str | None = None, batch_size: int = 500) -> list[dict]:
    """The std of every 3×3 conv's BN output of the model in ``run`` (its last checkpoint), in eval mode
    over the test images of ``data_spec`` (default: the run's own data)."""
    model, meta = load_checkpoint(run)
    spec = data_spec or meta["config"]["data"]
    data = load_data(spec, meta["image_size"])
    if data.x_test is None:
        raise UsageError(f"--data {spec}: the responses are measured on test images; this data has none")
    normalize = normalizer(meta["normalization"]["mean"], meta["normalization"]["std"], torch.device("cpu"))
    layers = conv3x3_outputs(model)
    moments = [_Moments() for _ in layers]
    handles = [bn.register_forward_hook(m) for (_, bn), m in zip(layers, moments)]
    try:
        for i in range(0, len(data.x_test), batch_size):
            model(normalize(data.x_test[i : i + batch_size]))
    finally:
        for h in handles:
            h.remove()
    name = meta["model"]
    return [{"model": name, "index": k + 1, "layer": layer, "std": m.std()}
            for k, ((layer, _), m) in enumerate(zip(layers, moments))]  # fmt: skip


def run_responses(runs: list[str | Path], out: str | Path, data: str | None = None, log=print) -> list[dict]:
    """Measure every run; write ``responses.csv``, ``responses.png`` (forward order | sorted by
    magnitude, as Fig. 7) and ``report.md``."""
    if not runs:
        raise UsageError("give the trained runs to compare with --runs RUN_DIR ...")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for run in runs:
        log(f"== {run}")
        rows += layer_responses(run, data)
    with open(out / "responses.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    models = list(dict.fromkeys(r["model"] for r in rows))
    _plot(out / "responses.png", rows, models)
    report = _report(rows, models)
    (out / "report.md").write_text(report)
    log(report)
    return rows


def _report(rows: list[dict], models: list[str]) -> str:
    mean = {m: sum(r["std"] for r in rows if r["model"] == m) / sum(r["model"] == m for r in rows) for m in models}
    lines = ["# Layer responses (Fig. 7): std of each 3×3 conv's BN output, eval mode, test images", "",
             "| model | layers | mean std | smallest | largest |", "|---|---|---|---|---|"]  # fmt: skip
    for m in models:
        stds = [r["std"] for r in rows if r["model"] == m]
        lines.append(f"| {m} | {len(stds)} | {mean[m]:.3f} | {min(stds):.3f} | {max(stds):.3f} |")
    lines += ["", "![responses](responses.png)", ""]
    findings = []
    for m in models:  # each residual net against its plain twin of the same depth
        twin = m.replace("resnet", "plain")
        if m != twin and twin in mean:
            rel = "below" if mean[m] < mean[twin] else "not below"
            findings.append(f"{m}'s mean response is {rel} {twin}'s ({mean[m]:.3f} vs {mean[twin]:.3f})")
    residual = sorted((int(d.group(1)), m) for m in models if "resnet" in m and (d := re.search(r"(\d+)$", m)))
    if len(residual) > 1:
        m0, m1 = residual[0][1], residual[-1][1]
        rel = "smaller" if mean[m1] < mean[m0] else "not smaller"
        findings.append(f"the deeper {m1} has {rel} responses than {m0} ({mean[m1]:.3f} vs {mean[m0]:.3f})")
    lines.append(("Measured: " + "; ".join(findings) + ". ") if findings else "")
    lines[-1] += ("The paper's reading: residual functions are generally closer to zero than the plain layers' "
                  "responses, and deeper ResNets have smaller responses.")  # fmt: skip
    return "\n".join(lines) + "\n"


def _plot(path: Path, rows: list[dict], models: list[str]) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(8, 6.5), dpi=110)
    for k, m in enumerate(models):
        stds = [r["std"] for r in rows if r["model"] == m]
        style = {"color": f"C{k}", "ls": "-" if "resnet" in m else "--", "lw": 1.3, "label": m}
        axes[0].plot(range(1, len(stds) + 1), stds, **style)
        axes[1].plot(range(1, len(stds) + 1), sorted(stds, reverse=True), **style)
    axes[0].set_xlabel("layer index (original)")
    axes[1].set_xlabel("layer index (sorted by magnitude)")
    for ax in axes:
        ax.set_ylabel("std")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("std of each 3×3 layer's response (after BN, before the addition and ReLU), Fig. 7 style")
    fig.tight_layout()
    save_figure(fig, path)


@dataclass(frozen=True)
class ResponsesSettings:
    runs: tuple[str, ...] = setting(
        tuple(f"runs/experiment-degradation/{m}" for m in ("plain20", "plain56", "resnet20", "resnet56")),
        "trained runs to compare (default: plain20, plain56, resnet20, resnet56 of runs/experiment-degradation)",
        metavar="RUN_DIR", nargs="+",
    )  # fmt: skip


@register("responses", "the std of each 3x3 layer's response, plain vs residual (He et al. Fig. 7); --data: "
          "default each run's own", ResponsesSettings)  # fmt: skip
def _responses(settings: ResponsesSettings, data: str | None, out: Path, log) -> object:
    return run_responses(list(settings.runs), out, data=data, log=log)

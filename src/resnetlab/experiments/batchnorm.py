"""Batch normalization permits higher learning rates (Ioffe & Szegedy Sec. 3.3, 4.2): the same
network with and without BN at several learning rates; and how it is evaluated — mini-batch
statistics vs population statistics vs recalibrated ones (Algorithm 2)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoints import load_checkpoint
from ..data import load_data, normalizer
from ..errors import UsageError
from ..evaluation import evaluate, torch_predictor
from ..nn import recalibrate_batchnorm
from ..plots import pyplot, save_figure
from .registry import register, setting, training
from .runs import diverged_at, pct, train_run


def run_batchnorm(
    out: str | Path,
    lrs=(0.01, 0.1, 0.5),
    model: str = "resnet20",
    target_error: float = 0.5,
    recipe: str = "paper-cifar",
    log=print,
    **fields,
) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = {}
    for norm in ("bn", "none"):
        for lr in lrs:
            name = f"{model}-{norm}-lr{lr:g}"
            log(f"== {name}")
            runs[name] = (norm, lr, train_run(out / name, recipe, log=log, model=model, norm=norm, lr=lr, **fields))
    rows = []
    for name, (norm, lr, r) in runs.items():
        recs = r["records"]
        reach = next((rec["iteration"] for rec in recs if rec["train_error"] < target_error), None)
        rows.append(
            {
                "run": name,
                "norm": norm,
                "lr": lr,
                "diverged": diverged_at(r),
                "reach": reach,
                "train_error": recs[-1]["train_error"] if recs else None,
                "test_error": recs[-1]["test_error"] if recs else None,
            }
        )
    _plot(out / "batchnorm.png", runs, target_error)
    lines = [
        f"# Batch norm and the learning rate ({model}, {fields.get('data', 'default')})",
        "",
        f"| norm | lr | diverged | iterations to training error < {100 * target_error:.0f}% | "
        "final training error (%) | final test error (%) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        div = "no" if r["diverged"] is None else f"yes, at iteration {r['diverged']}"
        lines.append(
            f"| {'BN' if r['norm'] == 'bn' else 'none'} | {r['lr']:g} | {div} | {r['reach'] or 'not reached'} | "
            f"{pct(r['train_error'])} | {pct(r['test_error'])} |"
        )
    trained = [
        row for row in rows if row["norm"] == "bn" and row["diverged"] is None and row["train_error"] is not None
    ]
    if trained:  # the best-trained BN model: its statistics are the ones worth comparing
        bn_run = out / min(trained, key=lambda row: row["train_error"])["run"]
        modes = evaluation_modes(bn_run)
        lines += [
            "",
            f"## Evaluating {bn_run.name}: which statistics normalize the test images",
            "",
            "| statistics | test error (%) |",
            "|---|---|",
        ]
        lines += [f"| {k} | {pct(v)} |" for k, v in modes.items()]
    lines += ["", "![batchnorm](batchnorm.png)"]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    log("\n".join(lines))
    return {"rows": rows}


@torch.no_grad()
def evaluation_modes(
    run: Path, batch_size: int = 128, recal_batches: int = 100, small_batch: int = 8
) -> dict[str, float]:
    """Test error of one trained model normalized three ways: by each test mini-batch's own
    statistics (training mode; batches of ``batch_size`` and of ``small_batch``), by the running
    averages (eval), and by population statistics recomputed over training batches with
    ``recalibrate_batchnorm`` (Algorithm 2)."""
    model, meta = load_checkpoint(run)
    data = load_data(meta["config"]["data"], meta["image_size"]).subset(meta["config"].get("subset"))
    normalize = normalizer(meta["normalization"]["mean"], meta["normalization"]["std"], torch.device("cpu"))
    if data.x_test is None or data.y_test is None:
        raise UsageError(f"{data.name} has no test split: the evaluation modes are measured on test images")
    x, y = data.x_test, data.y_test
    batch_stats = copy.deepcopy(model).train()  # a copy: training mode also moves the running averages
    results = {}
    for size in (batch_size, small_batch):  # smaller batches, noisier statistics (BN paper Sec. 3.1)
        with torch.no_grad():
            logits = torch.cat([batch_stats(normalize(x[i : i + size])) for i in range(0, len(x), size)])
        results[f"mini-batch ({size} test images)"] = (logits.argmax(1) != y).double().mean().item()
    results["population (running averages)"] = _error(model, x, y, normalize)
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(data.y_train), generator=gen)
    used = min(recal_batches, len(perm) // batch_size)  # a small training set has fewer full batches
    batches = (normalize(data.x_train[perm[i : i + batch_size]]) for i in range(0, used * batch_size, batch_size))
    recalibrate_batchnorm(model, batches)
    results[f"recalibrated ({used} training batches of {batch_size})"] = _error(model, x, y, normalize)
    return results


def _error(model, x, y, normalize) -> float:
    """The test error in eval mode (the running averages), through the one evaluation path."""
    names = [str(k) for k in range(int(y.max()) + 1)]
    return evaluate(torch_predictor(model, normalize, torch.device("cpu")), x, y, names).error


def _plot(path: Path, runs: dict, target_error: float) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    lrs = sorted({lr for _, lr, _ in runs.values()})
    for norm, lr, r in runs.values():
        recs = r["records"]
        if not recs:  # diverged before its first epoch ended: still named in the legend
            ax.plot(
                [],
                [],
                color=f"C{lrs.index(lr)}",
                ls="-" if norm == "bn" else "--",
                label=f"{'BN' if norm == 'bn' else 'no BN'}, lr {lr:g} (diverged at iteration {diverged_at(r)})",
            )
        else:
            ax.plot(
                [x["iteration"] for x in recs],
                [100 * x["train_error"] for x in recs],
                color=f"C{lrs.index(lr)}",
                ls="-" if norm == "bn" else "--",
                lw=1.6,
                label=f"{'BN' if norm == 'bn' else 'no BN'}, lr {lr:g}" + (" (diverged)" if r["diverged"] else ""),
            )
    ax.axhline(100 * target_error, color="gray", lw=0.8, ls=":")
    ax.set_xlabel("iterations")
    ax.set_ylabel("training error (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("solid: with BN, dashed: without")
    fig.tight_layout()
    save_figure(fig, path)


@dataclass(frozen=True)
class BatchnormSettings:
    lrs: tuple[float, ...] = setting((0.01, 0.1, 0.5), "learning rates", metavar="LR", nargs="+")
    model: str = setting("resnet20", "the network, with and without BN")
    training: dict = training()


@register("batchnorm", "the same net with and without BN at several learning rates, and BN's evaluation modes "
          "(BN paper Sec. 3.3, 4.2; Algorithm 2)", BatchnormSettings, untrained=("lr",))  # fmt: skip
def _batchnorm(settings: BatchnormSettings, data: str | None, out: Path, log) -> object:
    return run_batchnorm(out, settings.lrs, settings.model, log=log, data=data or "default", **settings.training)

"""The degradation problem (He et al. Sec. 4.1, Fig. 1 and 6): deeper plain nets train worse;
their residual twins do not. Same recipe and seed for every model. ``family="mlp"`` asks the same
question of fully connected nets (the course notes' residual block)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..plots import pyplot, save_figure
from .registry import register, setting, training
from .runs import TIME_NOTE, cell, diverged_at, median_epoch_s, pct, train_run

FAMILIES = {"conv": "", "mlp": "mlp_"}  # family -> model name prefix: resnet56 / mlp_resnet56


def run_degradation(
    out: str | Path, depths=(20, 56), recipe: str = "paper-cifar", log=print, family: str = "conv", **fields
) -> list[dict]:
    """Train resnet<d> and plain<d> (``family="mlp"``: mlp_resnet<d>, mlp_plain<d>) for every depth into
    ``out/<model>/``; write ``degradation.png`` (plain | residual panels) and ``report.md``."""
    if family not in FAMILIES:
        raise UsageError(f"--family {family}: choose one of {', '.join(FAMILIES)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results, names = {}, {}
    for kind in ("resnet", "plain"):
        for depth in depths:
            key, name = f"{kind}{depth}", f"{FAMILIES[family]}{kind}{depth}"
            log(f"== {name}")
            results[key] = train_run(out / name, recipe, log=log, model=name, **fields)
            names[key] = name
    _plot(out / "degradation.png", results, depths, names)
    rows = []
    for key, r in results.items():
        last = r["records"][-1] if r["records"] else {}
        rows.append(
            {
                "key": key,
                "model": names[key],
                "iterations": last.get("iteration"),
                "train_error": last.get("train_error"),
                "test_error": last.get("test_error"),
                "time_s": last.get("time_s"),
                "epoch_s": median_epoch_s(r["records"]),
                "diverged": diverged_at(r),
            }
        )
    cfg = next(iter(results.values()))["config"]
    lines = [
        f"# Degradation: plain vs residual ({cfg.data}, recipe {cfg.recipe}, seed {cfg.seed})",
        "",
        "| model | iterations | final training error (%) | final test error (%) | wall time (s) | median epoch (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        name = r["model"] if r["diverged"] is None else f"{r['model']} (diverged at iteration {r['diverged']})"
        time_s, epoch_s = cell(r["time_s"]), cell(r["epoch_s"])
        lines.append(f"| {name} | {r['iterations'] or '—'} | {pct(r['train_error'])} | {pct(r['test_error'])} | "
                     f"{time_s} | {epoch_s} |")  # fmt: skip
    lines += ["", TIME_NOTE, "", "![degradation](degradation.png)", "", _verdict(rows, depths)]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    log("\n".join(lines))
    return rows


def _verdict(rows: list[dict], depths) -> str:
    """What the numbers show, stated from the measurements (not from the paper): for each kind, whether
    the deepest net ends above or below the shallowest, in final training error (Fig. 6) and final
    test error (Table 6), and by how much."""
    diverged = [f"{r['model']} (iteration {r['diverged']})" for r in rows if r["diverged"] is not None]
    if diverged:  # its last numbers are from before it diverged: comparing them would mislead
        return f"Diverged: {', '.join(diverged)}; no comparison (try a lower --lr)."
    by_key = {r["key"]: r for r in rows}
    lo, hi = min(depths), max(depths)
    if any(by_key.get(f"{k}{d}", {}).get("train_error") is None for k in ("plain", "resnet") for d in (lo, hi)):
        return "Some runs have no results yet."
    sentences = []
    for kind in ("plain", "resnet"):
        deep, shallow = by_key[f"{kind}{hi}"], by_key[f"{kind}{lo}"]
        parts = []
        for split, what in (("train", "training"), ("test", "test")):
            a, b = deep[f"{split}_error"], shallow[f"{split}_error"]
            if a is None or b is None:
                continue
            where = "above" if a > b else "below" if a < b else "level with"
            parts.append(f"{where} {shallow['model']} in final {what} error ({pct(a)}% vs {pct(b)}%, "
                         f"{pct(abs(a - b))} points)")  # fmt: skip
        sentences.append(f"{deep['model']} ends {' and '.join(parts)}")
    gaps = ", ".join(
        f"{pct(by_key[f'plain{d}']['train_error'] - by_key[f'resnet{d}']['train_error'])} points at depth {d}"
        for d in depths
        if by_key.get(f"plain{d}", {}).get("train_error") is not None
        and by_key.get(f"resnet{d}", {}).get("train_error") is not None
    )
    return f"Measured: {'. '.join(sentences)}. Plain minus residual final training error: {gaps}."


def _plot(path: Path, results: dict, depths, names: dict[str, str]) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=110, sharey=True)
    for ax, kind in zip(axes, ("plain", "resnet")):
        for k, depth in enumerate(depths):
            records = results[f"{kind}{depth}"]["records"]
            label = names[f"{kind}{depth}"] + (" (diverged)" if results[f"{kind}{depth}"]["diverged"] else "")
            if not records:
                ax.plot([], [], color=f"C{k}", label=label)  # diverged in its first epoch: still named
                continue
            it = [r["iteration"] for r in records]
            test = [(r["iteration"], 100 * r["test_error"]) for r in records if r["test_error"] is not None]
            ax.plot(it, [100 * r["train_error"] for r in records], color=f"C{k}", lw=0.8, label=None if test else label)
            if test:
                ax.plot(*zip(*test), color=f"C{k}", lw=2.2, marker="o" if len(test) < 3 else None, label=label)
        ax.set_title("plain" if kind == "plain" else "ResNet")
        ax.set_xlabel("iterations")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("error (%)")
    fig.suptitle("thin: training error, bold: test error (Fig. 6 style)")
    fig.tight_layout()
    save_figure(fig, path)


@dataclass(frozen=True)
class DegradationSettings:
    depths: tuple[int, ...] = setting((20, 56), "depths: 6n+2 for conv nets, even and >= 4 for --family mlp",
                                      metavar="D", nargs="+")  # fmt: skip
    family: str = setting("conv", "convolutional ResNets (default) or MLPs", choices=tuple(FAMILIES))
    training: dict = training()


@register("degradation", "plain vs residual nets through depth (He et al. Sec. 4.1, Fig. 6), conv or MLP",
          DegradationSettings)  # fmt: skip
def _degradation(settings: DegradationSettings, data: str | None, out: Path, log) -> object:
    return run_degradation(out, settings.depths, log=log, family=settings.family, data=data or "default",
                           **settings.training)  # fmt: skip

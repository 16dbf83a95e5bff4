"""What each ablation path of a recipe costs in time: its training steps through the trainer itself
(``resnetlab.fit`` on synthetic images, the recipe's precision, layout, compilation, ghost BN and frozen BN
scales), the paths measured in turn, round after round in one run, so a drifting machine shifts them all.

    .venv/bin/python benchmarks/path_speed.py [--recipe fast94] [--paths fast no-whiten no-ghost]
        [--steps 12] [--skip 4] [--rounds 2]

time_to_accuracy.py's wall times compare only within a CPU and a day; this is the time half of the
ablation's rule (an ingredient is kept when removing it costs accuracy or it saves time at equal accuracy).
Images/s count the steps after ``skip`` (compilation, warm-up), timed between their ends, at the images' full
size (progressive resizing off unless a path sets it: its size switch would recompile inside the window).
Run it alone.
"""

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from resnetlab import hardware
from resnetlab.train import Hook, fit, make_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from profile_step import synthetic_npz, synthetic_run  # noqa: E402  (the same synthetic images and run)
from time_to_accuracy import PATHS  # noqa: E402  (the ablation's paths: one definition)


class StepClock(Hook):
    """The end time of each step."""

    def __init__(self):
        self.ends: list[float] = []

    def after_step(self, state, step) -> None:
        self.ends.append(time.perf_counter())


def images_per_s(recipe: str, fields: dict, data: Path, out: Path, steps: int, skip: int) -> float:
    config = synthetic_run(recipe, fields, data, out, skip + steps)
    clock = StepClock()
    with contextlib.redirect_stdout(io.StringIO()):
        fit(config, hooks=[clock])
    return config.batch_size * steps / (clock.ends[-1] - clock.ends[skip - 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="fast94", choices=list(PATHS))
    parser.add_argument("--paths", nargs="+", default=["fast", "no-whiten", "no-ghost"])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--skip", type=int, default=4, help="steps not timed (compilation, warm-up); at least 1")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    unknown = set(args.paths) - set(PATHS[args.recipe])
    if unknown or args.skip < 1:
        parser.error(f"unknown path(s) {', '.join(sorted(unknown))}; choose from {', '.join(PATHS[args.recipe])}"
                     if unknown else "--skip must be at least 1 (the first step compiles)")  # fmt: skip
    batches = {p: make_config(args.recipe, **PATHS[args.recipe][p]).batch_size for p in args.paths}
    batch = max(batches.values())  # synthetic images for all the steps in one epoch at the largest batch
    print(
        f"{args.recipe}, batch {'/'.join(str(batches[p]) for p in args.paths)} ({', '.join(args.paths)}); "
        f"{hardware.describe()}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; {args.steps} timed steps after {args.skip}, {args.rounds} rounds"
    )
    speed: dict[str, list[float]] = {p: [] for p in args.paths}
    with tempfile.TemporaryDirectory() as tmp:
        data = synthetic_npz(Path(tmp) / "synthetic.npz", batch * (args.skip + args.steps + 1))
        for r in range(args.rounds):
            for path in args.paths:
                speed[path].append(images_per_s(args.recipe, PATHS[args.recipe][path], data,
                                                Path(tmp) / f"{path}-{r}", args.steps, args.skip))  # fmt: skip
                print(f"round {r} {path}: {speed[path][-1]:.1f} img/s", flush=True)
    base = statistics.mean(speed[args.paths[0]])
    print(f"\n| path | images/s, each round | mean | × {args.paths[0]} |\n|---|---|---|---|")
    for path, values in speed.items():
        mean = statistics.mean(values)
        print(f"| {path} | {', '.join(f'{v:.1f}' for v in values)} | {mean:.1f} | {mean / base:.2f}× |")


if __name__ == "__main__":
    main()

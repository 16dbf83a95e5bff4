"""The no-EMA ablation of a finished run without training it again.

Weight averaging only observes training (``tests/train/test_ema.py::test_the_average_only_observes``): the
trained weights a run keeps beside its average are what the same run ends with under ``--ema 0``. This
evaluates both on the run's scored split (validation when one is held out) through the trainer's own
evaluation (its precision and test-time augmentation), checks that the average's errors are the ones the run
recorded, and times the average's update to say what dropping it would save.

    .venv/bin/python benchmarks/ema_twin.py RUN [RUN ...]

The run folders are not touched: each is copied to a temporary folder and resumed there.
"""

import argparse
import contextlib
import io
import json
import shutil
import tempfile
import time
from pathlib import Path

from resnetlab.evaluation import evaluate_batches, torch_predictor
from resnetlab.train.config import resume_config
from resnetlab.train.ema import WeightAverage
from resnetlab.train.loop import EVAL_BATCH, scored_splits
from resnetlab.train.session import open_session


def twin(run: Path) -> dict:
    recorded = json.loads((run / "metrics.json").read_text())[-1]
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / run.name
        shutil.copytree(run, copy, symlinks=True)
        config = resume_config(copy)
        if not config.ema:
            raise SystemExit(f"ema_twin: {run} was trained without --ema: nothing to compare")
        with contextlib.redirect_stdout(io.StringIO()), open_session(config, resume=True) as s:
            (split,) = scored_splits(s.data)
            errors = {}
            for name, model in (("average", s.evaluated), ("trained", s.model)):
                predict = torch_predictor(model, s.normalize, s.device, s.run.precision)
                batches = s.data.eval_batches(split, 0, s.data.split_size(split), EVAL_BATCH)
                result = evaluate_batches(predict, batches, s.data.class_names, config.tta, s.data.eval_crop)
                errors[name] = (result.error, result.error_tta)
            average = WeightAverage(s.model, config.ema)
            start = time.perf_counter()
            for step in range(50):
                average.update(s.model, 1000 + step)
            update_s = (time.perf_counter() - start) / 50
    reproduced = errors["average"] == (recorded[f"{split}_error"], recorded[f"{split}_error_tta"])
    return {"run": str(run), "split": split, "tta": config.tta, "average": errors["average"],
            "trained": errors["trained"], "reproduced": reproduced, "update_s": update_s,
            "saved_s": update_s * recorded["iteration"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    for run in parser.parse_args().runs:
        r = twin(run)
        pct = lambda e: "—" if e is None else f"{100 * (1 - e):.2f}%"  # noqa: E731
        print(f"{r['run']}: {r['split']} accuracy, single view / {r['tta']}: average {pct(r['average'][0])} / "
              f"{pct(r['average'][1])} (the run recorded {'the same' if r['reproduced'] else 'OTHER errors'}); "
              f"trained weights (--ema 0) {pct(r['trained'][0])} / {pct(r['trained'][1])}; the average's update "
              f"{1000 * r['update_s']:.2f} ms a step, {r['saved_s']:.1f} s over the run")  # fmt: skip


if __name__ == "__main__":
    main()

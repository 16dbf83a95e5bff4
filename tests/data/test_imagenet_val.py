"""scripts/arrange_imagenet_val.py: ImageNet's flat validation folder into class folders from Kaggle's CSV."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "scripts" / "arrange_imagenet_val.py"


def test_the_flat_validation_folder_is_arranged_by_its_labels(tmp_path):
    val = tmp_path / "val"
    val.mkdir()
    names = [f"ILSVRC2012_val_{i:08d}.JPEG" for i in (1, 2, 3)]
    for name in names:
        (val / name).write_bytes(b"jpeg")
    csv = tmp_path / "LOC_val_solution.csv"
    csv.write_text("ImageId,PredictionString\n"
                   "ILSVRC2012_val_00000001,n01751748 10 20 30 40\n"
                   "ILSVRC2012_val_00000002,n09193705 1 2 3 4 n09193705 5 6 7 8\n"
                   "ILSVRC2012_val_00000003,n01751748 0 0 9 9\n")  # fmt: skip
    done = subprocess.run([sys.executable, str(SCRIPT), str(val), str(csv)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(str(p.relative_to(val)) for p in val.rglob("*.JPEG")) == [
        f"n01751748/{names[0]}",
        f"n01751748/{names[2]}",
        f"n09193705/{names[1]}",
    ]
    wrong = tmp_path / "labels.txt"
    wrong.write_text("ILSVRC2012_val_00000009.JPEG n01751748\n")
    refused = subprocess.run([sys.executable, str(SCRIPT), str(val), str(wrong)], capture_output=True, text=True)
    assert refused.returncode == 1 and "1 labelled images are not in" in refused.stderr

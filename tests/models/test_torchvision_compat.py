"""State dicts interchange with torchvision: the keys, shapes and logits recorded from torchvision
itself by tests/fixtures/make_torchvision_fixture.py (torchvision cannot be imported beside this
project's PyTorch build, so the fixture was made in a separate venv)."""

import json
import pathlib
import sys

import pytest
import torch

import resnetlab

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures"
sys.path.insert(0, str(FIXTURES))
from seeded_weights import seeded_input, seeded_state_dict  # noqa: E402

TORCHVISION = json.loads((FIXTURES / "torchvision_resnets.json").read_text())["models"]


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_state_dict_keys_shapes_and_logits_match_torchvision(name):
    ref = TORCHVISION[name]
    model = resnetlab.create_model(name).eval()
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert list(ours) == list(ref["state_dict"])  # same names, same order
    assert ours == ref["state_dict"]
    model.load_state_dict(seeded_state_dict(ref["state_dict"]), strict=True)
    with torch.no_grad():
        logits = model(seeded_input())
    torch.testing.assert_close(logits, torch.tensor(ref["logits"]), rtol=1e-4, atol=1e-4)

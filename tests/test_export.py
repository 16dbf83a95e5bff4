"""Eval-mode models (this project's BN included) trace, script and export to ONNX."""

import numpy as np
import pytest
import torch

import resnetlab


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = resnetlab.resnet20()
    m(torch.randn(8, 3, 32, 32))  # non-trivial running statistics
    return m.eval()


def test_script_and_trace(model):
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        torch.testing.assert_close(torch.jit.script(model)(x), ref)
        torch.testing.assert_close(torch.jit.trace(model, x)(x), ref)


def test_onnx_export_runs_in_onnxruntime(model, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is part of the 'test' extra")
    x = torch.randn(2, 3, 32, 32)
    path = tmp_path / "resnet20.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=True, input_names=["x"])
    session = ort.InferenceSession(str(path))
    (out,) = session.run(None, {"x": x.numpy()})
    np.testing.assert_allclose(out, model(x).detach().numpy(), rtol=1e-4, atol=1e-5)

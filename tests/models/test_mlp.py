"""Residual MLPs: the registry's names and errors, parameter counts by hand, training and loading."""

import pytest
import torch

import resnetlab
from resnetlab import create_model
from resnetlab.cli import main
from resnetlab.inspect import gradient_flow


def test_names_resolve_like_the_conv_families():
    model = create_model("mlp_resnet20", input_size=(1, 28, 28))
    assert len(model.layers) == 9 and model.default_input_size == (1, 28, 28)  # depth 20 = 2·9 + 2
    assert model.fc.out_features == 10
    plain = create_model("mlp_plain4")
    assert len(plain.layers) == 1 and all(not b.residual for b in plain.layers)
    for name in ("mlp_resnet5", "mlp_plain2", "mlp_resnet0"):
        with pytest.raises(ValueError, match="2n\\+2"):
            create_model(name)
    with pytest.raises(TypeError, match="mlp_resnet8"):
        create_model("mlp_plain8", residual=True)
    with pytest.raises(TypeError, match="'widht'"):
        create_model("mlp_resnet8", widht=3)


def test_parameter_counts_by_hand():
    # input 1×4×4 = 16 features, width 8, 3 classes, 2 blocks (depth 6)
    bn = create_model("mlp_resnet6", width=8, num_classes=3, input_size=(1, 4, 4))
    # input layer 16·8 (no bias: β replaces it) + BN 2·8; per block two 8·8 layers + two BNs; fc 8·3 + 3
    assert sum(p.numel() for p in bn.parameters()) == 16 * 8 + 16 + 2 * (2 * 64 + 2 * 16) + 27
    plain = create_model("mlp_resnet6", width=8, num_classes=3, input_size=(1, 4, 4), norm_layer="none")
    assert sum(p.numel() for p in plain.parameters()) == (16 * 8 + 8) + 2 * 2 * (64 + 8) + 27
    c = create_model("mlp_resnet6", width=8, num_classes=3, input_size=(1, 4, 4), shortcut="C")
    assert sum(p.numel() for p in c.parameters()) == 16 * 8 + 16 + 2 * (3 * 64 + 3 * 16) + 27
    flat = create_model("mlp_resnet4", width=8, num_classes=3, input_size=(20,))  # flat feature vectors
    assert flat(torch.randn(2, 20)).shape == (2, 3)


def test_gradient_flow_and_summary_work_on_mlps(capsys):
    model = create_model("mlp_plain8", width=16, input_size=(1, 8, 8))
    flow = gradient_flow(model, torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,)))
    assert [g.name for g in flow.layers][0] == "input_layer" and flow.layers[-1].name == "fc"
    assert len(flow.layers) == 8  # every weight layer of depth 8
    assert main(["summary", "mlp_resnet20", "--input-size", "1", "28", "28"]) == 0
    out = capsys.readouterr().out
    assert "BatchNorm1d" in out and "Total params: 1,392,650" in out  # 784·256 + 512 + 9·132,096 + 2,570


def test_train_mlp_on_the_embedded_digits_and_load_it(tmp_path):
    out = tmp_path / "mlp"
    argv = ["train", "--model", "mlp_resnet6", "--model-arg", "width=32", "--data", "default", "--subset", "256"]
    assert main([*argv, "--iterations", "3", "--batch-size", "32", "--threads", "1", "--out", str(out)]) == 0
    model, meta = resnetlab.load_checkpoint(out)
    assert model.default_input_size == (1, 28, 28) and meta["input_size"] == [1, 28, 28]
    assert model.input_layer.in_features == 784 and model.layers[0].fc1.out_features == 32

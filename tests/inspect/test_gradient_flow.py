"""Gradient flow: norms against torch.autograd.grad, forward order, input statistics, no side effects."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnetlab.cli import main
from resnetlab.inspect import gradient_flow
from resnetlab.models import cifar_resnet


class Net(nn.Module):
    """The head is registered before the body: the table must follow the forward pass instead."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(8, 3)
        self.conv_a = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv_b = nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=False)

    def forward(self, x):
        h = F.relu(self.bn(self.conv_a(x)))
        return self.head(torch.tanh(self.conv_b(h)).mean((2, 3)))


def test_norms_match_autograd_in_forward_order():
    torch.manual_seed(0)
    net, x, y = Net(), torch.randn(6, 2, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    flow = gradient_flow(net, x, y)
    assert [g.name for g in flow.layers] == ["conv_a", "conv_b", "head"]
    assert [g.index for g in flow.layers] == [1, 2, 3] and [g.kind for g in flow.layers] == [
        "Conv2d",
        "Conv2d",
        "Linear",
    ]

    ref = net.train()
    loss = F.cross_entropy(ref(x), y)
    grads = torch.autograd.grad(loss, [net.conv_a.weight, net.conv_b.weight, net.head.weight])
    for g, expected in zip(flow.layers, grads):
        assert g.grad_norm == pytest.approx(expected.norm().item(), rel=1e-5)
    assert flow.loss == pytest.approx(loss.item(), rel=1e-6)
    # The first layer receives the input itself.
    assert flow.layers[0].input_mean == pytest.approx(x.mean().item(), abs=1e-6)
    assert flow.layers[0].input_var == pytest.approx(x.var().item(), rel=1e-5)


def test_model_is_left_as_it_was():
    torch.manual_seed(0)
    net = Net().eval()
    net.bn.running_mean.fill_(0.3)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    old_grad = torch.full_like(net.head.weight, 7.0)
    net.head.weight.grad = old_grad
    flow = gradient_flow(net, torch.randn(4, 2, 8, 8), torch.tensor([0, 1, 2, 0]))
    assert flow.layers[-1].grad_norm != pytest.approx(old_grad.norm().item())  # measured afresh, not accumulated
    assert not net.training and not net.bn.training
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())  # BN statistics untouched
    assert net.head.weight.grad is old_grad and net.conv_a.weight.grad is None


def test_table_and_residual_net():
    torch.manual_seed(0)
    flow = gradient_flow(cifar_resnet(8), torch.randn(4, 3, 32, 32), torch.tensor([1, 2, 3, 4]))
    assert [g.name for g in flow.layers] == [
        "conv1",
        "layer1.0.conv1",
        "layer1.0.conv2",
        "layer2.0.conv1",
        "layer2.0.conv2",
        "layer3.0.conv1",
        "layer3.0.conv2",
        "fc",
    ]
    text = str(flow)
    assert "layer2.0.conv1 (Conv2d)" in text and "fc (Linear)" in text and "First / last layer gradient norm" in text


def test_bad_batch_is_one_clear_error():
    with pytest.raises(ValueError, match="cannot run on a batch of shape"):
        gradient_flow(cifar_resnet(8), torch.randn(2, 1, 32, 32), torch.tensor([0, 1]))


def test_summary_command_prints_gradient_flow(capsys):
    assert main(["summary", "resnet8", "--gradient-flow", "4"]) == 0
    out = capsys.readouterr().out
    assert "Total params" in out and "Gradient flow at initialization: one batch of 4" in out and "fc (Linear)" in out
    for bad in ("1", "-3"):
        assert main(["summary", "resnet8", "--gradient-flow", bad]) == 1
        assert "at least 2" in capsys.readouterr().err
    main(["summary", "resnet8", "--gradient-flow", "4"])
    assert capsys.readouterr().out == out  # seeded: the same weights and batch every time


def test_a_layer_called_twice_is_listed_once_with_its_whole_gradient():
    torch.manual_seed(0)
    conv, head = nn.Conv2d(2, 2, 3, padding=1), nn.Linear(2, 3)
    net = nn.ModuleDict({"conv": conv, "head": head})
    net.forward = lambda x: head(conv(torch.relu(conv(x))).mean((2, 3)))
    x, y = torch.randn(3, 2, 6, 6), torch.tensor([0, 1, 2])
    flow = gradient_flow(net, x, y)
    assert [g.name for g in flow.layers] == ["conv", "head"]
    (expected,) = torch.autograd.grad(F.cross_entropy(net(x), y), [conv.weight])  # both uses summed
    assert flow.layers[0].grad_norm == pytest.approx(expected.norm().item(), rel=1e-5)
    assert flow.layers[0].input_mean == pytest.approx(x.mean().item(), abs=1e-6)  # its first call's input

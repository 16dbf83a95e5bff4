"""The layer table: the seed's bottleneck example, ResNet-50 and ResNet-20 counts."""

import torch
from torch import nn

import resnetlab


class SeedBottleneck(nn.Module):
    """The seed's example: 256-d input, 1×1 256→64, ReLU, 3×3 64→64, ReLU, 1×1 64→256 (no
    biases), a 1×1 256→256 projection shortcut with bias, ReLU."""

    def __init__(self):
        super().__init__()
        self.reduce = nn.Conv2d(256, 64, 1, bias=False)
        self.relu1 = nn.ReLU()
        self.conv = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.relu2 = nn.ReLU()
        self.expand = nn.Conv2d(64, 256, 1, bias=False)
        self.shortcut = nn.Conv2d(256, 256, 1, bias=True)
        self.relu3 = nn.ReLU()

    def forward(self, x):
        f = self.expand(self.relu2(self.conv(self.relu1(self.reduce(x)))))
        return self.relu3(f + self.shortcut(x))


def test_seed_bottleneck_table():
    s = resnetlab.summary(SeedBottleneck(), input_size=(256, 320, 320))
    text = str(s)
    assert [r.params for r in s.rows if r.params] == [16_384, 36_864, 16_384, 65_792]
    assert "Conv2d-1" in text and "[-1, 64, 320, 320]" in text and "16,384" in text and "65,792" in text
    assert "Total params: 135,424" in text and s.total_params == 135_424
    assert "Layer (type)" in text and "Output Shape" in text and "Param #" in text
    assert s.rows[0].mult_adds == 320 * 320 * 64 * 256
    for label in [
        "Trainable params: 135,424",
        "Non-trainable params: 0",
        "Input size (MB): 100.00",
        "Forward/backward pass size (MB)",
        "Params size (MB): 0.52",
        "Estimated Total Size (MB)",
    ]:
        assert label in text


def test_resnet50_counts():
    s = resnetlab.summary(resnetlab.resnet50(), (3, 224, 224))
    assert s.total_params == 25_557_032 and s.trainable_params == 25_557_032 and s.non_trainable_params == 0
    assert abs(s.total_mult_adds / 1e9 - 4.09) < 0.01
    assert s.rows[0].layer == "Conv2d-1" and s.rows[0].output_shape == [-1, 64, 112, 112] and s.rows[0].params == 9408
    assert "Total mult-adds (G): 4.09" in str(s)


def test_resnet20_counts_and_frozen_parameters():
    model = resnetlab.resnet20()
    model.fc.requires_grad_(False)
    s = resnetlab.summary(model, (3, 32, 32))
    assert abs(s.total_mult_adds / 1e6 - 41) < 1
    assert s.total_params == 269_722 and s.non_trainable_params == 650


def test_summary_leaves_running_stats_and_mode_alone():
    model = resnetlab.resnet20().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    resnetlab.summary(model, (3, 32, 32))
    assert model.training and model.bn1.training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())

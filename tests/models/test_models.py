"""Every registered model: shapes, parameter counts from the papers, registry errors, backbones."""

import pytest
import torch
from torch import nn

import resnetlab
from resnetlab import create_model, list_models
from resnetlab.models import Classifier, as_classifier, default_input_size

PARAMS = {  # torchvision's and the paper's (Sec. 4.2: 0.27M ... 19.4M) counts
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
    "resnet1202": 19_421_274,
    "plain20": 269_722,
    "plain32": 464_154,
    "plain44": 658_586,
    "plain56": 853_018,
    "plain110": 1_727_962,
    "plain18": 11_515_688,
    "plain34": 21_623_848,  # no projection shortcuts
}


def test_registry_lists_every_paper_model():
    assert set(list_models()) == set(PARAMS) | {"resnet9"}


def _resnet9_counts(width: float, widths=(64, 128, 256, 512)) -> tuple[int, int]:
    """Parameters and multiply-adds of Page's ResNet-9 from its layer list, per 32×32 image: 3×3 convolutions
    without bias, BN's γ and β, a bias-free classifier; (input channels, output channels, output side)."""
    c = [round(w * width) for w in widths]
    convs = [(3, c[0], 32), (c[0], c[1], 32), (c[1], c[1], 16), (c[1], c[1], 16), (c[1], c[2], 16),
             (c[2], c[3], 8), (c[3], c[3], 4), (c[3], c[3], 4)]  # fmt: skip
    params = sum(9 * i * o + 2 * o for i, o, _ in convs) + c[3] * 10
    macs = sum(9 * i * o * side * side for i, o, side in convs) + c[3] * 10
    return params, macs


@pytest.mark.parametrize("width", [1.0, 0.5])
def test_resnet9_has_pages_parameters_and_multiply_adds(width):
    params, macs = _resnet9_counts(width)
    if width == 1.0:
        assert round(params / 1e6, 2) == 6.57 and round(macs / 1e9, 3) == 0.379  # the published figures
    model = create_model("resnet9", width=width)
    report = resnetlab.summary(model, (3, 32, 32))
    assert report.total_params == sum(p.numel() for p in model.parameters()) == params
    assert report.total_mult_adds == macs
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 10)
    pooled_first = create_model("resnet9", width=width, pool_before_bn=True, activation="celu:0.075")
    assert pooled_first(x).shape == (2, 10) and isinstance(pooled_first.layer2[1], torch.nn.MaxPool2d)


def test_resnet9_widths_set_each_stage():
    model = create_model("resnet9", widths=(64, 128, 384, 768), width=0.5)  # scaled: 32, 64, 192, 384
    assert resnetlab.summary(model, (3, 32, 32)).total_mult_adds == _resnet9_counts(0.5, (64, 128, 384, 768))[1]
    assert model.fc.in_features == 384
    with pytest.raises(ValueError, match="widths must be 4 positive integers"):
        create_model("resnet9", widths=(64, 128, 256))


def test_resnet9_residual_adds_after_the_second_activation():
    model = create_model("resnet9", width=0.25).eval()
    block, x = model.layer1[1], torch.randn(2, 32, 8, 8)
    assert torch.equal(block(x), x + block.res2(block.res1(x)))  # no activation after the sum
    assert (block(x) < 0).any()  # which a ReLU after the sum would remove


def test_resnet9_identity_init_passes_the_first_channels_through():
    torch.manual_seed(0)
    model = create_model("resnet9", width=0.25, whiten=2, identity_init=True)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 8
    for conv in convs:
        x = torch.randn(2, conv.in_channels, 5, 5)
        n = min(conv.in_channels, conv.out_channels)
        y = conv(x)
        assert torch.allclose(y[:, :n], x[:, :n], atol=1e-6)  # the identity on the first channels
        if conv.out_channels > n:
            assert y[:, n:].abs().sum() > 0  # the others keep PyTorch's default
    plain = create_model("resnet9", width=0.25)
    assert not torch.allclose(plain.prep[0](torch.ones(1, 3, 5, 5))[:, :3], torch.ones(1, 3, 5, 5))


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_every_model_builds_with_expected_parameters_and_runs(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7)
    n_fc = model.fc.in_features * 7 + 7
    default_fc = model.fc.in_features * (1000 if model.layer4 is not None else 10) + (
        1000 if model.layer4 is not None else 10
    )
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name] - default_fc + n_fc
    assert getattr(resnetlab, name)().fc.out_features in (10, 1000)
    size = 32 if model.layer4 is None else 64
    x = torch.randn(2, 3, size, size)
    model.train()
    out = model(x)
    assert out.shape == (2, 7) and torch.isfinite(out).all()


def test_imagenet_stages_are_strides_4_8_16_32():
    feats = resnetlab.resnet50().eval().forward_stages(torch.randn(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2]
    assert [f.shape[1] for f in feats] == [256, 512, 1024, 2048]


def test_cifar_forward_features_and_in_channels():
    model = resnetlab.resnet20(in_channels=1).eval()
    assert model.forward_features(torch.randn(1, 1, 28, 28)).shape == (1, 64, 7, 7)
    assert model.conv1.in_channels == 1 and model.default_input_size == (1, 32, 32)


def test_any_6n_plus_2_depth():
    model = create_model("resnet26")
    assert [len(model.layer1), len(model.layer2), len(model.layer3)] == [4, 4, 4]
    plain = resnetlab.cifar_resnet(8, residual=False)
    assert all(b.downsample is None for b in plain.layer2)


def test_paper_choices_are_arguments():
    assert resnetlab.resnet20().layer2[0].downsample.__class__.__name__ == "ShortcutA"
    assert isinstance(resnetlab.resnet20(shortcut="B").layer2[0].downsample, torch.nn.Sequential)
    assert resnetlab.resnet50(stride_in_1x1=True).layer2[0].conv1.stride == (2, 2)
    assert resnetlab.resnet50().layer2[0].conv2.stride == (2, 2)
    z = resnetlab.resnet18(zero_init_residual=True)
    assert not z.layer1[0].bn2.weight.any() and z.layer1[0].bn1.weight.all()


@pytest.mark.parametrize("name", ["resnet21", "resnet19", "plain51", "vgg16", "resnet2"])
def test_unknown_name_lists_choices(name):
    with pytest.raises(ValueError, match="6n\\+2"):
        create_model(name)


def test_unknown_keyword_is_named():
    with pytest.raises(TypeError, match="'num_clases'"):
        create_model("resnet50", num_clases=10)
    with pytest.raises(TypeError, match="'depth'"):
        resnetlab.resnet18(depth=3)
    with pytest.raises(ValueError, match="num_classes"):
        create_model("resnet20", num_classes=0)
    with pytest.raises(TypeError, match="bottleneck"):
        resnetlab.resnet18(stride_in_1x1=True)


@pytest.mark.parametrize(
    ("build", "kwargs", "names"),
    [
        (resnetlab.plain18, {"residual": True}, ["'residual'", "resnet18", "valid: num_classes"]),
        (resnetlab.resnet20, {"residual": False}, ["'residual'", "plain20", "valid: num_classes"]),
        (resnetlab.plain56, {"residual": True}, ["resnet56"]),
        (lambda **k: create_model("resnet26", **k), {"residual": False}, ["plain26"]),
        (resnetlab.resnet50, {"residual": False}, ["no plain twin"]),
        (resnetlab.resnet20, {"stem": "imagenet"}, ["'stem'", "valid:"]),
    ],
)
def test_builder_refuses_what_it_fixes(build, kwargs, names):
    """Each builder takes only its own arguments: the plain twin cannot be switched to residual by a
    keyword (it used to build a ResNet silently), and resnet20(residual=False) names plain20."""
    with pytest.raises(TypeError) as info:
        build(**kwargs)
    for name in names:
        assert name in str(info.value)


def test_builder_takes_the_papers_arguments():
    model = resnetlab.resnet50(stride_in_1x1=True, shortcut="C", zero_init_residual=True, activation="sigmoid")
    assert model.layer2[0].conv1.stride == (2, 2) and model.layer2[0].conv2.stride == (1, 1)
    assert model.layer1[1].downsample is not None  # option C: a projection on every block
    assert float(model.layer1[0].bn3.weight.detach().abs().sum()) == 0
    assert isinstance(model.act, torch.nn.Sigmoid)


def test_builder_takes_what_the_builder_accepts():
    """The named builders are written f(**kwargs): their signature says what they take."""
    import inspect

    from resnetlab.models import builder_takes

    assert builder_takes("resnet20", "shortcut") and builder_takes("resnet26", "shortcut")
    assert builder_takes("resnet50", "stride_in_1x1") and not builder_takes("resnet18", "stride_in_1x1")
    assert not builder_takes("resnet20", "residual") and builder_takes("mlp_resnet8", "input_size")
    assert "zero_init_residual" in inspect.signature(resnetlab.resnet110).parameters


def test_as_classifier_reads_submodules_and_names_what_is_missing():
    # hasattr, not a runtime protocol: from Python 3.12 isinstance(model, Classifier) reads attributes statically
    # and answers False for every nn.Module (fc is a submodule), which broke training there.
    model = create_model("resnet9")
    assert as_classifier(model) is model and default_input_size(model) == (3, 32, 32)
    with pytest.raises(TypeError, match="has no default_input_size, fc, forward_features, forward_stages"):
        as_classifier(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(TypeError):  # not runtime-checkable: nobody may rely on that isinstance
        isinstance(model, Classifier)

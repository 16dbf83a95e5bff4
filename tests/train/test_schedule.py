"""The learning-rate schedules at the points that define them."""

import math

import pytest

from resnetlab.train import make_config
from resnetlab.train.schedule import learning_rate


def lr_at(schedule, iteration, total=100, **kw):
    config = make_config("cosine", schedule=schedule, lr=0.4, iterations=total, **kw)
    return learning_rate(config, iteration, total)


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_warmup_then_to_zero(schedule):
    assert lr_at(schedule, 0, warmup_iterations=10) == pytest.approx(0.04)  # (0 + 1)/10 of the peak
    assert lr_at(schedule, 9, warmup_iterations=10) == pytest.approx(0.4)
    assert lr_at(schedule, 10, warmup_iterations=10) == pytest.approx(0.4)
    assert lr_at(schedule, 100, warmup_iterations=10) == pytest.approx(0.0, abs=1e-12)


def test_linear_and_cosine_shapes_differ_as_defined():
    # a quarter of the way past the warm-up: linear 3/4 of the peak, cosine (1 + cos(π/4))/2
    assert lr_at("linear", 30, warmup_iterations=20, total=100) == pytest.approx(0.4 * 0.875)
    assert lr_at("linear", 40, warmup_iterations=20, total=100) == pytest.approx(0.4 * 0.75)
    assert lr_at("cosine", 40, warmup_iterations=20, total=100) == pytest.approx(0.2 * (1 + math.cos(math.pi / 4)))


def test_step_divides_by_ten_at_each_milestone():
    assert [lr_at("step", i, milestones=(0.5, 0.75), warmup_iterations=0) for i in (49, 50, 74, 75)] == pytest.approx(
        [0.4, 0.04, 0.04, 0.004]
    )


def test_imagenet_recipes_scale_the_lr_with_the_batch_and_warm_up_above_256():
    """Goyal et al.: lr 0.1 per 256 images, and 5 epochs of linear warm-up when the batch is larger."""
    at_256 = make_config("imagenet-step", batch_size=256)
    assert at_256.peak_lr == pytest.approx(0.1) and at_256.warmup_steps(100) == 0
    at_1024 = make_config("paper-imagenet", batch_size=1024, epochs=10)
    assert at_1024.peak_lr == pytest.approx(0.4) and at_1024.warmup_steps(100) == 500
    lrs = [learning_rate(at_1024, i, 2000, at_1024.warmup_steps(100)) for i in (0, 499, 500, 999, 1000, 1500)]
    assert lrs == pytest.approx([0.4 / 500, 0.4, 0.4, 0.4, 0.04, 0.004])  # then ÷10 at 50% and 75%
    assert make_config("imagenet-step", batch_size=512, warmup_epochs=0).warmup_steps(100) == 0
    assert make_config("cosine", batch_size=512).peak_lr == 0.1  # no --lr-base-size: --lr as given

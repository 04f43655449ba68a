"""cnncourse.experiments.schedules: one-cycle (as PyTorch's OneCycleLR), warm-up + cosine, steps per epoch."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cnncourse.experiments import schedules
from cnncourse.reference import optim

TOL = 1e-6


def _lr(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_one_cycle_shape():
    s = schedules.OneCycle(max_lr=0.1, total_steps=1000, pct_start=0.25)
    lr = keras.ops.convert_to_numpy(s(np.arange(0, 1101)))  # vectorized: one call for all steps
    assert lr.shape == (1101,)
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(s(137))), lr[137], rtol=1e-6)
    peak = int(np.argmax(lr))
    assert peak == 250
    np.testing.assert_allclose(lr[0], 0.1 / 25, rtol=1e-6)
    np.testing.assert_allclose(lr.max(), 0.1, rtol=1e-6)
    np.testing.assert_allclose(lr[1000:], 0.1 / 25 / 1e4, rtol=1e-5)
    assert np.all(np.diff(lr[: peak + 1]) > 0)  # warm-up rises
    assert np.all(np.diff(lr[peak:1001]) < 0)  # annealing falls
    assert lr.min() >= 0.1 / 25 / 1e4 * (1 - 1e-5)
    lin = schedules.OneCycle(max_lr=1.0, total_steps=100, pct_start=0.5, div_factor=2.0, final_div_factor=2.0, anneal="linear")
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(lin(25))), 0.75, rtol=1e-6)
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(lin(75))), 0.625, rtol=1e-6)


def test_one_cycle_serializes_and_drives_an_optimizer():
    s = schedules.OneCycle(max_lr=0.05, total_steps=200, pct_start=0.4, anneal="linear")
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(s))
    assert isinstance(again, schedules.OneCycle) and again.get_config() == s.get_config()
    opt = keras.optimizers.SGD(learning_rate=s)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert restored.get_config()["learning_rate"]["config"] == s.get_config()
    ours = optim.SGD(s)
    assert optim.compare_with_keras(ours, np.ones((30, 3)), np.zeros(3), keras_optimizer=keras.optimizers.SGD(s)) <= TOL


def test_one_cycle_validates_arguments():
    with pytest.raises(ValueError, match="total_steps"):
        schedules.OneCycle(0.1, 1)
    with pytest.raises(ValueError, match="pct_start"):
        schedules.OneCycle(0.1, 100, pct_start=1.0)
    with pytest.raises(ValueError, match="anneal"):
        schedules.OneCycle(0.1, 100, anneal="step")


def test_warmup_cosine_rises_to_the_peak_then_decays_to_zero():
    s = schedules.warmup_cosine(1e-2, 100, 10)
    assert _lr(s, 0) == pytest.approx(0.0, abs=1e-9)
    assert _lr(s, 5) == pytest.approx(5e-3, rel=1e-4)  # halfway up the linear warm-up
    assert _lr(s, 10) == pytest.approx(1e-2, rel=1e-4)  # the peak
    assert _lr(s, 55) == pytest.approx(5e-3, rel=1e-3)  # half-way down the cosine
    assert _lr(s, 100) == pytest.approx(0.0, abs=1e-9)
    from_floor = schedules.warmup_cosine(0.1, 40, 10, initial=0.001)
    assert _lr(from_floor, 0) == pytest.approx(0.001, rel=1e-4)
    assert _lr(schedules.warmup_cosine(0.05, 10), 0) == pytest.approx(0.05)  # no warm-up: starts at the peak
    assert isinstance(s, keras.optimizers.schedules.CosineDecay)  # Keras' own schedule, not a copy


@pytest.mark.parametrize("kwargs", [{"warmup_steps": 100}, {"warmup_steps": -1}, {"total_steps": 0},
                                    {"peak": 0.0}, {"initial": -0.1}, {"total_steps": 10.5}])
def test_warmup_cosine_rejects_bad_arguments(kwargs):
    args = {"peak": 0.1, "total_steps": 100, "warmup_steps": 5, **kwargs}
    with pytest.raises(ValueError):
        schedules.warmup_cosine(args.pop("peak"), args.pop("total_steps"), **args)


def test_steps_per_epoch_keeps_the_last_smaller_batch():
    assert schedules.steps_per_epoch(2500, 64) == 40 and schedules.steps_per_epoch(64, 64) == 1
    assert schedules.steps_per_epoch(np.int64(65), 64) == 2
    for bad in ((0, 64), (10, 0), (10.0, 5), (True, 5)):
        with pytest.raises(ValueError):
            schedules.steps_per_epoch(*bad)

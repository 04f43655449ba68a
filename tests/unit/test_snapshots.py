"""Snapshot ensembles: cyclic cosine schedule, snapshots at cycle ends, averaged softmax, equal-cost comparison."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cnncourse.experiments import snapshots as S


def _blobs(n=240, classes=3, seed=0):
    """Overlapping Gaussian blobs in 6-D: hard enough that ensembles can differ."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.2, size=(classes, 6))
    y = np.arange(n) % classes
    x = centres[y] + rng.normal(size=(n, 6))
    return x.astype("float32"), y.astype("int32")


def _mlp():
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])


def _lr(schedule, step) -> float:
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_schedule_restarts_to_the_full_rate_every_cycle_and_anneals_to_zero():
    schedule = S.snapshot_schedule(0.1, 10)
    for cycle in range(4):
        assert _lr(schedule, 10 * cycle) == pytest.approx(0.1)
        assert _lr(schedule, 10 * cycle + 5) == pytest.approx(0.05, rel=1e-5)  # half way: (cos(π/2) + 1)/2
        assert _lr(schedule, 10 * cycle + 9) == pytest.approx(0.1 * (np.cos(np.pi * 9 / 10) + 1) / 2, rel=1e-5)
    assert _lr(S.snapshot_schedule(0.1, 10, alpha=0.1), 10 - 1e-3) == pytest.approx(0.01, rel=1e-3)


def test_callback_keeps_the_weights_at_each_cycle_end():
    x, y = _blobs(96)
    keras.utils.set_random_seed(0)
    model = _mlp()
    model.compile(keras.optimizers.SGD(S.snapshot_schedule(0.1, 6)), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    at_epoch_end = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: at_epoch_end.append(model.get_weights()))
    keeper = S.SnapshotEnsemble(6)  # 3 batches per epoch: a cycle is 2 epochs
    model.fit(x, y, batch_size=32, epochs=6, verbose=0, callbacks=[keeper, record])
    assert keeper.snapshot_steps == [6, 12, 18]
    for snapshot, epoch in zip(keeper.snapshots, (1, 3, 5)):
        for a, b in zip(snapshot, at_epoch_end[epoch]):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(keeper.snapshots[0][0], keeper.snapshots[1][0])


def test_callback_keeps_only_the_last_snapshots_and_counts_from_the_optimizer():
    x, y = _blobs(64)
    model = _mlp()
    model.compile(keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)  # two steps already taken
    keeper = S.SnapshotEnsemble(4, keep=2)
    model.fit(x, y, batch_size=32, epochs=7, verbose=0, callbacks=[keeper])  # steps 3 … 16
    assert keeper.snapshot_steps == [12, 16] and len(keeper.snapshots) == 2
    with pytest.raises(ValueError, match="steps_per_cycle"):
        S.SnapshotEnsemble(0)


def test_ensemble_probabilities_average_the_members_softmax_and_restore_the_weights():
    x, _ = _blobs(20)
    keras.utils.set_random_seed(1)
    model = _mlp()
    members = [[w + 0.3 * np.random.default_rng(i).normal(size=w.shape).astype("float32") for w in model.get_weights()] for i in range(3)]
    original = [w.copy() for w in model.get_weights()]
    expected = []
    for weights in members:
        model.set_weights(weights)
        expected.append(keras.ops.convert_to_numpy(keras.ops.softmax(model(x))))
    model.set_weights(original)
    probs = S.ensemble_probabilities(model, members, x)
    np.testing.assert_allclose(probs, np.mean(expected, axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    for a, b in zip(original, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # a model that already outputs probabilities is averaged as it is
    soft = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])
    np.testing.assert_allclose(
        S.ensemble_probabilities(soft, [soft.get_weights()], x, from_logits=False), soft.predict(x, verbose=0), rtol=1e-6
    )
    y = probs.argmax(axis=1)
    assert S.ensemble_accuracy(model, members, x, y) == 1.0
    with pytest.raises(ValueError, match="at least one"):
        S.ensemble_probabilities(model, [], x)


@pytest.mark.slow
def test_comparison_spends_the_same_steps_on_every_arm():
    x, y = _blobs(390, seed=2)
    x, y, xe, ye = x[:240], y[:240], x[240:], y[240:]  # same blobs, held-out points
    result = S.compare_at_equal_cost(_mlp, x, y, xe, ye, cycles=3, epochs_per_cycle=2, learning_rate=0.05, batch_size=40)
    assert result.steps == {"snapshot": 36, "independent": 36, "single": 36}  # 3 cycles x 2 epochs x 6 batches
    assert len(result.snapshot_members) == len(result.independent_members) == 3
    assert result.snapshot == result.snapshot_by_size[-1] and result.independent == result.independent_by_size[-1]
    assert result.snapshot_by_size[0] == result.snapshot_members[-1]  # the ensemble of one is the last snapshot
    assert result.independent_by_size[0] == result.independent_members[0]
    chance = 1 / 3
    for accuracy in [*result.snapshot_members, *result.independent_members, result.single]:
        assert chance < accuracy <= 1.0  # every arm learned something
    assert len(set(result.independent_members)) > 1 or len(set(result.snapshot_members)) > 1
    assert "snapshot ensemble (3 cycles of 2 epochs)" in str(result)


def test_comparison_rejects_bad_arguments():
    x, y = _blobs(30)
    with pytest.raises(ValueError, match="cycles"):
        S.compare_at_equal_cost(_mlp, x, y, x, y, cycles=0)
    with pytest.raises(ValueError, match="matching lengths"):
        S.compare_at_equal_cost(_mlp, x, y[:-1], x, y)
    with pytest.raises(ValueError, match="learning_rate"):
        S.snapshot_schedule(0.0, 10)

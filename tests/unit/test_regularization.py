"""Regularization references: dropout conventions, optimizer steps vs Keras, labels, the grid."""

from __future__ import annotations

from types import SimpleNamespace

import keras
import numpy as np
import pytest

from cnncourse import regularization as R
from cnncourse.profiles import Experiment
from cnncourse.train import Comparison, RunResult


# ----------------------------------------------------------------------------- dropout
def test_dropout_conventions_agree_in_expectation_and_differ_in_scale():
    rng = np.random.default_rng(0)
    h = np.linspace(0.5, 2.0, 50)
    p = 0.3
    vanilla = np.mean([R.vanilla_dropout(h, p, training=True, rng=rng) for _ in range(4000)], axis=0)
    inverted = np.mean([R.inverted_dropout(h, p, training=True, rng=rng) for _ in range(4000)], axis=0)
    np.testing.assert_allclose(vanilla, R.vanilla_dropout(h, p, training=False), rtol=0.1)
    np.testing.assert_allclose(inverted, R.inverted_dropout(h, p, training=False), rtol=0.1)
    np.testing.assert_allclose(R.vanilla_dropout(h, p, training=False), p * h)
    np.testing.assert_array_equal(R.inverted_dropout(h, p, training=False), h)
    one = R.inverted_dropout(np.ones(10_000), p, training=True, rng=rng)
    assert set(np.unique(one)) == {0.0, 1 / p}
    assert abs(np.mean(one > 0) - p) < 0.02


def test_inverted_dropout_is_what_keras_dropout_does():
    x = np.ones((200, 500), dtype="float32")
    y = keras.ops.convert_to_numpy(keras.layers.Dropout(0.25, seed=1)(x, training=True))
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / 0.75], rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.02
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(keras.layers.Dropout(0.25)(x, training=False)), x)


@pytest.mark.parametrize("p", [0.0, 1.5, -0.1, True, "0.5"])
def test_dropout_rejects_bad_keep_probabilities(p):
    with pytest.raises(ValueError):
        R.inverted_dropout(np.ones(3), p, training=False)
    with pytest.raises(ValueError):
        R.dropout_mask((3,), p, np.random.default_rng(0))


def test_training_dropout_needs_an_rng():
    with pytest.raises(ValueError):
        R.vanilla_dropout(np.ones(3), 0.5, training=True)
    with pytest.raises(ValueError):
        R.inverted_dropout(np.ones(3), 0.5, training=True)


def _layers(seed=0, sizes=(6, 40, 30, 4)):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(a, b)) / np.sqrt(a), rng.normal(size=b) * 0.1) for a, b in zip(sizes[:-1], sizes[1:])]


@pytest.mark.parametrize("mode", ["vanilla", "inverted"])
def test_monte_carlo_matches_scaled_pass_exactly_only_for_linear_networks(mode):
    layers = _layers()
    x = np.random.default_rng(1).normal(size=(5, 6))
    linear_mc = R.monte_carlo_forward(x, layers[:2], 0.5, 20_000, mode=mode, activation="linear")
    linear_scaled = R.mlp_forward(x, layers[:2], 0.5, mode=mode, activation="linear")
    np.testing.assert_allclose(linear_mc, linear_scaled, atol=0.05)
    relu_mc = R.monte_carlo_forward(x, layers, 0.5, 20_000, mode=mode)
    relu_scaled = R.mlp_forward(x, layers, 0.5, mode=mode)
    assert np.abs(relu_mc - relu_scaled).max() > 0.05  # E[g(h)] != g(E[h]) through the ReLU


def test_mlp_without_dropout_is_the_plain_network():
    layers = _layers()
    x = np.random.default_rng(2).normal(size=(3, 6))
    plain = np.maximum(np.maximum(x @ layers[0][0] + layers[0][1], 0) @ layers[1][0] + layers[1][1], 0)
    plain = plain @ layers[2][0] + layers[2][1]
    for mode in ("vanilla", "inverted"):
        np.testing.assert_allclose(R.mlp_forward(x, layers, 1.0, mode=mode), plain)
        got = R.mlp_forward(x, layers, 1.0, mode=mode, training=True, rng=np.random.default_rng(0))
        np.testing.assert_allclose(got, plain)
    with pytest.raises(ValueError):
        R.mlp_forward(x, layers, mode="other")
    with pytest.raises(ValueError):
        R.mlp_forward(x, layers, activation="gelu")
    with pytest.raises(ValueError):
        R.mlp_forward(x, [])
    with pytest.raises(ValueError):
        R.monte_carlo_forward(x, layers, 0.5, 0)


def test_mask_count_digits():
    assert R.mask_count_digits(4096) == 1234  # 2**4096 ≈ 1.04e1233
    assert R.mask_count_digits(0) == 1 and R.mask_count_digits(10) == 4
    for bad in (-1, 2.0, True):
        with pytest.raises(ValueError):
            R.mask_count_digits(bad)


# ----------------------------------------------------------------------------- optimizer steps
def test_sgd_l2_in_the_loss_equals_weight_decay():
    rng = np.random.default_rng(0)
    w, g = rng.normal(size=20), rng.normal(size=20)
    np.testing.assert_allclose(R.sgd_l2_step(w, g, 0.1, 0.01 / 2), R.sgd_weight_decay_step(w, g, 0.1, 0.01))
    assert not np.allclose(R.sgd_l2_step(w, g, 0.1, 0.01), R.sgd_weight_decay_step(w, g, 0.1, 0.01))
    with pytest.raises(ValueError):
        R.sgd_l2_step(w, g, 0.0, 0.1)
    with pytest.raises(ValueError):
        R.sgd_weight_decay_step(w, g, 0.1, -1.0)


def _keras_steps(optimizer, w0, grads):
    var = keras.Variable(np.array(w0, dtype="float32"))
    for g in grads:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(np.array(g, dtype="float32")), var)])
    return keras.ops.convert_to_numpy(var)


def test_references_match_keras_sgd_adam_and_adamw():
    rng = np.random.default_rng(3)
    w0 = rng.normal(size=30)
    grads = [rng.normal(size=30) for _ in range(5)]
    w = w0.copy()
    for g in grads:
        w = R.sgd_weight_decay_step(w, g, 0.05, 0.1)
    np.testing.assert_allclose(_keras_steps(keras.optimizers.SGD(0.05, weight_decay=0.1), w0, grads), w, atol=1e-5)
    for decay in (0.0, 0.1):
        w, m, v = w0.copy(), np.zeros(30), np.zeros(30)
        for t, g in enumerate(grads, 1):
            w, m, v = R.adamw_step(w, g, m, v, t, 0.01, decay)
        opt = keras.optimizers.AdamW(0.01, weight_decay=decay) if decay else keras.optimizers.Adam(0.01)
        np.testing.assert_allclose(_keras_steps(opt, w0, grads), w, atol=1e-5)


def test_adam_with_l2_is_not_adamw():
    rng = np.random.default_rng(4)
    w0 = rng.normal(size=30) * 3
    w_l2, w_dw = w0.copy(), w0.copy()
    m1 = v1 = m2 = v2 = np.zeros(30)
    lam = 0.1
    for t in range(1, 20):
        g = rng.normal(size=30) * np.linspace(0.01, 10, 30)
        w_l2, m1, v1 = R.adam_step(w_l2, g + lam * w_l2, m1, v1, t, 0.01)
        w_dw, m2, v2 = R.adamw_step(w_dw, g, m2, v2, t, 0.01, lam)
    assert np.abs(w_l2 - w_dw).max() > 1e-3
    with pytest.raises(ValueError):
        R.adam_step(w0, w0, m1, v1, 0, 0.01)


# ----------------------------------------------------------------------------- labels and digits
def test_random_labels():
    y = np.repeat(np.arange(10), 100)
    np.testing.assert_array_equal(R.random_labels(y, 10, fraction=0.0), y)
    full = R.random_labels(y, 10, seed=1)
    assert full.dtype == np.int32 and full.min() >= 0 and full.max() <= 9
    assert abs(np.mean(full == y) - 0.1) < 0.04  # agreement only by chance
    np.testing.assert_array_equal(full, R.random_labels(y, 10, seed=1))
    assert not np.array_equal(full, R.random_labels(y, 10, seed=2))
    half = R.random_labels(y, 10, fraction=0.5, seed=0)
    assert 0.5 <= np.mean(half == y) <= 0.6
    for kwargs in ({"fraction": 1.5}, {"fraction": -0.1}):
        with pytest.raises(ValueError):
            R.random_labels(y, 10, **kwargs)
    with pytest.raises(ValueError):
        R.random_labels(y.astype(float), 10)
    with pytest.raises(ValueError):
        R.random_labels(y, 1)


def test_a_rotated_six_looks_like_a_nine():
    six, nine = R.render_digit(6), R.render_digit("9")
    assert six.shape == (28, 28) and 0.0 <= six.min() and six.max() <= 1.0 and six.max() > 0.9
    turned = np.rot90(six, 2)
    assert np.abs(turned - nine).mean() < 0.5 * np.abs(turned - six).mean()
    assert R.render_digit(1, size=16).shape == (16, 16)
    for bad in (10, "a", -1):
        with pytest.raises(ValueError):
            R.render_digit(bad)
    with pytest.raises(ValueError):
        R.render_digit(3, size=4)


# ----------------------------------------------------------------------------- the grid
def test_cells_follow_the_paper():
    cells = R.zhang_cells()
    assert len(cells) == 12 and cells[0] == R.Cell("inception", True, True)
    assert R.Cell("alexnet", True, False).paper[2] == 79.66
    assert R.Cell("mlp", True, True).paper is None  # the paper has no augmented MLP
    assert [c.arch for c in R.zhang_cells(["mlp"])] == ["mlp", "mlp"]
    with pytest.raises(ValueError):
        R.Cell("vgg", True, True)
    with pytest.raises(ValueError):
        R.Cell("mlp", 1, True)
    with pytest.raises(ValueError):
        R.zhang_cells(["resnet"])


def _find(model, cls):
    found = []
    for layer in model.layers:
        found.append(layer) if isinstance(layer, cls) else None
        if hasattr(layer, "layers"):
            found += _find(layer, cls)
    return found


@pytest.mark.parametrize("arch", R.ARCHITECTURES)
def test_ablation_models_build_train_and_switch_their_parts(arch):
    from cnncourse.layers import RandomShift

    kwargs = dict(input_shape=(28, 28, 1), num_classes=10, inception_width=0.0625, alexnet_width=0.25, alexnet_fc=32)
    on = R.ablation_model(R.Cell(arch, True, True), **kwargs)
    off = R.ablation_model(R.Cell(arch, False, False), **kwargs)
    assert on.count_params() == off.count_params()
    assert len(_find(on, RandomShift)) == 1 and not _find(off, RandomShift)
    assert on.optimizer.weight_decay == 5e-4 and off.optimizer.weight_decay is None
    has_bn = bool(_find(on, keras.layers.BatchNormalization))
    assert has_bn == (arch == "inception")
    x = np.random.default_rng(0).uniform(size=(8, 28, 28, 1)).astype("float32")
    loss = on.train_on_batch(x, np.arange(8) % 10)
    assert np.all(np.isfinite(loss))


def test_ablation_mlp_has_the_papers_shape():
    # Zhang et al. fed 28×28 crops of CIFAR-10: 28·28·3·512 + 2·512² + 512·10 + biases = 1,735,178
    model = R.ablation_model(R.Cell("mlp", False, False), input_shape=(28, 28, 3), num_classes=10)
    assert model.count_params() == R.ZHANG_TABLE1[("mlp", False, False)][0]
    with pytest.raises(ValueError):
        R.ablation_model("mlp", input_shape=(28, 28, 1), num_classes=10)


def _tiny_data():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(64, 4, 4, 1)).astype("float32")
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype("int32")
    return SimpleNamespace(x_train=x, y_train=y, x_test=x[:16], y_test=y[:16])


def _tiny_maker(calls):
    def make(cell, seed):
        calls.append((cell.label, seed))
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
        model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    return make


def test_run_ablation_caches_and_recomputes(tmp_path):
    cells = R.zhang_cells(["mlp"])
    run = Experiment(64, 16, epochs=1, batch_size=32, seeds=2)
    path = tmp_path / "grid.json"
    calls: list = []
    first = R.run_ablation(_tiny_maker(calls), _tiny_data(), run, cells=cells, path=path, progress=False)
    assert path.exists() and len(calls) == 4 and set(first.results) == {c.label for c in cells}
    again = R.run_ablation(_tiny_maker(calls), _tiny_data(), run, cells=cells, path=path, progress=False)
    assert len(calls) == 4  # reused, nothing trained
    assert again.mean(cells[0].label) == pytest.approx(first.mean(cells[0].label))
    R.run_ablation(_tiny_maker(calls), _tiny_data(), run, cells=cells, path=path, recompute=True, progress=False)
    assert len(calls) == 8
    longer = Experiment(64, 16, epochs=2, batch_size=32, seeds=2)
    R.run_ablation(_tiny_maker(calls), _tiny_data(), longer, cells=cells, path=path, progress=False)
    assert len(calls) == 12  # a cache with another epoch count is not reused
    with pytest.raises(ValueError):
        R.run_ablation(_tiny_maker(calls), _tiny_data(), run, cells=[], progress=False)


def _result(label, seed, acc, train_acc):
    hist = {"loss": [1.0], "accuracy": [train_acc], "val_loss": [1.0], "val_accuracy": [acc]}
    return RunResult(label, seed, hist, 1.0, acc, 1.0, 100.0, 1234)


def test_ablation_table_puts_our_numbers_beside_the_papers():
    cells = R.zhang_cells(["alexnet", "mlp"])
    comparison = Comparison({c.label: [_result(c.label, s, 0.8 + 0.02 * s, 0.99) for s in (0, 1)] for c in cells})
    table = R.ablation_table(comparison, cells, dataset="fashion_mnist")
    lines = table.splitlines()
    assert len(lines) == 2 + len(cells)
    assert "81.22" in lines[2] and "81.00 ± 1.41" in lines[2] and "AlexNet" in lines[2] and "1,387,786" in lines[2]
    assert "AlexNet" not in lines[3] and "79.66" in lines[3]
    assert "MLP 3×512" in lines[6] and "53.35" in lines[6] and "99.00" in lines[6]
    with pytest.raises(ValueError):
        R.ablation_table(Comparison({}), cells)


def test_zhang_inception_has_the_papers_parameter_count_and_scales():
    full = R.zhang_inception((28, 28, 3), 10, batch_norm=False)
    assert full.count_params() == R.ZHANG_TABLE1[("inception_no_bn", False, False)][0]  # 1,649,402
    assert full.output_shape == (None, 10)
    with_bn = R.zhang_inception((28, 28, 3), 10)
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in with_bn.layers)
    narrow = R.zhang_inception((28, 28, 1), 10, width=0.25)
    assert narrow.count_params() < full.count_params() / 10
    for bad in (0, -1.0, True):
        with pytest.raises(ValueError):
            R.zhang_inception(width=bad)

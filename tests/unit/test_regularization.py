"""Regularization references: dropout conventions, optimizer steps vs Keras, labels, the grid."""

from __future__ import annotations

from types import SimpleNamespace

import keras
import numpy as np
import pytest

from cnncourse.experiments import regularization as R
from cnncourse.experiments.train import Comparison, RunResult
from cnncourse.profiles import Experiment


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

    run = Experiment(32, 16, epochs=3, batch_size=8, options={"inception_width": 0.0625, "alexnet_width": 0.25, "alexnet_lrn": True})
    kwargs = dict(input_shape=(28, 28, 1), num_classes=10, train_images=32)
    on = R.ablation_model(R.Cell(arch, True, True), run, **kwargs)
    off = R.ablation_model(R.Cell(arch, False, False), run, **kwargs)
    assert on.count_params() == off.count_params()
    assert len(_find(on, RandomShift)) == 1 and not _find(off, RandomShift)
    assert on.optimizer.weight_decay == R.RECIPES[arch].weight_decay and off.optimizer.weight_decay is None
    has_bn = bool(_find(on, keras.layers.BatchNormalization))
    assert has_bn == (arch == "inception")
    # per-image whitening without parameters comes right after the (optional) shift
    whiten = on.get_layer("whiten")
    assert isinstance(whiten, keras.layers.LayerNormalization) and not whiten.weights
    assert on.layers[1].name == "random_shift" and on.layers[2].name == "whiten"
    x = np.random.default_rng(0).uniform(size=(8, 28, 28, 1)).astype("float32")
    loss = on.train_on_batch(x, np.arange(8) % 10)
    assert np.all(np.isfinite(loss))


@pytest.mark.parametrize("arch", R.ARCHITECTURES)
def test_each_architecture_gets_the_optimizer_and_schedule_its_recipe_says(arch):
    recipe = R.RECIPES[arch]
    run = Experiment(100, 16, epochs=4, batch_size=10, options={"inception_width": 0.0625, "alexnet_width": 0.25})
    model = R.ablation_model(R.Cell(arch, False, True), run, input_shape=(16, 16, 1), num_classes=10, train_images=100)
    opt = model.optimizer
    assert isinstance(opt, keras.optimizers.SGD) and opt.momentum == pytest.approx(recipe.momentum)
    steps, total = 10, 40  # 100 images / batch 10, 4 epochs
    warm = int(round(recipe.warmup_epochs * steps))

    def lr(step):  # the optimizer's current learning rate when its step counter is at `step`
        opt.iterations.assign(step)
        return float(keras.ops.convert_to_numpy(opt.learning_rate))

    assert lr(warm) == pytest.approx(recipe.learning_rate, rel=1e-5)  # the peak is the recipe's rate
    assert lr(0) < 0.05 * recipe.learning_rate  # warm-up starts low
    assert lr(warm // 2) < lr(warm)
    assert lr(total) == pytest.approx(0.0, abs=1e-7)  # cosine to zero at the end of the run
    assert lr(warm + 1) > lr(total - 1)
    # the table in the module is what the models use, and the rates differ where the text says
    assert R.RECIPES["inception"].learning_rate == 0.1 and R.RECIPES["alexnet"].learning_rate == 0.01
    assert R.RECIPES["inception_no_bn"].learning_rate < R.RECIPES["inception"].learning_rate
    assert opt.clipnorm == recipe.clipnorm and (recipe.clipnorm is not None) == (arch == "inception_no_bn")
    kernels = [w for w in model.trainable_weights if "kernel" in w.path]
    assert kernels and model.get_layer(index=-1) is not None
    # He initialization: first conv/dense kernel std ≈ sqrt(2 / fan_in) (truncated normal: ×0.88)
    k = keras.ops.convert_to_numpy(kernels[0])
    fan_in = int(np.prod(k.shape[:-1]))
    assert 0.7 * np.sqrt(2 / fan_in) < k.std() < 1.15 * np.sqrt(2 / fan_in)


def test_recipe_validates_and_warmup_can_be_off():
    for bad in ({"learning_rate": 0.0}, {"learning_rate": 0.1, "momentum": 1.0}, {"learning_rate": 0.1, "warmup_epochs": -1},
                {"learning_rate": 0.1, "weight_decay": -1e-4}, {"learning_rate": True}, {"learning_rate": 0.1, "clipnorm": 0}):
        with pytest.raises(ValueError):
            R.Recipe(**bad)
    sched = R.Recipe(0.05, warmup_epochs=0).schedule(5, 2)
    assert float(keras.ops.convert_to_numpy(sched(0))) == pytest.approx(0.05)
    with pytest.raises(ValueError):
        R.Recipe(0.05).schedule(0, 2)
    opt = R.Recipe(0.05, weight_decay=0.0).optimizer(5, 2, weight_decay=True)
    assert opt.weight_decay is None
    assert R.steps_per_epoch(2500, 64) == 40 and R.steps_per_epoch(64, 64) == 1
    with pytest.raises(ValueError):
        R.ablation_model(R.Cell("mlp", False, False), Experiment(8, 8, 1, 8), input_shape=(4, 4, 1), num_classes=2,
                         train_images=8, recipe={"learning_rate": 0.1})


def test_ablation_mlp_has_the_papers_shape():
    # Zhang et al. fed 28×28 crops of CIFAR-10: 28·28·3·512 + 2·512² + 512·10 + biases = 1,735,178
    run = Experiment(8, 8, 1, 8)
    model = R.ablation_model(R.Cell("mlp", False, False), run, input_shape=(28, 28, 3), num_classes=10, train_images=8)
    assert model.count_params() == R.ZHANG_TABLE1[("mlp", False, False)][0]
    with pytest.raises(ValueError):
        R.ablation_model("mlp", run, input_shape=(28, 28, 1), num_classes=10, train_images=8)


def test_zhang_alexnet_has_the_papers_parameter_count():
    full = R.zhang_alexnet((28, 28, 3), 10)  # 5·5·3·64+64 + 5·5·64·64+64 + 7·7·64·384+384 + 384·192+192 + 192·10+10
    assert full.count_params() == R.ZHANG_TABLE1[("alexnet", False, False)][0]  # 1,387,786
    from cnncourse.layers import LocalResponseNormalization

    assert len(_find(full, LocalResponseNormalization)) == 2
    assert not _find(R.zhang_alexnet((28, 28, 1), 10, lrn=False), LocalResponseNormalization)
    assert R.zhang_alexnet((28, 28, 1), 10, width=0.5).get_layer("conv1").filters == 32
    for bad in ({"width": 0}, {"lrn": 1}):
        with pytest.raises(ValueError):
            R.zhang_alexnet((28, 28, 1), 10, **bad)


def _tiny_data(n=64, offset=0):
    rng = np.random.default_rng(offset)
    x = rng.uniform(size=(n, 4, 4, 1)).astype("float32")
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype("int32")
    return SimpleNamespace(x_train=x, y_train=y, x_test=x[:16], y_test=y[:16], num_classes=2)


def _tiny_maker(calls):
    def make(cell, seed):
        calls.append((cell.label, seed))
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
        model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    return make


def test_run_ablation_caches_and_recomputes(tmp_path, monkeypatch):
    cells = R.zhang_cells(["mlp"])
    run = Experiment(64, 16, epochs=1, batch_size=32, seeds=2)
    path = tmp_path / "grid.json"
    calls: list = []
    grid = lambda **kw: R.run_ablation(kw.pop("data", _tiny_data()), kw.pop("run", run), cells=kw.pop("cells", cells),  # noqa: E731
                                       path=path, progress=False, make_model=_tiny_maker(calls), **kw)
    first = grid()
    assert path.exists() and len(calls) == 4 and first.labels == [c.label for c in cells]
    again = grid()
    assert len(calls) == 4  # reused, nothing trained
    assert again.mean(cells[0].label) == pytest.approx(first.mean(cells[0].label))
    grid(recompute=True)
    assert len(calls) == 8
    grid(run=Experiment(64, 16, epochs=2, batch_size=32, seeds=2))
    assert len(calls) == 12  # another epoch count is not reused
    grid(run=Experiment(64, 16, epochs=2, batch_size=32, seeds=2))
    assert len(calls) == 12
    # a change of recipe for one architecture retrains that architecture's cells, and only them
    two = R.zhang_cells(["alexnet", "mlp"])
    grid(cells=two, run=Experiment(64, 16, epochs=2, batch_size=32, seeds=2))
    assert len(calls) == 12 + 8  # the four alexnet cells were new
    monkeypatch.setitem(R.RECIPES, "mlp", R.Recipe(0.5))
    grid(cells=two, run=Experiment(64, 16, epochs=2, batch_size=32, seeds=2))
    assert len(calls) == 24 and {label for label, _ in calls[-4:]} == {c.label for c in cells}
    # other data (another subset) are not reused either, nor other seeds
    grid(cells=two, data=_tiny_data(offset=1), run=Experiment(64, 16, epochs=2, batch_size=32, seeds=2))
    assert len(calls) == 24 + 12
    grid(cells=two, data=_tiny_data(offset=1), run=Experiment(64, 16, epochs=2, batch_size=32, seeds=3))
    assert len(calls) == 36 + 18
    with pytest.raises(ValueError):
        grid(cells=[])


def test_run_ablation_ignores_a_cache_in_the_old_format(tmp_path):
    cells = R.zhang_cells(["mlp"])
    run = Experiment(64, 16, epochs=1, batch_size=32, seeds=1)
    calls: list = []
    old = tmp_path / "old.json"
    Comparison({c.label: [_result(c.label, 0, 0.5, 0.5)] for c in cells}).save(old)  # no recipe recorded
    R.run_ablation(_tiny_data(), run, cells=cells, path=old, progress=False, make_model=_tiny_maker(calls))
    assert len(calls) == 2


def test_cell_key_names_what_the_result_depends_on():
    run = Experiment(64, 16, epochs=3, batch_size=32, options={"inception_width": 0.5, "alexnet_width": 0.25})
    key = R.cell_key(R.Cell("alexnet", True, False), _tiny_data(), run)
    assert key["recipe"]["learning_rate"] == R.RECIPES["alexnet"].learning_rate
    assert key["options"] == {"alexnet_width": 0.25, "alexnet_lrn": True, "shift_pad": 2}
    assert key["epochs"] == 3 and key["batch_size"] == 32 and key["data"]["train"] == 64
    assert R.cell_key(R.Cell("mlp", False, False), _tiny_data(), run)["options"] == {}
    other = R.cell_key(R.Cell("alexnet", True, False), _tiny_data(), run, recipe=R.Recipe(0.02))
    assert other != key


def test_run_ablation_trains_the_default_models_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(40, 12, 12, 1)).astype("float32")
    data = SimpleNamespace(x_train=x, y_train=(np.arange(40) % 3).astype("int32"), x_test=x[:10],
                           y_test=(np.arange(10) % 3).astype("int32"), num_classes=3)
    run = Experiment(40, 10, epochs=1, batch_size=20, seeds=1)
    cells = [R.Cell("mlp", False, True)]
    grid = R.run_ablation(data, run, cells=cells, path=tmp_path / "g.json", progress=False)
    (result,) = grid.results[cells[0].label]
    assert result.params == 12 * 12 * 512 + 512 + 2 * (512 * 512 + 512) + 512 * 3 + 3
    assert result.epochs == 1 and np.isfinite(result.test_loss)


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

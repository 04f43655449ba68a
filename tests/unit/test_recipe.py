"""The fast-model recipe: every ingredient a switch, the budget stops, results and caches."""

import json

import keras
import numpy as np
import pytest

from cnncourse.data import Split
from cnncourse.experiments import recipe
from cnncourse.experiments.results import RunResult
from cnncourse.profiles import Experiment


def tiny_split(n_train=192, n_test=96, classes=10, seed=0):
    """Images whose class is a bright 6×6 square at a class-specific place: learnable fast."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = rng.integers(0, classes, n).astype("int32")
        x = rng.uniform(0, 0.2, (n, 28, 28, 1)).astype("float32")
        for i, c in enumerate(y):
            r, col = 2 + 8 * (c // 3), 2 + 8 * (c % 3)
            x[i, r : r + 6, col : col + 6] = 1.0
        return x, y

    (xt, yt), (xe, ye) = make(n_train), make(n_test)
    return Split("squares", xt, yt, xe, ye, tuple(str(c) for c in range(classes)))  # one name: only the arrays differ


TINY = recipe.Recipe(width=4)


def test_recipe_rejects_bad_values():
    with pytest.raises(ValueError, match="schedule"):
        recipe.Recipe(schedule="step")
    with pytest.raises(ValueError, match="width"):
        recipe.Recipe(width=0)
    with pytest.raises(ValueError, match="label_smoothing"):
        recipe.Recipe(label_smoothing=1.0)
    with pytest.raises(ValueError, match="ingredients"):
        recipe.Recipe().without("dropout")


@pytest.mark.parametrize("ingredient", list(recipe.ABLATIONS))
def test_without_switches_exactly_that_ingredient(ingredient):
    base = recipe.Recipe()
    changed = {k for k, v in base.without(ingredient).to_dict().items() if v != base.to_dict()[k]}
    assert changed == set(recipe.ABLATIONS[ingredient])


@pytest.mark.parametrize("addition", list(recipe.ADDITIONS))
def test_plus_switches_exactly_that_addition(addition):
    base = recipe.Recipe()
    changed = {k for k, v in base.plus(addition).to_dict().items() if v != base.to_dict()[k]}
    assert changed == set(recipe.ADDITIONS[addition])  # the cpu recipe has none of them on
    with pytest.raises(ValueError, match="additions: random shift, cutout"):
        base.plus("mixup")


def expected_params(w, classes=10, bn=True, channels=1):
    def conv(cin, cout):
        return 9 * cin * cout + (4 * cout if bn else cout)  # BN: γ, β, mean, variance

    stem = conv(channels, w)
    stage1 = conv(w, 2 * w) + 2 * conv(2 * w, 2 * w)
    stage2 = conv(2 * w, 4 * w) + 2 * conv(4 * w, 4 * w)
    return stem + stage1 + stage2 + 4 * w * classes + classes


@pytest.mark.parametrize("bn", [True, False])
def test_model_parameters_and_layout(bn):
    model = recipe.build_model(recipe.Recipe(width=8, batch_norm=bn))
    assert model.output_shape == (None, 10)
    assert model.count_params() == expected_params(8, bn=bn)
    plain = recipe.build_model(recipe.Recipe(width=8, batch_norm=bn, residual=False))
    assert plain.count_params() == model.count_params()  # a skip connection has no weights
    assert sum(isinstance(layer, keras.layers.Add) for layer in model.layers) == 2
    assert not any(isinstance(layer, keras.layers.Add) for layer in plain.layers)
    shapes = {layer.name: layer.output.shape[1:3] for layer in model.layers if layer.name.endswith("_conv")}
    assert shapes["stem_conv"] == (28, 28) and shapes["stage1_b_conv"] == (14, 14) and shapes["stage2_b_conv"] == (7, 7)


def test_model_rejects_bad_shapes():
    with pytest.raises(ValueError, match="input_shape"):
        recipe.build_model(TINY, (28, 28))
    with pytest.raises(ValueError, match="num_classes"):
        recipe.build_model(TINY, num_classes=1)
    with pytest.raises(ValueError, match="width"):
        recipe.Recipe(width=2.5)
    with pytest.raises(ValueError, match="tta"):
        recipe.Recipe(tta="yes")


def test_the_recipes_network_is_the_registered_fast_resnet():
    from cnncourse import models

    ours, registered = recipe.build_model(recipe.Recipe(width=8)), models.build("fast_resnet", width=8)
    assert [layer.name for layer in ours.layers] == [layer.name for layer in registered.layers]
    assert ours.count_params() == registered.count_params()


def test_no_weight_decay_on_batch_norm_and_bias():
    model = recipe.build_model(recipe.Recipe(width=4))
    for decay_all in (False, True):
        opt = recipe.make_optimizer(recipe.Recipe(decay_norm_and_bias=decay_all), total_steps=10)
        opt.build(model.trainable_variables)
        decayed = {v.path for v in model.trainable_variables if opt._use_weight_decay(v)}
        norm_or_bias = {v.path for v in model.trainable_variables if v.name in ("gamma", "beta", "bias")}
        kernels = {v.path for v in model.trainable_variables if v.name == "kernel"}
        assert norm_or_bias and kernels
        assert kernels <= decayed
        assert (norm_or_bias <= decayed) == decay_all
        assert not (norm_or_bias & decayed) or decay_all


def test_schedules_come_from_the_schedules_module():
    from cnncourse.experiments.schedules import OneCycle

    assert isinstance(recipe.make_optimizer(recipe.Recipe(), total_steps=100)._learning_rate, OneCycle)


def test_schedules():
    r = recipe.Recipe(max_lr=0.4)
    one_cycle = recipe.make_optimizer(r, total_steps=100)
    assert one_cycle.nesterov and one_cycle.momentum == pytest.approx(0.9)
    lr = one_cycle._learning_rate  # the schedule (``learning_rate`` is its value now)
    assert float(keras.ops.convert_to_numpy(lr(0))) == pytest.approx(0.4 / 25, rel=1e-5)
    assert float(keras.ops.convert_to_numpy(lr(25))) == pytest.approx(0.4, rel=1e-5)
    assert float(keras.ops.convert_to_numpy(one_cycle.learning_rate)) == pytest.approx(0.4 / 25, rel=1e-5)
    constant = recipe.make_optimizer(r.replace(schedule="constant", nesterov=False), total_steps=100)
    assert float(keras.ops.convert_to_numpy(constant.learning_rate)) == pytest.approx(0.2)
    assert not constant.nesterov


def test_label_smoothing_target():
    eps, k = 0.1, 10
    logits = np.random.default_rng(0).normal(size=(4, k)).astype("float32")
    y = np.array([0, 3, 9, 5])
    loss = float(recipe.make_loss(recipe.Recipe(label_smoothing=eps))(recipe.one_hot(y, k), logits))
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    target = (1 - eps) * np.eye(k)[y] + eps / k
    assert loss == pytest.approx(float(-(target * log_p).sum(axis=1).mean()), rel=1e-5)


def test_augmenter_switches():
    assert recipe.augmenter(recipe.Recipe(flip=False, shift=0, cutout=0)) is None
    flip_only = recipe.augmenter(recipe.Recipe(flip=True, shift=0, cutout=0), seed=3)
    x = np.random.default_rng(0).uniform(size=(32, 28, 28, 1)).astype("float32")
    out = keras.ops.convert_to_numpy(flip_only(x, training=True))
    same = np.all(out == x, axis=(1, 2, 3))
    mirrored = np.all(out == x[:, :, ::-1], axis=(1, 2, 3))
    assert np.all(same | mirrored) and same.any() and mirrored.any()
    full = recipe.augmenter(recipe.Recipe().plus("random shift").plus("cutout"))
    assert [type(layer).__name__ for layer in full.layers] == ["RandomFlip", "RandomShift", "Cutout"]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(full(x, training=False)), x)


def test_time_budget_stops_training():
    split = tiny_split()
    run = Experiment(None, None, epochs=3, batch_size=32)
    stopped, _ = recipe.train(TINY, split, run, budget_seconds=1e-6)
    assert stopped.stopped_by_budget and stopped.epochs == 1
    on_cpu_clock, _ = recipe.train(TINY, split, run, budget_seconds=1e-6, clock="cpu")
    assert on_cpu_clock.stopped_by_budget and on_cpu_clock.epochs == 1
    full, _ = recipe.train(TINY, split, run)
    assert not full.stopped_by_budget and full.epochs == 3
    assert full.seconds == sorted(full.seconds) and full.seconds[0] > 0
    assert len(full.cpu_seconds) == 3 and full.cpu_seconds == sorted(full.cpu_seconds) and full.cpu_seconds[0] > 0
    assert full.validation_source == "test" and full.config == TINY.to_dict()


def test_train_learns_and_reports():
    split = tiny_split(n_train=512)
    run = Experiment(None, None, epochs=3, batch_size=32)
    result, model = recipe.train(recipe.Recipe(width=4, max_lr=0.1), split, run, seed=1)
    assert result.params == model.count_params()
    assert result.history["loss"][-1] < result.history["loss"][0]
    assert result.reported_test_accuracy > 0.5 and result.images_per_second > 0
    probs = recipe.predict(model, split.x_test, tta=True)
    assert probs.shape == (len(split.x_test), 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert result.test_accuracy_tta == pytest.approx(float(np.mean(probs.argmax(1) == split.y_test)))
    plain = recipe.predict(model, split.x_test, tta=False)
    assert result.test_accuracy == pytest.approx(float(np.mean(plain.argmax(1) == split.y_test)))
    assert recipe.ensemble_accuracy([model, model], split.x_test, split.y_test) == pytest.approx(result.test_accuracy_tta)
    with pytest.raises(ValueError, match="at least one"):
        recipe.ensemble_accuracy([], split.x_test, split.y_test)
    with pytest.raises(ValueError, match="Experiment"):
        recipe.train(TINY, split, {"epochs": 1})


def test_keras_io_baseline():
    split = tiny_split()
    result, model = recipe.train_keras_io(split, 2, batch_size=32)
    assert model.count_params() == 34_826 and result.params == 34_826
    assert result.epochs == 2 and result.label == "keras-io convnet"
    assert 0.0 <= result.test_accuracy <= 1.0 and result.test_accuracy_tta is None
    assert result.reported_test_accuracy == result.test_accuracy


def test_ablation_runs_each_ingredient_and_caches(tmp_path, monkeypatch):
    split = tiny_split(n_train=128, n_test=64)
    run = Experiment(None, None, epochs=1, batch_size=32)
    cache = tmp_path / "ablation.json"
    chosen = ["label smoothing", "test-time flip"]
    study = recipe.ablation(TINY, split, run, ingredients=chosen, additions=["cutout"], ensemble=2, cache=cache,
                            progress=False)
    assert list(study.rows) == ["full recipe", "− label smoothing", "− test-time flip", "+ cutout"]
    rows = study.rows
    assert rows["− label smoothing"].config["label_smoothing"] == 0.0
    assert rows["+ cutout"].config["cutout"] == recipe.ADDITIONS["cutout"]["cutout"]
    # removing TTA needs no training: the same model's single-view accuracy
    assert rows["− test-time flip"].reported_test_accuracy == rows["full recipe"].test_accuracy
    assert len(study.ensemble["members"]) == 2
    table = recipe.ablation_table(study)
    assert table.count("\n") == 1 + len(rows) and "− label smoothing" in table
    # the second identical call is read from the cache: no training at all
    monkeypatch.setattr(recipe, "train", lambda *a, **k: pytest.fail("retrained despite a matching cache"))
    again = recipe.ablation(TINY, split, run, ingredients=chosen, additions=["cutout"], ensemble=2, cache=cache,
                            progress=False)
    assert again.to_dict() == study.to_dict()
    with pytest.raises(ValueError, match="ingredient"):
        recipe.ablation(TINY, split, run, ingredients=["dropout"])
    with pytest.raises(ValueError, match="addition"):
        recipe.ablation(TINY, split, run, additions=["mixup"])


def _fake_train(calls):
    def fake(r, split, run, seed=0, label=""):
        calls.append(label)
        hist = {"loss": [1.0], "accuracy": [0.5], "val_loss": [1.0], "val_accuracy": [0.5]}
        res = RunResult(label, seed, hist, 1.0, 0.5, [1.0], [1.0], 1.0, 1, "test", config=r.to_dict())
        return res, None

    return fake


def test_ablation_cache_is_ignored_when_the_recipe_changes(tmp_path, monkeypatch):
    cache = tmp_path / "a.json"
    cache.write_text(json.dumps({"key": {"something": "else"}, "rows": {}}))
    calls = []
    monkeypatch.setattr(recipe, "train", _fake_train(calls))
    split = tiny_split(n_train=32, n_test=32)
    recipe.ablation(TINY, split, Experiment(None, None, 1, 32), ingredients=["weight decay"], cache=cache,
                    progress=False)
    assert calls == ["full recipe", "− weight decay", *(f"+ {name}" for name in recipe.ADDITIONS)]  # all by default
    recipe.ablation(TINY.replace(max_lr=0.3), split, Experiment(None, None, 1, 32), ingredients=["weight decay"],
                    cache=cache, progress=False)
    assert len(calls) == 8


def test_ablation_cache_is_keyed_by_the_data(tmp_path, monkeypatch):
    """The committed Fashion-MNIST numbers came back for another dataset of the same sizes."""
    calls = []
    monkeypatch.setattr(recipe, "train", _fake_train(calls))
    kwargs = {"ingredients": [], "additions": [], "cache": tmp_path / "a.json", "progress": False}
    run = Experiment(None, None, 1, 32)
    recipe.ablation(TINY, tiny_split(n_train=32, n_test=32, seed=0), run, **kwargs)
    recipe.ablation(TINY, tiny_split(n_train=32, n_test=32, seed=0), run, **kwargs)
    assert calls == ["full recipe"]
    recipe.ablation(TINY, tiny_split(n_train=32, n_test=32, seed=1), run, **kwargs)  # same sizes, other data
    assert calls == ["full recipe", "full recipe"]
    recipe.ablation(TINY, tiny_split(n_train=32, n_test=32, seed=0), run, recompute=True, **kwargs)
    assert len(calls) == 3


@pytest.mark.parametrize("text", ["", "{", "[]", "null", '{"format": 3, "entries": {"ablation": {"key": 1}}}'])
def test_a_damaged_ablation_cache_is_reported_and_retrained(tmp_path, monkeypatch, capsys, text):
    """An empty, truncated or non-JSON cache raised JSONDecodeError / AttributeError."""
    path = tmp_path / "a.json"
    path.write_text(text)
    calls = []
    monkeypatch.setattr(recipe, "train", _fake_train(calls))
    recipe.ablation(TINY, tiny_split(n_train=32, n_test=32), Experiment(None, None, 1, 32), ingredients=[],
                    additions=[], cache=path, progress=False)
    assert calls == ["full recipe"]
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("cache ")]
    assert len(lines) == 1 and "training again" in lines[0]
    assert json.loads(path.read_text())["entries"]["ablation"]["result"]["rows"]["full recipe"]["label"] == "full recipe"


def test_flips_only_where_a_mirror_keeps_the_label():
    from cnncourse import data

    assert data.flips_keep_labels("fashion_mnist") and data.flips_keep_labels("cifar10")
    assert not data.flips_keep_labels("mnist")  # a mirrored 2 is no digit
    with pytest.raises(ValueError, match="valid names"):
        data.flips_keep_labels("svhn")
    digits = recipe.Recipe.for_dataset("mnist")
    assert not digits.flip and not digits.tta and recipe.augmenter(digits) is None
    assert recipe.Recipe.for_dataset("fashion_mnist") == recipe.Recipe()
    assert recipe.Recipe.for_dataset("mnist", width=8, tta=True) == recipe.Recipe(width=8, flip=False, tta=True)
    assert recipe.Recipe.for_run("mnist", Experiment(None, None, epochs=1, batch_size=8)) == digits  # width 16
    assert recipe.Recipe.for_run("cifar10", Experiment(None, None, epochs=1, batch_size=8,
                                                       options={"recipe_width": 1.5})).width == 24
    # the ablation does not train "without flips" for a recipe that never flips
    assert recipe.ingredients_of(recipe.Recipe()) == list(recipe.ABLATIONS)
    assert recipe.ingredients_of(digits) == [k for k in recipe.ABLATIONS if k not in ("horizontal flip", "test-time flip")]


def test_race_baseline_trains_for_the_budget_and_is_cached(tmp_path, monkeypatch, capsys):
    split = tiny_split(n_train=128, n_test=64)
    cache = tmp_path / "race.json"
    stopped = recipe.race_baseline(split, budget_seconds=1e-6, max_epochs=3, cache=cache)
    assert stopped.stopped_by_budget and stopped.epochs == 1 and stopped.label == "keras-io convnet"
    full = recipe.race_baseline(split, budget_seconds=3600, max_epochs=2, cache=cache)
    assert not full.stopped_by_budget and full.epochs == 2  # max_epochs ends a run the budget does not
    monkeypatch.setattr(recipe, "train_keras_io", lambda *a, **k: pytest.fail("retrained despite a matching cache"))
    capsys.readouterr()
    again = recipe.race_baseline(split, budget_seconds=3600, max_epochs=2, cache=cache)
    assert again.to_dict() == full.to_dict() and "reusing" in capsys.readouterr().out
    for bad in ({"budget_seconds": 0, "max_epochs": 2}, {"budget_seconds": 10, "max_epochs": 0}):
        with pytest.raises(ValueError):
            recipe.race_baseline(split, cache=cache, **bad)

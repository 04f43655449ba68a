"""cnncourse.experiments.zhang: the Zhang et al. grid — cells, recipes, models, the cached runner, the table."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from cnncourse.data import Split
from cnncourse.experiments import zhang as Z
from cnncourse.experiments.results import Comparison, RunResult
from cnncourse.experiments.schedules import steps_per_epoch
from cnncourse.models.zhang import zhang_alexnet, zhang_inception
from cnncourse.profiles import Experiment


def test_cells_follow_the_paper():
    cells = Z.zhang_cells()
    assert len(cells) == 12 and cells[0] == Z.Cell("inception", True, True)
    assert Z.Cell("alexnet", True, False).paper[2] == 79.66
    assert Z.Cell("mlp", True, True).paper is None  # the paper has no augmented MLP
    assert [c.arch for c in Z.zhang_cells(["mlp"])] == ["mlp", "mlp"]
    with pytest.raises(ValueError):
        Z.Cell("vgg", True, True)
    with pytest.raises(ValueError):
        Z.Cell("mlp", 1, True)
    with pytest.raises(ValueError):
        Z.zhang_cells(["resnet"])


def _find(model, cls):
    found = []
    for layer in model.layers:
        found.append(layer) if isinstance(layer, cls) else None
        if hasattr(layer, "layers"):
            found += _find(layer, cls)
    return found


@pytest.mark.parametrize("arch", Z.ARCHITECTURES)
def test_grid_models_build_train_and_switch_their_parts(arch):
    from cnncourse.layers import RandomShift

    run = Experiment(32, 16, epochs=3, batch_size=8, options={"inception_width": 0.0625, "alexnet_width": 0.25, "alexnet_lrn": True})
    kwargs = dict(input_shape=(28, 28, 1), num_classes=10, train_images=32)
    on = Z.grid_model(Z.Cell(arch, True, True), run, **kwargs)
    off = Z.grid_model(Z.Cell(arch, False, False), run, **kwargs)
    assert on.count_params() == off.count_params()
    assert len(_find(on, RandomShift)) == 1 and not _find(off, RandomShift)
    # weight decay is an L2 penalty on the kernels in the loss, never SGD's decoupled decay
    assert on.optimizer.weight_decay is None and off.optimizer.weight_decay is None
    assert len(on.losses) == len([w for w in on.trainable_weights if w.path.endswith("/kernel")]) > 0
    assert not off.losses
    has_bn = bool(_find(on, keras.layers.BatchNormalization))
    assert has_bn == (arch == "inception")
    # per-image whitening without parameters comes right after the (optional) shift
    whiten = on.get_layer("whiten")
    assert isinstance(whiten, keras.layers.LayerNormalization) and not whiten.weights
    assert on.layers[1].name == "random_shift" and on.layers[2].name == "whiten"
    x = np.random.default_rng(0).uniform(size=(8, 28, 28, 1)).astype("float32")
    loss = on.train_on_batch(x, np.arange(8) % 10)
    assert np.all(np.isfinite(loss))


@pytest.mark.parametrize("arch", Z.ARCHITECTURES)
def test_each_architecture_gets_the_optimizer_and_schedule_its_recipe_says(arch):
    recipe = Z.RECIPES[arch]
    run = Experiment(100, 16, epochs=4, batch_size=10, options={"inception_width": 0.0625, "alexnet_width": 0.25})
    model = Z.grid_model(Z.Cell(arch, False, True), run, input_shape=(16, 16, 1), num_classes=10, train_images=100)
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
    assert Z.RECIPES["inception"].learning_rate == 0.1 and Z.RECIPES["alexnet"].learning_rate == 0.01
    assert Z.RECIPES["inception_no_bn"].learning_rate < Z.RECIPES["inception"].learning_rate
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
            Z.ZhangRecipe(**bad)
    sched = Z.ZhangRecipe(0.05, warmup_epochs=0).schedule(5, 2)
    assert float(keras.ops.convert_to_numpy(sched(0))) == pytest.approx(0.05)
    with pytest.raises(ValueError):
        Z.ZhangRecipe(0.05).schedule(0, 2)
    opt = Z.ZhangRecipe(0.05, weight_decay=0.0).optimizer(5, 2)
    assert opt.weight_decay is None
    assert Z.ZhangRecipe(0.05, weight_decay=0.0).penalize(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])) == 0
    assert steps_per_epoch(2500, 64) == 40 and steps_per_epoch(64, 64) == 1
    with pytest.raises(ValueError):
        Z.grid_model(Z.Cell("mlp", False, False), Experiment(8, 8, 1, 8), input_shape=(4, 4, 1), num_classes=2,
                         train_images=8, recipe={"learning_rate": 0.1})


def test_grid_mlp_has_the_papers_shape():
    # Zhang et al. fed 28×28 crops of CIFAR-10: 28·28·3·512 + 2·512² + 512·10 + biases = 1,735,178
    run = Experiment(8, 8, 1, 8)
    model = Z.grid_model(Z.Cell("mlp", False, False), run, input_shape=(28, 28, 3), num_classes=10, train_images=8)
    assert model.count_params() == Z.ZHANG_TABLE1[("mlp", False, False)][0]
    with pytest.raises(ValueError):
        Z.grid_model("mlp", run, input_shape=(28, 28, 1), num_classes=10, train_images=8)


def test_zhang_alexnet_has_the_papers_parameter_count():
    full = zhang_alexnet((28, 28, 3), 10)  # 5·5·3·64+64 + 5·5·64·64+64 + 7·7·64·384+384 + 384·192+192 + 192·10+10
    assert full.count_params() == Z.ZHANG_TABLE1[("alexnet", False, False)][0]  # 1,387,786
    from cnncourse.layers import LocalResponseNormalization

    assert len(_find(full, LocalResponseNormalization)) == 2
    assert not _find(zhang_alexnet((28, 28, 1), 10, lrn=False), LocalResponseNormalization)
    assert zhang_alexnet((28, 28, 1), 10, width=0.5).get_layer("conv1").filters == 32
    for bad in ({"width": 0}, {"lrn": 1}):
        with pytest.raises(ValueError):
            zhang_alexnet((28, 28, 1), 10, **bad)


def _tiny_data(n=64, offset=0):
    rng = np.random.default_rng(offset)
    x = rng.uniform(size=(n, 4, 4, 1)).astype("float32")
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype("int32")
    return Split("tiny", x, y, x[:16], y[:16], ("dark", "bright"))


def _tiny_maker(calls):
    def make(cell, seed):
        calls.append((cell.label, seed))
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
        model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    return make


def test_run_grid_caches_and_recomputes(tmp_path, monkeypatch):
    cells = Z.zhang_cells(["mlp"])
    run = Experiment(64, 16, epochs=1, batch_size=32, seeds=2)
    path = tmp_path / "grid.json"
    calls: list = []
    grid = lambda **kw: Z.run_grid(kw.pop("data", _tiny_data()), kw.pop("run", run), cells=kw.pop("cells", cells),  # noqa: E731
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
    two = Z.zhang_cells(["alexnet", "mlp"])
    grid(cells=two, run=Experiment(64, 16, epochs=2, batch_size=32, seeds=2))
    assert len(calls) == 12 + 8  # the four alexnet cells were new
    monkeypatch.setitem(Z.RECIPES, "mlp", Z.ZhangRecipe(0.5))
    grid(cells=two, run=Experiment(64, 16, epochs=2, batch_size=32, seeds=2))
    assert len(calls) == 24 and {label for label, _ in calls[-4:]} == {c.label for c in cells}
    # other data (another subset) are not reused either, nor other seeds
    grid(cells=two, data=_tiny_data(offset=1), run=Experiment(64, 16, epochs=2, batch_size=32, seeds=2))
    assert len(calls) == 24 + 12
    grid(cells=two, data=_tiny_data(offset=1), run=Experiment(64, 16, epochs=2, batch_size=32, seeds=3))
    assert len(calls) == 36 + 18
    with pytest.raises(ValueError):
        grid(cells=[])


def test_run_grid_retrains_a_cache_in_an_older_format(tmp_path, capsys):
    cells = Z.zhang_cells(["mlp"])
    run = Experiment(64, 16, epochs=1, batch_size=32, seeds=1)
    calls: list = []
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"format": 2, "cells": {c.label: {"key": {}, "runs": []} for c in cells}}))
    Z.run_grid(_tiny_data(), run, cells=cells, path=old, progress=False, make_model=_tiny_maker(calls))
    assert len(calls) == 2
    assert "cache format 2" in capsys.readouterr().out


@pytest.mark.parametrize("damage", ["", "{", "[]", "null", '{"format": 3, "entries": []}', "extra field", "no runs",
                                    "runs not a list", "key differs"])
def test_a_damaged_grid_cache_is_reported_in_one_line_and_retrained(tmp_path, capsys, damage):
    cells = [Z.Cell("mlp", False, False)]
    run = Experiment(64, 16, epochs=1, batch_size=32, seeds=1)
    path = tmp_path / "grid.json"
    calls: list = []
    Z.run_grid(_tiny_data(), run, cells=cells, path=path, progress=False, make_model=_tiny_maker(calls))
    payload = json.loads(path.read_text())
    entry = payload["entries"][cells[0].label]
    if damage == "extra field":
        entry["result"][0]["surprise"] = 1  # a record this version does not know
    elif damage == "no runs":
        entry["result"] = []
    elif damage == "runs not a list":
        entry["result"] = {"seed": 0}
    elif damage == "key differs":
        entry["key"]["fingerprint"] = "0" * 16  # numbers from other data
    text = json.dumps(payload) if damage in ("extra field", "no runs", "runs not a list", "key differs") else damage
    path.write_text(text)
    capsys.readouterr()
    grid = Z.run_grid(_tiny_data(), run, cells=cells, path=path, progress=False, make_model=_tiny_maker(calls))
    assert len(calls) == 2  # trained again, no traceback
    out = [line for line in capsys.readouterr().out.splitlines() if line.startswith("cache ")]
    assert len(out) == 1 and "training again" in out[0]
    assert grid.results[cells[0].label][0].epochs == 1
    # the file is whole again and reused on the next call
    Z.run_grid(_tiny_data(), run, cells=cells, path=path, progress=False, make_model=_tiny_maker(calls))
    assert len(calls) == 2


def test_cell_key_names_what_the_result_depends_on():
    run = Experiment(64, 16, epochs=3, batch_size=32, options={"inception_width": 0.5, "alexnet_width": 0.25})
    key = Z.cell_key(Z.Cell("alexnet", True, False), _tiny_data(), run, seeds=[0])
    assert key["config"]["recipe"]["learning_rate"] == Z.RECIPES["alexnet"].learning_rate
    assert key["config"]["options"] == {"alexnet_width": 0.25, "alexnet_lrn": True, "shift_pad": 2}
    assert key["sizes"]["epochs"] == 3 and key["sizes"]["batch_size"] == 32 and key["sizes"]["train_size"] == 64
    assert key["dataset"] == "tiny" and key["fingerprint"] == _tiny_data().fingerprint
    assert key["backend"] == keras.backend.backend() and key["device"]
    assert Z.cell_key(Z.Cell("mlp", False, False), _tiny_data(), run, seeds=[0])["config"]["options"] == {}
    other = Z.cell_key(Z.Cell("alexnet", True, False), _tiny_data(), run, seeds=[0], recipe=Z.ZhangRecipe(0.02))
    assert other != key
    assert Z.cell_key(Z.Cell("alexnet", True, False), _tiny_data(offset=1), run, seeds=[0]) != key


def test_run_grid_trains_the_default_models_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(40, 12, 12, 1)).astype("float32")
    data = Split("toy", x, (np.arange(40) % 3).astype("int32"), x[:10], (np.arange(10) % 3).astype("int32"),
                 ("a", "b", "c"))
    run = Experiment(40, 10, epochs=1, batch_size=20, seeds=1)
    cells = [Z.Cell("mlp", False, True)]
    grid = Z.run_grid(data, run, cells=cells, path=tmp_path / "g.json", progress=False)
    (result,) = grid.results[cells[0].label]
    assert result.params == 12 * 12 * 512 + 512 + 2 * (512 * 512 + 512) + 512 * 3 + 3
    assert result.epochs == 1 and np.isfinite(result.test_loss)
    assert 0.0 <= result.final("final_train_accuracy") <= 1.0 and len(result.history["final_train_accuracy"]) == 1


def _result(label, seed, acc, train_acc, final=True):
    hist = {"loss": [1.0], "accuracy": [0.5], "val_loss": [1.0], "val_accuracy": [acc]}
    if final:
        hist["final_train_accuracy"] = [train_acc]
    return RunResult(label, seed, hist, 1.0, acc, [1.0], [0.5], 100.0, 1234, validation_source="test")


def test_grid_table_puts_our_numbers_beside_the_papers():
    cells = Z.zhang_cells(["alexnet", "mlp"])
    comparison = Comparison({c.label: [_result(c.label, s, 0.8 + 0.02 * s, 0.99) for s in (0, 1)] for c in cells})
    table = Z.grid_table(comparison, cells, dataset="fashion_mnist")
    lines = table.splitlines()
    assert len(lines) == 2 + len(cells)
    assert "81.22" in lines[2] and "81.00 ± 1.41" in lines[2] and "AlexNet" in lines[2] and "1,387,786" in lines[2]
    assert "AlexNet" not in lines[3] and "79.66" in lines[3]
    assert "MLP 3×512" in lines[6] and "53.35" in lines[6] and "99.00" in lines[6]
    with pytest.raises(ValueError):
        Z.grid_table(Comparison({}), cells)
    one_seed = Comparison({c.label: [_result(c.label, 0, 0.8, 0.99)] for c in cells})
    assert "± n/a (1 seed)" in Z.grid_table(one_seed, cells) and "± 0.00" not in Z.grid_table(one_seed, cells)
    # the running accuracy of the last epoch is never shown as the final training accuracy
    running_only = Comparison({c.label: [_result(c.label, 0, 0.8, 0.99, final=False)] for c in cells})
    with pytest.raises(ValueError, match="final training accuracy"):
        Z.grid_table(running_only, cells)


def test_the_l2_penalty_is_lambda_over_two_on_kernels_only_and_goes_through_momentum():
    recipe = Z.ZhangRecipe(0.1, weight_decay=0.01)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization(),
                              keras.layers.Dense(2)])
    assert recipe.penalize(model) == 2
    kernels = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights if w.path.endswith("/kernel")]
    total = sum(float(keras.ops.convert_to_numpy(loss)) for loss in model.losses)
    assert total == pytest.approx(0.01 / 2 * sum(float(np.sum(k**2)) for k in kernels), rel=1e-5)
    # with zero data gradient, SGD + momentum on the penalty: v ← βv − ηλw, w ← w + v (Keras' form)
    var = keras.Variable(np.ones(3, "float32"))
    var.regularizer = keras.regularizers.L2(recipe.weight_decay / 2)
    opt = keras.optimizers.SGD(0.1, momentum=0.9)
    w, v = np.ones(3), np.zeros(3)
    for _ in range(5):
        grad = keras.ops.convert_to_numpy(2 * (recipe.weight_decay / 2) * var)  # d/dw of (λ/2)·Σw²
        opt.apply_gradients([(keras.ops.convert_to_tensor(grad), var)])
        v = 0.9 * v - 0.1 * 0.01 * w
        w = w + v
    np.testing.assert_allclose(keras.ops.convert_to_numpy(var), w, rtol=1e-5)


def test_zhang_inception_has_the_papers_parameter_count_and_scales():
    full = zhang_inception((28, 28, 3), 10, batch_norm=False)
    assert full.count_params() == Z.ZHANG_TABLE1[("inception_no_bn", False, False)][0]  # 1,649,402
    assert full.output_shape == (None, 10)
    with_bn = zhang_inception((28, 28, 3), 10)
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in with_bn.layers)
    narrow = zhang_inception((28, 28, 1), 10, width=0.25)
    assert narrow.count_params() < full.count_params() / 10
    for bad in (0, -1.0, True):
        with pytest.raises(ValueError):
            zhang_inception(width=bad)

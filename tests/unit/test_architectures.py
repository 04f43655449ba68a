"""cnncourse.experiments.architectures: the shared recipe, the cached results table, the ILSVRC table."""

import json

import keras
import numpy as np
import pytest

from cnncourse import models
from cnncourse.data import Split
from cnncourse.experiments import architectures
from cnncourse.experiments.architectures import (
    D2L_ANCHORS,
    ILSVRC_WINNERS,
    ArchitectureRecipe,
)
from cnncourse.inspection import analysis
from cnncourse.profiles import Experiment

Recipe = ArchitectureRecipe


def _Split(n_train=64, n_test=32, seed=0):
    rng = np.random.default_rng(seed)
    return Split("toy", rng.random((n_train, 28, 28, 1), dtype=np.float32), (np.arange(n_train) % 10).astype(np.int32),
                 rng.random((n_test, 28, 28, 1), dtype=np.float32), (np.arange(n_test) % 10).astype(np.int32),
                 tuple("abcdefghij"))


RUN = Experiment(64, 32, epochs=1, batch_size=32)


def test_anchors_and_winners_name_registered_small_and_paper_models():
    small = models.available("small")
    assert set(D2L_ANCHORS) <= set(small)
    assert all(0.5 < v < 1 for v in D2L_ANCHORS.values())
    paper = models.available("paper")
    assert [w.year for w in ILSVRC_WINNERS] == sorted(w.year for w in ILSVRC_WINNERS)
    assert all(w.model in paper for w in ILSVRC_WINNERS if w.model)
    errors = [w.top5_error for w in ILSVRC_WINNERS]
    assert errors == sorted(errors, reverse=True)  # every year's winner beat the last


def test_ilsvrc_table_fills_costs_only_where_a_builder_exists():
    table = architectures.ilsvrc_table({"alexnet": (62_378_344, 1_135_256_096)})
    assert table.row("2012 AlexNet")["params"] == 62_378_344
    assert table.row("2013 ZFNet")["params"] is None  # not given → blank
    assert table.row("2010 NEC-UIUC")["builder"] == "—"
    assert table.row("2015 ResNet")["top-5 error %"] == "3.57"
    assert table.row("2014 VGG")["top-5 error %"] == "7.3"
    assert "62,378,344" in str(table)


@pytest.mark.parametrize(
    "kwargs",
    [{"learning_rate": 0}, {"learning_rate": -1e-3}, {"weight_decay": -0.1}, {"warmup_fraction": 1.0},
     {"flip": 1}, {"shift": -1}, {"shift": 1.5}, {"learning_rate": float("nan")}, {"bn_momentum": 1.0},
     {"bn_momentum": -0.1}],
)
def test_recipe_rejects_bad_values(kwargs):
    with pytest.raises(ValueError, match="ArchitectureRecipe"):
        Recipe(**kwargs)


def test_recipe_schedule_warms_up_then_decays_to_zero():
    recipe = Recipe(learning_rate=1e-2, warmup_fraction=0.1)
    schedule = recipe.schedule(100)
    lr = [float(keras.ops.convert_to_numpy(schedule(step))) for step in (0, 5, 10, 55, 100)]
    assert lr[0] == pytest.approx(0.0, abs=1e-9)
    assert lr[1] == pytest.approx(5e-3, rel=1e-4)  # halfway through the warm-up
    assert lr[2] == pytest.approx(1e-2, rel=1e-4)  # the peak
    assert 0 < lr[3] < lr[2]
    assert lr[4] == pytest.approx(0.0, abs=1e-9)
    no_warmup = Recipe(warmup_fraction=0.0).schedule(10)
    assert float(keras.ops.convert_to_numpy(no_warmup(0))) == pytest.approx(Recipe().learning_rate)
    with pytest.raises(ValueError, match="total_steps"):
        recipe.schedule(0)
    assert recipe.to_dict()["schedule"] == "warmup+cosine" and not hasattr(recipe, "as_dict")


def test_recipe_optimizer_decays_weights_but_not_biases():
    opt = Recipe(weight_decay=0.1).optimizer(10)
    assert isinstance(opt, keras.optimizers.AdamW)
    kernel = keras.Variable(np.ones((2, 2), np.float32), name="kernel")
    bias = keras.Variable(np.ones((2,), np.float32), name="bias")
    opt.build([kernel, bias])
    assert opt._use_weight_decay(kernel) and not opt._use_weight_decay(bias)


def test_build_trainable_wraps_the_registered_model_with_weightless_augmentation():
    recipe = Recipe()
    model = architectures.build_trainable("lenet5", (28, 28, 1), 10, recipe, total_steps=4)
    bare = models.build("lenet5", input_shape=(28, 28, 1), num_classes=10)
    assert model.count_params() == bare.count_params() == 61_706
    assert analysis.count_macs(model) == analysis.count_macs(bare)
    assert [layer.name for layer in model.layers[1:3]] == ["random_flip", "random_shift"]
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    out = keras.ops.convert_to_numpy(model(x, training=False))  # augmentation is the identity at test time
    ref = keras.ops.convert_to_numpy(model.get_layer("lenet5")(x, training=False))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    plain = architectures.build_trainable("lenet5", (28, 28, 1), 10, Recipe(flip=False, shift=0), total_steps=4)
    assert [layer.name for layer in plain.layers[1:]] == ["lenet5"]
    with pytest.raises(ValueError, match="Recipe"):
        architectures.build_trainable("lenet5", (28, 28, 1), 10, {"learning_rate": 1e-3}, total_steps=4)


def test_run_architectures_trains_caches_and_reuses(tmp_path, capsys):
    split, path = _Split(), tmp_path / "arch.json"
    recipe = Recipe(flip=False, shift=0)
    first = architectures.run_architectures(["lenet5"], split, RUN, recipe, profile="test", path=path, progress=False)
    row = first.rows()[0]
    assert row["name"] == "lenet5" and row["params"] == 61_706 and row["macs"] == 416_520
    assert row["d2l (GPU, 10 ep.)"] == D2L_ANCHORS["lenet5"]
    assert 0.0 <= row["test accuracy"] <= 1.0 and row["images/s"] > 0
    assert row["± std"] == "n/a (1 seed)" and row["seeds"] == 1  # one seed has no spread, never "± 0"
    entry = json.loads(path.read_text())["entries"]["architectures"]
    assert entry["key"]["config"]["recipe"]["learning_rate"] == recipe.learning_rate
    assert entry["key"]["fingerprint"] == split.fingerprint
    assert "lenet5" in str(first.table()) and "profile test" in first.table().title

    again = architectures.run_architectures(["lenet5"], split, RUN, recipe, profile="test", path=path)
    assert "reusing" in capsys.readouterr().out
    assert again.rows() == first.rows()

    # a different recipe (or sizes, models, data) must not reuse the table
    changed = Recipe(flip=False, shift=0, learning_rate=1e-3)
    architectures.run_architectures(["lenet5"], split, RUN, changed, profile="test", path=path)
    assert "does not apply" in capsys.readouterr().out
    entry = json.loads(path.read_text())["entries"]["architectures"]
    assert entry["key"]["config"]["recipe"]["learning_rate"] == 1e-3
    architectures.run_architectures(["lenet5"], _Split(seed=1), RUN, changed, profile="test", path=path)
    assert "fingerprint" in capsys.readouterr().out


def test_run_architectures_rejects_unknown_models_and_empty_lists():
    with pytest.raises(ValueError, match="unknown model"):
        architectures.run_architectures(["lenet6"], _Split(), RUN, Recipe(), profile="test")
    with pytest.raises(ValueError, match="at least one"):
        architectures.run_architectures([], _Split(), RUN, Recipe(), profile="test")


def test_a_file_of_another_kind_is_reported_and_retrained(tmp_path, capsys):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"lenet5": []}))
    results = architectures.run_architectures(["lenet5"], _Split(), RUN, Recipe(flip=False, shift=0), profile="test",
                                              path=path)
    assert "no format field" in capsys.readouterr().out
    assert results.rows()[0]["name"] == "lenet5"


def test_paper_costs_match_the_published_counts():
    costs = architectures.paper_costs(["lenet5_classic", "nin"])
    assert costs["lenet5_classic"] == (61_706, 416_520)
    assert costs["nin"][0] == analysis.count_params(models.build("nin"))


def test_build_trainable_sets_the_recipes_batch_norm_momentum_everywhere():
    model = architectures.build_trainable("vgg11_small", (28, 28, 1), 10, Recipe(bn_momentum=0.8), total_steps=4)
    bns = [layer for layer in model.get_layer("vgg11_small").layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == 8 and all(layer.momentum == 0.8 for layer in bns)
    # one training step moves the moving mean by (1 - momentum) of the way to the batch mean
    x = np.random.default_rng(0).random((16, 28, 28, 1), dtype=np.float32)
    first = bns[0]
    before = keras.ops.convert_to_numpy(first.moving_mean).copy()
    model.train_on_batch(x, np.arange(16) % 10)
    after = keras.ops.convert_to_numpy(first.moving_mean)
    assert np.abs(after - before).max() > 0


def test_two_seeds_give_the_table_a_spread(tmp_path):
    run = Experiment(64, 32, epochs=1, batch_size=32, seeds=2)
    results = architectures.run_architectures(["lenet5"], _Split(), run, Recipe(flip=False, shift=0), profile="test",
                                              path=tmp_path / "arch.json", progress=False)
    row = results.rows()[0]
    accuracies = [r.test_accuracy for r in results.comparison.results["lenet5"]]
    assert row["seeds"] == 2 and row["± std"] == round(float(np.std(accuracies, ddof=1)), 4)
    assert "± std" in str(results.table())

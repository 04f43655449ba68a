"""cnncourse.models: every builder against the published sizes, parameters and operations.

The ImageNet-sized models are built once per session (``stats``) and only their numbers are
kept, so the file stays fast and light on memory; nothing big is ever run.
"""

import gc

import keras
import numpy as np
import pytest

from cnncourse import models
from cnncourse.inspection.analysis import count_macs, count_params, layer_table
from cnncourse.models import googlenet as googlenet_module
from cnncourse.models import resnet as resnet_module
from cnncourse.models.vgg import CONFIGS


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


class _Stats:
    """Build each big model at most once; keep its counts and per-layer table, drop the weights."""

    def __init__(self):
        self._cache = {}

    def __call__(self, key, make=None):
        if key not in self._cache:
            model = make() if make is not None else models.build(key)
            self._cache[key] = {
                "params": count_params(model),
                "trainable": _trainable(model),
                "macs": count_macs(model),
                "table": layer_table(model),
                "outputs": [tuple(o.shape[1:]) for o in model.outputs],
            }
            del model
            keras.backend.clear_session()
            gc.collect()
        return self._cache[key]


@pytest.fixture(scope="module")
def stats():
    return _Stats()


# ------------------------------------------------------------------ registry
def test_registry_lists_every_group_and_builds_by_name():
    names = models.available()
    assert len(names) == len(set(names))
    for group in models.GROUPS:
        assert models.available(group)
    assert set(models.available()) == set().union(*(models.available(g) for g in models.GROUPS))
    assert {"mnist_mlp", "keras_io_convnet"} == set(models.available("lecture"))
    assert {"fast_resnet", "probe_convnet"} == set(models.available("course"))
    for name in ("lenet5", "alexnet_small", "vgg11_small", "nin_small", "googlenet_small", "resnet18_small"):
        assert name in models.available("small")
    for name in ("alexnet", "zfnet", "vgg16", "vgg19", "googlenet", "resnet50", "resnet20_cifar", "plain56_cifar"):
        assert name in models.available("paper")
    model = models.build("lenet5", num_classes=7)
    assert model.name == "lenet5" and model.output_shape == (None, 7)
    # overriding a family option renames the model after what it now is
    assert models.build("resnet20_cifar", depth=8, shortcut=None).name == "plain8_cifar"
    assert models.builder("vgg16") is models.builder("vgg11")


def test_registry_rejects_unknown_names_and_groups():
    with pytest.raises(ValueError, match="available: .*vgg16"):
        models.build("vgg17")
    with pytest.raises(ValueError, match="group must be one of paper, small, course, lecture"):
        models.available("big")


def test_cli_lists_names_without_building(capsys):
    assert models.cli(["--list"]) == 0
    out = capsys.readouterr().out
    assert "small: lenet5, alexnet_small" in out and "lecture: mnist_mlp, keras_io_convnet" in out
    assert models.cli(["nope"]) == 2


def test_cli_table_for_named_models(capsys):
    assert models.cli(["lenet5", "keras_io_convnet"]) == 0
    out = capsys.readouterr().out
    assert "61,706" in out and "34,826" in out and "macs" in out


# ------------------------------------------------------------------ lecture models
def test_lecture_models_match_the_lecture_summaries():
    mlp = models.build("mnist_mlp")
    assert mlp.count_params() == 101_770
    assert mlp.layers[-1].activation is keras.activations.linear  # logits, as in the lecture
    convnet = models.build("keras_io_convnet")
    assert convnet.count_params() == 34_826
    assert [layer.name for layer in convnet.layers[1:]] == [
        "conv1", "pool1", "conv2", "pool2", "flatten", "dropout", "predictions"
    ]
    probs = convnet.predict(np.zeros((2, 28, 28, 1), "float32"), verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


# ------------------------------------------------------------------ LeNet, AlexNet, ZFNet
def test_lenet5_classic_and_28x28_forms_share_the_paper_layout():
    classic = layer_table(models.build("lenet5_classic"))
    small = layer_table(models.build("lenet5"))
    for table in (classic, small):
        assert table.row("c1")["output"] == (28, 28, 6)
        assert table.row("s4")["output"] == (5, 5, 16)
        assert table.row("c5")["output"] == (1, 1, 120)
        assert table.totals["params"] == 61_706
    relu_max = models.build("lenet5", activation="sigmoid", pooling="max")
    assert isinstance(relu_max.get_layer("s2"), keras.layers.MaxPooling2D)


def test_alexnet_published_shapes_and_parameters(stats):
    s = stats("alexnet")
    table = s["table"]
    conv1 = table.row("conv1")
    assert conv1["output"] == (55, 55, 96) and conv1["params"] == 34_944
    assert table.row("pool1")["output"] == (27, 27, 96)
    assert table.row("conv2")["output"] == (27, 27, 256)
    assert table.row("pool2")["output"] == (13, 13, 256)
    assert table.row("conv5")["output"] == (13, 13, 256)
    assert table.row("pool5")["output"] == (6, 6, 256)
    assert table.row("norm1")["type"] == "LocalResponseNormalization"
    assert s["params"] == 62_378_344
    assert s["outputs"] == [(1000,)]


def test_zfnet_changes_conv1_and_widens_conv3_to_5(stats):
    table = stats("zfnet")["table"]
    assert table.row("conv1")["output"] == (110, 110, 96)
    assert table.row("conv1")["params"] == 7 * 7 * 3 * 96 + 96
    assert table.row("pool1")["output"] == (55, 55, 96)
    assert table.row("conv2")["output"] == (26, 26, 256)
    assert [table.row(f"conv{i}")["output"][-1] for i in (3, 4, 5)] == [512, 1024, 512]
    assert table.row("pool5")["output"] == (6, 6, 512)


# ------------------------------------------------------------------ VGG
@pytest.mark.parametrize(
    "name, millions", [("vgg11", 133), ("vgg11_lrn", 133), ("vgg13", 133), ("vgg16_c", 134), ("vgg16", 138), ("vgg19", 144)]
)
def test_vgg_parameters_match_the_paper_table(stats, name, millions):
    assert round(stats(name)["params"] / 1e6) == millions


def test_vgg16_and_vgg19_equal_keras_applications(stats):
    assert stats("vgg16")["params"] == 138_357_544
    assert stats("vgg16")["params"] == stats("keras_vgg16", lambda: keras.applications.VGG16(weights=None))["params"]
    assert stats("vgg19")["params"] == 143_667_240
    assert stats("vgg19")["params"] == stats("keras_vgg19", lambda: keras.applications.VGG19(weights=None))["params"]
    assert stats("vgg16")["macs"] == stats("keras_vgg16")["macs"]


def test_vgg_config_table_and_layer_names(stats):
    assert sum(isinstance(v, (int, tuple)) for v in CONFIGS["D"]) + 3 == 16
    assert sum(isinstance(v, (int, tuple)) for v in CONFIGS["E"]) + 3 == 19
    table = stats("vgg16_c")["table"]
    assert table.row("conv3_3")["params"] == 256 * 256 + 256  # C's 1x1 conv
    assert table.row("pool5")["output"] == (7, 7, 512)
    assert stats("vgg11_lrn")["table"].row("norm1")["type"] == "LocalResponseNormalization"


# ------------------------------------------------------------------ NiN, GoogLeNet
def test_nin_has_no_dense_layer_and_ends_in_global_average_pooling(stats):
    table = stats("nin")["table"]
    assert not [r for r in table.rows if r["type"] == "Dense"]
    assert table.row("mlpconv4_cccp2")["output"][-1] == 1000
    assert table.row("global_pool")["output"] == (1000,)
    assert table.row("mlpconv1_cccp1")["params"] == 96 * 96 + 96  # a 1x1 conv is a per-pixel MLP layer


def test_googlenet_modules_match_the_paper_table(stats):
    table = stats("googlenet")["table"]
    for module, (paper_k, paper_mops) in googlenet_module.PAPER_COSTS.items():
        rows = [r for r in table.rows if r["name"].startswith(f"inception_{module}_")]
        assert len(rows) == 8
        params_k = sum(r["params"] for r in rows) / 1024  # the paper's K is 1024
        mops = sum(r["macs"] for r in rows) / 1e6
        # The paper's own columns disagree with its filter counts in two places: 4c's params
        # (463K; its ops, 100M, imply 497K) and the whole 5a row (both ~5% above the spec).
        loose = 0.08 if module in {"4c", "5a"} else 0.025
        assert params_k == pytest.approx(paper_k, rel=loose), module
        assert mops == pytest.approx(paper_mops, rel=0.06 if module == "5a" else 0.015), module
    out = {m: table.row(f"inception_{m}_output")["output"] for m in ("3a", "3b", "4a", "4e", "5b")}
    assert out == {"3a": (28, 28, 256), "3b": (28, 28, 480), "4a": (14, 14, 512), "4e": (14, 14, 832), "5b": (7, 7, 1024)}


def test_googlenet_totals_and_auxiliary_classifiers(stats):
    s = stats("googlenet")
    assert 5e6 < s["params"] < 7.1e6  # ≈ 7M: 12x fewer than AlexNet's 62M
    assert 1.4e9 < s["macs"] < 1.7e9  # the paper: 1.5 billion multiply-adds
    assert s["outputs"] == [(1000,)]
    aux = stats("googlenet_aux", lambda: models.build("googlenet", aux_logits=True))
    assert aux["outputs"] == [(1000,)] * 3
    assert aux["table"].row("aux1_pool")["output"] == (4, 4, 512)
    assert aux["table"].row("aux2_pool")["output"] == (4, 4, 528)


# ------------------------------------------------------------------ ResNet
@pytest.mark.parametrize("depth, gmacs", [(18, 1.8), (34, 3.6), (50, 3.8), (101, 7.6), (152, 11.3)])
def test_resnet_multiply_adds_match_the_paper(stats, depth, gmacs):
    assert stats(f"resnet{depth}")["macs"] / 1e9 == pytest.approx(gmacs, rel=0.05)


@pytest.mark.parametrize("depth", [50, 101, 152])
def test_resnet_parameters_equal_keras_applications(stats, depth):
    make = {50: keras.applications.ResNet50, 101: keras.applications.ResNet101, 152: keras.applications.ResNet152}[depth]
    ours, theirs = stats(f"resnet{depth}"), stats(f"keras_resnet{depth}", lambda: make(weights=None))
    assert ours["params"] == theirs["params"]
    assert ours["trainable"] == theirs["trainable"]
    assert ours["macs"] == theirs["macs"]
    if depth == 50:
        assert ours["params"] == 25_636_712


def test_resnet50_without_conv_biases_has_the_papers_25_557_032_weights(stats):
    s = stats("resnet50_nobias", lambda: models.build("resnet50", use_bias=False))
    assert s["trainable"] == 25_557_032
    assert stats("resnet18_nobias", lambda: models.build("resnet18", use_bias=False))["trainable"] == 11_689_512


@pytest.mark.parametrize("depth, millions", [(20, 0.27), (56, 0.85), (110, 1.7)])
def test_cifar_resnet_parameters_match_he_et_al_table_6(depth, millions):
    model = models.build(f"resnet{depth}_cifar")
    assert model.count_params() / 1e6 == pytest.approx(millions, rel=0.03)
    plain = models.build(f"plain{depth}_cifar")
    assert plain.count_params() == model.count_params()  # option A shortcuts have no weights
    assert not [layer for layer in plain.layers if isinstance(layer, keras.layers.Add)]
    assert len([layer for layer in model.layers if isinstance(layer, keras.layers.Add)]) == (depth - 2) // 2


def test_cifar_resnet_shortcut_options():
    a = models.build("resnet20_cifar")
    b = models.build("resnet20_cifar", shortcut="B")
    assert b.count_params() - a.count_params() == (16 * 32 + 4 * 32) + (32 * 64 + 4 * 64)
    assert a.get_layer("conv3_block1_0_pad").output.shape[-1] == 32
    x = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")
    assert a.predict(x, verbose=0).shape == (2, 10)
    for depth in (19, 21, 2, 6.5, "20"):
        with pytest.raises(ValueError, match="6n \\+ 2"):
            resnet_module.cifar_resnet(depth=depth)


def test_resnet_table_and_stage_shapes(stats):
    assert resnet_module.RESNET_TABLE[50] == ("bottleneck", (3, 4, 6, 3))
    table = stats("resnet34")["table"]
    assert table.row("conv1_conv")["output"] == (112, 112, 64)
    assert table.row("pool1_pool")["output"] == (56, 56, 64)
    assert table.row("conv3_block1_out")["output"] == (28, 28, 128)
    assert table.row("conv5_block3_out")["output"] == (7, 7, 512)
    assert table.row("conv3_block1_0_conv")["params"] == 64 * 128 + 128  # projection where shape changes


# ------------------------------------------------------------------ small forms
@pytest.mark.parametrize("name", models.available("small"))
@pytest.mark.parametrize("shape, classes", [((28, 28, 1), 10), ((32, 32, 3), 7)])
def test_small_forms_run_a_forward_pass(name, shape, classes):
    model = models.build(name, input_shape=shape, num_classes=classes)
    x = np.random.default_rng(0).random((2, *shape)).astype("float32")
    y = model(x, training=False)
    assert tuple(y.shape) == (2, classes)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(y).sum(axis=1), 1.0, rtol=1e-4)
    assert count_macs(model) < 60e6  # small enough to train on a CPU


def test_small_forms_train_a_step():
    model = models.build("resnet18_small", input_shape=(28, 28, 1))
    model.compile("sgd", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((4, 28, 28, 1)).astype("float32")
    loss = model.train_on_batch(x, np.array([0, 1, 2, 3]))
    assert np.isfinite(loss)


def test_googlenet_small_aux_logits_gives_three_outputs():
    model = models.build("googlenet_small", aux_logits=True, input_shape=(32, 32, 3))
    assert [tuple(o.shape[1:]) for o in model.outputs] == [(10,)] * 3


def test_logits_option():
    model = models.build("vgg11_small", classifier_activation=None)
    assert model.layers[-1].activation is keras.activations.linear


# ------------------------------------------------------------------ bad arguments
BAD = [
    ("lenet5", {"activation": "softplus2"}, "activation must be one of"),
    ("lenet5", {"pooling": "l2"}, "pooling must be one of 'average', 'max'"),
    ("lenet5", {"input_shape": (20, 20, 1)}, "too small"),
    ("lenet5", {"input_shape": (8, 8, 1)}, "height and width >= 16"),
    ("lenet5", {"input_shape": (28, 28)}, "input_shape must be"),
    ("lenet5", {"num_classes": 1}, "num_classes must be"),
    ("mnist_mlp", {"hidden": 0}, "hidden must be"),
    ("keras_io_convnet", {"dropout": 1.0}, "dropout must be"),
    ("alexnet", {"input_shape": (32, 32, 3)}, "height and width >= 67"),
    ("alexnet", {"lrn": "yes"}, "lrn must be True or False"),
    ("zfnet", {"filters": (1, 2, 3)}, "filters must list 5"),
    ("alexnet_small", {"width": 0}, "width must be"),
    ("vgg16", {"config": "F"}, "config must be one of 'A', 'A-LRN', 'B', 'C', 'D', 'E'"),
    ("vgg11_small", {"batch_norm": 1}, "batch_norm must be True or False"),
    ("nin", {"classifier_activation": "sigmoid"}, "classifier_activation must be one of 'softmax', None"),
    ("googlenet", {"aux_logits": None}, "aux_logits must be"),
    ("googlenet_small", {"dropout": -0.1}, "dropout must be"),
    ("resnet50", {"depth": 42}, "depth must be one of 18, 34, 50, 101, 152"),
    ("resnet18_small", {"shortcut": "D"}, "shortcut must be one of 'A', 'B', 'C', None"),
    ("resnet20_cifar", {"depth": 21}, "6n \\+ 2"),
    ("resnet20_cifar", {"activation": "soft"}, "activation must be one of"),
    ("zhang_inception", {"width": 0}, "width must be"),
    ("zhang_alexnet", {"lrn": 1}, "lrn must be True or False"),
    ("zhang_mlp", {"hidden": (512, 0)}, "hidden must be"),
    ("fast_resnet", {"width": 2.5}, "width must be"),
    ("fast_resnet", {"input_shape": (2, 2, 1)}, "height and width >= 4"),
    ("probe_convnet", {"filters": 0}, "filters must be"),
]


@pytest.mark.parametrize("name, kwargs, message", BAD, ids=[f"{n}-{next(iter(k))}" for n, k, _ in BAD])
def test_bad_arguments_raise_value_error_naming_what_is_allowed(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        models.build(name, **kwargs)


# ------------------------------------------------------------------ every network the course trains
def test_every_network_the_course_trains_is_registered():
    """Notebook 06's Zhang et al. networks, notebook 10's fast ResNet and its distribution probe included."""
    names = set(models.available())
    assert {"zhang_inception", "zhang_alexnet", "zhang_mlp", "fast_resnet", "probe_convnet"} <= names
    assert {"zhang_inception", "zhang_alexnet", "zhang_mlp"} <= set(models.available("paper"))


@pytest.mark.parametrize(
    "name, kwargs, params",
    [
        ("zhang_inception", {"batch_norm": False}, 1_649_402),  # Zhang et al., Table 1
        ("zhang_alexnet", {}, 1_387_786),
        ("zhang_mlp", {}, 1_735_178),
    ],
)
def test_zhang_networks_have_the_papers_parameter_counts(name, kwargs, params):
    model = models.build(name, **kwargs)
    assert tuple(model.inputs[0].shape[1:]) == (28, 28, 3)
    assert count_params(model) == params


def test_fast_resnet_layout_and_logits():
    model = models.build("fast_resnet", width=8)
    assert model.layers[-1].name == "logits" and model.layers[-1].activation is keras.activations.linear
    shapes = {layer.name: tuple(layer.output.shape[1:3]) for layer in model.layers if layer.name.endswith("_conv")}
    assert shapes["stem_conv"] == (28, 28) and shapes["stage1_b_conv"] == (14, 14) and shapes["stage2_b_conv"] == (7, 7)
    plain = models.build("fast_resnet", width=8, residual=False)
    assert plain.count_params() == model.count_params()
    assert not any(isinstance(layer, keras.layers.Add) for layer in plain.layers)
    assert models.build("probe_convnet").count_params() == (9 * 4 + 4) + (8 * 8 * 4 * 3 + 3)


@pytest.mark.parametrize("side", [43, 50, 58])
def test_nin_refuses_inputs_too_small_for_its_pools(side):
    """43-58 px used to pass the check and fail deep inside Keras (a 2×2 map before a 3×3 pool)."""
    with pytest.raises(ValueError, match="height and width >= 59"):
        models.build("nin", input_shape=(side, side, 3), num_classes=10)


def test_nin_builds_from_the_smallest_size_it_names():
    from cnncourse.models.nin import SMALLEST_IMAGENET_INPUT

    model = models.build("nin", input_shape=(SMALLEST_IMAGENET_INPUT, SMALLEST_IMAGENET_INPUT, 3), num_classes=10)
    assert tuple(model.output_shape) == (None, 10)


def _batch_norms(model):
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif hasattr(layer, "layers"):
            found += _batch_norms(layer)
    return found


@pytest.mark.parametrize("name", ["vgg11_small", "resnet20_cifar", "googlenet_small", "nin_small", "fast_resnet",
                                  "zhang_inception", "resnet18_small"])
def test_every_batch_norm_takes_the_builders_momentum(name):
    """Default 0.9 (PyTorch's), not Keras' 0.99: statistics that lag a short run ruin its test accuracy."""
    default = _batch_norms(models.build(name))
    assert default and all(bn.momentum == pytest.approx(0.9) for bn in default)
    chosen = _batch_norms(models.build(name, bn_momentum=0.5))
    assert all(bn.momentum == pytest.approx(0.5) for bn in chosen)
    with pytest.raises(ValueError, match="bn_momentum"):
        models.build(name, bn_momentum=1.0)


def test_builders_accept_numpy_integers():
    model = models.build("resnet20_cifar", input_shape=(np.int64(32), np.int64(32), np.int64(3)),
                         num_classes=np.int64(7))
    assert tuple(model.output_shape) == (None, 7)
    assert models.build("resnet20_cifar", depth=np.int64(8)).name == "resnet8_cifar"


def test_conv_bn_act_names_and_fuses_like_the_papers():
    from cnncourse.models.blocks import conv_bn_act

    inputs = keras.Input((8, 8, 3))
    y = conv_bn_act(inputs, 4, 3, name="c", activation="relu")
    model = keras.Model(inputs, y)
    assert [layer.name for layer in model.layers[1:]] == ["c", "c_bn", "c_relu"]
    assert not model.get_layer("c").use_bias  # batch norm's beta makes a bias redundant
    fused = keras.Model(inputs, conv_bn_act(inputs, 4, 3, name="d", batch_norm=False))
    assert [layer.name for layer in fused.layers[1:]] == ["d"] and fused.get_layer("d").use_bias
    assert fused.get_layer("d").activation is keras.activations.relu
    stop = keras.Model(inputs, conv_bn_act(inputs, 4, 3, name="e", activation=None, bn_name="e_norm"))
    assert [layer.name for layer in stop.layers[1:]] == ["e", "e_norm"]

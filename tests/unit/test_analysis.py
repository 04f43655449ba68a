"""cnncourse.inspection.analysis: the arithmetic behind the published sizes and costs."""

import keras
import matplotlib
import pytest

matplotlib.use("agg")

from cnncourse.inspection import analysis
from cnncourse.inspection.analysis import (
    bottleneck_cost,
    conv_output_size,
    conv_params,
    count_macs,
    count_params,
    inception_module_cost,
    layer_table,
    receptive_field,
)


# ------------------------------------------------------------------ pure arithmetic
@pytest.mark.parametrize(
    "w, f, p, s, expected",
    [(227, 11, 0, 4, 55), (55, 3, 0, 2, 27), (27, 5, 2, 1, 27), (7, 3, 0, 1, 5), (7, 3, 1, 1, 7), (32, 1, 0, 1, 32)],
)
def test_conv_output_size_published_examples(w, f, p, s, expected):
    assert conv_output_size(w, f, p, s) == expected


def test_conv_output_size_refuses_fractional_results_naming_the_values():
    with pytest.raises(ValueError, match=r"224.*11.*4"):
        conv_output_size(224, 11, 0, 4)  # (224 - 11)/4 + 1 = 54.25: why AlexNet needs 227
    with pytest.raises(ValueError, match="larger than"):
        conv_output_size(3, 5, 0, 1)


@pytest.mark.parametrize("args", [(0, 3, 0, 1), (7, 0, 0, 1), (7, 3, -1, 1), (7, 3, 0, 0), (7.0, 3, 0, 1), (True, 3, 0, 1)])
def test_conv_output_size_rejects_bad_arguments(args):
    with pytest.raises(ValueError):
        conv_output_size(*args)


def test_conv_params_matches_keras_and_the_lecture():
    assert conv_params(11, 3, 96) == 34_944  # AlexNet conv1: 34,848 weights + 96 biases
    assert conv_params(3, 3, 512) == 14_336  # Conv2D(512, 3x3) on RGB
    assert conv_params(1, 512, 512) == 262_656
    assert conv_params(1, 512, 64) == 32_832
    assert conv_params(1, 512, 1024) == 525_312
    assert conv_params((3, 5), 4, 2, bias=False) == 120
    layer = keras.layers.Conv2D(7, (3, 5))
    layer.build((None, 9, 9, 4))
    assert conv_params((3, 5), 4, 7) == layer.count_params()
    with pytest.raises(ValueError, match="f must be"):
        conv_params((3, 3, 3), 1, 1)
    with pytest.raises(ValueError, match="c_in"):
        conv_params(3, 0, 1)


def test_receptive_field_of_stacks():
    assert receptive_field([3, 3, 3]) == 7
    assert receptive_field([3, 3]) == 5
    assert receptive_field([7]) == 7
    assert receptive_field([(3, 2), (3, 2)]) == 7  # the second window steps over 2 pixels
    assert receptive_field([(3, 1, 2)]) == 5  # dilation 2
    assert receptive_field([(11, 4), (3, 2), (5, 1)]) == 11 + 2 * 4 + 4 * 8  # AlexNet conv1-pool1-conv2
    assert receptive_field([]) == 1
    with pytest.raises(ValueError, match="kernel"):
        receptive_field([0])
    with pytest.raises(ValueError, match="expected k"):
        receptive_field([(3, 1, 1, 1)])


@pytest.mark.parametrize(
    "w, f, p, d", [(13, 3, 0, 2), (13, 3, 1, 2), (16, 3, 0, 4), (9, 2, 0, 3), (10, 5, 2, 2), (7, 3, 0, 3), (12, 1, 0, 5)]
)
def test_dilated_conv_output_size_matches_keras(w, f, p, d):
    """(W − d(F − 1) − 1 + 2P)/S + 1 against the shape Keras computes (stride 1: Keras refuses stride > 1 with dilation)."""
    model = keras.Sequential(
        [keras.Input((w, w, 1)), keras.layers.ZeroPadding2D(p), keras.layers.Conv2D(1, f, dilation_rate=d)]
    )
    assert conv_output_size(w, f, p, 1, d) == model.output_shape[1] == (w - d * (f - 1) - 1 + 2 * p) + 1


def test_dilated_conv_output_size_with_stride_matches_the_numpy_convolution():
    import numpy as np

    from cnncourse.reference.conv_forms import conv2d_im2col

    out = conv2d_im2col(np.zeros((1, 15, 15, 1)), np.zeros((3, 3, 1, 1)), stride=2, padding=1, dilation=2)
    assert out.shape[1] == conv_output_size(15, 3, 1, 2, 2) == (15 - 2 * 2 - 1 + 2) // 2 + 1 == 7
    assert conv_output_size(227, 11, 0, 4, 1) == conv_output_size(227, 11, 0, 4) == 55  # d = 1: the old formula
    with pytest.raises(ValueError, match=r"dilated by d=2 \(spanning d\(f - 1\) \+ 1 = 5\)"):
        conv_output_size(10, 3, 0, 2, 2)  # (10 - 5)/2 + 1 = 3.5
    with pytest.raises(ValueError, match="larger than"):
        conv_output_size(6, 3, 0, 1, 3)  # spans 7 > 6
    with pytest.raises(ValueError, match="dilation"):
        conv_output_size(6, 3, 0, 1, 0)


@pytest.mark.parametrize(
    "spec", [[(3, 1, 1), (3, 1, 2), (3, 1, 4)], [(3, 1, 2), (3, 1, 2)], [(2, 1, 3), (3, 1, 1)], [(3, 1, 1), (3, 1, 2), (3, 1, 4), (3, 1, 8)]]
)
def test_dilated_receptive_field_is_the_gradient_support_of_a_keras_stack(spec):
    """The pixels one output unit depends on, read off autodiff, span receptive_field(spec) pixels."""
    import numpy as np

    from cnncourse.autodiff import grad

    size = receptive_field(spec) + 4
    layers = [
        keras.layers.Conv2D(1, k, dilation_rate=d, use_bias=False, kernel_initializer="ones") for k, _, d in spec
    ]
    model = keras.Sequential([keras.Input((size, size, 1)), *layers])
    out = model.output_shape[1]
    g = grad(lambda x: model(x)[0, out // 2, out // 2, 0], np.zeros((1, size, size, 1), "float32"))
    rows = np.nonzero(np.abs(g[0, :, :, 0]).sum(axis=1))[0]
    assert rows.max() - rows.min() + 1 == receptive_field(spec)
    assert receptive_field([(3, 1, 1), (3, 1, 2), (3, 1, 4)]) == 15  # 1 + 2·(1 + 2 + 4): exponential in depth


def test_naive_inception_module_costs_854M():
    cost = inception_module_cost(28, 28, 256, (128, 192, 96), naive=True)
    assert cost.macs == 854_196_224  # the lecture's 854M
    assert cost.branches == {"1x1": 25_690_112, "3x3": 346_816_512, "5x5": 481_689_600}
    assert cost.out_channels == 128 + 192 + 96 + 256  # pooling passes the depth through


def test_inception_module_with_bottlenecks_is_the_sum_of_its_terms():
    cost = inception_module_cost(28, 28, 256, (128, 64, 192, 64, 96, 64))
    # the six terms the slide lists (28x28x64x1x1x256, ..., 28x28x64x1x1x256)
    terms = [784 * 64 * 256, 784 * 64 * 256, 784 * 128 * 256, 784 * 192 * 9 * 64, 784 * 96 * 25 * 64, 784 * 64 * 256]
    assert cost.macs == sum(terms) == 271_351_808
    # the slide's printed total, 358M, is not the sum of its own terms: the course says so
    assert round(cost.macs / 1e6) != 358
    assert cost.out_channels == 480
    naive = inception_module_cost(28, 28, 256, (128, 192, 96), naive=True)
    assert naive.macs / cost.macs > 3


def test_inception_module_matches_googlenet_table_row_3a():
    cost = inception_module_cost(28, 28, 192, (64, 96, 128, 16, 32, 32), bias=False)
    assert cost.params == 163_328  # the paper's "159K" (in units of 1024)
    assert round(cost.macs / 1e6) == 128
    assert cost.out_channels == 256


def test_inception_module_cost_rejects_bad_specs():
    with pytest.raises(ValueError, match="6 entries"):
        inception_module_cost(28, 28, 256, (128, 192, 96))
    with pytest.raises(ValueError, match="3 entries"):
        inception_module_cost(28, 28, 256, (1, 2, 3, 4, 5, 6), naive=True)
    with pytest.raises(ValueError, match="c_in"):
        inception_module_cost(28, 28, 0, (1, 2, 3), naive=True)


def test_bottleneck_cost_published_numbers():
    cost = bottleneck_cost(256, 64)
    assert cost.bottleneck == 69_632
    assert cost.plain == 589_824
    assert cost.ratio == pytest.approx(589_824 / 69_632)
    assert bottleneck_cost(256, 64, 128).bottleneck == 256 * 64 + 9 * 64 * 64 + 64 * 128
    with pytest.raises(ValueError, match="c_mid"):
        bottleneck_cost(256, 0)


# ------------------------------------------------------------------ model walking
def _small_net():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="p1")(x)
    a = keras.layers.Conv2D(4, 1, name="a")(x)
    b = keras.layers.Conv2D(4, 3, padding="same", name="b")(x)
    x = keras.layers.Concatenate(name="cat")([a, b])
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.SeparableConv2D(6, 3, strides=2, padding="same", name="sep")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", groups=2, name="grouped")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(5, name="fc")(x)
    return keras.Model(inputs, x, name="toy")


def test_layer_macs_follow_the_stated_convention():
    model = _small_net()
    table = layer_table(model)
    macs = {row["name"]: row["macs"] for row in table.rows}
    assert macs["c1"] == 32 * 32 * 8 * 3 * 3 * 3
    assert macs["p1"] == 0
    assert macs["a"] == 16 * 16 * 4 * 8
    assert macs["b"] == 16 * 16 * 4 * 9 * 8
    assert macs["cat"] == 0
    assert macs["dw"] == 16 * 16 * 8 * 9
    assert macs["sep"] == 8 * 8 * 8 * 9 + 8 * 8 * 6 * 8
    assert macs["grouped"] == 8 * 8 * 6 * 9 * 6 // 2
    assert macs["bn"] == 0 and macs["gap"] == 0
    assert macs["fc"] == 6 * 5
    assert table.totals["macs"] == count_macs(model) == sum(macs.values())
    assert table.totals["params"] == count_params(model) == model.count_params()


def test_layer_table_geometry_receptive_field_and_jump():
    table = layer_table(_small_net())
    c1, p1, b, sep = (table.row(n) for n in ("c1", "p1", "b", "sep"))
    assert (c1["rf"], c1["jump"], c1["stride"]) == (3, 1, 1)
    assert (p1["rf"], p1["jump"], p1["stride"]) == (4, 2, 2)
    assert (b["rf"], b["jump"]) == (8, 2)
    assert table.row("cat")["rf"] == 8  # the wider branch wins where branches meet
    assert (sep["rf"], sep["jump"], sep["output"]) == (8 + 4 + 4, 4, (8, 8, 6))
    assert table.row("gap")["jump"] is None
    assert table.row("fc")["output"] == (5,)
    with pytest.raises(KeyError, match="no layer named"):
        table.row("nope")


def test_table_prints_aligned_text_and_markdown():
    table = layer_table(_small_net())
    text = str(table)
    lines = text.splitlines()
    assert lines[0] == "toy"
    assert lines[1].split()[:5] == ["name", "type", "output", "params", "macs"]
    assert lines[-1].startswith("total")
    assert f"{table.totals['params']:,}" in lines[-1]
    assert len({len(line) for line in lines[2:3] + lines[-2:-1]}) == 1  # rules are the same width
    md = table._repr_markdown_()
    assert "| name | type | output |" in md and "**total**" in md
    assert md.count("\n") == len(table) + 4
    plain = analysis.Table(columns=("name", "n"), rows=[{"name": "a", "n": 1234}], totals={})
    assert str(plain).splitlines() == ["name      n", "----  -----", "a     1,234"]
    assert "total" not in plain._repr_markdown_()
    short = layer_table(_small_net(), include_zero=False)
    assert {r["name"] for r in short.rows} == {"c1", "a", "b", "dw", "sep", "grouped", "bn", "fc"}


def test_count_macs_walks_nested_models():
    inner = keras.Sequential([keras.Input((8, 8, 2)), keras.layers.Conv2D(3, 3, name="inner_conv")], name="inner")
    inputs = keras.Input((8, 8, 2))
    outputs = keras.layers.Dense(4, name="head")(keras.layers.Flatten()(inner(inputs)))
    model = keras.Model(inputs, outputs)
    assert count_macs(model) == 6 * 6 * 3 * 9 * 2 + 108 * 4


def test_plot_accuracy_vs_ops():
    rows = [
        {"label": "a", "accuracy": 0.9, "macs": 1e6, "params": 1e5},
        {"name": "b", "accuracy": 0.95, "macs": 1e8, "params": 2e6},
    ]
    ax = analysis.plot_accuracy_vs_ops(rows)
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
    assert [t.get_text().split("\n")[0] for t in ax.texts] == ["a", "b"]
    sizes = ax.collections[0].get_sizes()
    assert sizes[1] > sizes[0]
    with pytest.raises(ValueError, match="empty"):
        analysis.plot_accuracy_vs_ops([])
    with pytest.raises(ValueError, match="macs > 0"):
        analysis.plot_accuracy_vs_ops([{"label": "x", "accuracy": 1, "macs": 0, "params": 1}])
    import matplotlib.pyplot as plt

    plt.close("all")


# ------------------------------------------------------------------ group_rows
def _two_block_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="block1_conv1")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", name="block1_conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Conv2D(6, 1, name="block2_conv1")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(x))


def test_group_rows_sums_params_and_macs_per_prefix():
    table = layer_table(_two_block_model())
    grouped = analysis.group_rows(table, ["block1_", "block2_"])
    assert [r["name"] for r in grouped.rows] == ["block1_", "pool", "block2_", "gap", "head"]
    b1 = grouped.row("block1_")
    assert b1["layers"] == 2
    assert b1["params"] == (27 + 1) * 4 + (36 + 1) * 4
    assert b1["macs"] == 64 * 4 * 27 + 64 * 4 * 36
    assert b1["output"] == (8, 8, 4)
    assert grouped.row("block2_")["macs"] == 16 * 6 * 4
    # nothing is lost: the groups add up to the model's totals
    assert sum(r["params"] for r in grouped.rows) == table.totals["params"]
    assert sum(r["macs"] for r in grouped.rows) == table.totals["macs"]
    assert "block1_" in str(grouped)


def test_group_rows_first_matching_prefix_wins_and_bad_prefixes_are_refused():
    table = layer_table(_two_block_model())
    grouped = analysis.group_rows(table, ["block", "block1_"])
    assert grouped.row("block")["layers"] == 3
    with pytest.raises(ValueError, match="non-empty strings"):
        analysis.group_rows(table, ["block1_", ""])


def test_sizes_computed_with_numpy_are_accepted():
    """conv_output_size(np.int64(28), 3) raised while reference.depth accepted NumPy integers."""
    import numpy as np

    assert analysis.conv_output_size(np.int64(28), np.int32(3)) == 26
    assert analysis.conv_params(np.int64(3), np.int64(3), 4) == 112
    assert analysis.receptive_field([np.int64(3)] * 3) == 7
    assert analysis.bottleneck_cost(np.int64(256), np.int64(64)).bottleneck == 69_632

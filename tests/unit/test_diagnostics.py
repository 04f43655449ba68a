"""Tests for cnncourse.inspection.diagnostics: activation statistics, gradient norms, the NumPy experiment."""

from __future__ import annotations

import math

import keras
import matplotlib
import numpy as np
import pytest

from cnncourse.inspection import diagnostics as D

matplotlib.use("Agg")


def tiny_net(seed: int = 0):
    """4 → 5 (tanh) → 3 (linear), with explicit weights so every backend computes the same thing."""
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((4, 5)).astype("float32") * 0.7
    b1 = rng.standard_normal(5).astype("float32") * 0.1
    w2 = rng.standard_normal((5, 3)).astype("float32") * 0.7
    b2 = rng.standard_normal(3).astype("float32") * 0.1
    inputs = keras.Input((4,))
    h = keras.layers.Dense(5, activation="tanh", name="hidden")(inputs)
    out = keras.layers.Dense(3, name="out")(h)
    model = keras.Model(inputs, out)
    model.get_layer("hidden").set_weights([w1, b1])
    model.get_layer("out").set_weights([w2, b2])
    return model, (w1, b1, w2, b2)


def numpy_grads(x, y, w1, b1, w2, b2):
    """Manual backprop of the mean squared error (mean over batch and outputs)."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    z1 = x @ w1 + b1
    h = np.tanh(z1)
    out = h @ w2 + b2
    d_out = 2.0 * (out - y) / out.size
    g_w2, g_b2 = h.T @ d_out, d_out.sum(0)
    d_z1 = (d_out @ w2.T) * (1.0 - h**2)
    return {"w1": x.T @ d_z1, "b1": d_z1.sum(0), "w2": g_w2, "b2": g_b2}, h, out


def batch(seed: int = 1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((16, 4)).astype("float32"), rng.standard_normal((16, 3)).astype("float32")


def test_gradients_match_manual_backprop():
    model, weights = tiny_net()
    x, y = batch()
    expected, _, _ = numpy_grads(x, y, *weights)
    grads = D.gradients(model, x, y, "mean_squared_error")
    assert list(grads) == ["hidden/kernel", "hidden/bias", "out/kernel", "out/bias"]
    for key, ref in zip(grads, ("w1", "b1", "w2", "b2")):
        np.testing.assert_allclose(grads[key], expected[ref], rtol=1e-4, atol=1e-6, err_msg=key)


def test_gradient_norms_kernel_and_all():
    model, weights = tiny_net()
    x, y = batch()
    expected, _, _ = numpy_grads(x, y, *weights)
    norms = D.gradient_norms(model, x, y, keras.losses.MeanSquaredError())
    assert list(norms) == ["hidden/kernel", "out/kernel"]
    assert norms["hidden/kernel"] == pytest.approx(np.linalg.norm(expected["w1"]), rel=1e-4)
    assert norms["out/kernel"] == pytest.approx(np.linalg.norm(expected["w2"]), rel=1e-4)
    everything = D.gradient_norms(model, x, y, "mse", which="all")
    assert everything["out/bias"] == pytest.approx(np.linalg.norm(expected["b2"]), rel=1e-4)
    # the model's variables are left untouched by the measurement
    np.testing.assert_array_equal(model.get_layer("hidden").get_weights()[0], weights[0])


def test_gradient_norms_with_a_callable_loss_and_classification():
    model, _ = tiny_net()
    x, _ = batch()
    labels = np.arange(16) % 3
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    norms = D.gradient_norms(model, x, labels, loss)
    assert all(v > 0 and math.isfinite(v) for v in norms.values())
    by_hand = D.gradient_norms(model, x, labels, lambda t, p: loss(t, p))
    assert by_hand == pytest.approx(norms, rel=1e-6)


def test_gradient_norms_on_a_cnn_with_batch_norm():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, name="c1")(inputs)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Conv2D(4, 3, name="c2")(h)
    out = keras.layers.Dense(2, name="head")(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inputs, out)
    x = np.random.default_rng(0).standard_normal((6, 8, 8, 1)).astype("float32")
    y = np.array([0, 1, 0, 1, 1, 0])
    model.get_layer("bn").moving_mean.assign(np.full(4, 0.5, dtype="float32"))
    norms = D.gradient_norms(model, x, y, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert list(norms) == ["c1/kernel", "c2/kernel", "head/kernel"]
    assert all(v > 0 for v in norms.values())
    # a training-mode measurement leaves batch-norm state as it was, on every backend
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.get_layer("bn").moving_mean), np.full(4, 0.5))


@pytest.mark.parametrize("kwargs, match", [({"which": "bias"}, "which"), ({"loss": 3}, "loss")])
def test_gradient_norms_rejects_bad_arguments(kwargs, match):
    model, _ = tiny_net()
    x, y = batch()
    args = {"loss": "mse", **kwargs}
    with pytest.raises(ValueError, match=match):
        D.gradient_norms(model, x, y, **args)


def test_summarize_matches_numpy():
    v = np.array([0.0, 0.0, 1.0, -2.0, 3.0])
    s = D.summarize("v", v, bins=5, range=(-3, 3))
    assert (s.mean, s.std) == pytest.approx((v.mean(), v.std()))
    assert s.second_moment == pytest.approx(np.mean(v**2))
    assert s.fraction_zero == pytest.approx(0.4)
    assert s.counts.sum() == 5 and len(s.edges) == 6
    with pytest.raises(ValueError, match="bins"):
        D.summarize("v", v, bins=0)


def test_activation_stats_on_a_keras_model_matches_manual_forward():
    model, weights = tiny_net()
    x, y = batch()
    _, h, out = numpy_grads(x, y, *weights)
    stats = D.activation_stats(model, x)
    assert [s.name for s in stats] == ["hidden", "out"]
    assert stats[0].std == pytest.approx(h.std(), rel=1e-4)
    assert stats[1].mean == pytest.approx(out.mean(), rel=1e-4, abs=1e-6)
    only = D.activation_stats(model, x, layers=["out"])
    assert [s.name for s in only] == ["out"]
    with pytest.raises(ValueError, match="no layer named"):
        D.activation_stats(model, x, layers=["nope"])


def test_activation_stats_on_callables_counts_dead_relus():
    x = np.array([[-1.0, 2.0], [3.0, -4.0]])
    stats = D.activation_stats([lambda h: np.maximum(h, 0), lambda h: h * 2.0], x, bins=4)
    assert [s.name for s in stats] == ["layer 1", "layer 2"]
    assert stats[0].fraction_zero == pytest.approx(0.5)
    assert stats[1].mean == pytest.approx(2.5)
    with pytest.raises(ValueError, match="callables"):
        D.activation_stats([], x)


def test_lecture_experiment_small_init_collapses_and_he_relu_keeps_second_moment():
    x = np.random.default_rng(0).standard_normal((1000, 500))
    small = [h.std() for h in D.random_mlp_activations(x, init="small", rng=np.random.default_rng(1))]
    assert 0.19 < small[0] < 0.23  # the lecture's ≈ 0.21
    assert small[-1] < 1e-5 and all(b < a for a, b in zip(small, small[1:]))
    glorot = [h.std() for h in D.random_mlp_activations(x, init="glorot", rng=np.random.default_rng(1))]
    assert glorot[-1] > 0.15
    he = D.random_mlp_activations(x, init="he", activation="relu", rng=np.random.default_rng(1))
    # He keeps E[h²] ≈ 1 (exactly in expectation; finite width makes it drift a little) ...
    assert 0.95 < np.mean(he[0] ** 2) < 1.05 and all(0.5 < np.mean(h**2) < 2.0 for h in he)
    assert 0.78 < he[0].std() < 0.87  # ... so the std of a ReLU output is ≈ sqrt(1 - 1/π) ≈ 0.83
    again = D.random_mlp_activations(x, init="he", activation="relu", rng=np.random.default_rng(1))
    np.testing.assert_array_equal(again[-1], he[-1])


def test_init_std_and_errors():
    assert D.init_std("he", 500, 10) == pytest.approx(math.sqrt(2 / 500))
    assert D.init_std("glorot", 300, 100) == pytest.approx(math.sqrt(2 / 400))
    assert D.init_std(0.05, 1, 1) == 0.05
    with pytest.raises(ValueError, match="init must be one of"):
        D.init_std("xavier", 1, 1)
    with pytest.raises(ValueError, match="activation"):
        D.random_mlp_activations(np.ones((2, 2)), activation="gelu", rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="depth"):
        D.random_mlp_activations(np.ones((2, 2)), depth=0, rng=np.random.default_rng(0))


def test_stats_table_prints_tiny_values_in_scientific_notation():
    stats = [D.summarize("a", np.array([1.0, -1.0])), D.summarize("b", np.array([3e-7, -3e-7]))]
    lines = D.stats_table(stats).splitlines()
    assert lines[0].split()[:3] == ["layer", "mean", "std"]
    assert "1.0000" in lines[1] and "3.00e-07" in lines[2]


def test_plot_helpers_draw_one_line_or_panel_per_item():
    import matplotlib.pyplot as plt

    ax = D.plot_layer_curves({"a": [1.0, 0.5, 0.25], "b": {"l1": 1.0, "l2": 2.0}}, logy=True, title="t")
    assert len(ax.lines) == 2 and ax.get_yscale() == "log" and ax.get_title() == "t"
    stats = [D.summarize(f"l{i}", np.arange(10.0) * i) for i in range(1, 4)]
    fig = D.plot_histograms(stats)
    assert len(fig.axes) == 3
    with pytest.raises(ValueError):
        D.plot_layer_curves({})
    plt.close("all")


def test_dead_fraction_counts_units_off_for_every_input():
    h = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]])
    assert D.dead_fraction(h) == pytest.approx(0.5)  # units 0 and 3
    images = np.zeros((2, 3, 3, 4))
    images[1, 2, 2, 1] = 0.5  # one position of one example is enough to be alive
    assert D.dead_fraction(images) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="unit axis"):
        D.dead_fraction(np.zeros(3))


def test_sequential_and_residual_models_are_supported():
    x = np.random.default_rng(0).standard_normal((5, 8, 8, 1)).astype("float32")
    y = np.array([0, 1, 2, 0, 1])
    seq = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                            keras.layers.Flatten(), keras.layers.Dense(3)])
    assert [s.name for s in D.activation_stats(seq, x)] == [layer.name for layer in seq.layers]
    norms = D.gradient_norms(seq, x, y, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert len(norms) == 2 and all(k.endswith("/kernel") for k in norms)
    inputs = keras.Input((4,))
    block = keras.layers.Add(name="skip")([keras.layers.Dense(4, name="body")(inputs), inputs])
    residual = keras.Model(inputs, keras.layers.Dense(2, name="head")(block))
    stats = D.activation_stats(residual, x[:, :4, 0, 0])
    assert [s.name for s in stats] == ["body", "skip", "head"]
    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="functional or built Sequential"):
        D.activation_stats(unbuilt, x[:, :4, 0, 0])


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_random_mlp_gradients_equal_autodiff_of_the_same_network(activation):
    from cnncourse.autodiff import grad

    x = np.random.default_rng(3).standard_normal((7, 5))
    found = D.random_mlp_gradients(x, depth=3, width=6, init="glorot", activation=activation,
                                   rng=np.random.default_rng(4))
    # the same weights and upstream gradient, drawn in the same order
    rng = np.random.default_rng(4)
    weights = [rng.standard_normal((5, 6)) * D.init_std("glorot", 5, 6)]
    weights += [rng.standard_normal((6, 6)) * D.init_std("glorot", 6, 6) for _ in range(2)]
    upstream = rng.standard_normal((7, 6))
    act = keras.ops.tanh if activation == "tanh" else keras.ops.relu

    def loss(ws, x_=x):
        h = x_
        for w in ws:
            h = act(keras.ops.matmul(h, w))
        return keras.ops.sum(h * upstream)

    for layer in range(3):
        def as_function_of(w, layer=layer):
            return loss([w if i == layer else weights[i] for i in range(3)])

        expected = np.linalg.norm(grad(as_function_of, weights[layer]))
        assert found.weight_norms[layer] == pytest.approx(expected, rel=1e-6)
    np.testing.assert_array_equal(found.activations[-1], D.random_mlp_activations(
        x, depth=3, width=6, init="glorot", activation=activation, rng=np.random.default_rng(4))[-1])
    assert found.error_norms[-1] == pytest.approx(np.linalg.norm(upstream))


def test_small_init_weight_gradients_are_equally_tiny_while_activations_and_errors_shrink():
    x = np.random.default_rng(0).standard_normal((1000, 500))
    g = D.random_mlp_gradients(x, init="small", rng=np.random.default_rng(1))
    act = np.array([h.std() for h in g.activations])
    err, wgt = np.array(g.error_norms), np.array(g.weight_norms)
    factor = 0.01 * np.sqrt(500)
    np.testing.assert_allclose(act[1:] / act[:-1], factor, rtol=0.05)  # forward: × 0.22 per layer
    np.testing.assert_allclose(err[:-1] / err[1:], factor, rtol=0.05)  # backward: × 0.22 per layer towards the input
    assert wgt.max() / wgt.min() < 1.5  # their product: the same size in every layer
    with pytest.raises(ValueError, match="upstream"):
        D.random_mlp_gradients(x[:2, :3], depth=1, width=4, rng=np.random.default_rng(0), upstream=np.ones((2, 5)))

import keras
import numpy as np
import pytest

from cnncourse.data import Split
from cnncourse.inspection import features


@pytest.fixture()
def small_model():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(5, activation="relu", name="features")(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x), name="small")


@pytest.fixture()
def images():
    return np.random.default_rng(0).random((7, 8, 8, 1)).astype("float32")


def test_penultimate_features_are_what_the_last_layer_sees(small_model, images):
    feats = features.penultimate_features(small_model, images)
    assert feats.shape == (7, 5)
    w, b = small_model.get_layer("logits").get_weights()
    np.testing.assert_allclose(feats @ w + b, small_model.predict(images, verbose=0), rtol=1e-5, atol=1e-5)
    flat = features.penultimate_features(small_model, images, layer_name="conv1")
    assert flat.shape == (7, 6 * 6 * 4)
    with pytest.raises(ValueError, match="no layer 'nope'"):
        features.penultimate_features(small_model, images, layer_name="nope")


def test_pca_matches_the_covariance_eigenvectors_with_fixed_signs():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200, 4)) @ np.diag([5.0, 2.0, 1.0, 0.1]) + 3.0
    scores, comps, ratio = features.pca(x, 2)
    evals, evecs = np.linalg.eigh(np.cov(x, rowvar=False))
    order = np.argsort(evals)[::-1]
    for i in range(2):
        v = evecs[:, order[i]]
        assert abs(abs(v @ comps[i]) - 1) < 1e-8
        assert comps[i][np.abs(comps[i]).argmax()] > 0  # sign convention
    np.testing.assert_allclose(ratio, evals[order[:2]] / evals.sum(), rtol=1e-8)
    np.testing.assert_allclose(scores.mean(axis=0), 0, atol=1e-10)
    np.testing.assert_allclose(scores.var(axis=0, ddof=1), evals[order[:2]], rtol=1e-8)
    # flipping the data's sign must not flip the figure
    _, comps_neg, _ = features.pca(-x, 2)
    np.testing.assert_allclose(np.abs(comps_neg), np.abs(comps), atol=1e-10)
    for bad in (0, 5, 2.5):
        with pytest.raises(ValueError, match="k must be an integer"):
            features.pca(x, bad)


def test_conditional_p_matches_the_perplexity():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((60, 3))
    sq = ((x[:, None] - x[None]) ** 2).sum(-1)
    p = features._conditional_p(sq, perplexity=10.0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(np.diag(p) == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.nansum(np.where(p > 0, p * np.log(p), 0.0), axis=1)
    np.testing.assert_allclose(np.exp(entropy), 10.0, rtol=1e-3)


def test_tsne_separates_clusters_and_is_deterministic():
    rng = np.random.default_rng(4)
    centres = rng.standard_normal((3, 20)) * 10
    labels = np.repeat(np.arange(3), 30)
    x = centres[labels] + rng.standard_normal((90, 20))
    y = features.tsne(x, perplexity=10, steps=300, seed=0)
    assert y.shape == (90, 2)
    d = ((y[:, None] - y[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert np.all(labels[d.argmin(axis=1)] == labels)  # every nearest neighbour is in its own cluster
    within = np.mean([d[labels == c][:, labels == c][np.isfinite(d[labels == c][:, labels == c])].mean() for c in range(3)])
    between = d[labels[:, None] != labels[None]].mean()
    assert between > 4 * within
    np.testing.assert_array_equal(y, features.tsne(x, perplexity=10, steps=300, seed=0))
    with pytest.raises(ValueError, match="perplexity"):
        features.tsne(x, perplexity=100)


def test_replace_head_copies_the_body_and_freezes_it(small_model, images):
    before = [w.copy() for w in small_model.get_weights()]
    new = features.replace_head(small_model, 2, freeze=True)
    assert new.output_shape == (None, 2)
    assert new.layers[-1].name == "new_logits"
    assert sum(int(np.prod(w.shape)) for w in new.trainable_weights) == 5 * 2 + 2
    np.testing.assert_allclose(
        features.penultimate_features(new, images), features.penultimate_features(small_model, images), rtol=1e-6
    )
    # train everything: the original model must not change (the body was cloned, not shared)
    for layer in new.layers:
        layer.trainable = True
    new.compile(optimizer=keras.optimizers.SGD(0.5), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    new.fit(images, np.array([0, 1, 0, 1, 0, 1, 0]), epochs=2, verbose=0)
    for a, b in zip(before, small_model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(new.get_layer("features").get_weights()[0], before[2])
    with pytest.raises(ValueError, match="num_classes"):
        features.replace_head(small_model, 0)


def test_replace_head_frozen_body_does_not_train(small_model, images):
    new = features.replace_head(small_model, 3, freeze=True)
    new.compile(optimizer=keras.optimizers.SGD(0.5), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    body_before = new.get_layer("features").get_weights()[0].copy()
    head_before = new.get_layer("new_logits").get_weights()[0].copy()
    new.fit(images, np.array([0, 1, 2, 0, 1, 2, 0]), epochs=2, verbose=0)
    np.testing.assert_array_equal(new.get_layer("features").get_weights()[0], body_before)
    assert not np.allclose(new.get_layer("new_logits").get_weights()[0], head_before)


def test_class_subset_relabels_and_balances():
    y_tr = np.repeat(np.arange(4), 25).astype(np.int32)
    y_te = np.repeat(np.arange(4), 10).astype(np.int32)
    x_tr = y_tr.astype(np.float32)[:, None, None, None] * np.ones((1, 2, 2, 1), np.float32)
    x_te = y_te.astype(np.float32)[:, None, None, None] * np.ones((1, 2, 2, 1), np.float32)
    split = Split("toy", x_tr, y_tr, x_te, y_te, ("a", "b", "c", "d"))
    sub = features.class_subset(split, [3, 1], train_size=10, test_size=None)
    assert sub.class_names == ("d", "b")
    assert sub.num_classes == 2
    assert np.bincount(sub.y_train).tolist() == [5, 5]
    assert np.bincount(sub.y_test).tolist() == [10, 10]
    # relabelled in the given order: old class 3 → 0, old class 1 → 1 (the images say which)
    np.testing.assert_array_equal(sub.x_train[:, 0, 0, 0], np.where(sub.y_train == 0, 3.0, 1.0))
    np.testing.assert_array_equal(sub.x_test[:, 0, 0, 0], np.where(sub.y_test == 0, 3.0, 1.0))
    for bad in ([], [1, 1], [4]):
        with pytest.raises(ValueError, match="classes must be distinct"):
            features.class_subset(split, bad)

"""What a trained network's features are worth: extract them, project them, reuse them.

Notebook 09 looks at the penultimate-layer representation of a trained CNN (PCA and t-SNE
maps coloured by class) and reuses it for a new task (transfer learning). The pieces are small
but easy to get subtly wrong — a PCA whose signs flip between runs, a "new head" that shares
(and so fine-tunes) the weights of the original model, a t-SNE that silently ignores the
perplexity — so they live here, tested. Projections are plain NumPy, so they run the same on
every backend; scikit-learn is not a dependency of the course.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

__all__ = ["class_subset", "penultimate_features", "pca", "replace_head", "tsne"]


def penultimate_features(
    model: keras.Model, x: np.ndarray, *, layer_name: str | None = None, batch_size: int = 256
) -> np.ndarray:
    """The representation a functional model's last layer (the classifier) sees, for inputs ``x``.

    That vector is what transfer learning reuses and what PCA / t-SNE maps show. Give
    ``layer_name`` to read another layer's output instead (flattened to ``(N, features)``).
    """
    if layer_name is None:
        tensor = model.layers[-1].input
    else:
        names = [layer.name for layer in model.layers]
        if layer_name not in names:
            raise ValueError(f"no layer {layer_name!r} in {model.name}; layers: {', '.join(names)}")
        tensor = model.get_layer(layer_name).output
    probe = keras.Model(model.inputs, tensor)
    out = probe.predict(np.asarray(x, dtype="float32"), batch_size=batch_size, verbose=0)
    return np.asarray(out).reshape(len(out), -1)


def pca(x: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Principal component analysis by SVD of the centred data.

    Returns ``(scores (N, k), components (k, D), explained_variance_ratio (k,))``. Each
    component's sign is fixed so that its largest-magnitude loading is positive: SVD may return
    ``v`` or ``-v``, and a figure should not mirror itself between runs or machines.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (N, D), got {x.shape}")
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= min(x.shape):
        raise ValueError(f"k must be an integer in [1, {min(x.shape)}] for data of shape {x.shape}, got {k!r}")
    centred = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:k]
    signs = np.sign(components[np.arange(k), np.abs(components).argmax(axis=1)])
    components = components * signs[:, None]
    variance = s**2
    total = variance.sum()
    ratio = variance[:k] / total if total > 0 else np.zeros(k)
    return centred @ components.T, components, ratio


def _conditional_p(sq_dist: np.ndarray, perplexity: float, tol: float = 1e-5, max_iter: int = 100) -> np.ndarray:
    """Rows p_{j|i} ∝ exp(−β_i d²_ij) with β_i found by bisection so that 2^H(P_i) = perplexity."""
    n = sq_dist.shape[0]
    target = np.log(perplexity)  # entropy in nats
    p = np.zeros((n, n))
    for i in range(n):
        d = np.delete(sq_dist[i], i)
        d = d - d.min()  # shift for stability; does not change the normalised row
        beta, lo, hi = 1.0, 0.0, np.inf
        for _ in range(max_iter):
            w = np.exp(-beta * d)
            sw = w.sum()
            row = w / sw
            entropy = np.log(sw) + beta * np.sum(d * row)
            if abs(entropy - target) < tol:
                break
            if entropy > target:  # too flat: sharpen
                lo = beta
                beta = beta * 2 if hi == np.inf else (beta + hi) / 2
            else:
                hi = beta
                beta = (beta + lo) / 2
        p[i, np.arange(n) != i] = row
    return p


def tsne(
    x: np.ndarray,
    *,
    k: int = 2,
    perplexity: float = 30.0,
    steps: int = 500,
    learning_rate: float | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Exact t-SNE (van der Maaten & Hinton 2008) in NumPy, for a few thousand points at most.

    Written out because scikit-learn is not a course dependency and the exact algorithm is
    short: Gaussian affinities with a per-point bandwidth matching ``perplexity``, Student-t
    affinities in the map, gradient descent on KL(P‖Q) with early exaggeration (×12 for the
    first quarter of the steps), momentum and per-parameter gains, as in the reference code.
    Memory and time are O(N²) per step. Returns the ``(N, k)`` embedding.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (N, D), got {x.shape}")
    n = x.shape[0]
    if not 1 <= perplexity < n - 1:
        raise ValueError(f"perplexity must be in [1, N - 1) = [1, {n - 1}), got {perplexity}")
    if steps < 1 or k < 1:
        raise ValueError("need steps >= 1 and k >= 1")
    sq = np.square(x).sum(axis=1)
    sq_dist = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
    p = _conditional_p(sq_dist, perplexity)
    p = np.maximum((p + p.T) / (2 * n), 1e-12)
    lr = learning_rate if learning_rate is not None else max(n / 12.0, 50.0)
    rng = np.random.default_rng(seed)
    y = 1e-4 * rng.standard_normal((n, k))
    velocity = np.zeros_like(y)
    gains = np.ones_like(y)
    exaggerate_until = max(steps // 4, 1)
    for step in range(steps):
        exaggeration = 12.0 if step < exaggerate_until else 1.0
        momentum = 0.5 if step < exaggerate_until else 0.8
        sy = np.square(y).sum(axis=1)
        num = 1.0 / (1.0 + sy[:, None] + sy[None, :] - 2 * y @ y.T)  # Student-t kernel
        np.fill_diagonal(num, 0.0)
        q = np.maximum(num / num.sum(), 1e-12)
        w = (exaggeration * p - q) * num
        gradient = 4.0 * (w.sum(axis=1)[:, None] * y - w @ y)  # = 4 Σ_j w_ij (y_i − y_j)
        same_sign = np.sign(gradient) == np.sign(velocity)
        gains = np.maximum(np.where(same_sign, gains * 0.8, gains + 0.2), 0.01)
        velocity = momentum * velocity - lr * gains * gradient
        y = y + velocity
        y = y - y.mean(axis=0)
    return y


def replace_head(
    model: keras.Model,
    num_classes: int,
    *,
    freeze: bool = True,
    name: str = "new_logits",
    seed: int = 0,
) -> keras.Model:
    """A copy of ``model`` whose last layer is replaced by a fresh ``Dense(num_classes)`` (logits).

    This is "turn a 1000-class classifier into a 2-class one": keep everything up to the
    penultimate representation, learn a new linear classifier on top. The body is *cloned*
    (same weights, separate variables), so training the new model — even fine-tuning with
    ``freeze=False`` — leaves the original untouched. With ``freeze`` the copied layers are
    marked non-trainable; set ``layer.trainable = True`` on them (and recompile) to fine-tune.
    """
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    features = clone.layers[-1].input
    head = keras.layers.Dense(
        int(num_classes), name=name, kernel_initializer=keras.initializers.GlorotUniform(seed=seed)
    )
    new = keras.Model(clone.inputs, head(features), name=f"{model.name}_{name}")
    for layer in new.layers:
        if layer is not head:
            layer.trainable = not freeze
    return new


def class_subset(
    split,
    classes: Sequence[int],
    *,
    train_size: int | None = None,
    test_size: int | None = None,
    seed: int = 0,
):
    """Keep only ``classes`` of a ``cnncourse.data.Split``, relabelled 0..len(classes)−1 in that order.

    Used both to pretrain on some classes and to build a new task from the held-out ones.
    ``train_size`` / ``test_size`` take class-balanced subsets (``None`` keeps all).
    """
    from cnncourse.data import Split, balanced_indices

    classes = [int(c) for c in classes]
    if not classes or len(set(classes)) != len(classes) or not all(0 <= c < split.num_classes for c in classes):
        raise ValueError(f"classes must be distinct integers in [0, {split.num_classes - 1}], got {classes}")
    lookup = np.full(split.num_classes, -1, dtype=np.int32)
    lookup[classes] = np.arange(len(classes), dtype=np.int32)

    def pick(x, y, size, s):
        keep = np.flatnonzero(lookup[y] >= 0)
        chosen = keep[balanced_indices(y[keep], size, s)]
        return x[chosen], lookup[y[chosen]]

    x_tr, y_tr = pick(split.x_train, split.y_train, train_size, seed)
    x_te, y_te = pick(split.x_test, split.y_test, test_size, seed + 1_000_003)
    return Split(
        name=split.name,
        x_train=x_tr,
        y_train=y_tr,
        x_test=x_te,
        y_test=y_te,
        class_names=tuple(split.class_names[c] for c in classes),
    )

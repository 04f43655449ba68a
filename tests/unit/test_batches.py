"""The input pipeline off TensorFlow: prefetching threads, compiled and seeded augmentation."""

import threading

import keras
import numpy as np
import pytest

from cnncourse import data
from cnncourse.data.batches import CompiledAugment, default_workers
from cnncourse.layers import Cutout, RandomShift

IMAGES = np.random.default_rng(0).uniform(size=(24, 8, 8, 1)).astype("float32")


def augmenter():
    return keras.Sequential([keras.layers.RandomFlip("horizontal", seed=1), RandomShift(2, seed=2),
                             Cutout(3, rate=0.5, seed=3)])


def test_compiled_augmentation_is_a_function_of_seed_and_counter():
    aug = CompiledAugment(augmenter(), IMAGES)
    a = keras.ops.convert_to_numpy(aug(IMAGES, 0, 5))
    again = keras.ops.convert_to_numpy(aug(IMAGES, 0, 5))
    other_batch = keras.ops.convert_to_numpy(aug(IMAGES, 0, 6))
    other_seed = keras.ops.convert_to_numpy(aug(IMAGES, 1, 5))
    np.testing.assert_array_equal(a, again)  # a batch's draws depend on (seed, counter) alone
    assert not np.array_equal(a, other_batch) and not np.array_equal(a, other_seed)
    assert a.shape == IMAGES.shape and not np.array_equal(a, IMAGES)
    # images are augmented one by one: some unchanged by the flip + shift + cutout, most changed
    changed = [not np.array_equal(a[i], IMAGES[i]) for i in range(len(IMAGES))]
    assert 0 < sum(changed) <= len(IMAGES)


def test_on_jax_the_augmentation_is_one_compiled_program():
    aug = CompiledAugment(augmenter(), IMAGES)
    assert aug.compiled == (keras.backend.backend() == "jax")
    if aug.compiled:
        aug(IMAGES, 0, 0)
        assert aug._call._cache_size() == 1  # one trace for the batch shape ...
        aug(IMAGES, 0, 1)
        aug(IMAGES, 7, 2)
        assert aug._call._cache_size() == 1  # ... reused for every later batch and seed


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="XLA compiles the augmentation on JAX")
def test_a_layer_xla_cannot_compile_fails_loudly_instead_of_running_slowly():
    crop = keras.Sequential([keras.layers.ZeroPadding2D(2), keras.layers.RandomCrop(8, 8, seed=1)])
    with pytest.raises(Exception):
        CompiledAugment(crop, IMAGES)(IMAGES, 0, 0)


def test_batches_do_not_depend_on_the_order_threads_prepare_them():
    ds = data.batches._array_dataset_class()(IMAGES, np.arange(24), 8, augment=augmenter(), seed=3)
    forward = [keras.ops.convert_to_numpy(ds[i][0]) for i in range(len(ds))]
    backward = {i: keras.ops.convert_to_numpy(ds[i][0]) for i in reversed(range(len(ds)))}
    for i in range(len(ds)):
        np.testing.assert_array_equal(forward[i], backward[i])
    results = {}

    def prepare(i):
        results[i] = keras.ops.convert_to_numpy(ds[i][0])

    threads = [threading.Thread(target=prepare, args=(i,)) for i in range(len(ds))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(len(ds)):
        np.testing.assert_array_equal(results[i], forward[i])
    ds.on_epoch_end()  # the next epoch draws anew (and reshuffles)
    assert not np.array_equal(keras.ops.convert_to_numpy(ds[0][0]), forward[0])


def test_the_pipeline_prefetches_with_worker_threads_and_fit_is_repeatable():
    if keras.backend.backend() == "tensorflow":
        pytest.skip("TensorFlow gets tf.data, which prefetches itself")
    x = np.random.default_rng(1).uniform(size=(64, 8, 8, 1)).astype("float32")
    y = np.random.default_rng(2).integers(0, 3, 64)
    losses = []
    for _ in range(2):
        keras.utils.set_random_seed(0)
        ds = data.pipeline(x, y, 16, augment=augmenter(), seed=0, workers=2)
        assert ds.workers == 2 and ds.max_queue_size >= 2
        model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
        model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        losses.append(model.fit(ds, epochs=2, verbose=0).history["loss"])
    assert losses[0] == losses[1]  # threads, shuffling and augmentation: the same run twice


def test_pipeline_arguments_are_checked():
    with pytest.raises(ValueError, match="workers"):
        data.pipeline(IMAGES, np.arange(24), 8, workers=0)
    assert 1 <= default_workers() <= 2

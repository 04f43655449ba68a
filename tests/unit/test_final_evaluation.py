"""FinalEvaluation: the finished model measured on its training images, not the running accuracy of training."""

from types import SimpleNamespace

import keras
import numpy as np
import pytest

from cnncourse.experiments import train
from cnncourse.experiments.callbacks import FinalEvaluation
from cnncourse.profiles import Experiment


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n).astype("int32")
    x = rng.normal(size=(n, 8)).astype("float32") + 2.0 * y[:, None]
    return SimpleNamespace(x_train=x[:200], y_train=y[:200], x_test=x[200:], y_test=y[200:])


def _model(seed=0, dropout=0.8):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dropout(dropout, seed=seed), keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_the_final_training_accuracy_is_the_finished_model_in_inference_mode():
    data = _data()
    model = _model()
    result = train.fit(model, data, Experiment(None, None, epochs=3, batch_size=20),
                       callbacks=[FinalEvaluation(data.x_train, data.y_train)])
    assert len(result.history["final_train_accuracy"]) == 1 and len(result.history["accuracy"]) == 3
    again = model.evaluate(data.x_train, data.y_train, verbose=0, return_dict=True)
    assert result.final("final_train_accuracy") == pytest.approx(again["accuracy"], abs=1e-7)
    assert result.final("final_train_loss") == pytest.approx(again["loss"], rel=1e-5)
    # heavy dropout: the running accuracy (training mode, weights still moving) is well below it
    assert result.final("accuracy") < result.final("final_train_accuracy") - 0.02


def test_a_run_stopped_early_is_still_evaluated_once():
    data = _data()
    model = _model(dropout=0.0)
    stop = keras.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)  # stops after the first epoch
    final = FinalEvaluation(data.x_train, data.y_train, name="train")
    result = train.fit(model, data, Experiment(None, None, epochs=5, batch_size=20), callbacks=[stop, final])
    assert result.epochs < 5 and len(result.history["final_train_accuracy"]) == 1
    assert result.final("final_train_accuracy") == pytest.approx(
        model.evaluate(data.x_train, data.y_train, verbose=0, return_dict=True)["accuracy"], abs=1e-7)


def test_arguments_are_checked():
    x, y = np.zeros((4, 2)), np.zeros(4)
    with pytest.raises(ValueError, match="name"):
        FinalEvaluation(x, y, name="final train")
    with pytest.raises(ValueError, match="equal length"):
        FinalEvaluation(x, y[:3])
    with pytest.raises(ValueError, match="batch_size"):
        FinalEvaluation(x, y, batch_size=0)

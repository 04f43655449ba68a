r"""Snapshot ensembles: "train 1, get M for free" (Huang, Li, Pleiss, Liu, Hopcroft & Weinberger, ICLR 2017).

An ensemble of :math:`M` independently trained networks is reliably better than one of them,
but costs :math:`M` trainings. Huang et al. get the members from **one** training run: a
cyclic cosine learning rate (SGDR, Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent
with Warm Restarts", ICLR 2017) anneals to almost zero :math:`M` times,

.. math:: \eta(t) = \frac{\eta_0}{2}\left(\cos\frac{\pi \,(t \bmod T_c)}{T_c} + 1\right),
   \qquad T_c = \lceil T / M \rceil ,

so the weights settle into a minimum at the end of every cycle (a **snapshot** is saved
there), and the restart to :math:`\eta_0` kicks them out towards a different one. The
ensemble's prediction is the mean of the snapshots' softmax outputs. Keras ships the
schedule (``keras.optimizers.schedules.CosineDecayRestarts`` with ``t_mul = m_mul = 1``), so
this module adds only what Keras lacks: a callback that keeps the snapshots
(:class:`SnapshotEnsemble`), the averaged prediction (:func:`ensemble_probabilities`), and
the paper's comparison at **equal training cost** (:func:`compare_at_equal_cost`): one run
of :math:`M` cycles against :math:`M` independent runs of one cycle each and against one
model trained with a single cosine decay for the whole budget.

Everything trains through the course's one loop, :func:`cnncourse.experiments.train.fit`
(``model.fit`` with Keras callbacks); nothing here has a loop of its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import keras
import numpy as np

from cnncourse import checks

__all__ = [
    "EnsembleComparison",
    "SnapshotEnsemble",
    "compare_at_equal_cost",
    "ensemble_accuracy",
    "ensemble_probabilities",
    "snapshot_schedule",
]


def snapshot_schedule(learning_rate: float, steps_per_cycle: int, *, alpha: float = 0.0):
    """The cyclic cosine schedule of snapshot ensembles: Keras' ``CosineDecayRestarts`` with equal cycles.

    ``t_mul = 1`` (every cycle as long as the first) and ``m_mul = 1`` (every restart back to
    the full ``learning_rate``), as in Huang et al.; ``alpha`` is the floor, as a fraction of
    the rate (0 in the paper).
    """
    return keras.optimizers.schedules.CosineDecayRestarts(
        checks.positive_float("learning_rate", learning_rate),
        first_decay_steps=checks.positive_int("steps_per_cycle", steps_per_cycle),
        t_mul=1.0,
        m_mul=1.0,
        alpha=float(alpha),
    )


class SnapshotEnsemble(keras.callbacks.Callback):
    """Keep a copy of the weights at the end of every learning-rate cycle.

    A cycle ends when the optimizer's step count is a multiple of ``steps_per_cycle`` (the
    ``first_decay_steps`` of :func:`snapshot_schedule`), i.e. right after the update made
    at the lowest rate, before the restart. ``snapshots`` holds the weight lists (as
    ``model.get_weights()`` returns them), ``snapshot_steps`` the step of each; ``keep``
    limits them to the last few (the paper ensembles the last :math:`m` of :math:`M`).
    Counts one optimizer step per batch (``steps_per_execution=1``, Keras' default).
    """

    def __init__(self, steps_per_cycle: int, keep: int | None = None) -> None:
        super().__init__()
        self.steps_per_cycle = checks.positive_int("steps_per_cycle", steps_per_cycle)
        self.keep = None if keep is None else checks.positive_int("keep", keep)
        self.snapshots: list[list[np.ndarray]] = []
        self.snapshot_steps: list[int] = []

    def on_train_begin(self, logs=None) -> None:
        self._step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_train_batch_end(self, batch, logs=None) -> None:
        self._step += 1
        if self._step % self.steps_per_cycle == 0:
            self.snapshots.append([np.array(w) for w in self.model.get_weights()])
            self.snapshot_steps.append(self._step)
            if self.keep is not None and len(self.snapshots) > self.keep:
                del self.snapshots[0], self.snapshot_steps[0]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def ensemble_probabilities(
    model: keras.Model,
    members: Sequence[Sequence[np.ndarray]],
    x: np.ndarray,
    *,
    from_logits: bool = True,
    batch_size: int = 256,
) -> np.ndarray:
    """Mean of the members' class probabilities, ``(N, classes)``: the snapshot ensemble's prediction.

    Each member is a weight list for ``model`` (a snapshot); the model's own weights are put
    back afterwards. ``from_logits``: the model outputs scores, turned into probabilities by
    a softmax before averaging (averaging logits would be a different ensemble).
    """
    if not members:
        raise ValueError("members must hold at least one weight list")
    original = model.get_weights()
    total = None
    try:
        for weights in members:
            model.set_weights(weights)
            out = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), np.float64)
            probs = _softmax(out) if from_logits else out
            total = probs if total is None else total + probs
    finally:
        model.set_weights(original)
    return total / len(members)


def ensemble_accuracy(
    model: keras.Model,
    members: Sequence[Sequence[np.ndarray]],
    x: np.ndarray,
    y: np.ndarray,
    *,
    from_logits: bool = True,
    batch_size: int = 256,
) -> float:
    """Accuracy of :func:`ensemble_probabilities` against integer labels ``y``."""
    probs = ensemble_probabilities(model, members, x, from_logits=from_logits, batch_size=batch_size)
    return float(np.mean(probs.argmax(axis=-1) == np.asarray(y).reshape(-1)))


@dataclasses.dataclass(frozen=True)
class EnsembleComparison:
    """Accuracies of the three ways of spending the same number of training steps.

    ``*_by_size[m - 1]`` is the ensemble of ``m`` members: the **last** ``m`` snapshots
    (the paper's choice: later snapshots are better), the **first** ``m`` independent models.
    ``steps`` is the number of optimizer steps each arm took in total (all equal).
    """

    cycles: int
    epochs_per_cycle: int
    snapshot_members: list[float]
    snapshot_by_size: list[float]
    independent_members: list[float]
    independent_by_size: list[float]
    single: float
    steps: dict[str, int]

    @property
    def snapshot(self) -> float:
        return self.snapshot_by_size[-1]

    @property
    def independent(self) -> float:
        return self.independent_by_size[-1]

    def table(self) -> str:
        lines = [
            f"{'arm':<44} {'accuracy':>8}",
            f"{f'one model, cosine over {self.cycles * self.epochs_per_cycle} epochs':<44} {self.single:>8.4f}",
            f"{f'snapshot ensemble ({self.cycles} cycles of {self.epochs_per_cycle} epochs)':<44} {self.snapshot:>8.4f}",
            f"{f'  its best single snapshot':<44} {max(self.snapshot_members):>8.4f}",
            f"{f'{self.cycles} independent models of {self.epochs_per_cycle} epochs':<44} {self.independent:>8.4f}",
            f"{f'  its best single model':<44} {max(self.independent_members):>8.4f}",
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _default_optimizer(schedule):
    return keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True)


def compare_at_equal_cost(
    build_model: Callable[[], keras.Model],
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_eval: np.ndarray,
    y_eval: np.ndarray,
    *,
    cycles: int = 4,
    epochs_per_cycle: int = 2,
    learning_rate: float = 0.1,
    batch_size: int = 128,
    optimizer: Callable[[object], keras.optimizers.Optimizer] = _default_optimizer,
    from_logits: bool = True,
    seed: int = 0,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> EnsembleComparison:
    """Snapshot ensemble vs independent ensemble vs one model, each trained for ``cycles × epochs_per_cycle`` epochs.

    * **snapshot**: one model, ``cycles`` cosine cycles of ``epochs_per_cycle`` epochs
      (:func:`snapshot_schedule`), a snapshot at the end of each;
    * **independent**: ``cycles`` models from different initialisations (seeds ``seed + 1``,
      ``seed + 2`` …), each trained for **one** cycle of ``epochs_per_cycle`` epochs — the same
      schedule's first cycle — so the ensemble costs as much as the snapshot run;
    * **single**: one model with one cosine decay (``keras.optimizers.schedules.CosineDecay``)
      over the whole budget, the baseline the paper reports beside the ensembles.

    ``build_model()`` returns a fresh, uncompiled model (called after ``keras.utils.set_random_seed``,
    so the seed fixes its initialisation); ``optimizer(schedule)`` makes the optimizer (SGD with
    Nesterov momentum 0.9 by default, as in the paper). The loss is sparse categorical
    cross-entropy. Pass a **validation** split as ``x_eval, y_eval`` while choosing
    settings, and the test set once, for the final numbers. ``callbacks`` are added to
    every ``fit`` (e.g. a progress bar).
    """
    cycles, epochs_per_cycle = checks.positive_int("cycles", cycles), checks.positive_int("epochs_per_cycle", epochs_per_cycle)
    batch_size = checks.positive_int("batch_size", batch_size)
    learning_rate = checks.positive_float("learning_rate", learning_rate)
    if len(x_train) != len(y_train) or len(x_eval) != len(y_eval):
        raise ValueError("x_train/y_train and x_eval/y_eval must have matching lengths")
    from types import SimpleNamespace

    from cnncourse.experiments.schedules import steps_per_epoch
    from cnncourse.experiments.train import fit
    from cnncourse.profiles import Experiment

    steps_per_cycle = steps_per_epoch(len(x_train), batch_size) * epochs_per_cycle
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    data = SimpleNamespace(x_train=x_train, y_train=y_train, x_test=x_eval, y_test=y_eval)

    def train(run_seed: int, schedule, epochs: int, extra=()) -> keras.Model:
        keras.utils.set_random_seed(run_seed)
        model = build_model()
        model.compile(optimizer=optimizer(schedule), loss=loss)
        run = Experiment(len(x_train), len(x_eval), epochs=epochs, batch_size=batch_size)
        fit(model, data, run, seed=run_seed, validation=False, callbacks=[*extra, *callbacks])
        return model

    def steps(model: keras.Model) -> int:
        return int(keras.ops.convert_to_numpy(model.optimizer.iterations))

    def accuracy(model: keras.Model, members) -> float:
        return ensemble_accuracy(model, members, x_eval, y_eval, from_logits=from_logits)

    # one run, M cycles, M snapshots
    keeper = SnapshotEnsemble(steps_per_cycle)
    snap_model = train(seed, snapshot_schedule(learning_rate, steps_per_cycle), cycles * epochs_per_cycle, [keeper])
    snaps = keeper.snapshots
    snapshot_members = [accuracy(snap_model, [s]) for s in snaps]
    snapshot_by_size = [accuracy(snap_model, snaps[-m:]) for m in range(1, len(snaps) + 1)]

    # M runs of one cycle each
    finals, independent_steps = [], 0
    for i in range(cycles):
        model = train(seed + 1 + i, snapshot_schedule(learning_rate, steps_per_cycle), epochs_per_cycle)
        finals.append(model.get_weights())
        independent_steps += steps(model)
    independent_members = [accuracy(model, [w]) for w in finals]
    independent_by_size = [accuracy(model, finals[:m]) for m in range(1, cycles + 1)]

    # one run, one cosine decay over the whole budget
    single_model = train(
        seed, keras.optimizers.schedules.CosineDecay(learning_rate, cycles * steps_per_cycle), cycles * epochs_per_cycle
    )
    return EnsembleComparison(
        cycles=cycles,
        epochs_per_cycle=epochs_per_cycle,
        snapshot_members=snapshot_members,
        snapshot_by_size=snapshot_by_size,
        independent_members=independent_members,
        independent_by_size=independent_by_size,
        single=accuracy(single_model, [single_model.get_weights()]),
        steps={"snapshot": steps(snap_model), "independent": independent_steps, "single": steps(single_model)},
    )

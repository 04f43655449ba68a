"""Learning-rate schedules the course trains with, and the one count they all need: steps per epoch.

Two schedules serve every training recipe of the course:

* :class:`OneCycle` (Smith & Topin, 2018): notebook 10's recipe. Keras ships no one-cycle
  schedule, so it is written here, as PyTorch's ``OneCycleLR`` computes it;
* :func:`warmup_cosine`: a linear warm-up, then a cosine decay to zero, for notebook 07's
  shared recipe and the Zhang et al. grid of notebook 06. Keras has it
  (``CosineDecay(warmup_target=..., warmup_steps=...)``); the function only chooses its
  arguments, so both recipes build it the same way.

A schedule is a function of the optimizer's step, so its length is counted in steps:
:func:`steps_per_epoch` converts epochs (Keras keeps the last, smaller batch, so it rounds up).
Notebook 03 draws these beside Keras' other schedules.
"""

from __future__ import annotations

import math
from typing import Any

import keras

from cnncourse import checks

__all__ = ["OneCycle", "steps_per_epoch", "warmup_cosine"]


def steps_per_epoch(examples: int, batch_size: int) -> int:
    """Optimizer steps in one epoch of ``examples`` images at ``batch_size`` (the last batch may be smaller)."""
    examples = checks.positive_int("examples", examples)
    batch_size = checks.positive_int("batch_size", batch_size)
    return -(-examples // batch_size)


def warmup_cosine(
    peak: float, total_steps: int, warmup_steps: int = 0, *, initial: float = 0.0
) -> keras.optimizers.schedules.CosineDecay:
    """Linear warm-up from ``initial`` to ``peak`` over ``warmup_steps``, then a cosine decay to 0.

    The decay ends at ``total_steps``: a run that stops there ends at a learning rate of zero,
    where its last noisy steps no longer move it (most of the spread between seeds of a short
    run comes from ending at a high rate). ``warmup_steps=0`` starts at the peak.
    """
    peak = checks.positive_float("peak", peak)
    total_steps = checks.positive_int("total_steps", total_steps)
    warmup_steps = checks.integer("warmup_steps", warmup_steps, minimum=0, maximum=total_steps - 1)
    initial = checks.non_negative_float("initial", initial)
    if warmup_steps == 0:
        return keras.optimizers.schedules.CosineDecay(peak, decay_steps=total_steps)
    return keras.optimizers.schedules.CosineDecay(
        initial, decay_steps=total_steps - warmup_steps, warmup_target=peak, warmup_steps=warmup_steps
    )


@keras.saving.register_keras_serializable(package="cnncourse")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    r"""One-cycle learning rate (Smith & Topin, 2018), as ``torch.optim.lr_scheduler.OneCycleLR``.

    Written by hand because Keras 3 ships no one-cycle schedule (it has warm-up + cosine
    decay, which starts the warm-up from a fixed rate and has no separate floor). The rate
    rises from ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of
    ``total_steps`` (a cosine ramp), then anneals along a cosine to
    ``max_lr / (div_factor · final_div_factor)`` at ``total_steps``, and stays there:

    .. math:: \eta(s) = \eta_b + (\eta_a - \eta_b)\,\tfrac12\bigl(1 + \cos(\pi\,\tfrac{s - s_0}{s_1 - s_0})\bigr)

    on each phase ``[s_0, s_1]`` going from ``η_a`` to ``η_b``. ``anneal="linear"`` uses
    straight lines instead. Used with SGD + Nesterov in notebook 10 (and by fast CIFAR-10
    training recipes) because the high middle rate trains fast and the long tail settles.
    """

    def __init__(
        self,
        max_lr: float,
        total_steps: int,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        anneal: str = "cos",
        name: str = "OneCycle",
    ) -> None:
        self.max_lr = checks.positive_float("max_lr", max_lr)
        self.total_steps = checks.integer("total_steps", total_steps, minimum=2)
        self.pct_start = checks.number("pct_start", pct_start, minimum=0.0, maximum=1.0, exclusive_minimum=True,
                                       exclusive_maximum=True)
        self.div_factor = checks.number("div_factor", div_factor, minimum=1.0)
        self.final_div_factor = checks.number("final_div_factor", final_div_factor, minimum=1.0)
        self.anneal = checks.choice("anneal", anneal, ("cos", "linear"))
        self.name = name

    @property
    def initial_lr(self) -> float:
        return self.max_lr / self.div_factor

    @property
    def min_lr(self) -> float:
        return self.initial_lr / self.final_div_factor

    @property
    def warmup_steps(self) -> float:
        return self.pct_start * self.total_steps

    def _interpolate(self, start, end, fraction):
        # written as end + (start − end)·w so the far end is hit exactly in float32
        ops = keras.ops
        remaining = 0.5 * (1.0 + ops.cos(math.pi * fraction)) if self.anneal == "cos" else 1.0 - fraction
        return end + (start - end) * remaining

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        warm = ops.clip(step / self.warmup_steps, 0.0, 1.0)
        decay = ops.clip((step - self.warmup_steps) / (self.total_steps - self.warmup_steps), 0.0, 1.0)
        up = self._interpolate(self.initial_lr, self.max_lr, warm)
        down = self._interpolate(self.max_lr, self.min_lr, decay)
        return ops.where(step < self.warmup_steps, up, down)

    def get_config(self) -> dict[str, Any]:
        return {
            "max_lr": self.max_lr,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "anneal": self.anneal,
            "name": self.name,
        }

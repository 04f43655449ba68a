"""The course map: which notebook teaches what, what it builds on, and how long it runs.

One table serves three readers: notebook 00 shows it, the README's notebook map is generated
from it, and the course runner can compare a run's wall time with it. Run times are
recorded per profile; a time is ``measured`` only when someone ran the notebook in that
profile and wrote the number down (with the machine), otherwise it is the time budget the
notebook is designed to (an estimate) or unknown. Nothing here is imported by Keras code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

PROFILES = ("smoke", "cpu", "gpu")
NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"


@dataclasses.dataclass(frozen=True)
class RunTime:
    """Minutes one notebook takes in one profile; ``measured`` False means an estimate."""

    minutes: float | None
    measured: bool = False
    where: str = ""  # the machine a measured time comes from

    def __post_init__(self) -> None:
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError(f"minutes must be positive or None, got {self.minutes!r}")
        if self.measured and (self.minutes is None or not self.where):
            raise ValueError("a measured time needs minutes and the machine it was measured on (where=...)")

    def __str__(self) -> str:
        if self.minutes is None:
            return "not measured"
        value = f"{self.minutes:.1f}" if self.minutes < 10 else f"{self.minutes:.0f}"
        return f"{value} (measured)" if self.measured else f"≤{value} (estimate)"


def _budget() -> dict[str, RunTime]:
    """The design budget every notebook is built to: ~1 min smoke, ≤10 min cpu (2 cores)."""
    return {"smoke": RunTime(1.0), "cpu": RunTime(10.0), "gpu": RunTime(None)}


@dataclasses.dataclass(frozen=True)
class NotebookInfo:
    number: int
    slug: str
    title: str
    topics: tuple[str, ...]
    builds_on: tuple[int, ...] = ()
    minutes: Mapping[str, RunTime] = dataclasses.field(default_factory=_budget)

    def __post_init__(self) -> None:
        missing = [p for p in PROFILES if p not in self.minutes]
        if missing:
            raise ValueError(f"notebook {self.number:02d}: no run time for profile(s) {', '.join(missing)}")
        object.__setattr__(self, "minutes", MappingProxyType(dict(self.minutes)))

    @property
    def filename(self) -> str:
        """The notebook's file name: the one on disk when it exists, else the planned one."""
        on_disk = sorted(NOTEBOOK_DIR.glob(f"{self.number:02d}_*.ipynb"))
        return on_disk[0].name if on_disk else f"{self.number:02d}_{self.slug}.ipynb"

    @property
    def exists(self) -> bool:
        return (NOTEBOOK_DIR / self.filename).is_file()


def _times(smoke: RunTime | None = None, cpu: RunTime | None = None, gpu: RunTime | None = None) -> dict[str, RunTime]:
    times = _budget()
    for name, value in (("smoke", smoke), ("cpu", cpu), ("gpu", gpu)):
        if value is not None:
            times[name] = value
    return times


# Times measured on the course's build machine: 2 CPU cores shared with other jobs (load
# average 6–12 while they were taken), so they are upper bounds for a machine that runs only
# the course. Notebook 06's cpu time reuses the committed grid in results/ (training the grid
# afresh took 29 minutes at load 9–18, ≈ 17 extrapolated from quieter runs); its smoke time
# trains the small smoke grid, as CI does.
_SHARED = "2 shared CPU cores, 2026-11-23"

NOTEBOOKS: tuple[NotebookInfo, ...] = (
    NotebookInfo(0, "start_here", "Start here",
                 ("the course map", "environment check", "MNIST, Fashion-MNIST, CIFAR-10, ImageNet facts"),
                 (), _times(RunTime(0.7, True, _SHARED), RunTime(0.7, True, _SHARED))),
    NotebookInfo(1, "convolution", "Convolution, pooling, and why CNNs",
                 ("convolution vs cross-correlation", "padding, stride, output size", "pooling", "1×1 convolutions",
                  "receptive fields", "backprop with weight sharing"), (0,),
                 _times(RunTime(0.9, True, _SHARED), RunTime(1.3, True, _SHARED))),
    NotebookInfo(2, "softmax_cross_entropy", "Softmax and cross-entropy",
                 ("softmax and its Jacobian", "cross-entropy and its gradient y − t", "numerical stability",
                  "the loss zoo", "the first MLP and convnet"), (0, 1),
                 _times(RunTime(1.0, True, _SHARED), RunTime(6.2, True, _SHARED))),
    NotebookInfo(3, "optimization", "Optimization",
                 ("gradient descent and learning rates", "SGD, momentum, Nesterov, RMSprop, Adam, AdamW",
                  "optimizers from scratch = Keras", "learning-rate schedules"), (2,),
                 _times(RunTime(1.4, True, _SHARED), RunTime(8.4, True, _SHARED))),
    NotebookInfo(4, "activations_init", "Activations and initialization",
                 ("activation functions and derivatives", "vanishing / exploding gradients", "Xavier and He init"),
                 (2, 3),
                 _times(RunTime(1.0, True, _SHARED), RunTime(3.5, True, _SHARED))),
    NotebookInfo(5, "normalization", "Normalization and preprocessing",
                 ("standardization", "batch norm from scratch", "layer / instance / group norm"), (3, 4),
                 _times(RunTime(1.5, True, _SHARED), RunTime(6.0, True, _SHARED))),
    NotebookInfo(6, "regularization", "Regularization",
                 ("L1 / L2 / weight decay", "dropout and DropConnect", "augmentation", "ensembles, TTA",
                  "the Zhang et al. ablation and memorization"), (3, 5),
                 _times(RunTime(2.5, True, _SHARED), RunTime(9.7, True, _SHARED))),
    NotebookInfo(7, "classic_architectures", "Classic architectures",
                 ("LeNet-5", "AlexNet, ZFNet", "VGG", "Network in Network", "GoogLeNet", "ResNet"), (1, 5, 6),
                 _times(RunTime(1.8, True, _SHARED), RunTime(9.4, True, _SHARED))),
    NotebookInfo(8, "depth_and_residuals", "Depth and residual connections",
                 ("the degradation problem", "gradient flow through identity paths", "bottleneck blocks"), (5, 7),
                 _times(RunTime(1.8, True, _SHARED), RunTime(12.5, True, _SHARED))),
    NotebookInfo(9, "inside_a_cnn", "Looking inside a CNN",
                 ("filters and feature maps", "saliency", "adversarial examples (FGSM)", "class models", "t-SNE",
                  "transfer learning"), (7,),
                 _times(RunTime(1.8, True, _SHARED), RunTime(7.3, True, _SHARED))),
    NotebookInfo(10, "fast_strong_model", "Putting it together: a fast, strong model",
                 ("the full training recipe", "tf.data input pipeline", "mixed precision, XLA",
                  "tf.distribute"), (3, 5, 6, 8),
                 _times(RunTime(3.0, True, _SHARED), RunTime(12.0, True, _SHARED))),
)


def notebook(number: int) -> NotebookInfo:
    """The map entry of notebook ``number`` (0–10)."""
    for nb in NOTEBOOKS:
        if nb.number == number:
            return nb
    raise ValueError(f"no notebook {number!r}; valid numbers: {', '.join(str(n.number) for n in NOTEBOOKS)}")


def markdown_table(profiles: Sequence[str] = PROFILES, *, link_prefix: str = "notebooks/") -> str:
    """The notebook map as a Markdown table (number, title, topics, minutes per profile)."""
    bad = [p for p in profiles if p not in PROFILES]
    if bad:
        raise ValueError(f"unknown profile(s) {', '.join(bad)}; valid profiles: {', '.join(PROFILES)}")
    header = ["#", "notebook", "what it teaches", "builds on", *(f"{p} (min)" for p in profiles)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for nb in NOTEBOOKS:
        builds = ", ".join(f"{n:02d}" for n in nb.builds_on) or "—"
        title = f"[{nb.title}]({link_prefix}{nb.filename})" if nb.exists else f"{nb.title} *(to come)*"
        cells = [f"{nb.number:02d}", title, "; ".join(nb.topics), builds]
        cells += [str(nb.minutes[p]) for p in profiles]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


README_START, README_END = "<!-- notebook-map:start -->", "<!-- notebook-map:end -->"


def update_readme(path: Path = NOTEBOOK_DIR.parent / "README.md") -> bool:
    """Rewrite the README's notebook map from this table; returns whether anything changed."""
    text = path.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        raise ValueError(f"{path} has no {README_START} ... {README_END} section to rewrite")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    new = f"{head}{README_START}\n{markdown_table()}\n{README_END}{tail}"
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text

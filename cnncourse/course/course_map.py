"""The course map: which notebook teaches what, what it builds on, and how long it runs.

One table serves three readers: notebook 00 shows it, the README's notebook map is generated
from it, and the course runner can compare a run's wall time with it. Run times are
recorded per profile; a time is ``measured`` only when the course runner ran the notebook in
that profile and recorded it (``results/timings.json``, with the machine and its load);
otherwise a ``gpu`` time is an estimate scaled from the measured ``cpu`` time
(:mod:`cnncourse.course.gpu_check`), and a ``smoke``/``cpu`` time the budget the notebook is
designed to. Nothing here is imported by Keras code.
"""

from __future__ import annotations

import dataclasses
import json
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
    estimated: bool = False  # scaled from measured times by a model, not a design budget

    def __post_init__(self) -> None:
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError(f"minutes must be positive or None, got {self.minutes!r}")
        if self.measured and (self.minutes is None or not self.where):
            raise ValueError("a measured time needs minutes and the machine it was measured on (where=...)")
        if self.estimated and (self.measured or self.minutes is None):
            raise ValueError("an estimated time has minutes and is not measured")

    def __str__(self) -> str:
        if self.minutes is None:
            return "not measured"
        value = f"{self.minutes:.1f}" if self.minutes < 10 else f"{self.minutes:.0f}"
        if self.measured:
            return f"{value} (measured)"
        return f"≈{value} (estimate)" if self.estimated else f"≤{value} (budget)"


def _budget() -> dict[str, RunTime]:
    """The design budget every notebook is built to: ~1 min smoke, ≤10 min cpu (2 cores)."""
    return {"smoke": RunTime(1.0), "cpu": RunTime(10.0), "gpu": RunTime(None)}


def _gpu_estimate(filename: str, times: Mapping[str, Mapping[str, RunTime]]) -> RunTime:
    """Until a GPU run is recorded: the estimate of :mod:`cnncourse.course.gpu_check`."""
    from cnncourse.course.gpu_check import estimate

    try:
        found = estimate(filename, times=times)
    except ValueError:  # no CPU throughput table to scale from
        found = None
    return RunTime(None) if found is None else RunTime(max(found.minutes, 0.1), estimated=True)


TIMINGS_FILE = NOTEBOOK_DIR.parent / "results" / "timings.json"


def measured_times(path: Path | None = None) -> dict[str, dict[str, RunTime]]:
    """``{profile: {notebook file: RunTime}}`` from the times the course runner recorded.

    ``python -m cnncourse run --store`` writes each notebook's wall time, the machine and the
    date to ``results/timings.json``; nobody types a run time in. A missing or unreadable file
    means nothing was measured.
    """
    path = TIMINGS_FILE if path is None else path
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    out: dict[str, dict[str, RunTime]] = {}
    for name, rows in table.items() if isinstance(table, dict) else ():
        if name not in PROFILES or not isinstance(rows, dict):
            continue
        for filename, row in rows.items():
            try:
                where = f"{row['machine']}, {row['date']}"
                out.setdefault(name, {})[filename] = RunTime(max(float(row["minutes"]), 0.1), True, where)
            except (KeyError, TypeError, ValueError):
                continue
    return out


@dataclasses.dataclass(frozen=True)
class NotebookInfo:
    number: int
    slug: str
    title: str
    topics: tuple[str, ...]
    builds_on: tuple[int, ...] = ()

    @property
    def filename(self) -> str:
        """The notebook's file name: the one on disk when it exists, else the planned one."""
        on_disk = sorted(NOTEBOOK_DIR.glob(f"{self.number:02d}_*.ipynb"))
        return on_disk[0].name if on_disk else f"{self.number:02d}_{self.slug}.ipynb"

    @property
    def exists(self) -> bool:
        return (NOTEBOOK_DIR / self.filename).is_file()

    @property
    def minutes(self) -> Mapping[str, RunTime]:
        """Minutes per profile: the recorded time where there is one, else the design budget."""
        times, measured = _budget(), measured_times()
        for name, rows in measured.items():
            if self.filename in rows:
                times[name] = rows[self.filename]
        if self.filename not in measured.get("gpu", {}):  # no GPU run recorded: estimate it
            times["gpu"] = _gpu_estimate(self.filename, measured)
        return MappingProxyType(times)


NOTEBOOKS: tuple[NotebookInfo, ...] = (
    NotebookInfo(0, "start_here", "Start here",
                 ("the course map", "environment check", "MNIST, Fashion-MNIST, CIFAR-10, ImageNet facts"),
                 ()),
    NotebookInfo(1, "convolution", "Convolution, pooling, and why CNNs",
                 ("convolution vs cross-correlation", "padding, stride, output size", "pooling", "1×1 convolutions",
                  "receptive fields", "backprop with weight sharing", "im2col, transposed and dilated convolution"), (0,)),
    NotebookInfo(2, "softmax_cross_entropy", "Softmax and cross-entropy",
                 ("softmax and its Jacobian", "cross-entropy and its gradient y − t", "numerical stability",
                  "the loss zoo", "the first MLP and convnet", "train / validation / test"), (0, 1)),
    NotebookInfo(3, "optimization", "Optimization",
                 ("gradient descent and learning rates", "SGD, momentum, Nesterov, RMSprop, Adam, AdamW",
                  "optimizers from scratch = Keras", "learning-rate schedules",
                  "range test and tuning on a validation split", "gradient clipping"), (2,)),
    NotebookInfo(4, "activations_init", "Activations and initialization",
                 ("activation functions and derivatives", "vanishing / exploding gradients", "Xavier and He init"),
                 (2, 3)),
    NotebookInfo(5, "normalization", "Normalization and preprocessing",
                 ("standardization", "batch norm from scratch", "layer / instance / group norm",
                  "batch norm vs group norm at batch size 2"), (3, 4)),
    NotebookInfo(6, "regularization", "Regularization",
                 ("L1 / L2 / weight decay", "dropout and DropConnect", "augmentation", "ensembles, TTA",
                  "snapshot ensembles", "stochastic depth, fractional max-pooling",
                  "the Zhang et al. ablation and memorization"), (3, 5)),
    NotebookInfo(7, "classic_architectures", "Classic architectures",
                 ("LeNet-5", "AlexNet, ZFNet", "VGG", "Network in Network", "GoogLeNet", "ResNet"), (1, 5, 6)),
    NotebookInfo(8, "depth_and_residuals", "Depth and residual connections",
                 ("the degradation problem", "gradient flow through identity paths", "bottleneck blocks"), (5, 7)),
    NotebookInfo(9, "inside_a_cnn", "Looking inside a CNN",
                 ("filters and feature maps", "saliency", "Grad-CAM and occlusion", "guided backprop, deconvnet",
                  "adversarial examples (FGSM)", "class models", "t-SNE", "transfer learning"), (7,)),
    NotebookInfo(10, "fast_strong_model", "Putting it together: a fast, strong model",
                 ("the full training recipe", "time to accuracy", "input pipelines", "mixed precision, XLA",
                  "data parallelism on TensorFlow and JAX"), (3, 5, 6, 8)),
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

"""The course as a book: ``make site`` builds ``build/site/`` with Sphinx, MyST-NB and the Sphinx
Book Theme (the configuration is ``cnncourse/course/book/conf.py``).

Every notebook is a page, in course order, showing its stored outputs (those of a ``cpu``-profile
run): nothing is executed, so the book builds in seconds on any machine and shows what a reader
of the repository sees. The landing page holds the course map of
:mod:`cnncourse.course.course_map`; the README's "Teaching with the course" section is a page of
its own. The theme brings what readers of a course book expect: a navigation sidebar, each
page's contents, full-text search (a static index, so it works from disk), a light/dark switch
and a download button for each notebook. The maths is typeset by a copy of MathJax 3 inside the
book (from the ``sphinx-mathjax-offline`` package), so a classroom without a network sees
formulas, not LaTeX source.

"Open in Colab" and Binder buttons appear when the repository's public address is known: a
setting (``--repo`` or ``$CNNCOURSE_REPO``) or ``git remote get-url origin`` when that is a
GitHub address. Without one there are no such buttons, and the landing page says why, rather
than pointing at an address that may not exist. A notebook opened in Colab runs where this
package is not installed, so its first cell has to install it: :func:`set_install_cell` writes
that cell (it does nothing, and prints nothing, where ``cnncourse`` is importable).

Sphinx runs with ``-W``: any warning (a broken cross-reference, a malformed cell) fails the
build. Only course notebooks are published: a student copy (solutions cleared) is refused.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from cnncourse.course.runner import course_notebooks

# relative to the working directory, never to the package (which may be installed read-only)
SITE_DIR = Path("build") / "site"
WORK_DIR = Path("build") / "book"  # the book's source folder and Sphinx's cache
NOTEBOOK_DIR = Path("notebooks")
README = Path("README.md")
CONF_DIR = Path(__file__).parent / "book"
SETTINGS = "book_settings.json"
TEACHING_HEADING = "## Teaching with the course"
REPO_ENV = "CNNCOURSE_REPO"
INSTALL_TAG = "install"
INSTALL_FIRST_LINE = "# On a hosted notebook service (Colab, Kaggle, ...) this installs the course's package;"
_GITHUB = re.compile(r"^(?:https?://|ssh://git@|git@)github\.com[:/]([\w.-]+)/([\w.-]+?)(?:\.git)?/?$")
_OWNER_NAME = re.compile(r"^[\w.-]+/[\w.-]+$")
_NOTEBOOK_NAME = re.compile(r"^\d\d_.+\.ipynb$")


class SiteError(RuntimeError):
    """The book could not be built: says why (Sphinx's warnings, or what was refused)."""


# --- where the repository lives ---------------------------------------------------------------

def github_repository(address: str) -> str | None:
    """``owner/name`` of a GitHub address (https, ssh or ``owner/name`` itself), else None."""
    address = address.strip()
    if _OWNER_NAME.match(address):
        return address.removesuffix(".git")
    match = _GITHUB.match(address)
    return f"{match.group(1)}/{match.group(2)}" if match else None


def repository(setting: str | None = None, *, root: Path | None = None) -> str | None:
    """The course's GitHub repository as ``owner/name``: the setting, ``$CNNCOURSE_REPO``, or
    the ``origin`` remote of the git checkout at ``root`` (default: the working directory) when
    it is on GitHub; None when none of them names one.

    A setting that is not a GitHub address raises ``ValueError`` (Colab opens GitHub files).
    """
    for value, source in ((setting, "--repo"), (os.environ.get(REPO_ENV), f"${REPO_ENV}")):
        if value:
            repo = github_repository(value)
            if repo is None:
                raise ValueError(f"{source}={value!r}: expected owner/name or a github.com address")
            return repo
    try:
        origin = subprocess.run(["git", "-C", str(root or Path.cwd()), "remote", "get-url", "origin"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return github_repository(origin.stdout) if origin.returncode == 0 else None


def colab_url(repo: str, notebook: str, *, branch: str = "main", folder: str = "notebooks") -> str:
    """Colab's address for a notebook in a public GitHub repository (the book's launch button)."""
    return f"https://colab.research.google.com/github/{repo}/blob/{branch}/{folder}/{notebook}"


# --- the install cell ----------------------------------------------------------------------------

def install_cell_source(repo: str, *, branch: str = "main") -> str:
    """The first cell of every notebook: installs ``cnncourse`` only where it is missing."""
    if github_repository(repo) is None:
        raise ValueError(f"repo must be owner/name on GitHub, got {repo!r}")
    return (
        f"{INSTALL_FIRST_LINE}\n"
        "# where the package is installed already (make lab, make course) it does nothing.\n"
        "import importlib.util\n"
        "\n"
        'if importlib.util.find_spec("cnncourse") is None:\n'
        f'    %pip install --quiet "cnncourse @ git+https://github.com/{github_repository(repo)}@{branch}"'
    )


def has_install_cell(nb) -> bool:
    first = nb.cells[0] if nb.cells else None
    return bool(first is not None and first.cell_type == "code"
                and (INSTALL_TAG in first.metadata.get("tags", []) or first.source.startswith(INSTALL_FIRST_LINE)))


def set_install_cell(path: Path, repo: str, *, branch: str = "main") -> bool:
    """Make the first cell of notebook ``path`` the install cell (insert it, or update the one
    there); return whether the file changed. Other cells and all outputs are kept."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    source = install_cell_source(repo, branch=branch)
    if has_install_cell(nb):
        cell = nb.cells[0]
        if cell.source == source and not cell.outputs:
            return False
        cell.source, cell.outputs, cell.execution_count = source, [], None
        cell.metadata["tags"] = sorted(set(cell.metadata.get("tags", [])) | {INSTALL_TAG})
    else:
        cell = nbformat.v4.new_code_cell(source, metadata={"tags": [INSTALL_TAG]})
        cell.pop("id", None)
        if nb.nbformat_minor >= 5:
            cell["id"] = "install-cnncourse"
        nb.cells.insert(0, cell)
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return True


# --- the book's pages ------------------------------------------------------------------------------

# TensorFlow's C++ log lines (glog format) and absl's preamble: what a kernel printed to stderr
# while TensorFlow started, not something the notebook teaches; the book leaves them out.
_BACKEND_LOG = re.compile(r"^([IWEF]\d{4} \d+:\d+:\d+\.\d+\s+\d+ [\w.]+:\d+\] "
                          r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
                          r"|To enable the following instructions: .* rebuild TensorFlow with)")


def without_backend_logs(nb):
    """``nb`` with TensorFlow's C++ log lines removed from its stderr outputs (in place)."""
    for cell in nb.cells:
        kept = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                lines = [line for line in output.text.splitlines(keepends=True) if not _BACKEND_LOG.match(line)]
                if not "".join(lines).strip():
                    continue
                output.text = "".join(lines)
            kept.append(output)
        if cell.cell_type == "code":
            cell.outputs = kept
    return nb


def is_student_copy(nb) -> bool:
    """Whether ``nb`` is a student copy: an nbgrader solution cell holds the stub that
    ``make student`` (or ``nbgrader generate_assignment``) leaves where a solution was."""
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution") and (
                "raise NotImplementedError()" in cell.source or "YOUR ANSWER HERE" in cell.source):
            return True
    return False


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def course_map_page(names: Sequence[str], repo: str | None, branch: str, missing_install: Sequence[str]) -> str:
    """The landing page (MyST Markdown): what the course is, the notebook map of
    :mod:`cnncourse.course.course_map` (each title linking its page when the book has it), and
    the tables of contents that order the book."""
    from cnncourse.course.course_map import NOTEBOOKS, PROFILES

    in_book = {int(name[:2]): name for name in names}
    head = ["#", "notebook", "what it teaches", "builds on", *(f"{p} (min)" for p in PROFILES)]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for nb in NOTEBOOKS:
        name = in_book.get(nb.number)
        title = f"[{_md_escape(nb.title)}]({name})" if name else f"{_md_escape(nb.title)} *(not in this book)*"
        builds = ", ".join(f"{n:02d}" for n in nb.builds_on) or "—"
        cells = [f"{nb.number:02d}", title, _md_escape("; ".join(nb.topics)), builds,
                 *(str(nb.minutes[p]) for p in PROFILES)]
        rows.append("| " + " | ".join(cells) + " |")
    if repo is None:
        launch = (":::{note}\nNo \"Open in Colab\" or Binder buttons: this book was built without the address of "
                  "the course's GitHub repository (no GitHub `origin` remote and no setting). Build it with "
                  f"`make site REPO=owner/name` or `{REPO_ENV}=owner/name`.\n:::")
    else:
        launch = (f"The source is [github.com/{repo}](https://github.com/{repo}) (branch `{branch}`). The rocket "
                  "button at the top of a notebook's page opens it in Colab or on Binder; its first cell installs "
                  "this package there.")
        if missing_install:
            launch += ("\n\n:::{note}\nThese notebooks have no install cell yet, so in Colab run "
                       f"`%pip install \"cnncourse @ git+https://github.com/{repo}@{branch}\"` first: "
                       f"{', '.join(missing_install)}.\n:::")
    toc = "\n".join(name[:-6] for name in names)
    return f"""# Convolutional neural networks in Keras 3

A course on convolutional networks, from a single convolution written in NumPy to residual networks,
as Jupyter notebooks and a small tested package, `cnncourse`, that they import. These pages show the
notebooks with the outputs of a run in the `cpu` profile; the download button at the top of each page
gives you its notebook to run.

{launch}

## The notebook map

What each notebook teaches, what it builds on, and how long it runs in each profile.

{chr(10).join(rows)}

```{{toctree}}
:hidden:
:caption: Notebooks

{toc}
```
"""


_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def teaching_page(readme: str, names: Sequence[str], repo: str | None, branch: str) -> str | None:
    """The README's "Teaching with the course" section as a page (its headings one level up),
    or None when the README has no such section.

    Links to a notebook in the book go to its page; other links into the repository go to
    GitHub when its address is known, else they become plain text (never a dead link)."""
    start = readme.find(TEACHING_HEADING + "\n")
    if start < 0:
        return None
    body = readme[start + len(TEACHING_HEADING) + 1:]
    following = re.search(r"^## ", body, flags=re.MULTILINE)
    body = body[:following.start()] if following else body
    body = re.sub(r"^#(#+ )", r"\1", body, flags=re.MULTILINE)

    def link(match: re.Match) -> str:
        bang, text, target = match.groups()
        parts = urlsplit(target)
        if parts.scheme or parts.netloc or target.startswith("#"):
            return match.group(0)
        path = parts.path.removeprefix("./")
        name = Path(path).name
        if path.startswith("notebooks/") and name in names:
            return f"{bang}[{text}]({name}{'#' + parts.fragment if parts.fragment else ''})"
        if repo:
            return f"{bang}[{text}](https://github.com/{repo}/blob/{branch}/{path})"
        return text

    return "# Teaching with the course\n" + _LINK.sub(link, body).rstrip() + "\n"


def _check_notebooks(notebooks: Sequence[Path]) -> list[Path]:
    paths = [Path(p) for p in notebooks]
    if not paths:
        raise ValueError("no notebooks to publish")
    for path in paths:
        if not path.is_file() or not _NOTEBOOK_NAME.match(path.name):
            raise ValueError(f"not a course notebook (NN_name.ipynb): {path}")
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        raise ValueError(f"two notebooks with one name: {sorted(n for n in names if names.count(n) > 1)[0]}")
    return sorted(paths, key=lambda p: p.name)


def _clear(folder: Path, *markers: str) -> None:
    """Empty ``folder`` for a new build, but only if an earlier build made it (it holds one of
    ``markers``): a folder of someone else's files is refused, never deleted."""
    if folder.exists():
        if any(folder.iterdir()) and not any((folder / marker).exists() for marker in markers):
            raise SiteError(f"{folder} holds files this build did not write (no {markers[0]}); "
                            "choose another output folder or empty it yourself")
        shutil.rmtree(folder)


def write_sources(notebooks: Sequence[Path], src: Path, *, repo: str | None = None, branch: str = "main",
                  readme: Path | None = None) -> list[str]:
    """Write the book's source folder: the configuration, the landing page, the teaching page
    (when ``readme`` has the section) and the notebooks without TensorFlow's log lines.

    Returns the documents in reading order (landing page, notebooks, teaching notes)."""
    import nbformat

    paths = _check_notebooks(notebooks)
    loaded = {}
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if is_student_copy(nb):
            raise ValueError(f"{path} is a student copy (its solutions are cleared): the book publishes the "
                             "course notebooks, never student copies")
        loaded[path.name] = without_backend_logs(nb)
    _clear(src, SETTINGS)
    shutil.copytree(CONF_DIR, src, ignore=shutil.ignore_patterns("__pycache__"))
    (src / SETTINGS).write_text(json.dumps({"repo": repo, "branch": branch}), encoding="utf-8")
    names = list(loaded)
    for name, nb in loaded.items():
        nbformat.write(nb, src / name)
    missing = [name for name, nb in loaded.items() if not has_install_cell(nb)] if repo else []
    (src / "index.md").write_text(course_map_page(names, repo, branch, missing), encoding="utf-8")
    docs = ["index", *(name[:-6] for name in names)]
    teaching = teaching_page(Path(readme).read_text(encoding="utf-8"), names, repo, branch) if readme else None
    if teaching:
        (src / "teaching.md").write_text(teaching, encoding="utf-8")
        with (src / "index.md").open("a", encoding="utf-8") as index:
            index.write("\n```{toctree}\n:hidden:\n:caption: For teachers\n\nteaching\n```\n")
        docs.append("teaching")
    return docs


@dataclass(frozen=True)
class Book:
    """A built book: its folder, its pages in reading order, and how long Sphinx took."""

    out_dir: Path
    pages: tuple[Path, ...]
    seconds: float


def build_site(notebooks: Sequence[Path] | None = None, out_dir: Path = SITE_DIR, *, repo: str | None = None,
               branch: str = "main", readme: Path | None = None, work_dir: Path = WORK_DIR,
               jobs: str = "auto") -> Book:
    """Build the book of ``notebooks`` (default: ``notebooks/`` of the working directory) into
    ``out_dir``, with Sphinx in a subprocess, ``-W``: any warning fails the build.

    ``repo`` is ``owner/name`` on GitHub, or None for no launch buttons. ``readme`` is the
    README whose teaching notes become a page (None: no such page). ``out_dir`` is emptied
    first (so no page of a removed notebook stays), but only when an earlier build made it.
    Raises ``ValueError`` for bad arguments and :class:`SiteError` when Sphinx fails.
    """
    if repo is not None and github_repository(repo) is None:
        raise ValueError(f"repo must be owner/name on GitHub, got {repo!r}")
    if notebooks is None:
        notebooks = course_notebooks(NOTEBOOK_DIR)
    out_dir, work_dir = Path(out_dir), Path(work_dir)
    src, doctrees = work_dir / "src", work_dir / "doctrees"
    docs = write_sources(notebooks, src, repo=repo and github_repository(repo), branch=branch, readme=readme)
    _clear(out_dir, ".buildinfo", "mathjax/MathJax.js")  # Sphinx's, or the site the book replaced
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-E", "-q", "-j", str(jobs),
               "-d", str(doctrees), str(src), str(out_dir)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SiteError(f"sphinx-build failed (exit {done.returncode}):\n{(done.stderr or done.stdout).strip()}")
    pages = tuple(out_dir / f"{doc}.html" for doc in docs)
    missing = [p.name for p in pages if not p.is_file()]
    if missing:
        raise SiteError(f"Sphinx wrote no page for {', '.join(missing)}")
    return Book(out_dir, pages, seconds)


# --- link check -------------------------------------------------------------------------------------

class _Page(HTMLParser):
    """The ``href``/``src`` values and the element ids of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in {"href", "src"} and value:
                self.refs.append(value)
            elif name in {"id", "name"} and value:
                self.ids.add(value)


def _parse(page: Path) -> _Page:
    parser = _Page()
    parser.feed(Path(page).read_text(encoding="utf-8"))
    return parser


def internal_links(page: Path) -> list[str]:
    """The links of a page that stay in the site: relative ``href``/``src`` values and
    ``#fragment`` links (no scheme, not ``//host``)."""
    return [ref for ref in _parse(page).refs if not (urlsplit(ref).scheme or urlsplit(ref).netloc)]


def broken_links(site: Path = SITE_DIR) -> list[str]:
    """``page: link`` for every link in the site's pages that names no file in the site, or an
    HTML page's ``#fragment`` that is no id on that page."""
    site = Path(site).resolve()
    parsed: dict[Path, _Page] = {}

    def page_of(path: Path) -> _Page:
        if path not in parsed:
            parsed[path] = _parse(path)
        return parsed[path]

    broken = []
    for page in sorted(site.rglob("*.html")):
        if "_static" in page.relative_to(site).parts:  # the theme's template macros, not pages
            continue
        for ref in page_of(page).refs:
            parts = urlsplit(ref)
            if parts.scheme or parts.netloc:
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page.resolve()
            if not target.is_file() or site not in target.parents:
                broken.append(f"{page.relative_to(site)}: {ref}")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in page_of(target).ids:
                broken.append(f"{page.relative_to(site)}: {ref}")
    return broken


def cli(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cnncourse site",
        description="Build the course book (Sphinx + MyST-NB) from the notebooks' stored outputs; nothing is executed.")
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks (default: every NN_name.ipynb in ./notebooks)")
    parser.add_argument("--out", type=Path, default=SITE_DIR, help="output folder (default: ./build/site)")
    parser.add_argument("--readme", type=Path, default=None,
                        help="README whose 'Teaching with the course' section becomes a page (default: ./README.md)")
    parser.add_argument("--repo", default=None,
                        help=f"GitHub owner/name for the Colab and Binder buttons (default: ${REPO_ENV}, "
                             "else the origin remote)")
    parser.add_argument("--branch", default="main", help="branch the launch buttons and install cells use")
    parser.add_argument("--install-cells", action="store_true",
                        help="instead of building the book, make the first cell of each notebook the install cell")
    args = parser.parse_args(list(argv))
    try:
        repo = repository(args.repo)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    notebooks = args.notebooks or course_notebooks(NOTEBOOK_DIR)
    if not notebooks:
        print(f"nothing to do: no notebooks named and no NN_name.ipynb in {NOTEBOOK_DIR.resolve()} "
              "(run this from the course's folder, or name the notebooks)", file=sys.stderr)
        return 2
    if args.install_cells:
        if repo is None:
            print(f"no GitHub repository known: pass --repo owner/name or set ${REPO_ENV}", file=sys.stderr)
            return 2
        for path in notebooks:
            changed = set_install_cell(path, repo, branch=args.branch)
            print(f"{path}: {'install cell written' if changed else 'install cell up to date'}")
        return 0
    readme = args.readme or (README if README.is_file() else None)
    if args.readme and not args.readme.is_file():
        print(f"no README at {args.readme}", file=sys.stderr)
        return 2
    try:
        book = build_site(notebooks, args.out, repo=repo, branch=args.branch, readme=readme)
    except (ValueError, SiteError) as error:
        print(f"book not built: {error}", file=sys.stderr)
        return 1
    broken = broken_links(book.out_dir)
    for link in broken:
        print(f"broken link: {link}", file=sys.stderr)
    notes = [] if repo else ["no GitHub repository known, so no Colab or Binder buttons"]
    if readme is None:
        notes.append(f"no {README} here, so no teaching page")
    print(f"{len(book.pages)} page(s) in {book.out_dir}/ in {book.seconds:.0f} s "
          f"(open {book.out_dir / 'index.html'})" + "".join(f"; {n}" for n in notes))
    return 1 if broken else 0

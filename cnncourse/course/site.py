"""The course as a static web site: ``make site`` renders the notebooks to ``build/site/``.

Pages show the notebooks' stored outputs (those of a ``cpu``-profile run): nothing is
executed, so the site builds in seconds on any machine and shows what a reader of the
repository sees. The index has the table of contents and the notebook map of
:mod:`cnncourse.course.course_map`; each page links back to it, to its neighbours, to its own
``.ipynb`` (copied beside it) and, where the repository's address is known, to "Open in
Colab". The address comes from a setting (``--repo`` or ``$CNNCOURSE_REPO``) or from
``git remote get-url origin`` when that is a GitHub address; when none is known the Colab
links are left out and the index says so, rather than pointing at an address that may not
exist.

The maths is typeset by MathJax 2, copied into the site (``build/site/mathjax/``) from the
``jupyter-server-mathjax`` package, the Jupyter project's own offline MathJax: a classroom
without a network still sees formulas, not LaTeX source. Where that package is missing the
pages fall back to MathJax from a public CDN and the index says so.

A notebook opened in Colab runs in a machine without this package, so its first cell has to
install it there: :func:`set_install_cell` writes that cell (it does nothing, and prints
nothing, where ``cnncourse`` is importable, so the local runs and the notebook tests are
unaffected).
"""

from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from cnncourse.course.runner import BUILD_DIR, NOTEBOOK_DIR, ROOT, course_notebooks

SITE_DIR = BUILD_DIR / "site"
REPO_ENV = "CNNCOURSE_REPO"
INSTALL_TAG = "install"
INSTALL_FIRST_LINE = "# On a hosted notebook service (Colab, Kaggle, ...) this installs the course's package;"
_GITHUB = re.compile(r"^(?:https?://|ssh://git@|git@)github\.com[:/]([\w.-]+)/([\w.-]+?)(?:\.git)?/?$")
_OWNER_NAME = re.compile(r"^[\w.-]+/[\w.-]+$")
# nbconvert's "lab" template with two changes (see its file): STIX-Web fonts, no require.js
TEMPLATE_DIR = Path(__file__).parent / "site_template"
TEMPLATE = "cnncourse"
MATHJAX_DIR = "mathjax"
# TeX input, HTML-CSS output and the Safe extension: the parts of MathJax 2 the package ships
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"


# --- where the repository lives ---------------------------------------------------------------

def github_repository(address: str) -> str | None:
    """``owner/name`` of a GitHub address (https, ssh or ``owner/name`` itself), else None."""
    address = address.strip()
    if _OWNER_NAME.match(address):
        return address.removesuffix(".git")
    match = _GITHUB.match(address)
    return f"{match.group(1)}/{match.group(2)}" if match else None


def repository(setting: str | None = None, *, root: Path = ROOT) -> str | None:
    """The course's GitHub repository as ``owner/name``: the setting, ``$CNNCOURSE_REPO``, or
    the ``origin`` remote when it is on GitHub; None when none of them names one.

    A setting that is not a GitHub address raises ``ValueError`` (a Colab link needs GitHub).
    """
    for value, source in ((setting, "--repo"), (os.environ.get(REPO_ENV), f"${REPO_ENV}")):
        if value:
            repo = github_repository(value)
            if repo is None:
                raise ValueError(f"{source}={value!r}: expected owner/name or a github.com address")
            return repo
    try:
        origin = subprocess.run(["git", "-C", str(root), "remote", "get-url", "origin"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return github_repository(origin.stdout) if origin.returncode == 0 else None


def colab_url(repo: str, notebook: str, *, branch: str = "main", folder: str = "notebooks") -> str:
    """Colab's address for a notebook in a public GitHub repository."""
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


# --- pages ----------------------------------------------------------------------------------------

_STYLE = """
body.cnncourse-index { font-family: system-ui, sans-serif; max-width: 62rem; margin: 2rem auto; padding: 0 1rem;
  line-height: 1.5; color: #222; }
.cnncourse-index table { border-collapse: collapse; width: 100%; font-size: 0.92rem; }
.cnncourse-index th, .cnncourse-index td { border: 1px solid #ccc; padding: 0.3rem 0.5rem; vertical-align: top; }
.cnncourse-index th { background: #f3f3f3; text-align: left; }
.cnncourse-index .note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.5rem 1rem; }
.cnncourse-index ul li { margin-bottom: 0.6rem; }
nav.cnncourse-nav { font-family: system-ui, sans-serif; font-size: 0.95rem; padding: 0.6rem 1rem;
  background: #f3f5f8; border-bottom: 1px solid #d0d7de; display: flex; gap: 1.2rem; flex-wrap: wrap; }
nav.cnncourse-nav a { text-decoration: none; }
"""


# TensorFlow's C++ log lines (glog format) and absl's preamble: what a kernel printed to stderr
# while TensorFlow started, not something the notebook teaches; the site leaves them out.
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


def _title(nb, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def _nav(name: str, pages: list[str], titles: dict[str, str], colab: str | None) -> str:
    index = pages.index(name)
    links = ['<a href="index.html">↑ Course contents</a>']
    if index > 0:
        prev = pages[index - 1]
        links.append(f'<a href="{prev[:-6]}.html">← {html.escape(titles[prev])}</a>')
    if index + 1 < len(pages):
        nxt = pages[index + 1]
        links.append(f'<a href="{nxt[:-6]}.html">{html.escape(titles[nxt])} →</a>')
    links.append(f'<a href="{name}" download>Download the notebook (.ipynb)</a>')
    if colab:
        links.append(f'<a href="{html.escape(colab)}">Open in Colab</a>')
    return '<nav class="cnncourse-nav">' + "\n".join(links) + "</nav>"


def _link_notebooks(page: str, pages: Iterable[str]) -> str:
    """Links between notebooks (``href="02_x.ipynb"``) go to the rendered pages instead."""
    for name in pages:
        page = page.replace(f'href="{name}"', f'href="{name[:-6]}.html"').replace(
            f'href="{name}#', f'href="{name[:-6]}.html#')
    return page


def copy_mathjax(out_dir: Path) -> str | None:
    """Copy MathJax into ``out_dir/mathjax/``; return the pages' relative URL for it, or None
    when ``jupyter-server-mathjax`` is not installed (the pages then use nbconvert's CDN URL)."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        return None
    static = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (static / "MathJax.js").is_file():
        return None
    shutil.copytree(static, Path(out_dir) / MATHJAX_DIR, dirs_exist_ok=True)
    return f"{MATHJAX_DIR}/MathJax.js?config={MATHJAX_CONFIG}"


def render_page(path: Path, pages: list[str], titles: dict[str, str], colab: str | None,
                mathjax_url: str | None = None) -> str:
    """One notebook as a standalone HTML page (stored outputs, images embedded) with the nav;
    ``mathjax_url`` None keeps nbconvert's CDN address."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = without_backend_logs(nbformat.read(path, as_version=4))
    options = {"mathjax_url": mathjax_url} if mathjax_url else {}
    exporter = HTMLExporter(template_name=TEMPLATE, extra_template_basedirs=[str(TEMPLATE_DIR)],
                            embed_images=True, **options)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": titles[path.name]}})
    body = _link_notebooks(body, pages)
    nav = _nav(path.name, pages, titles, colab)
    body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + "\n" + nav, body, count=1)
    body = body.replace("</body>", nav + "\n</body>", 1)
    return body.replace("</head>", f"<style>{_STYLE}</style>\n</head>", 1)


def _map_table(pages: dict[int, str]) -> str:
    from cnncourse.course.course_map import NOTEBOOKS, PROFILES

    head = ["#", "notebook", "what it teaches", "builds on", *(f"{p} (min)" for p in PROFILES)]
    rows = ["<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for nb in NOTEBOOKS:
        page = pages.get(nb.number)
        title = (f'<a href="{page[:-6]}.html">{html.escape(nb.title)}</a>' if page
                 else f"{html.escape(nb.title)} <em>(to come)</em>")
        builds = ", ".join(f"{n:02d}" for n in nb.builds_on) or "—"
        cells = [f"{nb.number:02d}", title, html.escape("; ".join(nb.topics)), builds,
                 *(html.escape(str(nb.minutes[p])) for p in PROFILES)]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return "<table>\n" + "\n".join(rows) + "\n</table>"


def render_index(pages: list[str], titles: dict[str, str], topics: dict[str, str], repo: str | None,
                 colab: dict[str, str | None], missing_install: list[str], branch: str,
                 offline_maths: bool = True) -> str:
    items = []
    for name in pages:
        links = [f'<a href="{name}" download>notebook</a>']
        if colab.get(name):
            links.append(f'<a href="{html.escape(colab[name])}">Open in Colab</a>')
        items.append(f'<li><a href="{name[:-6]}.html"><strong>{html.escape(titles[name])}</strong></a> '
                     f'({" · ".join(links)})<br>{html.escape(topics.get(name, ""))}</li>')
    if repo is None:
        colab_note = ('<p class="note">No "Open in Colab" links: this site was built without the address of the '
                      "course's GitHub repository (no GitHub <code>origin</code> remote and no setting). Build it "
                      f"with <code>make site REPO=owner/name</code> or <code>${REPO_ENV}=owner/name</code>.</p>")
    else:
        colab_note = (f'<p>Source: <a href="https://github.com/{repo}">github.com/{repo}</a> (branch '
                      f"<code>{html.escape(branch)}</code>). \"Open in Colab\" runs a notebook on a hosted machine; "
                      "its first cell installs this package there.</p>")
        if missing_install:
            colab_note += ('<p class="note">These notebooks have no install cell yet, so in Colab run '
                           f'<code>%pip install "cnncourse @ git+https://github.com/{repo}@{html.escape(branch)}"</code> '
                           f"first: {html.escape(', '.join(missing_install))}.</p>")
    if not offline_maths:
        colab_note += ('<p class="note">The formulas are typeset by MathJax loaded from a public CDN, so they show '
                       "as LaTeX source without a network: install <code>jupyter-server-mathjax</code> "
                       "(<code>make setup</code> does) and build the site again to bundle MathJax.</p>")
    number_to_page = {int(name[:2]): name for name in pages}
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Convolutional neural networks in Keras 3: the course</title>
<style>{_STYLE}</style>
</head>
<body class="cnncourse-index">
<h1>Convolutional neural networks in Keras 3</h1>
<p>A course on convolutional networks, from a single convolution written in NumPy to residual networks,
as Jupyter notebooks and a small tested package, <code>cnncourse</code>, that they import. These pages show
the notebooks with the outputs of a run in the <code>cpu</code> profile; download a notebook to run it.</p>
{colab_note}
<h2 id="contents">Contents</h2>
<ul>
{chr(10).join(items)}
</ul>
<h2 id="map">The notebook map</h2>
<p>What each notebook teaches, what it builds on, and how long it runs in each profile.</p>
{_map_table(number_to_page)}
</body>
</html>
"""


def build_site(notebooks: Sequence[Path] | None = None, out_dir: Path = SITE_DIR, *, repo: str | None = None,
               branch: str = "main") -> list[Path]:
    """Render ``notebooks`` (default: all of ``notebooks/``) and the index into ``out_dir``.

    ``repo`` is ``owner/name`` on GitHub, or None for no Colab links. Returns the pages
    written, index first. ``out_dir`` is emptied first, so no page of a removed notebook stays.
    """
    import nbformat

    from cnncourse.course.course_map import NOTEBOOKS

    paths = [Path(p) for p in (notebooks if notebooks is not None else course_notebooks(NOTEBOOK_DIR))]
    for path in paths:
        if not path.is_file() or not re.match(r"^\d\d_.+\.ipynb$", path.name):
            raise ValueError(f"not a course notebook (NN_name.ipynb): {path}")
    if repo is not None and github_repository(repo) is None:
        raise ValueError(f"repo must be owner/name on GitHub, got {repo!r}")
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    pages = [p.name for p in paths]
    loaded = {p.name: nbformat.read(p, as_version=4) for p in paths}
    titles = {}
    for name, nb in loaded.items():
        title = _title(nb, name[3:-6].replace("_", " "))
        titles[name] = title if title.startswith(name[:2]) else f"{name[:2]} — {title}"
    topics = {nb.filename: "; ".join(nb.topics) for nb in NOTEBOOKS}
    colab = {name: colab_url(repo, name, branch=branch) if repo else None for name in pages}
    mathjax_url = copy_mathjax(out_dir)
    written = [out_dir / "index.html"]
    for path in paths:
        page = out_dir / f"{path.name[:-6]}.html"
        page.write_text(render_page(path, pages, titles, colab[path.name], mathjax_url), encoding="utf-8")
        shutil.copyfile(path, out_dir / path.name)
        written.append(page)
    missing = [name for name, nb in loaded.items() if not has_install_cell(nb)]
    written[0].write_text(render_index(pages, titles, topics, repo, colab, missing, branch,
                                           offline_maths=mathjax_url is not None), encoding="utf-8")
    return written


# --- link check -------------------------------------------------------------------------------------

class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in {"href", "src"} and value:
                self.refs.append(value)


def internal_links(page: Path) -> list[str]:
    """The relative ``href``/``src`` values of a page (no scheme, not ``//host``, not ``#...``)."""
    parser = _Links()
    parser.feed(Path(page).read_text(encoding="utf-8"))
    refs = []
    for ref in parser.refs:
        parts = urlsplit(ref)
        if parts.scheme or parts.netloc or not parts.path:
            continue
        refs.append(ref)
    return refs


def broken_links(site: Path = SITE_DIR) -> list[str]:
    """``page: link`` for every relative link in the site's pages that names no file in the site."""
    site = Path(site).resolve()
    broken = []
    for page in sorted(site.rglob("*.html")):
        for ref in internal_links(page):
            target = (page.parent / unquote(urlsplit(ref).path)).resolve()
            if not target.is_file() or site not in target.parents:
                broken.append(f"{page.relative_to(site)}: {ref}")
    return broken


def cli(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cnncourse site",
        description="Render the notebooks' stored outputs to a static site (no execution).")
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks (default: all of notebooks/)")
    parser.add_argument("--out", type=Path, default=SITE_DIR, help="output folder (default: build/site/)")
    parser.add_argument("--repo", default=None,
                        help=f"GitHub owner/name for the Colab links (default: ${REPO_ENV}, else the origin remote)")
    parser.add_argument("--branch", default="main", help="branch the Colab links and install cells use")
    parser.add_argument("--install-cells", action="store_true",
                        help="instead of building the site, make the first cell of each notebook the install cell")
    args = parser.parse_args(list(argv))
    try:
        repo = repository(args.repo)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    notebooks = args.notebooks or course_notebooks(NOTEBOOK_DIR)
    if args.install_cells:
        if repo is None:
            print(f"no GitHub repository known: pass --repo owner/name or set ${REPO_ENV}", file=sys.stderr)
            return 2
        for path in notebooks:
            changed = set_install_cell(path, repo, branch=args.branch)
            print(f"{path}: {'install cell written' if changed else 'install cell up to date'}")
        return 0
    try:
        written = build_site(notebooks, args.out, repo=repo, branch=args.branch)
    except ValueError as error:
        print(f"site not built: {error}", file=sys.stderr)
        return 1
    broken = broken_links(args.out)
    for link in broken:
        print(f"broken link: {link}", file=sys.stderr)
    print(f"{len(written)} page(s) in {args.out}/ (open {args.out / 'index.html'})"
          + ("" if repo else "; no GitHub repository known, so no Colab links"))
    return 1 if broken else 0

"""`make site`: one page per notebook from its stored outputs, an index with the contents and
the notebook map, every internal link resolving; Colab links only for a known GitHub repo;
the install cell that does nothing where the package is installed."""

import subprocess
import sys

import nbformat
import pytest

from cnncourse.course import site
from cnncourse.course.course_map import NOTEBOOKS
from cnncourse.course.runner import NOTEBOOK_DIR, course_notebooks

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def write_notebook(path, title, *, link_to=None):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    text = f"# {title}\nSome maths: $y = Wx + b$."
    if link_to:
        text += f"\n\nSee [the next notebook]({link_to})."
    nb.cells = [nbformat.v4.new_markdown_cell(text),
                nbformat.v4.new_code_cell("print(6 * 7)", execution_count=1,
                                          outputs=[nbformat.v4.new_output("stream", text="42\n")])]
    nbformat.write(nb, path)
    return path


@pytest.fixture
def two_notebooks(tmp_path):
    src = tmp_path / "nbs"
    src.mkdir()
    return [write_notebook(src / "00_start_here.ipynb", "Start here", link_to="01_convolution.ipynb"),
            write_notebook(src / "01_convolution.ipynb", "Convolution")]


@pytest.mark.parametrize(("address", "repo"), [
    ("https://github.com/ada/cnn-course.git", "ada/cnn-course"),
    ("https://github.com/ada/cnn-course", "ada/cnn-course"),
    ("git@github.com:ada/cnn.course.git", "ada/cnn.course"),
    ("ssh://git@github.com/ada/cnn-course.git", "ada/cnn-course"),
    ("ada/cnn-course", "ada/cnn-course"),
    ("https://gitlab.com/ada/cnn-course.git", None),
    ("/srv/git/cnn-course", None),
    ("", None),
])
def test_github_repository(address, repo):
    assert site.github_repository(address) == repo


def test_repository_prefers_setting_then_env_then_origin(tmp_path, monkeypatch):
    monkeypatch.delenv(site.REPO_ENV, raising=False)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert site.repository(root=tmp_path) is None  # no remote: no address, never a made-up one
    subprocess.run(["git", "-C", str(tmp_path), "remote", "add", "origin", "https://example.org/x/y.git"], check=True)
    assert site.repository(root=tmp_path) is None  # not GitHub: no Colab link
    subprocess.run(["git", "-C", str(tmp_path), "remote", "set-url", "origin", "git@github.com:ada/course.git"],
                   check=True)
    assert site.repository(root=tmp_path) == "ada/course"
    monkeypatch.setenv(site.REPO_ENV, "bob/course")
    assert site.repository(root=tmp_path) == "bob/course"
    assert site.repository("carol/course", root=tmp_path) == "carol/course"
    with pytest.raises(ValueError, match="expected owner/name or a github.com address"):
        site.repository("https://gitlab.com/a/b", root=tmp_path)


def test_site_without_repo_has_pages_links_and_says_why_no_colab(two_notebooks, tmp_path):
    out = tmp_path / "site"
    written = site.build_site(two_notebooks, out, repo=None)
    assert [p.name for p in written] == ["index.html", "00_start_here.html", "01_convolution.html"]
    assert all(p.is_file() for p in written)
    assert (out / "00_start_here.ipynb").read_bytes() == two_notebooks[0].read_bytes()
    index = (out / "index.html").read_text()
    assert "colab.research.google.com" not in index and "No \"Open in Colab\" links" in index
    assert 'href="01_convolution.html"' in index and "The notebook map" in index
    for nb in NOTEBOOKS:  # the map lists every planned notebook, linked or to come
        assert f"<td>{nb.number:02d}</td>" in index
    assert "(to come)" in index
    page = (out / "00_start_here.html").read_text()
    assert "42" in page and 'href="01_convolution.html"' in page  # stored output; notebook link → page
    assert 'href="00_start_here.ipynb" download' in page and 'href="index.html"' in page
    assert site.broken_links(out) == []


def test_site_with_repo_links_colab_and_notes_missing_install_cells(two_notebooks, tmp_path):
    out = tmp_path / "site"
    site.set_install_cell(two_notebooks[0], "ada/course")
    site.build_site(two_notebooks, out, repo="ada/course", branch="dev")
    colab = "https://colab.research.google.com/github/ada/course/blob/dev/notebooks/01_convolution.ipynb"
    assert colab in (out / "01_convolution.html").read_text()
    index = (out / "index.html").read_text()
    assert colab in index and "github.com/ada/course" in index
    assert "no install cell yet" in index and "01 — Convolution" in index.split("no install cell yet")[1]
    assert site.broken_links(out) == []


def test_site_bundles_mathjax_so_formulas_need_no_network(two_notebooks, tmp_path):
    pytest.importorskip("jupyter_server_mathjax")
    out = tmp_path / "site"
    site.build_site(two_notebooks, out, repo=None)
    page = (out / "00_start_here.html").read_text()
    assert f'src="{site.MATHJAX_DIR}/MathJax.js?config={site.MATHJAX_CONFIG}"' in page
    assert "cdnjs.cloudflare.com/ajax/libs/mathjax" not in page
    assert "require.min.js" not in page and "webFont: \"STIX-Web\"" in page  # the course's page template
    for part in ("MathJax.js", "config/TeX-AMS-MML_HTMLorMML-full.js", "config/Safe.js"):  # what the page asks for
        assert (out / site.MATHJAX_DIR / part).is_file(), part
    assert "public CDN" not in (out / "index.html").read_text()
    assert site.broken_links(out) == []  # the MathJax script is one of the links checked


def test_site_without_offline_mathjax_uses_the_cdn_and_says_so(two_notebooks, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "jupyter_server_mathjax", None)  # as if it were not installed
    out = tmp_path / "site"
    site.build_site(two_notebooks, out, repo=None)
    assert "cdnjs.cloudflare.com/ajax/libs/mathjax" in (out / "00_start_here.html").read_text()
    assert not (out / site.MATHJAX_DIR).exists()
    assert "public CDN" in (out / "index.html").read_text() and "jupyter-server-mathjax" in (out / "index.html").read_text()


def test_backend_logs_are_left_out_of_pages_only(tmp_path):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    log = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
           "I0000 00:00:1795437719.232750   21011 port.cc:153] oneDNN custom operations are on.\n"
           "E0000 00:00:1795437734.361411   21011 cuda_platform.cc:52] failed call to cuInit\n")
    nb.cells = [nbformat.v4.new_markdown_cell("# 03 — Logs"),
                nbformat.v4.new_code_cell("x", outputs=[nbformat.v4.new_output("stream", name="stderr", text=log)]),
                nbformat.v4.new_code_cell("y", outputs=[
                    nbformat.v4.new_output("stream", name="stderr", text=log + "UserWarning: a real warning\n"),
                    nbformat.v4.new_output("stream", name="stdout", text="I0000 is data here\n")])]
    path = tmp_path / "03_logs.ipynb"
    nbformat.write(nb, path)
    site.build_site([path], tmp_path / "site")
    page = (tmp_path / "site" / "03_logs.html").read_text()
    assert "oneDNN" not in page and "absl" not in page and "cuInit" not in page
    assert "UserWarning: a real warning" in page and "I0000 is data here" in page
    assert "03 — Logs" in page and "03 — 03" not in (tmp_path / "site" / "index.html").read_text()
    assert "oneDNN" in (tmp_path / "site" / "03_logs.ipynb").read_text()  # the notebook itself is copied as is


def test_broken_links_are_found(two_notebooks, tmp_path):
    out = tmp_path / "site"
    site.build_site(two_notebooks, out)
    (out / "01_convolution.ipynb").unlink()
    page = out / "extra.html"
    page.write_text('<a href="https://keras.io">ok</a><a href="#top">ok</a><img src="data:image/png;base64,AA">'
                    '<a href="index.html#map">ok</a><img src="figs/missing.png"><a href="../outside.html">x</a>')
    (tmp_path / "outside.html").write_text("outside the site")
    assert sorted(set(site.broken_links(out))) == [
        "01_convolution.html: 01_convolution.ipynb", "extra.html: ../outside.html", "extra.html: figs/missing.png",
        "index.html: 01_convolution.ipynb"]


def test_build_site_rejects_other_files(tmp_path):
    other = tmp_path / "notes.ipynb"
    other.write_text("{}")
    with pytest.raises(ValueError, match="not a course notebook"):
        site.build_site([other], tmp_path / "site")
    with pytest.raises(ValueError, match="repo must be owner/name"):
        site.build_site([], tmp_path / "site", repo="not a repo")


def test_install_cell_is_first_idempotent_and_keeps_the_rest(two_notebooks):
    path = two_notebooks[1]
    before = nbformat.read(path, as_version=4)
    assert site.set_install_cell(path, "ada/course") is True
    after = nbformat.read(path, as_version=4)
    nbformat.validate(after)
    assert site.has_install_cell(after) and not site.has_install_cell(before)
    assert after.cells[0].metadata["tags"] == ["install"]
    assert '%pip install --quiet "cnncourse @ git+https://github.com/ada/course@main"' in after.cells[0].source
    assert [c.source for c in after.cells[1:]] == [c.source for c in before.cells]
    assert after.cells[2].outputs == before.cells[1].outputs
    assert site.set_install_cell(path, "ada/course") is False  # already there
    assert site.set_install_cell(path, "ada/course", branch="v2") is True  # updated, not added twice
    again = nbformat.read(path, as_version=4)
    assert len(again.cells) == len(after.cells) and "@v2" in again.cells[0].source
    with pytest.raises(ValueError, match="owner/name on GitHub"):
        site.install_cell_source("not a repo")


def test_install_cell_does_nothing_and_prints_nothing_where_installed(two_notebooks):
    from nbclient import NotebookClient

    path = two_notebooks[0]
    site.set_install_cell(path, "ada/course")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    assert nb.cells[0].outputs == []  # nothing printed, nothing installed
    assert nb.cells[2].outputs[0]["text"] == "42\n"


def test_install_cell_would_install_where_missing():
    """The cell's condition is what IPython runs: %pip only when cnncourse is not importable."""
    from IPython.core.inputtransformer2 import TransformerManager

    code = TransformerManager().transform_cell(site.install_cell_source("ada/course"))
    calls = []
    namespace = {"get_ipython": lambda: type("IP", (), {"run_line_magic": lambda self, *a: calls.append(a)})()}
    exec(code.replace('"cnncourse"', '"cnncourse_not_installed_anywhere"', 1), namespace)
    assert calls == [("pip", 'install --quiet "cnncourse @ git+https://github.com/ada/course@main"')]


def test_cli_builds_and_writes_install_cells(two_notebooks, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(site.REPO_ENV, raising=False)
    out = tmp_path / "site"
    assert site.cli([*map(str, two_notebooks), "--out", str(out), "--repo", "ada/course"]) == 0
    assert "3 page(s)" in capsys.readouterr().out
    assert site.cli([*map(str, two_notebooks), "--install-cells", "--repo", "ada/course"]) == 0
    assert all(site.has_install_cell(nbformat.read(p, as_version=4)) for p in two_notebooks)
    assert site.cli(["--repo", "https://gitlab.com/a/b"]) == 2
    assert "expected owner/name" in capsys.readouterr().err


def test_module_entry_point_lists_site_and_student():
    done = subprocess.run([sys.executable, "-m", "cnncourse", "--help"], capture_output=True, text=True)
    assert "  site" in done.stdout and "  student" in done.stdout


def test_course_site_every_page_and_link(tmp_path):
    """The real course: one page per notebook, every relative href/src resolves."""
    notebooks = course_notebooks(NOTEBOOK_DIR)
    out = tmp_path / "site"
    written = site.build_site(notebooks, out, repo=None)
    assert {p.name for p in written} == {"index.html", *(p.stem + ".html" for p in notebooks)}
    assert all(p.stat().st_size > 0 for p in written)
    assert site.broken_links(out) == []

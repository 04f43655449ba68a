"""`make site`: the course book on Sphinx + MyST-NB + the Sphinx Book Theme. One page per notebook
from its stored outputs, the course map as the landing page, the README's teaching notes as a
page, every link resolving, no request to a CDN, warnings failing the build, Colab/Binder buttons
only for a known GitHub repository, student copies refused; the install cell that does nothing
where the package is installed. (What a browser sees is tested in tests/browser/test_book.py.)"""

import re
import subprocess
import sys

import nbformat
import pytest

from cnncourse.course import site
from cnncourse.course.course_map import NOTEBOOKS
from cnncourse.course.runner import NOTEBOOK_DIR, course_notebooks

pytest.importorskip("myst_nb", reason="the book's packages are in the test extra: pip install -e '.[test]'")

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
LOG = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
       "I0000 00:00:1795437719.232750   21011 port.cc:153] oneDNN custom operations are on.\n"
       "E0000 00:00:1795437734.361411   21011 cuda_platform.cc:52] failed call to cuInit\n")
README = """# The course

## Teaching with the course

Hand out the [first notebook](notebooks/00_start_here.ipynb) and read [the benchmarks](benchmarks/README.md)
or [nbgrader's docs](https://nbgrader.readthedocs.io).

### Grading

Run `make grade`.

## Benchmarks

Not part of the teaching notes.
"""


def write_notebook(path, title, *, link_to=None, stderr=""):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    text = f"# {title}\nSome maths: $y = Wx + b$ and $f'(x)$."
    if link_to:
        text += f"\n\nSee [the next notebook]({link_to})."
    outputs = [nbformat.v4.new_output("stream", text="42\n")]
    if stderr:
        outputs.append(nbformat.v4.new_output("stream", name="stderr", text=stderr))
    nb.cells = [nbformat.v4.new_markdown_cell(text),
                nbformat.v4.new_code_cell("print(6 * 7)", execution_count=1, outputs=outputs)]
    nbformat.write(nb, path)
    return path


def two_notebooks(folder):
    folder.mkdir()
    return [write_notebook(folder / "00_start_here.ipynb", "00 — Start here", link_to="01_convolution.ipynb",
                           stderr=LOG + "UserWarning: a real warning\n"),
            write_notebook(folder / "01_convolution.ipynb", "01 — Convolution")]


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """A book of two notebooks and a README, built without a repository's address."""
    tmp = tmp_path_factory.mktemp("book")
    notebooks = two_notebooks(tmp / "nbs")
    (tmp / "README.md").write_text(README)
    built = site.build_site(notebooks, tmp / "site", repo=None, readme=tmp / "README.md", work_dir=tmp / "work")
    return built, notebooks


@pytest.fixture(scope="module")
def book_with_repo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("book_repo")
    notebooks = two_notebooks(tmp / "nbs")
    site.set_install_cell(notebooks[0], "ada/course")
    (tmp / "README.md").write_text(README)
    return site.build_site(notebooks, tmp / "site", repo="ada/course", branch="dev", readme=tmp / "README.md",
                           work_dir=tmp / "work")


def all_pages(out):
    return {p: p.read_text(encoding="utf-8") for p in out.rglob("*.html") if "_static" not in p.parts}


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
    monkeypatch.chdir(tmp_path)
    assert site.repository() == "ada/course"  # default: the working directory's checkout
    monkeypatch.setenv(site.REPO_ENV, "bob/course")
    assert site.repository(root=tmp_path) == "bob/course"
    assert site.repository("carol/course", root=tmp_path) == "carol/course"
    with pytest.raises(ValueError, match="expected owner/name or a github.com address"):
        site.repository("https://gitlab.com/a/b", root=tmp_path)


def test_book_pages_in_order_with_map_teaching_notes_and_downloads(book):
    built, notebooks = book
    out = built.out_dir
    assert [p.name for p in built.pages] == ["index.html", "00_start_here.html", "01_convolution.html", "teaching.html"]
    index = (out / "index.html").read_text()
    assert "The notebook map" in index and 'href="01_convolution.html"' in index
    for nb in NOTEBOOKS:  # the map lists every notebook of the course, linked when the book has it
        assert f"<td><p>{nb.number:02d}</p></td>" in index
    assert index.count("not in this book") == len(NOTEBOOKS) - 2
    nav = re.findall(r'class="reference internal" href="(\d\d_\w+\.html)"', index)
    assert nav[:2] == ["00_start_here.html", "01_convolution.html"]  # the sidebar in course order
    page = (out / "00_start_here.html").read_text()
    assert "42" in page and 'href="01_convolution.html"' in page  # stored output; notebook link → page
    assert 'href="_sources/00_start_here.ipynb"' in page  # the download button
    downloaded = nbformat.read(out / "_sources" / "00_start_here.ipynb", as_version=4)
    assert downloaded.cells[1].source == "print(6 * 7)"
    teaching = (out / "teaching.html").read_text()
    assert "Teaching with the course" in teaching and "Run" in teaching and "Not part of the teaching" not in teaching
    assert 'href="00_start_here.html"' in teaching  # README link to a notebook → its page
    assert "the benchmarks" in teaching and "benchmarks/README.md" not in teaching  # no dead link without a repo
    assert 'href="https://nbgrader.readthedocs.io"' in teaching
    assert site.broken_links(out) == []


def test_book_without_repo_has_no_launch_buttons_and_says_why(book):
    built, _ = book
    pages = all_pages(built.out_dir)
    assert not any("colab.research.google.com" in text or "mybinder.org" in text for text in pages.values())
    assert "No “Open in Colab” or Binder buttons" in pages[built.out_dir / "index.html"]


def test_book_typesets_maths_with_its_own_mathjax_and_asks_no_cdn(book):
    built, _ = book
    out = built.out_dir
    page = (out / "00_start_here.html").read_text()
    assert re.search(r'src="_static/mathjax/tex-chtml\.js(\?v=\w+)?"', page)
    assert (out / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert list((out / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").glob("MathJax_Main-*.woff"))
    assert page.count('class="math notranslate nohighlight"') == 2
    for path, text in all_pages(out).items():  # nothing loaded from another host
        remote = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="((?:https?:)?//[^"]+)"', text)
        assert remote == [], f"{path.name} loads {remote}"


def test_book_leaves_out_backend_logs_only(book):
    built, notebooks = book
    page = (built.out_dir / "00_start_here.html").read_text()
    assert "oneDNN" not in page and "absl" not in page and "cuInit" not in page
    assert "UserWarning: a real warning" in page
    assert "oneDNN" in notebooks[0].read_text()  # the course's notebook itself is not touched


def test_book_with_repo_has_colab_and_binder_and_notes_missing_install_cells(book_with_repo):
    out = book_with_repo.out_dir
    page = (out / "01_convolution.html").read_text()
    assert site.colab_url("ada/course", "01_convolution.ipynb", branch="dev") in page
    assert "https://mybinder.org/v2/gh/ada/course/dev?urlpath=lab/tree/notebooks/01_convolution.ipynb" in page
    index = (out / "index.html").read_text()
    assert "github.com/ada/course" in index
    assert "no install cell yet" in index and "01_convolution.ipynb" in index.split("no install cell yet")[1]
    assert "00_start_here.ipynb" not in index.split("no install cell yet")[1].split("</div>")[0]
    teaching = (out / "teaching.html").read_text()
    assert 'href="https://github.com/ada/course/blob/dev/benchmarks/README.md"' in teaching
    assert site.broken_links(out) == []


def test_a_warning_fails_the_build(tmp_path):
    notebooks = two_notebooks(tmp_path / "nbs")
    write_notebook(notebooks[1], "01 — Convolution", link_to="07_not_there.ipynb#nowhere")
    with pytest.raises(site.SiteError, match="07_not_there"):
        site.build_site(notebooks, tmp_path / "site", work_dir=tmp_path / "work")


def test_student_copies_and_other_files_are_not_published(tmp_path):
    from cnncourse.course import exercises as ex

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    nb.cells = [nbformat.v4.new_markdown_cell("# 01 — Sizes"),
                ex.solution_cell("01.1", "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION")]
    nb.cells[1].source = "def f():\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    path = tmp_path / "01_sizes.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match="student copy"):
        site.build_site([path], tmp_path / "site", work_dir=tmp_path / "work")
    other = tmp_path / "notes.ipynb"
    other.write_text("{}")
    with pytest.raises(ValueError, match="not a course notebook"):
        site.build_site([other], tmp_path / "site", work_dir=tmp_path / "work")
    with pytest.raises(ValueError, match="repo must be owner/name"):
        site.build_site([], tmp_path / "site", repo="not a repo")
    assert not (tmp_path / "site").exists()


def test_only_a_folder_an_earlier_build_made_is_emptied(tmp_path):
    notebooks = two_notebooks(tmp_path / "nbs")
    out = tmp_path / "site"
    out.mkdir()
    (out / "thesis.tex").write_text("mine")
    with pytest.raises(site.SiteError, match="holds files this build did not write"):
        site.build_site(notebooks, out, work_dir=tmp_path / "work")
    assert (out / "thesis.tex").read_text() == "mine"
    (out / "mathjax").mkdir()  # what the hand-written generator this book replaced left in build/site
    (out / "mathjax" / "MathJax.js").write_text("MathJax 2")
    site.build_site(notebooks, out, work_dir=tmp_path / "work")
    assert not (out / "thesis.tex").exists() and (out / "index.html").is_file()


def test_broken_links_are_found(tmp_path):
    out = tmp_path / "site"
    out.mkdir()
    (out / "a.html").write_text('<h1 id="top">A</h1><a href="b.html#part">ok</a><a href="#top">ok</a>'
                                '<a href="https://keras.io">ok</a><img src="data:image/png;base64,AA">')
    (out / "b.html").write_text('<h2 id="part">B</h2><a href="a.html#missing">x</a><img src="figs/missing.png">'
                                '<a href="../outside.html">x</a><a href="#nowhere">x</a>')
    (tmp_path / "outside.html").write_text("outside the site")
    (out / "_static").mkdir()
    (out / "_static" / "macros.html").write_text('<a href="{{ pathto(x) }}">a template</a>')
    assert sorted(site.broken_links(out)) == [
        "b.html: #nowhere", "b.html: ../outside.html", "b.html: a.html#missing", "b.html: figs/missing.png"]


def test_install_cell_is_first_idempotent_and_keeps_the_rest(tmp_path):
    path = two_notebooks(tmp_path / "nbs")[1]
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


def test_install_cell_does_nothing_and_prints_nothing_where_installed(tmp_path):
    from nbclient import NotebookClient

    path = two_notebooks(tmp_path / "nbs")[1]
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


def test_cli_builds_in_the_working_directory_and_writes_install_cells(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(site.REPO_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    two_notebooks(tmp_path / "notebooks")
    (tmp_path / "README.md").write_text(README)
    assert site.cli(["--repo", "ada/course"]) == 0
    assert "4 page(s) in build/site/" in capsys.readouterr().out
    assert (tmp_path / "build" / "site" / "teaching.html").is_file()  # the working directory's, not the package's
    assert site.cli(["--install-cells", "--repo", "ada/course"]) == 0
    assert all(site.has_install_cell(nbformat.read(p, as_version=4)) for p in (tmp_path / "notebooks").iterdir())
    assert site.cli(["--repo", "https://gitlab.com/a/b"]) == 2
    assert "expected owner/name" in capsys.readouterr().err


def test_cli_with_nothing_to_do_exits_non_zero_and_says_why(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(site.REPO_ENV, raising=False)
    monkeypatch.chdir(tmp_path)  # no notebooks/ here
    assert site.cli([]) == 2
    assert "nothing to do" in capsys.readouterr().err
    assert not (tmp_path / "build").exists()


def test_module_entry_point_lists_site_student_and_grade():
    done = subprocess.run([sys.executable, "-m", "cnncourse", "--help"], capture_output=True, text=True)
    assert "  site" in done.stdout and "  student" in done.stdout and "  grade" in done.stdout


def test_course_book_every_page_and_link(tmp_path):
    """The real course: one page per notebook, built with -W, every link and fragment resolving."""
    notebooks = course_notebooks(NOTEBOOK_DIR)
    built = site.build_site(notebooks, tmp_path / "site", readme=NOTEBOOK_DIR.parent / "README.md",
                            work_dir=tmp_path / "work")
    assert [p.name for p in built.pages] == ["index.html", *(p.stem + ".html" for p in notebooks), "teaching.html"]
    assert all(p.stat().st_size > 0 for p in built.pages)
    assert site.broken_links(built.out_dir) == []
    assert not (built.out_dir / "student").exists() and not list(built.out_dir.rglob("*student*"))

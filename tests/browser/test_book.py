"""The course book as a reader sees it: ``make site``'s pages opened from disk in headless Chromium,
with every request that leaves the disk refused.

- every formula on every page is typeset by the book's own MathJax 3 (no MathJax error, and its
  fonts are loaded from disk, not replaced by the system's);
- the search box finds the softmax notebook for "cross-entropy", from the static index;
- the light/dark switch changes the page's colours, and the choice holds on the next page;
- every link a page shows resolves to a file of the book, and a ``#fragment`` to an element.

Screenshots go to ``build/book_02.png`` (notebook 02) and ``build/book_dark.png``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from cnncourse.course import site
from cnncourse.course.runner import NOTEBOOK_DIR, course_notebooks

pytestmark = pytest.mark.browser
pytest.importorskip("myst_nb", reason="the book's packages are in the test extra: pip install -e '.[test]'")

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build"
SOFTMAX = "02_softmax_cross_entropy.html"
# after the load event (deferred scripts have run): MathJax 3 is there where the page asks for it
# (pages without maths do not), and it has finished once its start-up promise resolves
MATHJAX_LOADED = "() => !document.querySelector('script[src*=mathjax]') || !!(window.MathJax && MathJax.startup)"
TYPESET = "() => window.MathJax && MathJax.startup ? MathJax.startup.promise.then(() => true) : true"
MATHS = """() => {
  const formulas = Array.from(document.querySelectorAll('.math'));
  return {
    formulas: formulas.length,
    untypeset: formulas.filter(f => !f.querySelector('mjx-container')).map(f => f.textContent.slice(0, 80)),
    errors: Array.from(document.querySelectorAll('mjx-merror')).map(e => e.closest('mjx-container')?.getAttribute('aria-label') || e.textContent),
    fonts: Array.from(document.fonts).filter(f => f.family.includes('MJX') && f.status === 'loaded').length,
  };
}"""
COLOURS = ("() => [document.documentElement.dataset.theme, getComputedStyle(document.body).backgroundColor,"
           " getComputedStyle(document.body).color]")


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """The real course book, as `make site` builds it (no repository address)."""
    tmp = tmp_path_factory.mktemp("book")
    return site.build_site(course_notebooks(NOTEBOOK_DIR), tmp / "site", readme=ROOT / "README.md",
                           work_dir=tmp / "work")


@pytest.fixture
def offline_page(browser):
    """A browser page that can read the disk and nothing else; ``page.refused`` lists the rest."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    refused: list[str] = []

    def only_local(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.refused = refused
    yield page
    page.close()


def pages_of(book) -> list[Path]:
    return [*book.pages, book.out_dir / "search.html", book.out_dir / "genindex.html"]


def test_every_page_typesets_every_formula_offline(book, offline_page):
    page = offline_page
    found = {}
    for path in pages_of(book):
        page.goto(path.as_uri())
        assert page.evaluate(MATHJAX_LOADED), f"{path.name}: MathJax did not load from the book's folder"
        page.evaluate(TYPESET)
        maths = page.evaluate(MATHS)
        assert maths["untypeset"] == [], f"{path.name}: formulas left as LaTeX: {maths['untypeset'][:5]}"
        assert maths["errors"] == [], f"{path.name}: MathJax could not typeset {maths['errors'][:5]}"
        if maths["formulas"]:
            assert maths["fonts"] > 0, f"{path.name}: MathJax's fonts did not load from the book's folder"
        found[path.name] = maths["formulas"]
        if path.name == SOFTMAX:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.locator("mjx-container[display=true]").first.scroll_into_view_if_needed()
            page.screenshot(path=str(SCREENSHOTS / "book_02.png"))
    assert page.refused == [], f"pages asked the network for: {sorted(set(page.refused))}"
    notebooks = {name: n for name, n in found.items() if name[:2].isdigit() and name[:2] != "00"}
    assert sum(found.values()) >= 1000 and min(notebooks.values()) >= 20, found
    print(f"{sum(found.values())} formulas typeset on {len(found)} pages: {found}")


def test_search_for_cross_entropy_finds_the_softmax_notebook(book, offline_page):
    page = offline_page
    page.goto((book.out_dir / "index.html").as_uri())
    page.locator("button.search-button-field:visible").first.click()
    field = page.locator("input[name=q]:visible").first
    field.fill("cross-entropy")
    field.press("Enter")
    page.wait_for_url("**/search.html?q=cross-entropy*")
    results = page.locator("#search-results ul.search li a").first
    results.wait_for(timeout=60_000)
    assert urlsplit(results.get_attribute("href")).path.endswith(SOFTMAX)
    assert "Softmax and cross-entropy" in results.inner_text()
    assert page.refused == []


def test_dark_mode_switch_changes_the_colours(book, offline_page):
    page = offline_page
    page.goto((book.out_dir / "04_activations_init.html").as_uri())
    page.evaluate(TYPESET)

    def choose(mode: str) -> list[str]:
        page.locator(".theme-switch-button:visible").first.click()
        page.locator(f".theme-change-button[data-mode={mode}]:visible").first.click()
        page.wait_for_function(f"document.documentElement.dataset.theme === '{mode}'")
        page.wait_for_timeout(400)  # the theme's colour transitions
        return page.evaluate(COLOURS)

    light = choose("light")
    dark = choose("dark")
    assert light[0] == "light" and dark[0] == "dark"
    assert dark[1] != light[1] and dark[2] != light[2], f"light {light}, dark {dark}"
    page.keyboard.press("Escape")  # close the menu for the screenshot
    page.screenshot(path=str(SCREENSHOTS / "book_dark.png"))
    page.goto((book.out_dir / "index.html").as_uri())  # the reader's choice holds on the next page
    assert page.evaluate(COLOURS) == dark
    assert choose("light") == light
    assert page.refused == []


def test_every_link_a_page_shows_resolves(book, offline_page):
    page = offline_page
    out = book.out_dir.resolve()
    checked, broken, ids = 0, [], {}
    for path in pages_of(book):
        page.goto(path.as_uri())
        for url in page.evaluate("() => Array.from(document.querySelectorAll('a[href], [src]'))"
                                 ".map(e => e.href || e.src)"):
            parts = urlsplit(url)
            if parts.scheme != "file":
                continue
            target = Path(unquote(parts.path))
            checked += 1
            if not target.is_file() or out not in target.parents:
                broken.append(f"{path.name}: {url}")
            elif parts.fragment and target.suffix == ".html":
                if target not in ids:
                    ids[target] = site._parse(target).ids
                if unquote(parts.fragment) not in ids[target]:
                    broken.append(f"{path.name}: {url}")
    assert broken == [], broken[:20]
    assert checked > 1000
    assert page.refused == []

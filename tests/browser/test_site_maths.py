"""Every formula of the course site is typeset offline: ``make site``'s pages opened from disk in
headless Chromium, with every request that leaves the disk refused, show MathJax output for each
LaTeX formula and not one MathJax error (MathJax 2 lacks some LaTeX, and the bundled copy lacks
its TeX fonts: both showed up here as "Math Processing Error"). A screenshot of notebook 02's
page goes to ``build/site_02.png``."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnncourse.course import site
from cnncourse.course.runner import NOTEBOOK_DIR, course_notebooks

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "build" / "site_02.png"
TYPESET_DONE = ("window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0 && !MathJax.Hub.queue.running"
                " && document.readyState === 'complete'")
# the LaTeX source of each formula MathJax failed on (it keeps the source in the next <script>)
FAILED_SOURCES = """() => Array.from(document.querySelectorAll('.MathJax .merror, .MathJax_Error')).map(error => {
    let node = error.closest('.MathJax, .MathJax_Display, .MathJax_Preview');
    while (node && node.tagName !== 'SCRIPT') node = node.nextElementSibling;
    return node ? node.textContent : error.textContent; })"""


def test_every_site_page_typesets_its_maths_without_a_network(browser, tmp_path):
    pytest.importorskip("jupyter_server_mathjax", reason="the site bundles MathJax from jupyter-server-mathjax")
    notebooks = course_notebooks(NOTEBOOK_DIR)
    out = tmp_path / "site"
    site.build_site(notebooks, out, repo=None)
    refused: list[str] = []

    def only_local(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    found, failed = {}, {}
    for notebook in notebooks:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        try:
            page.route("**/*", only_local)
            page.goto((out / f"{notebook.stem}.html").as_uri())
            page.wait_for_function(TYPESET_DONE, timeout=120_000)
            found[notebook.name] = page.locator("script[type^='math/tex']").count()  # formulas MathJax found
            typeset = page.locator(".MathJax, .MathJax_Display").count()
            assert typeset >= found[notebook.name], f"{notebook.name}: {typeset} of {found[notebook.name]} typeset"
            failed[notebook.name] = page.evaluate(FAILED_SOURCES)
            if notebook.name.startswith("02_"):
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                page.locator(".MathJax_Display").first.scroll_into_view_if_needed()
                page.screenshot(path=str(SCREENSHOT))
        finally:
            page.close()
    failed = {name: sources for name, sources in failed.items() if sources}
    assert failed == {}, f"formulas MathJax could not typeset: {failed}"
    assert refused == [], f"pages asked the network for: {sorted(set(refused))}"
    assert sum(found.values()) >= 500 and min(n for name, n in found.items() if name[:2] != "00") >= 20, found

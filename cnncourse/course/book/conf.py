"""Sphinx configuration of the course book (``make site``).

The stack is Jupyter Book 1's: Sphinx, MyST-NB (a notebook is a page showing its stored
outputs; nothing is executed) and the Sphinx Book Theme (navigation sidebar, per-page
contents, full-text search, light and dark themes, download and launch buttons). Jupyter
Book 2 (mystmd) is not used because it fetches its theme from the network at build time.
``cnncourse.course.site`` copies this folder into the book's source folder beside the
notebooks and the pages it writes (the landing page with the course map, the teaching notes),
and writes ``book_settings.json`` with what changes between builds: the repository's address.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

_settings = json.loads((Path(__file__).parent / "book_settings.json").read_text(encoding="utf-8"))


def _mathjax_static() -> str:
    """The folder holding ``mathjax/`` (MathJax 3 with its fonts) of ``sphinx-mathjax-offline``.

    The package is used as a file bundle only (its own Sphinx hook copies after the build and
    sets the path behind Sphinx's back); Sphinx copies the folder with the theme's static files.
    """
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    folder = Path(spec.origin).parent / "static" if spec and spec.origin else None
    if folder is None or not (folder / "mathjax" / "tex-chtml.js").is_file():
        raise RuntimeError("the book typesets its maths with a local MathJax 3: pip install sphinx-mathjax-offline")
    return str(folder)


project = "Convolutional neural networks in Keras 3"
author = "the cnncourse authors"
copyright = "the cnncourse authors"  # noqa: A001 - Sphinx's name for it
root_doc = "index"
language = "en"
extensions = ["myst_nb"]
exclude_patterns = ["book_settings.json", "**.ipynb_checkpoints"]

# --- notebooks: the stored outputs, never executed -------------------------------------------------
nb_execution_mode = "off"
nb_merge_streams = True
nb_render_markdown_format = "myst"  # Markdown outputs (the course map in 00) link to pages like the text does
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# --- maths: MathJax 3 from the book's own folder, no CDN -------------------------------------------
mathjax_path = "mathjax/tex-chtml.js"

# --- HTML ---------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "CNNs in Keras 3"
html_static_path = ["_static", _mathjax_static()]
html_js_files = ["cnncourse.js"]
html_last_updated_fmt = None
html_copy_source = True  # _sources/NN_name.ipynb: what each page's download button links
html_show_sourcelink = False
html_context = {"default_mode": "auto"}  # follow the reader's system; the switch picks light or dark
html_theme_options = {
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "use_download_button": True,
    "use_fullscreen_button": True,
}
if _settings.get("repo"):  # launch buttons only where they lead somewhere: a public GitHub repository
    html_theme_options |= {
        "repository_url": f"https://github.com/{_settings['repo']}",
        "repository_branch": _settings.get("branch", "main"),
        "path_to_docs": "notebooks",
        "use_repository_button": True,
        "launch_buttons": {"colab_url": "https://colab.research.google.com",
                           "binderhub_url": "https://mybinder.org",
                           "notebook_interface": "jupyterlab"},
    }

"""Repository-wide pytest configuration.

Notebook tests (nbval) run every notebook in the ``smoke`` profile so the whole course is
checked in minutes; the kernels nbval starts inherit this process's environment.
Set ``CNNCOURSE_TEST_PROFILE`` to test the notebooks in another profile.
"""

import os

os.environ["CNNCOURSE_PROFILE"] = os.environ.get("CNNCOURSE_TEST_PROFILE", "smoke")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's C++ log lines out of outputs
os.environ.setdefault("PYTHONHASHSEED", "0")
os.environ.setdefault("MPLBACKEND", "agg")

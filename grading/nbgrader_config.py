"""nbgrader's configuration for this course: run ``nbgrader`` from this folder (or ``make grade``).

The course directory is this folder. ``source/NN_name/NN_name.ipynb`` are links to
``../notebooks/``: the course notebooks, with their reference solutions and nbgrader's cell
metadata, are the assignments' sources as they are, so there is nothing to keep in step.
nbgrader writes ``release/``, ``submitted/``, ``autograded/``, ``feedback/`` and
``gradebook.db`` here (ignored by git).

Autograding runs every notebook top to bottom in a kernel of the Python running nbgrader (the
course's ``.venv``). It runs in the ``smoke`` profile unless ``$CNNCOURSE_PROFILE`` says
otherwise: the checks grade the student's code, not the training results, and every check
passes in ``smoke`` (the course's tests run them there), which takes about a minute per
notebook instead of up to 15 in ``cpu``. nbgrader's default cell timeout, 30 s, is too short
for the course: in ``cpu`` notebook 04's cell 37 takes about 116 s and notebook 08's longest
cell 704 s (2 shared cores), so autograding left timeout errors in the feedback. The timeout
below is per profile: 600 s in ``smoke`` (what the course's notebook tests allow a cell), 1800 s
in ``cpu`` and ``gpu``.
"""

import os

c = get_config()  # noqa: F821 - nbgrader's config loader defines it

PROFILE = os.environ.setdefault("CNNCOURSE_PROFILE", "smoke")  # the kernels inherit it
CELL_TIMEOUT_S = {"smoke": 600, "cpu": 1800, "gpu": 1800}

c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.course_id = "cnncourse"
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(c.CourseDirectory.root, "gradebook.db")

c.Execute.kernel_name = "python3"  # the Python that runs nbgrader (make grade: the course's .venv)
c.Execute.timeout = CELL_TIMEOUT_S.get(PROFILE, 1800)
# a cell past the timeout is interrupted (0 points, the error in the feedback); the later cells still run
c.Execute.interrupt_on_timeout = True

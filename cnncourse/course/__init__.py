"""The course tooling: the notebook runner behind ``make course``, the course map, the environment
doctor, exercises, student copies, the book (``site``), the nbgrader grading loop and the
benchmarks command."""

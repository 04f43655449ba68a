"""The course tooling: the notebook runner behind ``make course``, the course map, the environment
doctor, exercises, student copies, the site and the benchmarks command."""

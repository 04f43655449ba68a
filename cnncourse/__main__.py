"""``python -m cnncourse doctor | data | models | run | bench | student | site | gpu-check | grade``: the course's command line.

Each subcommand lives in the module that owns the work (``cnncourse.data.cli`` and so on);
this file only dispatches, so ``python -m cnncourse data where`` does not import Keras.
"""

from __future__ import annotations

import importlib
import os
import sys

# subcommand → (module, one-line help)
COMMANDS = {
    "doctor": ("cnncourse.course.doctor", "versions, device, profile, and which datasets are present and verified"),
    "data": ("cnncourse.data", "fetch | verify | where: manage the dataset cache"),
    "models": ("cnncourse.models", "list every architecture builder with parameters and multiply-adds"),
    "run": ("cnncourse.course.runner", "execute the notebooks in the active profile, write build/"),
    "bench": ("cnncourse.course.bench", "run the benchmarks in ./benchmarks (or --dir), rewrite their results/*.md"),
    "student": ("cnncourse.course.student", "write student/ copies of the notebooks: solutions cleared, outputs removed"),
    "site": ("cnncourse.course.site", "build the course book (Sphinx) from the notebooks' stored outputs in build/site/"),
    "gpu-check": ("cnncourse.course.gpu_check", "run every notebook in the gpu profile on a GPU within a time budget; record the times"),
    "grade": ("cnncourse.course.grading", "run nbgrader's loop for one assignment in grading/: release, autograde, feedback"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: python -m cnncourse COMMAND [ARGS]   (help COMMAND: that command's options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def _run(command: str, rest: list[str]) -> int:
    module = importlib.import_module(COMMANDS[command][0])
    try:
        return int(module.cli(rest) or 0)
    except SystemExit as exc:  # argparse's --help and usage errors: their status, not an escape
        if exc.code is None or isinstance(exc.code, int):
            return int(exc.code or 0)
        print(exc.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"python -m cnncourse {command}: interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a subcommand; ``help COMMAND`` (or ``COMMAND --help``) shows that command's options."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] == "help" and len(args) > 1:
        args = [args[1], "--help"]
    if not args or args[0] in {"-h", "--help", "help"}:
        print(usage())
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"unknown command {command!r}; valid commands: {', '.join(COMMANDS)}\n", file=sys.stderr)
        print(usage(), file=sys.stderr)
        return 2
    return _run(command, rest)


def _entry() -> None:
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # `python -m cnncourse models | head`: the reader left, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    _entry()

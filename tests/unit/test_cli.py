"""`python -m cnncourse`: dispatch, help and errors (each subcommand is tested with its module)."""

import subprocess
import sys

import pytest

from cnncourse import __main__ as cli


def test_help_lists_every_command(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    for name in ("doctor", "data", "models", "run", "bench"):
        assert f"  {name}" in out


def test_unknown_command_is_an_error(capsys):
    assert cli.main(["train-everything"]) == 2
    assert "valid commands: doctor, data, models, run, bench" in capsys.readouterr().err


def test_bench_rejects_unknown_benchmark(capsys):
    assert cli.main(["bench", "no-such-benchmark"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["doctor", "data", "models", "run", "bench"])
def test_every_subcommand_module_has_a_cli(command):
    import importlib

    module = importlib.import_module(cli.COMMANDS[command][0])
    assert callable(module.cli)


def test_module_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "cnncourse", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "usage: python -m cnncourse" in done.stdout

"""`python -m cnncourse`: dispatch, help and errors (each subcommand is tested with its module)."""

import subprocess
import sys
from pathlib import Path

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
    benchmarks = Path(__file__).resolve().parents[2] / "benchmarks"
    assert cli.main(["bench", "--dir", str(benchmarks), "no-such-benchmark"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["doctor", "data", "models", "run", "bench"])
def test_every_subcommand_module_has_a_cli(command):
    import importlib

    module = importlib.import_module(cli.COMMANDS[command][0])
    assert callable(module.cli)


def test_module_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "cnncourse", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "usage: python -m cnncourse" in done.stdout


def test_bench_with_no_benchmark_scripts_fails_and_says_where_it_looked(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # an installed package has no benchmarks/ folder beside it
    assert cli.main(["bench"]) != 0
    err = capsys.readouterr().err
    assert str(tmp_path / "benchmarks") in err and "--dir" in err
    (tmp_path / "empty").mkdir()
    assert cli.main(["bench", "--dir", str(tmp_path / "empty")]) != 0
    assert "no benchmark scripts" in capsys.readouterr().err


def test_bench_runs_the_scripts_of_dir_and_they_write_there(tmp_path, monkeypatch, capsys):
    scripts = tmp_path / "mine"
    scripts.mkdir()
    (scripts / "hello.py").write_text(
        "import sys\nfrom pathlib import Path\n"
        "out = Path(__file__).parent / 'results'\nout.mkdir(exist_ok=True)\n"
        "(out / 'hello.md').write_text(' '.join(sys.argv[1:]))\n"
    )
    (scripts / "broken.py").write_text("raise SystemExit(3)\n")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cli.main(["bench", "--dir", str(scripts), "hello"]) == 0
    assert (scripts / "results" / "hello.md").read_text() == "--write"
    assert cli.main(["bench", "--dir", str(scripts)]) == 1
    assert "failed: broken" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    (tmp_path / "benchmarks").symlink_to(scripts)
    assert cli.main(["bench", "--no-write", "hello"]) == 0  # ./benchmarks by default


def test_help_for_a_command_shows_that_command_s_options(capsys):
    assert cli.main(["help", "data"]) == 0
    assert "--force" in capsys.readouterr().out


def test_an_interrupt_or_a_closed_pipe_is_an_exit_status_not_a_traceback(monkeypatch, capsys, tmp_path):
    import os

    from cnncourse.course import bench

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench, "cli", interrupted)
    assert cli.main(["bench"]) == 130
    assert "interrupted" in capsys.readouterr().err

    class ClosedPipe:
        """stdout whose reader has gone (`python -m cnncourse models | head -1`)."""

        def __init__(self):
            self.fd = os.open(tmp_path / "sink", os.O_WRONLY | os.O_CREAT)

        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

        def fileno(self):
            return self.fd

    pipe = ClosedPipe()
    monkeypatch.setattr("sys.stdout", pipe)
    monkeypatch.setattr("sys.argv", ["cnncourse", "help"])
    try:
        with pytest.raises(SystemExit) as exc:
            cli._entry()
    finally:
        os.close(pipe.fd)
    assert exc.value.code == 1

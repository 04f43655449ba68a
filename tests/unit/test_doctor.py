"""``python -m cnncourse doctor``: reports the environment and every dataset, fails only when broken."""

from __future__ import annotations

import os

import pytest

import cnncourse
from cnncourse import data
from cnncourse.data import lookup
from cnncourse.course import doctor


def test_doctor_reports_environment_and_missing_datasets_with_fixes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CNNCOURSE_DATA", str(tmp_path))
    monkeypatch.setattr(lookup, "cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr(lookup, "SYSTEM_DIRS", ())
    assert doctor.cli([]) == 0  # missing datasets are not an error
    out = capsys.readouterr().out
    assert cnncourse.environment_line() in out
    assert f"profile:       {cnncourse.profile().name}" in out
    assert "Keras backend:" in out and "device:" in out
    for title in ("MNIST", "Fashion-MNIST", "CIFAR-10"):
        assert f"  {title:<14} missing" in out
    assert "apt-get install dataset-fashion-mnist" in out and "data fetch cifar10" in out
    assert "no dataset is available" in out and str(tmp_path) in out


def test_doctor_reports_a_present_dataset_and_where(tmp_path, monkeypatch, capsys):
    fashion = tmp_path / "fashion-mnist"
    fashion.mkdir()
    for name in data.info("fashion_mnist").files:
        (fashion / f"{name}.gz").write_bytes(b"not the data")
    monkeypatch.setenv("CNNCOURSE_DATA", str(tmp_path))
    monkeypatch.setattr(lookup, "cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr(lookup, "SYSTEM_DIRS", ())
    assert doctor.cli(["--quick"]) == 0
    assert f"present (not hashed: --quick) in {fashion}" in capsys.readouterr().out
    assert doctor.cli([]) == 0  # corrupt files are reported, not fatal for the environment
    out = capsys.readouterr().out
    assert "Fashion-MNIST  PROBLEM: 4 file(s) failed verification" in out and str(fashion) in out


def test_doctor_fails_when_the_environment_is_broken(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise ImportError("no backend")

    monkeypatch.setattr(cnncourse, "environment_line", broken)
    assert doctor.cli([]) == 1
    err = capsys.readouterr().err
    assert "BROKEN" in err and "no backend" in err and "make setup" in err


@pytest.mark.skipif(not os.environ.get("CNNCOURSE_DATA"), reason="set CNNCOURSE_DATA to a directory holding Fashion-MNIST")
def test_doctor_reports_an_unreadable_file_and_does_not_crash(tmp_path, monkeypatch, capsys):
    import io
    from pathlib import Path

    monkeypatch.setattr(lookup, "cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr(lookup, "SYSTEM_DIRS", ())
    denied = data.where("fashion_mnist")["train-labels-idx1-ubyte"]
    real_open = io.open

    def guarded(file, *args, **kwargs):
        if isinstance(file, (str, Path)) and Path(file) == denied:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(io, "open", guarded)
    assert doctor.cli([]) == 0
    out = capsys.readouterr().out
    assert "Fashion-MNIST  PROBLEM" in out and "cannot be read" in out and str(denied) in out


def test_doctor_names_a_broken_manifest_and_a_data_folder_that_does_not_exist(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CNNCOURSE_DATA", str(tmp_path / "typo"))
    monkeypatch.setattr(lookup, "cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr(lookup, "SYSTEM_DIRS", ())
    assert doctor.cli(["--quick"]) == 0
    assert f"{tmp_path / 'typo'} (does not exist)" in capsys.readouterr().out
    broken = tmp_path / "manifest.json"
    broken.write_text("{not json")
    monkeypatch.setenv("CNNCOURSE_MANIFEST", str(broken))
    data.clear_cache()
    try:
        assert doctor.cli([]) == 1
    finally:
        monkeypatch.delenv("CNNCOURSE_MANIFEST")
        data.clear_cache()
    captured = capsys.readouterr()
    assert str(broken) in captured.err and "Traceback" not in captured.err

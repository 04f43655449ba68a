"""The result caches' atomic JSON writer."""

import json

import pytest

from cnncourse.experiments.cache import write_json


def test_write_json_round_trips_and_leaves_no_temporary_file(tmp_path):
    path = write_json(tmp_path / "sub" / "table.json", {"a": [1, 2.5], "b": "x"})
    assert json.loads(path.read_text()) == {"a": [1, 2.5], "b": "x"}
    assert [p.name for p in path.parent.iterdir()] == ["table.json"]


def test_a_failed_write_keeps_the_previous_file_whole(tmp_path):
    path = write_json(tmp_path / "table.json", {"old": 1})
    with pytest.raises(TypeError):
        write_json(path, {"new": object()})  # not serialisable
    assert json.loads(path.read_text()) == {"old": 1}
    assert not (tmp_path / "table.json.tmp").exists()

"""The one result cache: atomic per-process writes, a key that names everything, one line for anything unusable."""

import json
import os

import keras
import numpy as np
import pytest

from cnncourse.backend import device_kind
from cnncourse.data import Split
from cnncourse.experiments import cache
from cnncourse.experiments.cache import FORMAT, ResultCache, write_json
from cnncourse.profiles import Experiment


def split(name="toy", seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(20, 4, 4, 1)).astype("float32")
    y = (np.arange(20) % 2).astype("int32")
    return Split(name, x, y, x[:8], y[:8], ("a", "b"))


RUN = Experiment(20, 8, epochs=1, batch_size=4)


def test_write_json_round_trips_and_leaves_no_temporary_file(tmp_path):
    path = write_json(tmp_path / "sub" / "table.json", {"a": [1, 2.5], "b": "x"})
    assert json.loads(path.read_text()) == {"a": [1, 2.5], "b": "x"}
    assert [p.name for p in path.parent.iterdir()] == ["table.json"]


def test_a_failed_write_keeps_the_previous_file_whole(tmp_path):
    path = write_json(tmp_path / "table.json", {"old": 1})
    with pytest.raises(TypeError):
        write_json(path, {"new": object()})  # not serialisable
    assert json.loads(path.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["table.json"]


def test_two_writers_at_once_do_not_collide(tmp_path, monkeypatch):
    """A fixed temporary name let writer B rename writer A's file away: A then failed."""
    real, calls = os.replace, []

    def replace(src, dst):
        if not calls:  # B writes the same target while A is between its write and its rename
            calls.append(src)
            write_json(tmp_path / "t.json", {"writer": "B"})
        real(src, dst)

    monkeypatch.setattr(cache.os, "replace", replace)
    write_json(tmp_path / "t.json", {"writer": "A"})
    assert json.loads((tmp_path / "t.json").read_text()) == {"writer": "A"}
    assert str(os.getpid()) in os.path.basename(calls[0])  # the temporary name is this process's
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]


def test_the_key_names_recipe_sizes_data_backend_device_and_format():
    key = cache.key(config={"lr": 0.1, "shape": (1, 2)}, sizes=RUN, split=split())
    assert key["config"] == {"lr": 0.1, "shape": [1, 2]}
    assert key["sizes"]["epochs"] == 1 and key["sizes"]["batch_size"] == 4 and key["sizes"]["train_size"] == 20
    assert key["dataset"] == "toy" and key["fingerprint"] == split().fingerprint
    assert key["backend"] == keras.backend.backend() and key["device"] == device_kind() and key["format"] == FORMAT
    assert cache.key(config={"lr": 0.1, "shape": (1, 2)}, sizes=RUN, split=split(seed=1)) != key
    assert cache.key(config={"lr": 0.1, "shape": (1, 2)}, sizes=RUN, split=split(name="other")) != key
    with pytest.raises(ValueError, match="Split"):
        cache.key(config={}, sizes=RUN, split=object())
    with pytest.raises(ValueError, match="JSON"):
        cache.key(config={"f": object()}, sizes=RUN, split=split())


def test_get_returns_only_what_was_stored_under_an_equal_key(tmp_path):
    path, lines = tmp_path / "c.json", []
    key = cache.key(config={"lr": 0.1}, sizes=RUN, split=split())
    store = ResultCache(path, report=lines.append)
    assert store.get("a", key) is None and not lines  # nothing yet: nothing to report
    store.put("a", key, {"acc": 0.9})
    store.put("b", key, {"acc": 0.8})
    again = ResultCache(path, report=lines.append)
    assert again.get("a", key) == {"acc": 0.9} and again.get("b", key) == {"acc": 0.8}
    other = cache.key(config={"lr": 0.1}, sizes=RUN, split=split(seed=1))
    assert again.get("a", other) is None
    assert len(lines) == 1 and "fingerprint" in lines[0] and "training again" in lines[0]
    assert ResultCache(path, recompute=True).get("a", key) is None


@pytest.mark.parametrize(
    "text, reason",
    [("", "is empty"), ('{"format": 3, "ent', "not valid JSON"), ("[1, 2]", "not a cnncourse result cache"), ('{"key": {}, "rows": {}}', "older cnncourse"),
     ('{"format": 2, "entries": {}}', "cache format 2"), ('{"format": 3, "entries": []}', "damaged"),
     ('{"format": 3, "entries": {"a": 1}}', "entry 'a' is damaged"),
     ('{"format": 3, "entries": {"a": {"key": {}}}}', "entry 'a' is damaged")],
)
def test_anything_unusable_is_reported_in_one_line(tmp_path, text, reason):
    path, lines = tmp_path / "c.json", []
    path.write_text(text)
    key = cache.key(config={}, sizes=RUN, split=split())
    assert ResultCache(path, report=lines.append).get("a", key) is None
    assert len(lines) == 1 and reason in lines[0] and str(path) in lines[0]


def test_a_record_that_does_not_decode_is_reported_and_not_returned(tmp_path):
    path, lines = tmp_path / "c.json", []
    key = cache.key(config={}, sizes=RUN, split=split())
    ResultCache(path).put("a", key, {"x": 1})

    def decode(payload):
        return payload["y"]  # KeyError: a record of another shape

    assert ResultCache(path, report=lines.append).get("a", key, decode) is None
    assert len(lines) == 1 and "KeyError" in lines[0]


def test_an_unreadable_file_is_reported(tmp_path):
    path, lines = tmp_path / "c.json", []
    path.mkdir()  # reading a folder raises IsADirectoryError, as a file without permission would
    assert ResultCache(path, report=lines.append).get("a", {}) is None
    assert len(lines) == 1 and "cannot be read" in lines[0]


def test_put_keeps_entries_another_process_wrote_meanwhile(tmp_path):
    path = tmp_path / "c.json"
    key = cache.key(config={}, sizes=RUN, split=split())
    mine, theirs = ResultCache(path), ResultCache(path)
    theirs.put("theirs", key, 1)
    mine.put("mine", key, 2)
    final = ResultCache(path)
    assert final.get("theirs", key) == 1 and final.get("mine", key) == 2

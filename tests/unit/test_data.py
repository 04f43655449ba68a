"""Tests of cnncourse.data: lookup, verification before parsing, downloads, subsets, pipelines.

Fashion-MNIST is tested on the real files from ``$CNNCOURSE_DATA``. MNIST (IDX .gz) and
CIFAR-10 (python pickle batches) are tested on small files in their real formats that the
tests write themselves, with a manifest of their own (``$CNNCOURSE_MANIFEST``), and downloads
come from ``file://`` URLs, so nothing here needs a network.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import tarfile
from pathlib import Path

import keras
import numpy as np
import pytest

from cnncourse import data
from cnncourse.data import download, lookup

FASHION = pytest.mark.skipif(
    not os.environ.get("CNNCOURSE_DATA"), reason="set CNNCOURSE_DATA to a directory holding Fashion-MNIST"
)
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
ROLES = dict(zip(MNIST_FILES, ("train_images", "train_labels", "test_images", "test_labels")))
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# ------------------------------------------------------------------ small real-format files
def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def make_mnist(rng: np.random.Generator, n_train: int = 40, n_test: int = 20) -> dict[str, np.ndarray]:
    y_tr = np.tile(np.arange(10, dtype=np.uint8), n_train // 10)
    y_te = np.tile(np.arange(10, dtype=np.uint8), n_test // 10)
    rng.shuffle(y_tr)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": y_tr,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": y_te,
    }


def cifar_batch_bytes(images: np.ndarray, labels: list[int]) -> bytes:
    """A batch as CIFAR-10 ships it: a dict with bytes keys, rows of R, G, B planes."""
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    obj = {b"batch_label": b"testing batch", b"labels": labels, b"data": rows, b"filenames": [b"x.png"] * len(labels)}
    return pickle.dumps(obj, protocol=2)


def make_cifar(rng: np.random.Generator, per_batch: int = 10) -> tuple[dict[str, bytes], np.ndarray, np.ndarray]:
    payloads, images, labels = {}, [], []
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]:
        x = rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, per_batch)]
        payloads[name] = cifar_batch_bytes(x, y)
        images.append(x)
        labels.append(y)
    meta = {b"num_cases_per_batch": per_batch, b"label_names": [c.encode() for c in CIFAR_CLASSES], b"num_vis": 3072}
    payloads["batches.meta"] = pickle.dumps(meta, protocol=2)
    return payloads, np.concatenate(images), np.concatenate([np.array(v) for v in labels])


class Evil:
    """A pickle payload whose loading would run code: creates the sentinel directory."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.mkdir, (str(self.sentinel),))


@pytest.fixture
def env(tmp_path, monkeypatch):
    """An isolated world: a user dir ($CNNCOURSE_DATA), a cache, a 'server' dir, no system dirs."""
    user, cache, server = tmp_path / "user", tmp_path / "cache", tmp_path / "server"
    for d in (user, cache, server):
        d.mkdir()
    monkeypatch.setenv("CNNCOURSE_DATA", str(user))
    monkeypatch.setattr(lookup, "cache_dir", lambda: cache)
    monkeypatch.setattr(lookup, "SYSTEM_DIRS", ())
    data.clear_cache()

    class World:
        pass

    w = World()
    w.user, w.cache, w.server, w.tmp = user, cache, server, tmp_path
    w.manifest = {"format": 1, "datasets": {}}

    def write_manifest():
        path = tmp_path / "manifest.json"
        path.write_text(json.dumps(w.manifest))
        monkeypatch.setenv("CNNCOURSE_MANIFEST", str(path))
        data.clear_cache()
        return path

    w.write_manifest = write_manifest
    yield w
    data.clear_cache()


def add_mnist(w, arrays, *, payload_digest=True, archive_digest=False, place="user") -> dict[str, bytes]:
    """Register a test 'mnist' in the manifest; put the .gz files in the user dir or the server."""
    files, gz = {}, {}
    for name, arr in arrays.items():
        raw = idx_bytes(arr)
        gz[name] = gzip.compress(raw, mtime=0)
        entry = {"role": ROLES[name], "url": (w.server / f"{name}.gz").as_uri()}
        if payload_digest:
            entry["payload"] = {"sha256": sha256(raw)}
        if archive_digest:
            entry["archive"] = {"md5": md5(gz[name]), "sha256": sha256(gz[name])}
        files[name] = entry
        target = (w.user / "mnist") if place == "user" else w.server
        target.mkdir(exist_ok=True)
        (target / f"{name}.gz").write_bytes(gz[name])
    w.manifest["datasets"]["mnist"] = {
        "title": "MNIST", "format": "idx", "folders": ["mnist", "MNIST"], "class_names": [str(i) for i in range(10)],
        "image_shape": [28, 28, 1], "train_size": 60000, "test_size": 10000, "homepage": "h", "citation": "c",
        "files": files,
    }
    w.write_manifest()
    return gz


def add_cifar(w, payloads, *, place="user") -> Path:
    member_dir = "cifar-10-batches-py"
    tar_path = w.server / "cifar-10-python.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for name, blob in payloads.items():
            info = tarfile.TarInfo(f"{member_dir}/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    if place == "user":
        (w.user / member_dir).mkdir()
        for name, blob in payloads.items():
            (w.user / member_dir / name).write_bytes(blob)
    roles = {"batches.meta": "meta", "test_batch": "test"}
    w.manifest["datasets"]["cifar10"] = {
        "title": "CIFAR-10", "format": "cifar_pickle", "folders": [member_dir, "cifar10"],
        "class_names": CIFAR_CLASSES, "image_shape": [32, 32, 3], "train_size": 50000, "test_size": 10000,
        "homepage": "h", "citation": "c",
        "archive": {"url": tar_path.as_uri(), "member_dir": member_dir, "digests": {"md5": md5(tar_path.read_bytes())}},
        "files": {n: {"role": roles.get(n, "train"), "payload": {"md5": md5(b)}} for n, b in payloads.items()},
    }
    w.write_manifest()
    return tar_path


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.rglob("*") if p.name.startswith(".cnncourse-download") or p.suffix == ".part"]


# ----------------------------------------------------------------------- Fashion-MNIST
@FASHION
def test_fashion_mnist_matches_published_facts():
    (x, y), (xt, yt) = data.load("fashion_mnist", download=False)
    assert x.shape == (60000, 28, 28) and xt.shape == (10000, 28, 28)
    assert x.dtype == np.uint8 and y.shape == (60000,) and yt.shape == (10000,)
    np.testing.assert_array_equal(np.bincount(y), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(yt), [1000] * 10)
    pixels = x.astype(np.float64) / 255.0
    assert round(pixels.mean(), 4) == 0.2860 and round(pixels.std(), 4) == 0.3530
    assert int(y[0]) == 9  # the first training image is an ankle boot, as in keras.datasets
    assert x.flags.writeable  # load() hands out copies: the memoized arrays stay intact


@FASHION
def test_fashion_mnist_is_verified_and_located():
    checks = data.verify("fashion_mnist")
    assert [c.status for c in checks] == ["verified"] * 4
    assert all(c.sha256 and c.path is not None and c.path.is_file() for c in checks)
    assert data.available("fashion_mnist")
    assert data.info("fashion_mnist").class_names[9] == "Ankle boot"


@FASHION
def test_load_split_is_balanced_deterministic_and_shaped():
    a = data.load_split("fashion_mnist", train_size=1000, test_size=500, seed=3)
    b = data.load_split("fashion_mnist", train_size=1000, test_size=500, seed=3)
    c = data.load_split("fashion_mnist", train_size=1000, test_size=500, seed=4)
    np.testing.assert_array_equal(np.bincount(a.y_train), [100] * 10)
    np.testing.assert_array_equal(np.bincount(a.y_test), [50] * 10)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)
    assert a.x_train.dtype == np.float32 and a.y_train.dtype == np.int32
    assert a.input_shape == (28, 28, 1) and a.num_classes == 10 and 0.0 <= a.x_train.min() <= a.x_train.max() <= 1.0

    p = data.load_split("fashion_mnist", train_size=1000, test_size=500, seed=3, image_size=32, channels=3)
    assert p.input_shape == (32, 32, 3)
    np.testing.assert_array_equal(p.x_train[:, 2:30, 2:30, 1], a.x_train[..., 0])  # zero-padding keeps pixels
    assert p.x_train[:, :2].max() == 0 and p.x_train[:, 30:].max() == 0 and p.x_train[:, :, :2].max() == 0
    np.testing.assert_array_equal(p.x_train[..., 0], p.x_train[..., 2])
    whole = data.load_split("fashion_mnist")
    assert whole.x_train.shape == (60000, 28, 28, 1) and whole.y_test.shape == (10000,)


def test_validation_split_is_carved_from_training_data_disjoint_and_balanced():
    plain = data.load_split("fashion_mnist", train_size=1000, test_size=500, seed=3)
    held = data.load_split("fashion_mnist", train_size=1000, test_size=500, seed=3, validation_size=2000)
    assert plain.x_val is None and not plain.has_validation and held.has_validation
    np.testing.assert_array_equal(np.bincount(held.y_val), [200] * 10)
    np.testing.assert_array_equal(np.bincount(held.y_train), [100] * 10)
    np.testing.assert_array_equal(held.x_test, plain.x_test)  # the test set does not move
    train_rows = {row.tobytes() for row in held.x_train.reshape(len(held.x_train), -1)}
    assert not any(row.tobytes() in train_rows for row in held.x_val.reshape(len(held.x_val), -1))
    assert "validation 2,000" in repr(held)
    every = data.load_split("fashion_mnist", test_size=10, validation_size=5000)
    assert len(every.x_train) == 55000  # train_size=None: everything that is not validation
    with pytest.raises(ValueError, match="validation_size"):
        data.load_split("fashion_mnist", validation_size=-1)
    with pytest.raises(ValueError, match="validation_size must leave"):
        data.load_split("fashion_mnist", validation_size=60000)
    with pytest.raises(ValueError, match="x_val and y_val"):
        data.Split("x", plain.x_train, plain.y_train, plain.x_test, plain.y_test, plain.class_names, x_val=plain.x_test)


def test_fingerprint_tells_subsets_apart_and_is_stable():
    a = data.load_split("fashion_mnist", train_size=500, test_size=100, seed=0)
    b = data.load_split("fashion_mnist", train_size=500, test_size=100, seed=0)
    c = data.load_split("fashion_mnist", train_size=500, test_size=100, seed=1)
    d = data.load_split("fashion_mnist", train_size=500, test_size=100, seed=0, validation_size=100)
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 16
    assert len({a.fingerprint, c.fingerprint, d.fingerprint}) == 3
    renamed = data.Split("mnist", a.x_train, a.y_train, a.x_test, a.y_test, a.class_names)
    assert renamed.fingerprint != a.fingerprint  # same arrays under another dataset's name


def test_bad_arguments_name_what_is_allowed():
    with pytest.raises(ValueError, match="mnist, fashion_mnist, cifar10"):
        data.load("imagenet")
    with pytest.raises(ValueError, match="channels must be None, 1 or 3"):
        data.load_split("fashion_mnist", channels=2)
    with pytest.raises(ValueError, match="image_size"):
        data.load_split("fashion_mnist", image_size=0)
    with pytest.raises(ValueError, match=r"integer in \[1, 10\]"):
        data.balanced_indices(np.arange(10) % 2, 11)
    with pytest.raises(ValueError, match="batch_size"):
        data.pipeline(np.zeros((4, 2)), np.zeros(4), 0)
    with pytest.raises(ValueError, match="same length"):
        data.pipeline(np.zeros((4, 2)), np.zeros(3), 2)


def test_balanced_indices_fill_from_other_classes_when_one_is_short():
    labels = np.array([0] * 2 + [1] * 50 + [2] * 50)
    idx = data.balanced_indices(labels, 30, seed=0)
    assert len(idx) == 30 and len(set(idx)) == 30 and list(idx) == sorted(idx)
    counts = np.bincount(labels[idx], minlength=3)
    assert counts[0] == 2 and counts.sum() == 30 and abs(int(counts[1]) - int(counts[2])) <= 10


# ------------------------------------------------------------------------- MNIST format
def test_mnist_idx_gz_loads_in_keras_layout(env):
    arrays = make_mnist(np.random.default_rng(0))
    add_mnist(env, arrays)
    assert data.available("mnist")
    (x, y), (xt, yt) = data.load("mnist", download=False)
    np.testing.assert_array_equal(x, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(y, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(xt, arrays["t10k-images-idx3-ubyte"])
    assert x.dtype == np.uint8 and y.shape == (40,) and xt.shape == (20, 28, 28)
    split = data.load_split("mnist", train_size=20, test_size=10, image_size=32)
    np.testing.assert_array_equal(np.bincount(split.y_train), [2] * 10)
    assert split.input_shape == (32, 32, 1)


def test_uncompressed_and_recompressed_copies_are_accepted_by_payload_digest(env):
    arrays = make_mnist(np.random.default_rng(1))
    add_mnist(env, arrays)
    folder = env.user / "mnist"
    # one file uncompressed, one recompressed at another level: same payload, both fine
    (folder / "train-images-idx3-ubyte.gz").unlink()
    (folder / "train-images-idx3-ubyte").write_bytes(idx_bytes(arrays["train-images-idx3-ubyte"]))
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(arrays["t10k-images-idx3-ubyte"]), compresslevel=1, mtime=123)
    )
    (x, _), (xt, _) = data.load("mnist", download=False)
    np.testing.assert_array_equal(x, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(xt, arrays["t10k-images-idx3-ubyte"])


def test_archive_digest_only_accepts_the_published_gz_and_refuses_other_copies(env):
    arrays = make_mnist(np.random.default_rng(2))
    add_mnist(env, arrays, payload_digest=False, archive_digest=True)
    data.load("mnist", download=False)  # the .gz files exactly as "published"
    data.clear_cache()
    path = env.user / "mnist" / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(arrays["train-labels-idx1-ubyte"]), compresslevel=1, mtime=99))
    with pytest.raises(data.ChecksumError, match="compressed file as published") as exc:
        data.load("mnist", download=False)
    assert str(path) in str(exc.value)
    path.unlink()
    (env.user / "mnist" / "train-labels-idx1-ubyte").write_bytes(idx_bytes(arrays["train-labels-idx1-ubyte"]))
    with pytest.raises(data.ChecksumError, match="cannot be verified") as exc:
        data.load("mnist", download=False)
    assert '"payload": {"sha256"' in str(exc.value)  # tells the user how to add a digest


def test_tampered_user_file_is_refused_named_and_left_alone(env):
    arrays = make_mnist(np.random.default_rng(3))
    add_mnist(env, arrays)
    path = env.user / "mnist" / "train-labels-idx1-ubyte.gz"
    labels = arrays["train-labels-idx1-ubyte"].copy()
    labels[0] = (labels[0] + 1) % 10  # one flipped label
    path.write_bytes(gzip.compress(idx_bytes(labels)))
    with pytest.raises(data.ChecksumError) as exc:
        data.load("mnist", download=False)
    message = str(exc.value)
    assert str(path) in message and sha256(idx_bytes(arrays["train-labels-idx1-ubyte"])) in message
    assert sha256(idx_bytes(labels)) in message and "data fetch" in message
    assert path.exists()  # a user's file is never deleted
    checks = {c.file: c.status for c in data.verify("mnist")}
    assert checks["train-labels-idx1-ubyte"] == "mismatch" and checks["train-images-idx3-ubyte"] == "verified"


def test_tampered_download_in_the_cache_is_refused_kept_and_replaced_by_fetch(env):
    arrays = make_mnist(np.random.default_rng(4))
    add_mnist(env, arrays, place="server")
    data.fetch("mnist")  # the course's own download
    data.clear_cache()
    bad = env.cache / "mnist" / "t10k-labels-idx1-ubyte.gz"
    junk = gzip.compress(b"\x00\x00\x08\x01" + (20).to_bytes(4, "big") + bytes(20))
    bad.write_bytes(junk)  # rewritten since the course wrote it: no longer the course's to replace
    with pytest.raises(data.ChecksumError, match="left alone") as exc:
        data.load("mnist", download=False)
    assert str(bad) in str(exc.value) and "data fetch mnist" in str(exc.value)
    assert bad.read_bytes() == junk  # load() never deletes anything


def test_truncated_gzip_is_a_checksum_error_naming_the_file(env):
    arrays = make_mnist(np.random.default_rng(5))
    gz = add_mnist(env, arrays)
    path = env.user / "mnist" / "train-images-idx3-ubyte.gz"
    path.write_bytes(gz["train-images-idx3-ubyte"][:100])
    with pytest.raises(data.ChecksumError, match="truncated") as exc:
        data.load("mnist", download=False)
    assert str(path) in str(exc.value)


# --------------------------------------------------------------------------- downloads
def test_download_is_verified_then_renamed_into_the_cache(env, monkeypatch):
    arrays = make_mnist(np.random.default_rng(6))
    add_mnist(env, arrays, place="server")
    assert not data.available("mnist")
    renames = []
    real_replace = os.replace

    def recording_replace(src, dst):
        renames.append((Path(src), Path(dst)))
        assert Path(src).name.startswith(".cnncourse-download.") and Path(src).parent == Path(dst).parent
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    (x, y), _ = data.load("mnist")  # not found anywhere → downloaded from the file:// "mirror"
    np.testing.assert_array_equal(x, arrays["train-images-idx3-ubyte"])
    assert sorted(dst.name for _, dst in renames) == sorted(f"{n}.gz" for n in MNIST_FILES)
    assert all(dst.parent == env.cache / "mnist" for _, dst in renames)
    assert leftovers(env.cache) == []
    assert all(p is not None and p.parent == env.cache / "mnist" for p in data.where("mnist").values())


def test_truncated_or_tampered_download_leaves_nothing_in_the_cache(env):
    arrays = make_mnist(np.random.default_rng(7))
    gz = add_mnist(env, arrays, place="server")
    served = env.server / "train-images-idx3-ubyte.gz"
    served.write_bytes(gz["train-images-idx3-ubyte"][: len(gz["train-images-idx3-ubyte"]) // 2])
    with pytest.raises(data.ChecksumError) as exc:
        data.load("mnist")
    assert "train-images-idx3-ubyte" in str(exc.value) and "discarded" in str(exc.value)
    assert not (env.cache / "mnist" / "train-images-idx3-ubyte.gz").exists()
    assert leftovers(env.cache) == []

    tampered = bytearray(idx_bytes(arrays["train-images-idx3-ubyte"]))
    tampered[-1] ^= 0xFF
    served.write_bytes(gzip.compress(bytes(tampered)))
    with pytest.raises(data.ChecksumError, match="does not match the manifest"):
        data.fetch("mnist")
    assert not (env.cache / "mnist" / "train-images-idx3-ubyte.gz").exists()
    assert leftovers(env.cache) == []


def test_stream_that_drops_or_comes_up_short_is_cleaned_up(env, monkeypatch):
    arrays = make_mnist(np.random.default_rng(8))
    add_mnist(env, arrays, place="server")

    class Dropping(io.BytesIO):
        headers = {"Content-Length": "1000000"}

        def __init__(self, fail: bool):
            super().__init__(b"x" * 5000)
            self.fail = fail

        def read(self, n=-1):
            chunk = super().read(n)
            if not chunk and self.fail:
                raise ConnectionResetError("connection reset by peer")
            return chunk

        read1 = read

    for fail in (True, False):  # an exception mid-stream; a short body against Content-Length
        monkeypatch.setattr(download, "_urlopen", lambda url, timeout, fail=fail: Dropping(fail))
        with pytest.raises(data.DatasetNotFoundError, match="download failed|truncated"):
            data.load("mnist")
        assert leftovers(env.cache) == [] and not any((env.cache / "mnist").glob("*"))


def test_missing_offline_names_file_directories_and_fixes(env):
    arrays = make_mnist(np.random.default_rng(9))
    add_mnist(env, arrays, place="server")
    for f in env.server.iterdir():
        f.unlink()  # the "network" is gone
    with pytest.raises(data.DatasetNotFoundError) as exc:
        data.load("mnist")
    message = str(exc.value)
    assert isinstance(exc.value, FileNotFoundError)
    assert "train-images-idx3-ubyte" in message
    assert str(env.user / "mnist") in message and str(env.cache) in message
    assert "python -m cnncourse data fetch mnist" in message and "CNNCOURSE_DATA" in message
    assert leftovers(env.cache) == [] and not (env.cache / "mnist").exists()  # not even the folder it made
    with pytest.raises(data.DatasetNotFoundError, match="not found"):
        data.load("mnist", download=False)


# -------------------------------------------------------------------------- CIFAR-10
def test_cifar10_pickles_load_in_keras_layout(env):
    payloads, images, labels = make_cifar(np.random.default_rng(10))
    add_cifar(env, payloads)
    (x, y), (xt, yt) = data.load("cifar10", download=False)
    assert x.shape == (50, 32, 32, 3) and y.shape == (50, 1) and y.dtype == np.uint8
    np.testing.assert_array_equal(x, images[:50])  # R, G, B planes put back into HWC order
    np.testing.assert_array_equal(y[:, 0], labels[:50])
    np.testing.assert_array_equal(xt, images[50:])
    split = data.load_split("cifar10", channels=1, image_size=16)
    assert split.input_shape == (16, 16, 1) and split.y_train.shape == (50,)
    grey = data.load_split("cifar10", channels=1)
    expected = images[:50].astype(np.float32) / 255 @ np.array([0.299, 0.587, 0.114], np.float32)
    np.testing.assert_allclose(grey.x_train[..., 0], expected, atol=1e-6)


def test_cifar10_download_extracts_verified_members(env):
    payloads, images, _ = make_cifar(np.random.default_rng(11))
    add_cifar(env, payloads, place="server")
    (x, _), _ = data.load("cifar10")
    np.testing.assert_array_equal(x, images[:50])
    assert sorted(p.name for p in (env.cache / "cifar-10-batches-py").iterdir()) == sorted(payloads)
    assert leftovers(env.cache) == [] and not any(env.cache.glob("*.tar.gz"))


def test_tampered_cifar_pickle_never_executes(env):
    payloads, _, _ = make_cifar(np.random.default_rng(12))
    add_cifar(env, payloads)
    sentinel = env.tmp / "pwned"
    evil = pickle.dumps({b"data": Evil(sentinel), b"labels": [0]}, protocol=2)
    path = env.user / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(evil)
    # 1. the digest does not match: the pickle is never opened
    with pytest.raises(data.ChecksumError) as exc:
        data.load("cifar10", download=False)
    assert str(path) in str(exc.value)
    assert not sentinel.exists()
    # 2. even if the manifest were made to match it, the restricted unpickler refuses to call os.mkdir
    env.manifest["datasets"]["cifar10"]["files"]["data_batch_3"]["payload"] = {"md5": md5(evil)}
    env.write_manifest()
    with pytest.raises(ValueError, match="may not reference"):
        data.load("cifar10", download=False)
    assert not sentinel.exists()
    assert pickle.loads(evil) is not None and sentinel.exists()  # the payload is real: plain pickle runs it


def test_restricted_unpickler_refuses_object_arrays_and_builtins():
    blob = pickle.dumps({b"data": np.array([1, "a"], dtype=object)}, protocol=2)
    with pytest.raises(ValueError, match="object arrays"):
        data.formats.unpickle(blob, Path("x"))
    with pytest.raises(ValueError, match="builtins.eval"):
        data.formats.unpickle(b"cbuiltins\neval\n(S'1+1'\ntR.", Path("x"))


# ------------------------------------------------------------------------------- CLI
def test_cli_reports_files_and_exit_codes(env, capsys):
    arrays = make_mnist(np.random.default_rng(13))
    add_mnist(env, arrays)
    assert data.cli(["where", "mnist"]) == 0
    assert "train-images-idx3-ubyte" in capsys.readouterr().out
    assert data.cli(["verify", "mnist"]) == 0
    assert capsys.readouterr().out.count("verified") == 4
    (env.user / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"junk"))
    assert data.cli(["verify", "mnist"]) == 1
    captured = capsys.readouterr()
    assert "mismatch" in captured.out and "t10k-labels-idx1-ubyte" in captured.err
    assert data.cli(["where", "nonsense"]) == 2
    assert "valid names" in capsys.readouterr().err


# -------------------------------------------------------------------------- pipelines
def test_array_dataset_reshuffles_each_epoch_and_augments():
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    y = np.arange(10, dtype=np.int32)
    ds = data.batches._array_dataset_class()(x, y, 4, seed=0, augment=keras.layers.Rescaling(2.0))
    assert len(ds) == 3
    epoch1 = [np.asarray(ds[i][1]) for i in range(len(ds))]
    ds.on_epoch_end()
    epoch2 = [np.asarray(ds[i][1]) for i in range(len(ds))]
    assert sorted(np.concatenate(epoch1)) == list(range(10)) == sorted(np.concatenate(epoch2))
    assert not all(np.array_equal(a, b) for a, b in zip(epoch1, epoch2))
    xb, yb = ds[0]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(xb)[:, 0], 2.0 * yb)
    with pytest.raises(IndexError):
        ds[3]
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(10)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(data.batches._array_dataset_class()(x, y, 4), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_pipeline_type_follows_the_backend():
    x, y = np.zeros((6, 2, 2, 1), np.float32), np.zeros(6, np.int32)
    ds = data.pipeline(x, y, 4)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        assert isinstance(ds, tf.data.Dataset)
    else:
        assert isinstance(ds, keras.utils.PyDataset) and len(ds) == 2


@pytest.mark.tf_only
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.data needs the TensorFlow backend")
def test_tf_data_pipeline_shuffles_before_batching_and_augments():
    x = np.arange(12, dtype=np.float32).reshape(12, 1, 1, 1)
    y = np.arange(12, dtype=np.int32)
    ds = data.pipeline(x, y, 5, seed=1)
    epochs = [[b[1].numpy() for b in ds] for _ in range(2)]
    assert [len(b) for b in epochs[0]] == [5, 5, 2]
    assert all(sorted(np.concatenate(e)) == list(range(12)) for e in epochs)
    assert not all(np.array_equal(a, b) for a, b in zip(*epochs))  # a new order every epoch
    assert any(not np.array_equal(b, np.sort(b)) for b in epochs[0])  # items mixed across batches
    again = [b[1].numpy() for b in data.pipeline(x, y, 5, seed=1)]
    assert all(np.array_equal(a, b) for a, b in zip(epochs[0], again))  # seeded
    flat = data.pipeline(x, y, 5, shuffle=False, augment=keras.layers.Rescaling(-1.0))
    xb, yb = next(iter(flat))
    np.testing.assert_array_equal(xb.numpy()[:, 0, 0, 0], -np.arange(5))


# ------------------------------------------------ never lose or mix up a user's files (issue 15)
def fetched(env, rng_seed: int) -> dict[str, np.ndarray]:
    """MNIST served by the file:// 'mirror' and downloaded into the cache by the course itself."""
    arrays = make_mnist(np.random.default_rng(rng_seed))
    add_mnist(env, arrays, place="server")
    data.fetch("mnist")
    data.clear_cache()
    return arrays


def test_load_never_deletes_a_user_file_reached_through_a_symlinked_cache_folder(env):
    arrays = make_mnist(np.random.default_rng(20))
    gz = add_mnist(env, arrays, place="server")
    elsewhere = env.tmp / "my-datasets" / "mnist"  # the user's own copy, outside the course
    elsewhere.mkdir(parents=True)
    for name, blob in gz.items():
        (elsewhere / f"{name}.gz").write_bytes(blob)
    bad = elsewhere / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(idx_bytes(np.zeros(20, np.uint8))))
    (env.cache / "mnist").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(data.ChecksumError) as exc:
        data.load("mnist")
    message = str(exc.value)
    assert str(env.cache / "mnist" / "t10k-labels-idx1-ubyte.gz") in message and "symbolic link" in message
    assert bad.exists() and gzip.decompress(bad.read_bytes()) == idx_bytes(np.zeros(20, np.uint8))
    with pytest.raises(data.ChecksumError, match="symbolic link"):
        data.fetch("mnist")  # nor is it overwritten by a download
    assert gzip.decompress(bad.read_bytes()) == idx_bytes(np.zeros(20, np.uint8))
    assert sorted(p.name for p in elsewhere.iterdir()) == sorted(f"{n}.gz" for n in MNIST_FILES)


def test_a_file_in_the_cache_the_course_did_not_write_is_refused_kept_and_never_replaced(env):
    arrays = make_mnist(np.random.default_rng(21))
    gz = add_mnist(env, arrays, place="server")
    (env.cache / "mnist").mkdir()
    for name, blob in gz.items():  # copied in by the user, not downloaded by the course
        (env.cache / "mnist" / f"{name}.gz").write_bytes(blob)
    bad = env.cache / "mnist" / "t10k-labels-idx1-ubyte.gz"
    junk = gzip.compress(b"\x00\x00\x08\x01" + (20).to_bytes(4, "big") + bytes(20))
    bad.write_bytes(junk)
    with pytest.raises(data.ChecksumError) as exc:
        data.load("mnist")
    assert str(bad) in str(exc.value) and "did not write" in str(exc.value)
    assert bad.read_bytes() == junk
    with pytest.raises(data.ChecksumError, match="did not write") as exc:
        data.fetch("mnist")  # no success reported over it, and no download over it
    assert str(bad) in str(exc.value) and bad.read_bytes() == junk
    with pytest.raises(data.ChecksumError):
        data.fetch("mnist", force=True)
    assert bad.read_bytes() == junk
    assert [c.status for c in data.verify("mnist")].count("mismatch") == 1


def test_fetch_reverifies_and_replaces_its_own_download_that_no_longer_verifies(env, capsys):
    arrays = fetched(env, 22)
    own = env.cache / "mnist" / "train-labels-idx1-ubyte.gz"
    # 1. the manifest moved on (a new release): the course's copy fails and is replaced
    labels = arrays["train-labels-idx1-ubyte"][::-1].copy()
    (env.server / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    env.manifest["datasets"]["mnist"]["files"]["train-labels-idx1-ubyte"]["payload"] = {"sha256": sha256(idx_bytes(labels))}
    env.write_manifest()
    assert data.cli(["fetch", "mnist"]) == 0
    out = capsys.readouterr().out
    assert "replaced" in out and "train-labels-idx1-ubyte" in out
    assert gzip.decompress(own.read_bytes()) == idx_bytes(labels)
    assert [c.status for c in data.verify("mnist")] == ["verified"] * 4
    # 2. bit rot: same size and modification time, one byte flipped
    stat = own.stat()
    rotten = bytearray(own.read_bytes())
    rotten[len(rotten) // 2] ^= 0x01
    own.write_bytes(bytes(rotten))
    os.utime(own, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert data.verify("mnist")[1].status == "mismatch"
    assert data.cli(["fetch", "mnist"]) == 0
    assert [c.status for c in data.verify("mnist")] == ["verified"] * 4
    # 3. --force downloads again even what verifies; a user's own file beside them is untouched
    mine = env.cache / "mnist" / "my-notes.txt"
    mine.write_text("mine")
    before = {p.name: p.stat().st_ino for p in (env.cache / "mnist").glob("*.gz")}
    assert data.cli(["fetch", "--force", "mnist"]) == 0
    after = {p.name: p.stat().st_ino for p in (env.cache / "mnist").glob("*.gz")}
    assert before.keys() == after.keys() and all(before[n] != after[n] for n in before)
    assert mine.read_text() == "mine"


def test_fetched_files_respect_the_umask(env):
    arrays = make_mnist(np.random.default_rng(23))
    add_mnist(env, arrays, place="server")
    old = os.umask(0o022)
    try:
        paths = data.fetch("mnist")
        assert {oct(p.stat().st_mode & 0o777) for p in paths.values()} == {oct(0o644)}
        os.umask(0o027)
        paths = data.fetch("mnist", force=True)
        assert {oct(p.stat().st_mode & 0o777) for p in paths.values()} == {oct(0o640)}
    finally:
        os.umask(old)


def deny_reading(monkeypatch, denied: Path) -> None:
    """Reading ``denied`` fails as for another user of a shared install (tests may run as root)."""
    real_open = io.open

    def guarded(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and Path(file) == denied:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(io, "open", guarded)


def test_an_unreadable_file_is_named_with_a_fix_by_load_verify_and_the_cli(env, monkeypatch, capsys):
    arrays = make_mnist(np.random.default_rng(24))
    add_mnist(env, arrays)
    denied = env.user / "mnist" / "train-images-idx3-ubyte.gz"
    deny_reading(monkeypatch, denied)
    with pytest.raises(data.UnreadableFileError) as exc:
        data.load("mnist", download=False)
    assert isinstance(exc.value, OSError) and str(denied) in str(exc.value)
    assert "chmod" in str(exc.value) and "CNNCOURSE_DATA" in str(exc.value)
    checks = data.verify("mnist")  # never raises for data: one line per file
    assert [c.status for c in checks] == ["unreadable", "verified", "verified", "verified"]
    assert data.cli(["verify", "mnist"]) == 1
    captured = capsys.readouterr()
    assert captured.out.count("verified") == 3 and "unreadable" in captured.out and str(denied) in captured.err


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_a_file_without_read_permission_is_named_with_a_fix(env):
    arrays = make_mnist(np.random.default_rng(25))
    add_mnist(env, arrays)
    denied = env.user / "mnist" / "t10k-images-idx3-ubyte.gz"
    denied.chmod(0o200)
    with pytest.raises(data.UnreadableFileError, match="chmod"):
        data.load("mnist", download=False)
    assert data.verify("mnist")[2].status == "unreadable"


class Trickle(io.RawIOBase):
    """A response that sends one byte per read, each after ``delay`` seconds on a fake clock."""

    def __init__(self, clock: list[float], delay: float, reads: int = 200_000, length: str | None = None):
        self.clock, self.delay, self.left = clock, delay, reads
        self.headers = {"Content-Length": length} if length else {}

    def readable(self):
        return True

    def read(self, n=-1):
        self.clock[0] += self.delay
        if self.left == 0:
            return b""
        self.left -= 1
        return b"x"

    read1 = read


def test_a_trickling_download_stops_at_the_overall_deadline(env, monkeypatch):
    arrays = make_mnist(np.random.default_rng(26))
    add_mnist(env, arrays, place="server")
    clock = [0.0]
    monkeypatch.setattr(download, "_clock", lambda: clock[0])
    # every read returns within the per-read timeout, so only an overall deadline can stop it
    monkeypatch.setattr(download, "_urlopen", lambda url, timeout: Trickle(clock, delay=30.0))
    with pytest.raises(data.DownloadError, match="deadline") as exc:
        data.fetch("mnist")
    assert "--deadline" in str(exc.value) and leftovers(env.cache) == []
    assert download.DOWNLOAD_DEADLINE_S <= clock[0] <= download.DOWNLOAD_DEADLINE_S + 30  # not 200,000 reads later
    clock[0] = 0.0
    with pytest.raises(data.DownloadError, match="600 s"):
        data.fetch("mnist", deadline_s=600)
    assert 600 <= clock[0] <= 630 and leftovers(env.cache) == []


def test_download_progress_goes_to_stderr_in_a_few_lines_per_file(env, capsys):
    arrays = make_mnist(np.random.default_rng(27), n_train=2000, n_test=200)
    add_mnist(env, arrays, place="server")
    data.fetch("mnist")
    captured = capsys.readouterr()
    big = [line for line in captured.err.splitlines() if "train-images-idx3-ubyte" in line]
    assert 2 <= len(big) <= 6, big
    size = (env.server / "train-images-idx3-ubyte.gz").stat().st_size
    assert any(f"{size:,}" in line for line in big) and "100%" in captured.err
    assert "train-images" not in captured.out
    data.fetch("mnist", force=True, progress=False)
    assert capsys.readouterr().err == ""


def test_a_download_larger_than_the_manifest_allows_is_cut_off(env, monkeypatch):
    arrays = make_mnist(np.random.default_rng(28))
    add_mnist(env, arrays, place="server")
    for name, arr in arrays.items():
        env.manifest["datasets"]["mnist"]["files"][name]["size"] = len(idx_bytes(arr))
    env.write_manifest()
    reads = []

    class Endless(io.RawIOBase):
        headers: dict[str, str] = {}

        def readable(self):
            return True

        def read(self, n=-1):
            reads.append(n)
            return b"\0" * (1 << 20) if len(reads) < 64 else b""

        read1 = read

    monkeypatch.setattr(download, "_urlopen", lambda url, timeout: Endless())
    with pytest.raises(data.DownloadError, match="larger than"):
        data.fetch("mnist")
    assert len(reads) <= 2 and leftovers(env.cache) == []


SLOW_DOWNLOAD = r"""
import io, sys, time
from pathlib import Path
from cnncourse import data
from cnncourse.data import download, lookup

lookup.cache_dir = lambda: Path(sys.argv[1])
lookup.SYSTEM_DIRS = ()


class Slow(io.RawIOBase):
    headers = {"Content-Length": "100000000"}

    def readable(self):
        return True

    def read(self, n=-1):
        time.sleep(0.05)
        return b"x" * 1000

    read1 = read


download._urlopen = lambda url, timeout: Slow()
data.fetch("mnist")
"""


def start_slow_download(env) -> "subprocess.Popen":
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-c", SLOW_DOWNLOAD, str(env.cache)], env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(600):  # up to 60 s for Python to start and the first bytes to land
        if list(env.cache.rglob("*.part")) or proc.poll() is not None:
            break
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()
    assert list(env.cache.rglob("*.part"))
    return proc


def test_sigterm_during_a_download_removes_its_part_file(env):
    import signal

    arrays = make_mnist(np.random.default_rng(29))
    add_mnist(env, arrays, place="server")
    proc = start_slow_download(env)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM, err
    assert leftovers(env.cache) == []


def test_the_next_fetch_removes_part_files_of_killed_downloads_and_nothing_else(env):
    import re
    import signal

    arrays = make_mnist(np.random.default_rng(30))
    add_mnist(env, arrays, place="server")
    proc = start_slow_download(env)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up
    proc.communicate(timeout=60)
    (stale,) = env.cache.rglob("*.part")
    assert re.fullmatch(r"\.cnncourse-download\..+\.[0-9a-f]{8}-\d+-\d+\.part", stale.name)
    live = stale.with_name(re.sub(r"-\d+-(\d+)\.part$", rf"-{os.getpid()}-\1.part", stale.name))
    other_host = stale.with_name(re.sub(r"\.[0-9a-f]{8}-", ".00000000-", stale.name))
    users = env.cache / "mnist" / "notes.part"
    for keep in (live, other_host, users):
        keep.write_bytes(b"not stale")
    data.fetch("mnist")
    assert not stale.exists()
    assert all(p.read_bytes() == b"not stale" for p in (live, other_host, users))


def test_pytorch_raw_layout_loads_the_gz_beside_the_plain_file(env):
    arrays = make_mnist(np.random.default_rng(31))
    gz = add_mnist(env, arrays, payload_digest=False, archive_digest=True, place="server")
    env.manifest["datasets"]["mnist"]["folders"].append("MNIST/raw")  # as in the shipped manifest
    env.write_manifest()
    raw = env.user / "MNIST" / "raw"  # torchvision's layout: each .gz and its decompressed copy
    raw.mkdir(parents=True)
    for name, blob in gz.items():
        (raw / f"{name}.gz").write_bytes(blob)
        (raw / name).write_bytes(idx_bytes(arrays[name]))
    (x, y), _ = data.load("mnist", download=False)
    np.testing.assert_array_equal(x, arrays["train-images-idx3-ubyte"])
    assert [c.status for c in data.verify("mnist")] == ["verified"] * 4
    assert all(c.path.suffix == ".gz" for c in data.verify("mnist"))


def test_a_gzip_bomb_is_stopped_at_the_manifest_size(env):
    import tracemalloc

    arrays = make_mnist(np.random.default_rng(32))
    add_mnist(env, arrays)
    for name, arr in arrays.items():
        env.manifest["datasets"]["mnist"]["files"][name]["size"] = len(idx_bytes(arr))
    env.write_manifest()
    bomb = env.user / "mnist" / "train-labels-idx1-ubyte.gz"
    zeros = bytes(64 << 20)
    bomb.write_bytes(gzip.compress(zeros, compresslevel=9))
    del zeros
    tracemalloc.start()
    try:
        with pytest.raises(data.ChecksumError, match="larger than") as exc:
            data.load("mnist", download=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(bomb) in str(exc.value)
    assert peak < 8 << 20, f"decompressed {peak:,} bytes for a 48-byte file"


def test_a_broken_manifest_is_one_error_naming_the_file(env, monkeypatch):
    path = env.tmp / "broken.json"
    path.write_text('{"format": 1, "datasets": {"mnist": ')
    monkeypatch.setenv("CNNCOURSE_MANIFEST", str(path))
    data.clear_cache()
    with pytest.raises(data.ManifestError) as exc:
        data.load("mnist")
    assert str(path) in str(exc.value) and isinstance(exc.value, ValueError)
    assert data.cli(["verify"]) == 2


def test_a_corrupt_copy_early_in_the_search_path_is_skipped_with_a_warning_and_kept(env):
    arrays = fetched(env, 33)  # good copies in the cache
    mine = env.user / "mnist" / "train-labels-idx1-ubyte.gz"  # searched first ($CNNCOURSE_DATA)
    mine.parent.mkdir()
    mine.write_bytes(gzip.compress(idx_bytes(np.zeros(40, np.uint8))))
    with pytest.warns(UserWarning, match="skipped") as caught:
        (_, y), _ = data.load("mnist", download=False)
    np.testing.assert_array_equal(y, arrays["train-labels-idx1-ubyte"])  # not the zeros
    assert str(mine) in str(caught[0].message) and str(env.cache / "mnist") in str(caught[0].message)
    check = data.verify("mnist")[1]
    assert check.ok and check.path.parent == env.cache / "mnist" and check.skipped[0][:2] == (mine, "mismatch")
    assert data.fetch("mnist")["train-labels-idx1-ubyte"].parent == env.cache / "mnist"
    assert gzip.decompress(mine.read_bytes()) == idx_bytes(np.zeros(40, np.uint8))


def test_a_manifest_cannot_send_files_outside_the_cache_and_bad_arguments_are_named(env, capsys):
    arrays = make_mnist(np.random.default_rng(34))
    add_mnist(env, arrays, place="server")
    for folders in (["../escape"], ["/etc"]):
        env.manifest["datasets"]["mnist"]["folders"] = folders
        env.write_manifest()
        with pytest.raises(data.ManifestError, match="relative folder names"):
            data.fetch("mnist")
    assert not (env.tmp / "escape").exists()
    env.manifest["datasets"]["mnist"]["folders"] = ["mnist"]
    env.write_manifest()
    for bad in (0, -1, float("nan"), float("inf"), "60", True):
        with pytest.raises(ValueError, match="deadline_s must be a positive"):
            data.fetch("mnist", deadline_s=bad)
    with pytest.raises(SystemExit):
        data.cli(["verify", "--force"])
    assert "apply to fetch only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        data.cli(["fetch", "--deadline", "0"])
    assert "positive number of seconds" in capsys.readouterr().err
    assert leftovers(env.cache) == [] and not (env.cache / "mnist").exists()

"""Tests for ticketzoo.data.idx and the IDX path of load_named_dataset (mnist, fashionmnist)."""

from __future__ import annotations

import gzip
import struct
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from ticketzoo.config.data import DataConfig
from ticketzoo.data import load_named_dataset, read_idx, read_idx_pair
from ticketzoo.errors import DataError

NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _idx_bytes(array: np.ndarray, *, code: int = 0x08, shape: tuple | None = None) -> bytes:
    """An IDX file written by hand (not by the code under test); ``shape`` may lie."""
    shape = array.shape if shape is None else shape
    head = bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
    return head + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _write(path: Path, data: bytes, *, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _fake_set(folder: Path, *, gz: bool, n_train: int = 30, n_test: int = 20,
              side: int = 28) -> dict[str, np.ndarray]:
    """The four files of a tiny MNIST-like set in ``folder``; returns what was written."""
    rng = np.random.default_rng(1)
    arrays = {
        NAMES[0]: rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
        NAMES[1]: (np.arange(n_train) % 10).astype(np.uint8),
        NAMES[2]: rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
        NAMES[3]: (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }
    for name, array in arrays.items():
        _write(folder / (name + (".gz" if gz else "")), _idx_bytes(array), gz=gz)
    return arrays


# --- the reader ---------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_round_trip(tmp_path, gz):
    images = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    labels = np.array([0, 9, 3, 3, 1], dtype=np.uint8)
    x_path = _write(tmp_path / "x", _idx_bytes(images), gz=gz)
    y_path = _write(tmp_path / "y", _idx_bytes(labels), gz=gz)
    x, y = read_idx_pair(x_path, y_path, num_classes=10)
    assert x.dtype == np.uint8 and x.shape == (5, 7, 3) and np.array_equal(x, images)
    assert y.dtype == np.int64 and y.tolist() == [0, 9, 3, 3, 1]
    assert np.array_equal(read_idx(x_path, ndim=3), images)


def test_gzip_is_detected_by_content_not_name(tmp_path):
    labels = np.arange(4, dtype=np.uint8)
    gz_without_suffix = _write(tmp_path / "labels", _idx_bytes(labels), gz=True)
    raw_with_suffix = _write(tmp_path / "labels.gz", _idx_bytes(labels))
    assert read_idx(gz_without_suffix, ndim=1).tolist() == [0, 1, 2, 3]
    assert read_idx(raw_with_suffix, ndim=1).tolist() == [0, 1, 2, 3]


_LABELS = np.arange(6, dtype=np.uint8)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    ("data", "ndim", "message"),
    [
        (b"\x01\x02" + _idx_bytes(_LABELS)[2:], 1, "not an IDX file"),
        (_idx_bytes(_LABELS, code=0x0D), 1, r"data type 0x0d \(float32\) is not supported"),
        (_idx_bytes(_LABELS, code=0x09), 1, r"data type 0x09 \(signed byte\)"),
        (_idx_bytes(_LABELS), 3, r"has 1 dimension\(s\), expected 3"),
        (_idx_bytes(_LABELS.reshape(1, 2, 3)), 1, r"has 3 dimension\(s\), expected 1"),
        (_idx_bytes(_LABELS, shape=(0,)), 1, "empty dimension"),
        (_idx_bytes(_LABELS, shape=(7,)), 1, r"declares shape \(7,\)|truncated data"),
        (_idx_bytes(_LABELS, shape=(5,)), 1, r"declares shape \(5,\)|more data than"),
        (_idx_bytes(_LABELS)[:6], 1, "truncated header"),
        (b"\x00\x00", 1, "truncated header"),
        (b"", 1, "truncated header"),
    ],
)
def test_malformed_files(tmp_path, gz, data, ndim, message):
    path = _write(tmp_path / "bad", data, gz=gz)
    with pytest.raises(DataError, match=message) as err:
        read_idx(path, ndim=ndim)
    assert err.value.path == str(path) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_raw_payload_must_match_exactly(tmp_path):
    # Raw files are checked against their size before reading: both directions, fail fast.
    short = _write(tmp_path / "short", _idx_bytes(_LABELS, shape=(7,)))
    long = _write(tmp_path / "long", _idx_bytes(_LABELS, shape=(5,)))
    with pytest.raises(DataError, match=r"declares shape \(7,\) \(7 bytes\) but the file holds 6"):
        read_idx(short, ndim=1)
    with pytest.raises(DataError, match=r"declares shape \(5,\) \(5 bytes\) but the file holds 6"):
        read_idx(long, ndim=1)


def test_gzip_payload_shorter_or_longer_than_declared(tmp_path):
    short = _write(tmp_path / "short", _idx_bytes(_LABELS, shape=(7,)), gz=True)
    long = _write(tmp_path / "long", _idx_bytes(_LABELS, shape=(5,)), gz=True)
    with pytest.raises(DataError, match=r"truncated data \(6 of 7 bytes\)"):
        read_idx(short, ndim=1)
    with pytest.raises(DataError, match="more data than the header's shape"):
        read_idx(long, ndim=1)


def test_truncated_gzip_stream(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    whole = gzip.compress(_idx_bytes(images))
    path = tmp_path / "cut.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="cannot read IDX file") as err:
        read_idx(path, ndim=3)
    assert str(path) in str(err.value)


def test_corrupt_gzip_crc(tmp_path):
    data = bytearray(gzip.compress(_idx_bytes(_LABELS)))
    data[-8] ^= 0xFF  # the CRC32 in the gzip trailer
    path = _write(tmp_path / "crc", bytes(data))
    with pytest.raises(DataError, match="cannot read IDX file.*CRC"):
        read_idx(path, ndim=1)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    ("shape", "ndim"),
    [((10**6, 10**3, 10**3), 3), ((2**32 - 1,) * 3, 3), ((2**32 - 1,), 1)],
)
def test_huge_header_fails_fast_without_allocating(tmp_path, gz, shape, ndim):
    # 10^12 bytes of images (or the most a header can claim) in a file of about 100 bytes.
    data = _idx_bytes(np.zeros(80, dtype=np.uint8), shape=shape)
    path = _write(tmp_path / "huge", data, gz=gz)
    assert path.stat().st_size < 200
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"header declares shape .* but the file"):
            read_idx(path, ndim=ndim)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_gzip_within_deflate_bound_but_short_allocates_only_what_it_holds(tmp_path):
    # 40 MiB claimed in a 48 kB incompressible file: the deflate-ratio bound (1032:1) lets
    # it pass, so the short stream is found only while reading, which must stay chunk-sized.
    claimed = 40 * 1024 * 1024
    payload = np.random.default_rng(0).integers(0, 256, 48_000, dtype=np.uint8)
    path = _write(tmp_path / "short.gz", _idx_bytes(payload, shape=(claimed,)), gz=True)
    assert path.stat().st_size * 1032 > claimed
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=rf"truncated data \(48000 of {claimed} bytes\)"):
            read_idx(path, ndim=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_image_and_label_counts_must_match(tmp_path):
    x = _write(tmp_path / "x", _idx_bytes(np.zeros((4, 2, 2), dtype=np.uint8)))
    y = _write(tmp_path / "y", _idx_bytes(np.zeros(3, dtype=np.uint8)))
    with pytest.raises(DataError, match="holds 3 labels but x holds 4 images") as err:
        read_idx_pair(x, y, num_classes=10)
    assert err.value.path == str(y)


def test_label_out_of_range(tmp_path):
    x = _write(tmp_path / "x", _idx_bytes(np.zeros((4, 2, 2), dtype=np.uint8)))
    y = _write(tmp_path / "y", _idx_bytes(np.array([0, 9, 10, 3], dtype=np.uint8)))
    with pytest.raises(DataError, match=r"label 10 at index 2 is not below the number of "
                                        r"classes \(10\)"):
        read_idx_pair(x, y, num_classes=10)
    assert read_idx_pair(x, y, num_classes=11)[1].tolist() == [0, 9, 10, 3]


def test_unreadable_path(tmp_path):
    with pytest.raises(DataError, match="cannot read IDX file"):
        read_idx(tmp_path / "nowhere", ndim=1)
    with pytest.raises(DataError, match="cannot read IDX file"):
        read_idx(tmp_path, ndim=1)


# --- load_named_dataset -------------------------------------------------------------------


@pytest.fixture
def no_torchvision(monkeypatch):
    """Make any import of torchvision fail, to prove a code path never needs it."""
    for name in ("torchvision", "torchvision.datasets"):
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize(
    ("name", "sub", "gz"),
    [("fashionmnist", "", True), ("fashionmnist", "FashionMNIST/raw", False),
     ("mnist", "", False), ("mnist", "MNIST/raw", True)],
)
def test_named_idx_datasets_in_both_layouts(tmp_path, no_torchvision, name, sub, gz):
    folder = tmp_path / sub if sub else tmp_path
    written = _fake_set(folder, gz=gz)
    ds = load_named_dataset(name, tmp_path, val_fraction=0.2, split_seed=3)
    first = "T-shirt/top" if name == "fashionmnist" else "0 - zero"
    last = "Ankle boot" if name == "fashionmnist" else "9 - nine"
    assert (ds.name, ds.channels, ds.size) == (name, 1, 28)
    assert (ds.classes[0], ds.classes[-1]) == (first, last)
    assert len(ds.classes) == 10 and (len(ds.train), len(ds.val), len(ds.test)) == (20, 10, 20)
    assert ds.train.images.shape == (20, 28, 28, 1) and ds.train.images.dtype == np.uint8
    assert np.array_equal(ds.test.images[..., 0], written[NAMES[2]])
    assert ds.test.labels.dtype == np.int64
    assert ds.test.labels.tolist() == written[NAMES[3]].tolist()
    suffix = ".gz" if gz else ""
    assert ds.files == tuple(folder / (n + suffix) for n in NAMES)
    title = "Fashion-MNIST (Xiao et al. 2017)" if name == "fashionmnist" else "MNIST"
    assert ds.description.startswith(title)
    assert f"original IDX files from {folder}: 30 train / 20 test, 28x28 grey" in ds.description


def test_val_split_is_stratified_and_seeded(tmp_path, no_torchvision):
    _fake_set(tmp_path, gz=False)
    a = load_named_dataset("fashionmnist", tmp_path, val_fraction=1 / 3, split_seed=0)
    b = load_named_dataset("fashionmnist", tmp_path, val_fraction=1 / 3, split_seed=0)
    c = load_named_dataset("fashionmnist", tmp_path, val_fraction=1 / 3, split_seed=1)
    assert set(a.counts()["val"].values()) == {1}
    assert np.array_equal(a.val.images, b.val.images)
    assert not np.array_equal(a.val.images, c.val.images)


def test_plain_files_are_preferred_and_forms_may_mix(tmp_path):
    written = _fake_set(tmp_path, gz=True)
    plain = written[NAMES[3]][::-1].copy()  # differs from the .gz beside it
    _write(tmp_path / NAMES[3], _idx_bytes(plain))
    ds = load_named_dataset("mnist", tmp_path)
    assert ds.files[3] == tmp_path / NAMES[3] and ds.files[2].name.endswith(".gz")
    assert ds.test.labels.tolist() == plain.tolist()


def test_flat_files_win_over_torchvision_layout(tmp_path):
    _fake_set(tmp_path, gz=True, n_test=10)
    _fake_set(tmp_path / "FashionMNIST" / "raw", gz=True, n_test=20)
    assert len(load_named_dataset("fashionmnist", tmp_path).test) == 10


def test_missing_files_are_listed_with_where_we_looked(tmp_path):
    written = _fake_set(tmp_path, gz=True)
    (tmp_path / (NAMES[2] + ".gz")).unlink()
    with pytest.raises(DataError) as err:
        load_named_dataset("fashionmnist", tmp_path)
    msg = str(err.value.message)
    assert msg.startswith("fashionmnist IDX files not found")
    assert f"in {tmp_path} missing t10k-images-idx3-ubyte;" in msg
    assert f"in {tmp_path / 'FashionMNIST' / 'raw'} missing all four" in msg
    assert err.value.hint.startswith("apt-get install dataset-fashion-mnist puts them in "
                                     "/usr/share/datasets/fashion-mnist")
    assert "\n" not in str(err.value) and written


def test_missing_files_mnist_hint_and_slip(tmp_path):
    (tmp_path / "MNIST").mkdir()
    with pytest.raises(DataError, match="mnist IDX files not found.*missing all four") as err:
        load_named_dataset("mnist", tmp_path / "MNIST")
    assert "`download`" in err.value.hint and f"probably {tmp_path}" in err.value.hint
    with pytest.raises(DataError, match="does not exist") as err:
        load_named_dataset("fashionmnist", tmp_path / "nowhere")
    assert "dataset-fashion-mnist" in err.value.hint


def test_corrupt_file_in_a_named_dataset_names_it(tmp_path):
    _fake_set(tmp_path, gz=False)
    path = tmp_path / NAMES[0]
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataError, match=f"{path}: header declares"):
        load_named_dataset("mnist", tmp_path)


def test_download_only_when_missing_then_read_as_idx(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    calls = []

    class FakeFashion:  # stands in for torchvision: writes the files where it would
        def __init__(self, root, train=True, download=False):
            calls.append((root, download))
            _fake_set(Path(root) / "FashionMNIST" / "raw", gz=False)

    monkeypatch.setattr(tvd, "FashionMNIST", FakeFashion)
    ds = load_named_dataset("fashionmnist", tmp_path / "new", download=True)
    assert calls == [(str(tmp_path / "new"), True)] and len(ds.test) == 20
    assert ds.files[0] == tmp_path / "new" / "FashionMNIST" / "raw" / NAMES[0]
    load_named_dataset("fashionmnist", tmp_path / "new", download=True)
    assert len(calls) == 1  # files present: no second download


def test_failed_download_is_a_data_error(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def refuse(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(tvd, "MNIST", refuse)
    with pytest.raises(DataError, match="could not download mnist into .*Error downloading"):
        load_named_dataset("mnist", tmp_path, download=True)


def test_card_description_says_which_data_was_read(tmp_path, no_torchvision):
    from ticketzoo.data.loading import load_source
    from ticketzoo.data.source import resolve_data

    _fake_set(tmp_path, gz=True)
    data = DataConfig(input_size=28, channels=1, split_seed=3, split=(2 / 3, 1 / 3, 0.0))
    src = load_source(resolve_data("fashion-mnist", tmp_path), data, batch_size=8, seed=0, device="cpu", workers=0)
    assert src.description == (
        f"Fashion-MNIST (Xiao et al. 2017), original IDX files from {tmp_path}: 30 train / "
        "20 test, 28x28 grey; train: the official train set minus a stratified 0.333333 "
        "validation split (10 images, seed 3); test: the official 20-image test set")
    assert src.counts == {"train": 20, "val": 10, "test": 20} and src.classes[-1] == "Ankle boot"

"""Tests for ticketzoo.data: folders, splits, image modes, cache, named datasets, loaders."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from synthetic import make_image_folder
from ticketzoo.data import (
    ArraySamples,
    Batch,
    CachedImageDataset,
    StreamingImageDataset,
    discover_folder,
    load_named_dataset,
    make_dataset,
    make_loaders,
    split_counts,
    to_channels,
    try_decode,
)
from ticketzoo.errors import ConfigError, DataError

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
KW = dict(channels=3, resize=20, train_crop=16, mean=MEAN, std=STD)


def _folder(tmp_path: Path, name: str = "d", **kw) -> Path:
    args = dict(classes=3, per_class=10, size=16, seed=0) | kw
    return make_image_folder(tmp_path / name, **args)


def _image(path: Path, color=(10, 20, 30), size: int = 16) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), color).save(path)


# --- discovery and splits -----------------------------------------------------------------


def test_split_layout_counts_and_classes(tmp_path):
    ds = discover_folder(_folder(tmp_path, fmt="mixed"))
    assert ds.layout == "split" and ds.classes == ("circle", "square", "triangle")
    assert ds.counts()["train"] == {"circle": 8, "square": 8, "triangle": 8}
    assert ds.counts()["val"] == ds.counts()["test"] == {c: 1 for c in ds.classes}
    paths = [s.path for part in (ds.train, ds.val, ds.test) for s in part]
    assert len(set(paths)) == 30 and ds.skipped == ()
    assert all(Path(s.path).parent.name == ds.classes[s.label] for s in ds.train)


def test_presplit_layout_uses_the_folders(tmp_path):
    ds = discover_folder(_folder(tmp_path, layout="presplit"))
    assert ds.layout == "presplit"
    for split in ("train", "val", "test"):
        assert all(f"/{split}/" in s.path for s in getattr(ds, split))
    assert ds.counts()["val"] == {c: 1 for c in ds.classes}


def test_presplit_missing_val_is_carved_from_train(tmp_path):
    root = _folder(tmp_path, layout="presplit", per_class=20)  # train 16, val 2, test 2
    shutil.rmtree(root / "val")
    ds = discover_folder(root, seed=3)
    # train is divided 0.8 : 0.1 between train and val -> val gets round(16 / 9) = 2
    assert ds.counts()["val"] == {c: 2 for c in ds.classes}
    assert ds.counts()["train"] == {c: 14 for c in ds.classes}
    assert all("/test/" in s.path for s in ds.test)
    assert all("/train/" in s.path for s in ds.val)
    assert discover_folder(root, seed=3) == ds


def test_a_class_named_train_is_a_class(tmp_path):
    for cls in ("train", "bus"):
        for i in range(3):
            _image(tmp_path / "r" / cls / f"{i}.png", (i * 40, 0, 0))
    ds = discover_folder(tmp_path / "r")
    assert ds.layout == "split" and ds.classes == ("bus", "train")


def test_split_is_deterministic_in_seed_and_per_class(tmp_path):
    root = _folder(tmp_path, per_class=12)
    a, b = discover_folder(root, seed=0), discover_folder(root, seed=0)
    c = discover_folder(root, seed=1)
    assert a == b and a.train != c.train
    shutil.copytree(root, tmp_path / "more")
    for i in range(4):
        _image(tmp_path / "more" / "zebra" / f"{i}.png")
    d = discover_folder(tmp_path / "more", seed=0)  # adding a class keeps the others' splits
    assert [Path(s.path).name for s in d.val if s.label < 3] == [Path(s.path).name for s in a.val]


@pytest.mark.parametrize(
    ("n", "fractions", "expected"),
    [(1, (0.8, 0.1, 0.1), (1, 0, 0)), (2, (0.8, 0.1, 0.1), (2, 0, 0)),
     (3, (0.8, 0.1, 0.1), (1, 1, 1)), (10, (0.8, 0.1, 0.1), (8, 1, 1)),
     (10, (0.9, 0.0, 0.1), (9, 0, 1)), (2, (0.2, 0.4, 0.4), (1, 0, 1)),
     (100, (0.7, 0.15, 0.15), (70, 15, 15))],
)
def test_split_counts(n, fractions, expected):
    assert split_counts(n, fractions) == expected


def test_hidden_files_and_folders_are_ignored(tmp_path):
    root = _folder(tmp_path)
    (root / "circle" / ".DS_Store").write_bytes(b"junk")
    _image(root / ".cache" / "x.png")
    _image(root / "circle" / ".thumbs" / "x.png")
    ds = discover_folder(root)
    assert ds.skipped == () and len(ds.classes) == 3 and sum(ds.counts()["train"].values()) == 24


def test_class_mismatch_between_splits(tmp_path):
    root = _folder(tmp_path, layout="presplit")
    shutil.rmtree(root / "val" / "square")
    _image(root / "val" / "zebra" / "z.png")
    with pytest.raises(DataError) as err:
        discover_folder(root)
    assert "val/ lacks square" in str(err.value) and "val/ has zebra" in str(err.value)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda r: None, "does not exist"),
        (lambda r: r.write_text("x"), "is not a directory"),
        (lambda r: r.mkdir(), "has no class folders"),
        (lambda r: [(r / c).mkdir(parents=True) for c in "ab"], "no files found"),
        (lambda r: [_image(r / "a" / f"{i}.png") for i in range(3)], "need at least 2 classes"),
        (lambda r: ([_image(r / "a" / "0.png"), (r / "b").mkdir()]),
         "class 'b' has no usable images: folder"),
        (lambda r: ([_image(r / "a" / "0.png"), _image(r / "b" / "x.png"),
                     (r / "b" / "x.png").write_text("no")]),
         "class 'b' has no usable images: all 1 files were skipped"),
        (lambda r: ([(r / c).mkdir(parents=True) for c in "ab"],
                    (r / "a" / "x.png").write_bytes(b"")),
         "no usable images"),
        (lambda r: [_image(r / "val" / c / "0.png") for c in "ab"], "no train folder"),
    ],
)
def test_bad_folders_raise_data_error(tmp_path, setup, message):
    root = tmp_path / "root"
    setup(root)
    with pytest.raises(DataError, match=message) as err:
        discover_folder(root)
    assert err.value.hint


@pytest.mark.parametrize("split", [(0.8, 0.1), (0.5, 0.5, 0.5), (0.0, 0.5, 0.5), (1.1, -0.1, 0.0),
                                   (float("nan"), 0.5, 0.5), "abc"])
def test_bad_split_fractions(tmp_path, split):
    with pytest.raises(DataError, match="invalid split fractions"):
        discover_folder(_folder(tmp_path), split=split)


def test_bad_files_are_skipped_or_raise_when_strict(tmp_path):
    root = _folder(tmp_path, corrupt=3, fmt="jpg")
    good = root / "circle" / "circle_0000.jpg"
    (root / "circle" / "cut.png").write_bytes(_png_bytes()[:60])  # truncated PNG
    ds = discover_folder(root)
    reasons = {Path(s.path).name: s.reason for s in ds.skipped}
    assert set(reasons) == {"broken_000.jpg", "broken_001.jpg", "broken_002.png", "cut.png"}
    assert reasons["broken_000.jpg"] == "empty file (0 bytes)"
    assert "truncated" in reasons["broken_001.jpg"]
    assert reasons["broken_002.png"] == "not an image file PIL can read"
    assert sum(sum(c.values()) for c in ds.counts().values()) == 30
    assert str(good) in [s.path for part in (ds.train, ds.val, ds.test) for s in part]
    with pytest.raises(DataError, match="cannot use .*broken_000.jpg: empty file") as err:
        discover_folder(root, strict=True)
    assert err.value.path.endswith("broken_000.jpg")


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.arange(48 * 48 * 3, dtype=np.uint8).reshape(48, 48, 3)).save(buf, "PNG")
    return buf.getvalue()


# --- image modes ---------------------------------------------------------------------------


def test_mode_l_and_one_bit():
    img = to_channels(Image.new("L", (2, 2), 77), 3)
    assert img.mode == "RGB" and img.getpixel((0, 0)) == (77, 77, 77)
    assert to_channels(Image.new("1", (2, 2), 1), 1).getpixel((0, 0)) == 255


def test_mode_rgba_and_la_composite_on_black():
    img = to_channels(Image.new("RGBA", (2, 2), (200, 100, 50, 128)), 3)
    assert np.abs(np.array(img.getpixel((0, 0))) - [100, 50, 25]).max() <= 1
    clear = to_channels(Image.new("RGBA", (2, 2), (200, 100, 50, 0)), 3)
    assert clear.getpixel((0, 0)) == (0, 0, 0)
    assert to_channels(Image.new("LA", (2, 2), (90, 255)), 1).getpixel((0, 0)) == 90


def test_mode_p_with_transparency():
    img = Image.new("P", (2, 1))
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    img.putpixel((1, 0), 1)
    img.info["transparency"] = 0
    out = to_channels(img, 3)
    assert out.getpixel((0, 0)) == (0, 0, 0) and out.getpixel((1, 0)) == (0, 255, 0)
    del img.info["transparency"]
    assert to_channels(img, 3).getpixel((0, 0)) == (255, 0, 0)


def test_mode_i16_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    img = Image.fromarray(values)
    assert img.mode == "I;16"
    assert list(np.asarray(to_channels(img, 1))[0]) == [0, 1, 128, 255]
    img.save(tmp_path / "deep.png")
    array, reason = try_decode(tmp_path / "deep.png", channels=3, resize=None)
    assert reason is None and array.shape == (1, 4, 3)
    assert list(array[0, :, 0]) == [0, 1, 128, 255]


def test_modes_i_and_f():
    as16 = Image.fromarray(np.array([[0, 65535]], dtype=np.int32))
    assert list(np.asarray(to_channels(as16, 1))[0]) == [0, 255]
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert list(np.asarray(to_channels(unit, 1))[0]) == [0, 128, 255]
    wide = Image.fromarray(np.array([[-5.0, 5.0]], dtype=np.float32))
    assert list(np.asarray(to_channels(wide, 1))[0]) == [0, 255]


def test_mode_cmyk_and_gray_output():
    def rgb(cmyk):
        return to_channels(Image.new("CMYK", (1, 1), cmyk), 3).getpixel((0, 0))

    assert rgb((0, 0, 0, 0)) == (255, 255, 255) and rgb((255, 0, 0, 0)) == (0, 255, 255)
    gray = to_channels(Image.new("RGB", (1, 1), (255, 0, 0)), 1)
    assert gray.mode == "L" and gray.getpixel((0, 0)) == 76  # ITU-R 601 luma of pure red


def test_working_size_resizes_shorter_side_and_center_crops(tmp_path):
    img = np.zeros((20, 40, 3), dtype=np.uint8)
    img[:, 10:30] = 255  # the central 20x20 square is white, the sides black
    Image.fromarray(img).save(tmp_path / "wide.png")
    array, _ = try_decode(tmp_path / "wide.png", channels=3, resize=10)
    assert array.shape == (10, 10, 3) and array[:, 1:-1].min() == 255
    # equals resizing the whole image, then cropping its center
    reference = Image.fromarray(img).resize((20, 10), Image.Resampling.BILINEAR)
    reference = reference.crop((5, 0, 15, 10))
    assert np.abs(array.astype(int) - np.asarray(reference)).max() <= 1


# --- cache and streaming ----------------------------------------------------------------


@pytest.fixture
def folder(tmp_path):
    return discover_folder(_folder(tmp_path, size=24, fmt="mixed"))


def test_cache_and_streaming_give_identical_eval_items(folder):
    cached = CachedImageDataset(folder.test, train=False, **KW)
    streamed = StreamingImageDataset(folder.test, train=False, **KW)
    assert cached.images.shape == (3, 3, 20, 20) and cached.images.dtype == torch.uint8
    for i in range(len(cached)):
        (x, y), (x2, y2) = cached[i], streamed[i]
        assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and y == y2
        assert torch.equal(x, x2)
    batch = cached.__getitems__([2, 0])
    assert isinstance(batch, Batch) and torch.equal(batch.inputs[1], cached[0][0])
    assert batch.targets.tolist() == [cached[2][1], cached[0][1]]


def test_normalisation_matches_definition(folder):
    ds = CachedImageDataset(folder.test, train=False, **KW)
    x, _ = ds[0]
    raw = ds.images[0, :, 2:18, 2:18].float() / 255
    expected = (raw - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    assert torch.allclose(x, expected, atol=1e-5)


def test_train_crops_reproducible_and_equal_across_paths(folder):
    def items(ds, batched):
        torch.manual_seed(7)
        if batched:
            return ds.__getitems__(list(range(len(ds)))).inputs
        return torch.stack([ds[i][0] for i in range(len(ds))])

    kw = dict(KW, train=True, flip=True, pad=2)  # padded, cropped and flipped alike on every path
    cached = CachedImageDataset(folder.train, **kw)
    streamed = StreamingImageDataset(folder.train, **kw)
    a = items(cached, batched=True)
    assert torch.equal(a, items(cached, batched=True))
    assert torch.equal(a, items(cached, batched=False))
    assert torch.equal(a, items(streamed, batched=False))
    torch.manual_seed(8)
    assert not torch.equal(a, cached.__getitems__(list(range(len(cached)))).inputs)


def test_decoded_pixels_from_validation_are_reused(tmp_path):
    root = _folder(tmp_path, size=24, fmt="jpg")
    ds = discover_folder(root, resize=20)
    assert ds.decoded is not None and len(ds.decoded.arrays) == 30
    with_reuse = CachedImageDataset(ds.train, train=False, decoded=ds.decoded, **KW)
    without = CachedImageDataset(ds.train, train=False, **KW)
    assert torch.equal(with_reuse.images, without.images)
    assert discover_folder(root, resize=20, memory_budget_bytes=100).decoded is None


def test_memory_budget_falls_back_to_streaming(folder):
    assert isinstance(make_dataset(folder.train, train=True, **KW), CachedImageDataset)
    small = make_dataset(folder.train, train=True, memory_budget_bytes=3 * 20 * 20, **KW)
    assert isinstance(small, StreamingImageDataset) and len(small) == 24


@pytest.mark.parametrize(("change", "message"), [
    (dict(train_crop=24), "train_crop <= resize"), (dict(mean=(0.5, 0.5)), "mean has 2 values"),
    (dict(std=(0.0, 1.0, 1.0)), "std must be positive"), (dict(channels=2), "channels must be"),
])
def test_bad_dataset_arguments(folder, change, message):
    with pytest.raises(DataError, match=message):
        CachedImageDataset(folder.train, train=True, **(KW | change))


def test_unreadable_sample_names_the_file(tmp_path, folder):
    bad = tmp_path / "bad.png"
    bad.write_text("nope")
    with pytest.raises(DataError, match="bad.png"):
        CachedImageDataset([(str(bad), 0)], train=False, **KW)


def test_array_samples_convert_channels_and_size():
    gray = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8, 1)
    ds = CachedImageDataset(ArraySamples(gray, np.array([0, 1])), channels=3, resize=8,
                            train_crop=8, mean=(0,), std=(1 / 255,), train=False)
    x, y = ds[1]
    assert y == 1 and torch.equal(x[0], x[2]) and x[0, 0, 0] == 64
    rgb = np.zeros((1, 8, 8, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    small = CachedImageDataset(ArraySamples(rgb, np.array([0])), channels=1, resize=4,
                               train_crop=4, mean=(0,), std=(1 / 255,), train=False)
    assert small.images.shape == (1, 1, 4, 4) and (small.images == 76).all()


# --- loaders ------------------------------------------------------------------------------


def test_loaders_are_reproducible_and_cover_every_item(folder):
    def run(seed):
        train = make_dataset(folder.train, train=True, flip=True, pad=2, **KW)
        val = make_dataset(folder.val, train=False, **KW)
        loaders = make_loaders(train, val, None, batch_size=5, seed=seed, device="cpu")
        torch.manual_seed(0)
        return [(x.clone(), y) for x, y in loaders.train], loaders

    first, loaders = run(0)
    assert [len(y) for _, y in first] == [5, 5, 5, 5, 4]  # drop_last is off
    assert sorted(t for _, y in first for t in y.tolist()) == sorted(s.label for s in folder.train)
    again, _ = run(0)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    other, _ = run(1)
    assert not all(torch.equal(a[1], b[1]) for a, b in zip(first, other))
    assert loaders.test is None and loaders.train.num_workers == 0
    assert not loaders.train.pin_memory
    x, y = next(iter(loaders.val))
    assert x.shape == (3, 3, 16, 16) and y.dtype == torch.int64


def test_loaders_reject_bad_options(folder):
    train = make_dataset(folder.train, train=True, **KW)
    with pytest.raises(ConfigError, match="batch_size"):
        make_loaders(train, None, None, batch_size=0, seed=0, device="cpu")
    with pytest.raises(ConfigError, match="workers"):
        make_loaders(train, None, None, batch_size=2, seed=0, device="cpu", workers=-1)


# --- named datasets -----------------------------------------------------------------------


def _fake_cifar10(root: Path, per_batch: int = 10) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        (folder / name).write_bytes(pickle.dumps({"data": data, "labels": list(range(per_batch))}))
    names = ["airplane", "automobile", "bird", "cat", "deer",
             "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))


def _idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _fake_mnist(root: Path, n: int = 30) -> None:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        _idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)


def test_cifar10_from_native_files(tmp_path, monkeypatch):
    # torchvision checks the real files' md5 sums; tiny fakes need that check switched off.
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *a, **k: True)
    _fake_cifar10(tmp_path)
    ds = load_named_dataset("CIFAR-10", tmp_path, split_seed=0)
    assert (ds.name, ds.channels, ds.size, ds.classes[0]) == ("cifar10", 3, 32, "airplane")
    assert (len(ds.train), len(ds.val), len(ds.test)) == (40, 10, 10)
    assert ds.counts()["val"] == {c: 1 for c in ds.classes} and ds.skipped == ()
    assert ds.train.images.shape == (40, 32, 32, 3)
    assert ds.files[0] == tmp_path / "cifar-10-batches-py" / "data_batch_1" and len(ds.files) == 7
    assert ds.description == (f"CIFAR-10 (Krizhevsky 2009), python-version batches from "
                              f"{tmp_path / 'cifar-10-batches-py'}: 50 train / 10 test, 32x32 RGB")
    raw = pickle.loads((tmp_path / "cifar-10-batches-py" / "test_batch").read_bytes())["data"]
    assert np.array_equal(ds.test.images[3], raw[3].reshape(3, 32, 32).transpose(1, 2, 0))
    again = load_named_dataset("cifar10", tmp_path, split_seed=0)
    assert np.array_equal(again.val.images, ds.val.images)
    item, label = make_dataset(ds.test, channels=3, resize=32, train_crop=32, mean=(0,),
                               std=(1 / 255,), train=False)[3]
    assert label == 3 and torch.equal(item, torch.from_numpy(raw[3].reshape(3, 32, 32)).float())


def test_mnist_from_idx_files(tmp_path):
    _fake_mnist(tmp_path)
    ds = load_named_dataset("mnist", tmp_path, val_fraction=0.2)
    assert ds.channels == 1 and ds.size == 28 and len(ds.classes) == 10
    assert (len(ds.train), len(ds.val), len(ds.test)) == (20, 10, 30)
    assert ds.train.images.shape == (20, 28, 28, 1)
    x, _ = make_dataset(ds.train, channels=1, resize=28, train_crop=24, mean=(0.5,), std=(0.5,),
                        train=True)[0]
    assert x.shape == (1, 24, 24)


def test_mnist_streams_from_arrays_like_the_cache(tmp_path):
    _fake_mnist(tmp_path)
    ds = load_named_dataset("mnist", tmp_path)
    kw = dict(channels=3, resize=20, train_crop=16, mean=(0.5,), std=(0.5,), train=False)
    streamed = make_dataset(ds.test, memory_budget_bytes=0, **kw)
    cached = make_dataset(ds.test, **kw)
    assert isinstance(streamed, StreamingImageDataset) and isinstance(cached, CachedImageDataset)
    assert all(torch.equal(streamed[i][0], cached[i][0]) for i in range(5))


def _fake_other(name: str, root: Path) -> None:
    rng = np.random.default_rng(0)
    if name == "svhn":
        import scipy.io

        for split in ("train", "test"):
            images = rng.integers(0, 256, (32, 32, 3, 20), dtype=np.uint8)
            labels = (np.arange(20) % 10 + 1).reshape(-1, 1)  # SVHN writes digit 0 as 10
            scipy.io.savemat(root / f"{split}_32x32.mat", {"X": images, "y": labels})
    elif name == "cifar100":
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True)
        for split in ("train", "test"):
            data = rng.integers(0, 256, (200, 3072), dtype=np.uint8)
            entry = {"data": data, "fine_labels": list(np.arange(200) % 100)}
            (folder / split).write_bytes(pickle.dumps(entry))
        names = {"fine_label_names": [f"c{i:02d}" for i in range(100)]}
        (folder / "meta").write_bytes(pickle.dumps(names))
    else:
        _fake_mnist(root)
        (root / "MNIST").rename(root / "FashionMNIST")


@pytest.mark.parametrize(
    ("name", "channels", "classes0"),
    [("svhn", 3, "0"), ("cifar100", 3, "c00"), ("fashionmnist", 1, "T-shirt/top")],
)
def test_other_named_datasets(tmp_path, monkeypatch, name, channels, classes0):
    for module in ("cifar", "svhn"):
        monkeypatch.setattr(f"torchvision.datasets.{module}.check_integrity", lambda *a, **k: True)
    _fake_other(name, tmp_path)
    ds = load_named_dataset(name, tmp_path)
    assert ds.channels == channels and ds.classes[0] == classes0 and len(ds.classes) in (10, 100)
    assert ds.train.images.shape[1:] == (ds.size, ds.size, channels)
    assert sorted(set(ds.test.labels.tolist())) == list(range(len(ds.classes)))


def test_named_dataset_errors(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'imagenet'") as err:
        load_named_dataset("imagenet", tmp_path)
    assert "cifar10" in err.value.hint
    with pytest.raises(DataError, match="does not exist") as err:
        load_named_dataset("cifar10", tmp_path / "nowhere")
    assert "`download`" in err.value.hint and "cifar-10-batches-py" in err.value.hint
    with pytest.raises(DataError, match="could not read cifar10") as err:
        load_named_dataset("cifar10", tmp_path)
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(DataError) as err:
        load_named_dataset("cifar10", tmp_path / "cifar-10-batches-py")
    assert f"probably {tmp_path}" in err.value.hint
    with pytest.raises(DataError, match="val_fraction"):
        load_named_dataset("mnist", tmp_path, val_fraction=1.0)


# --- synthetic folders --------------------------------------------------------------------


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("kind", ["shapes", "textures"])
def test_synthetic_generator_is_deterministic(tmp_path, kind):
    kw = dict(kind=kind, classes=4, per_class=4, size=16, fmt="mixed")
    a = make_image_folder(tmp_path / "a", seed=5, **kw)
    b = make_image_folder(tmp_path / "b", seed=5, **kw)
    c = make_image_folder(tmp_path / "c", seed=6, **kw)
    assert _digest(a) == _digest(b) != _digest(c)
    assert len(list(a.rglob("*.png"))) == 8 and len(list(a.rglob("*.jpg"))) == 8


def test_synthetic_generator_errors(tmp_path):
    with pytest.raises(DataError, match="unknown kind"):
        make_image_folder(tmp_path / "x", kind="faces")
    with pytest.raises(DataError, match="2 to 8 classes"):
        make_image_folder(tmp_path / "x", classes=9)
    _folder(tmp_path, name="full")
    with pytest.raises(DataError, match="not an empty folder"):
        _folder(tmp_path, name="full")


def test_example_digits_folder_is_rebuilt_by_its_script(tmp_path):
    """examples/digits is what scripts/make_example_digits.py writes from the UCI digits CSV."""
    import gzip

    import numpy as np
    from PIL import Image

    script = Path(__file__).parents[1] / "scripts" / "make_example_digits.py"
    spec = importlib.util.spec_from_file_location("make_example_digits", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shipped = Path(__file__).parents[1] / "examples" / "digits"
    rows = []  # rebuild a CSV from the shipped PNGs (row number = file name): values 0..16
    for png in sorted(shipped.glob("*/*.png")):
        pixels = np.asarray(Image.open(png))
        assert pixels.shape == (8, 8) and pixels.dtype == np.uint8
        counts = np.rint(pixels.astype(float) * 16 / 255).astype(int)
        rows.append((int(png.stem), [*counts.ravel().tolist(), int(png.parent.name)]))
    assert len(rows) == 300 and {r[1][-1] for r in rows} == set(range(10))
    csv_path = tmp_path / "digits.csv.gz"
    with gzip.open(csv_path, "wt") as fh:
        by_row = dict(rows)
        for i in range(max(by_row) + 1):  # rows the demo does not ship: a digit 10 never picked
            fh.write(",".join(map(str, by_row.get(i, [0] * 64 + [-1]))) + "\n")
    out = tmp_path / "digits"
    result = CliRunner().invoke(module.main, ["--csv", str(csv_path), "--out", str(out)])
    assert result.exit_code == 1 and "not scikit-learn's digits" in result.output  # label -1
    with gzip.open(csv_path, "wt") as fh:
        for i in sorted(by_row):
            fh.write(",".join(map(str, by_row[i])) + "\n")
    result = CliRunner().invoke(module.main, ["--csv", str(csv_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    for digit in range(10):  # same images in the same order (names differ: the CSV was compacted)
        ours, theirs = (sorted((root / str(digit)).glob("*.png")) for root in (out, shipped))
        assert len(ours) == len(theirs) == 30
        for a, b in zip(ours, theirs):
            assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


def _bloodcells_script():
    script = Path(__file__).parents[1] / "scripts" / "make_example_bloodcells.py"
    spec = importlib.util.spec_from_file_location("make_example_bloodcells", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_bloodcells_folder_is_what_its_sums_and_script_say(tmp_path):
    """examples/bloodcells holds 40 unchanged PBC JPEGs per white-cell class, as SHA256SUMS
    lists them, and the script picks the first sorted names per class from a PBC tarball."""
    import tarfile

    module = _bloodcells_script()
    shipped = Path(__file__).parents[1] / "examples" / "bloodcells"
    sums = dict(reversed(line.split("  ")) for line in (shipped / "SHA256SUMS").read_text().splitlines())
    files = sorted(p for p in shipped.glob("*/*") if p.is_file())
    assert [f"{p.parent.name}/{p.name}" for p in files] == sorted(sums) and len(files) == 200
    for path in files:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sums[f"{path.parent.name}/{path.name}"]
    assert sorted({p.parent.name for p in files}) == list(module.CLASSES)

    tar_path = tmp_path / "pbc.tar"  # the shipped files, in reverse order, plus decoys (not
    with tarfile.open(tar_path, "w") as tar:  # xz-compressed as the real one: the script reads either)
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(f"pbc_bloodcells/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for path in reversed(files):
            add(f"{path.parent.name}/{path.name}", path.read_bytes())
        add("platelet/PLT_1.jpg", b"not kept")  # not a white-cell class
        add("neutrophil/zz_last.jpg", b"sorted after the 40th")
    out = tmp_path / "out"
    result = CliRunner().invoke(module.main, ["--tar", str(tar_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "SHA256SUMS").read_text() == (shipped / "SHA256SUMS").read_text()
    assert sorted(p.relative_to(out) for p in out.glob("*/*")) == [p.relative_to(shipped) for p in files]
    result = CliRunner().invoke(module.main, ["--tar", str(tar_path), "--out", str(out), "--per-class", "42"])
    assert result.exit_code == 1 and "fewer than --per-class 42" in result.output

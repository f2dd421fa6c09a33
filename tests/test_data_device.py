"""The device-resident data path (ticketzoo.data.device_loader), checked on CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ticketzoo.data import ArraySamples, discover_folder, make_dataset
from synthetic import make_image_folder
from ticketzoo.data.device_loader import (
    DeviceBudgetError,
    DeviceImages,
    DeviceLoader,
    make_device_loaders,
)
from ticketzoo.errors import DataError
from ticketzoo.train.checkpoint import capture_rng, restore_rng
from ticketzoo.train.device import Runtime

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def _arrays(n=10, size=8, channels=3, seed=0) -> ArraySamples:
    """Random pixels; label i for image i, so a batch's labels say which images it holds."""
    rng = np.random.default_rng(seed)
    return ArraySamples(rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8),
                        np.arange(n, dtype=np.int64))


def _loaders(train, val=None, test=None, **kw):
    args = dict(device="cpu", batch_size=4, seed=0, mean=MEAN, std=STD, input_size=8)
    return make_device_loaders(train, val, test, **{**args, **kw})


def _epoch(loader):
    batches = list(loader)
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def _reference(samples: ArraySamples, channels=3, resize=8, crop=8) -> torch.Tensor:
    """The existing cached path's eval images, one by one."""
    ds = make_dataset(samples, channels=channels, resize=resize, train_crop=crop,
                      mean=MEAN[:channels], std=STD[:channels], train=False)
    return torch.stack([ds[i][0] for i in range(len(ds))])


def test_shapes_dtypes_and_lengths():
    loaders = _loaders(_arrays(10), _arrays(6), None)
    assert loaders.test is None and loaders.train.generator is loaders.generator
    assert (len(loaders.train), len(loaders.val)) == (3, 2)
    x, y = next(iter(loaders.train))
    assert x.shape == (4, 3, 8, 8) and x.dtype == torch.float32 and x.is_contiguous()
    assert y.shape == (4,) and y.dtype == torch.int64
    dropped = _loaders(_arrays(10), drop_last=True).train
    assert len(dropped) == 2 and [len(y) for _, y in dropped] == [4, 4]


def test_every_sample_once_per_epoch_and_images_follow_labels():
    data = _arrays(11)
    train = _loaders(data, crop=False, flip=False).train
    ref = _reference(data)
    for _ in range(3):
        x, y = _epoch(train)
        assert sorted(y.tolist()) == list(range(11))
        assert torch.equal(x, ref[y])  # no augmentation: exactly the cached path's images


def test_same_seed_same_batches_other_seed_other_order():
    data = _arrays(20)
    a, b = _epoch(_loaders(data).train), _epoch(_loaders(data).train)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    c = _epoch(_loaders(data, seed=1).train)
    assert not torch.equal(a[1], c[1])


def test_reseeding_and_restored_state_reproduce_epochs():
    loaders = _loaders(_arrays(20))
    first, second = _epoch(loaders.train), _epoch(loaders.train)
    assert not torch.equal(first[1], second[1])  # a new epoch, a new order
    loaders.generator.manual_seed(0)  # what find does at the start of every round
    again = _epoch(loaders.train)
    assert torch.equal(again[0], first[0]) and torch.equal(again[1], first[1])
    saved = capture_rng(loaders.train)  # the checkpoint sees exactly one loader generator
    assert len(saved["loader"]) == 1
    expected = _epoch(loaders.train)
    restore_rng(saved, loaders.train)
    resumed = _epoch(loaders.train)
    assert torch.equal(resumed[0], expected[0]) and torch.equal(resumed[1], expected[1])


@pytest.mark.parametrize(("size", "pad", "resize"), [(8, 4, 8), (6, 2, 8), (8, 0, 10)])
def test_random_crop_and_flip_match_a_per_image_reference(size, pad, resize):
    data = _arrays(9, size=resize)
    train = _loaders(data, input_size=size, resize=resize, pad=pad).train
    x, y = _epoch(train)
    # The documented draws, replayed on a generator with the same seed.
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(9, generator=g)
    top, left = torch.randint(0, resize + 2 * pad - size + 1, (2, 9), generator=g)
    flips = torch.rand(9, generator=g) < 0.5
    assert torch.equal(y, order)
    scale = 1.0 / (255.0 * torch.tensor(STD)).view(3, 1, 1)
    shift = (-torch.tensor(MEAN) / torch.tensor(STD)).view(3, 1, 1)
    for j, i in enumerate(order.tolist()):
        img = F.pad(torch.from_numpy(data.images[i]).permute(2, 0, 1), (pad,) * 4)
        crop = img[:, top[j] : top[j] + size, left[j] : left[j] + size]
        crop = crop.flip(-1) if flips[j] else crop
        assert torch.equal(x[j], crop.float().mul_(scale).add_(shift)), j
    assert 0 < int(flips.sum()) < 9  # both branches were exercised


def test_flip_without_crop():
    data = _arrays(16)
    x, y = _epoch(_loaders(data, crop=False, flip=True).train)
    ref = _reference(data)[y]
    same = (x == ref).flatten(1).all(1)
    mirrored = (x == ref.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 0 < int(mirrored.sum()) < 16


def test_normalisation_equals_make_dataset_eval():
    data = _arrays(10, size=10)
    loaders = _loaders(data, data, None, resize=10, input_size=8)
    ref = _reference(data, resize=10, crop=8)  # center crop of a larger working size
    assert torch.equal(_epoch(loaders.val)[0], ref)
    x, y = _epoch(_loaders(data, resize=10, input_size=8, crop=False, flip=False).train)
    assert torch.equal(x, ref[y])


def test_grey_resized_to_three_channels_equals_make_dataset():
    data = _arrays(7, size=6, channels=1)  # Fashion-MNIST into an RGB model, 6 -> 8 px
    loaders = _loaders(data, data, data, channels=3, resize=8)
    assert loaders.train.data.images.shape == (7, 16, 16, 1)  # stored grey, padded
    x, _ = _epoch(loaders.test)
    assert x.shape == (7, 3, 8, 8)
    assert torch.equal(x, _reference(data, channels=3))
    shrunk = _loaders(_arrays(5, size=12), None, _arrays(5, size=12), resize=8)
    assert torch.equal(_epoch(shrunk.test)[0], _reference(_arrays(5, size=12), resize=8))


def test_eval_keeps_last_partial_batch_in_order():
    loaders = _loaders(_arrays(10), _arrays(10), None, drop_last=True)
    sizes = [len(y) for _, y in loaders.val]
    assert sizes == [4, 4, 2] and len(loaders.val) == 3
    assert _epoch(loaders.val)[1].tolist() == list(range(10))


def test_channels_last_output_and_to_device_is_a_no_op():
    data = _arrays(10)
    plain = _epoch(_loaders(data).train)[0]
    loaders = _loaders(data, channels_last=True)
    x, y = next(iter(loaders.train))
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x, plain[:4])
    for runtime in (Runtime(torch.device("cpu")), Runtime(torch.device("cpu"), None, True)):
        x2, y2 = runtime.to_device(x, y)
        assert x2 is x and y2 is y


def test_memory_budget_refusal():
    data = _arrays(10)
    need = 10 * 3 * 16 * 16 + 10 * 8 + 10 * 32  # padded train images, labels, epoch plan
    with pytest.raises(DeviceBudgetError, match="budget"):  # a DataError callers can catch
        _loaders(data, memory_budget_bytes=need - 1)
    _loaders(data, memory_budget_bytes=need)


def test_labels_checked_against_num_classes():
    with pytest.raises(DataError, match="label 9"):
        _loaders(_arrays(10), num_classes=5)


def test_uploaded_split_can_be_reused():
    first = _loaders(_arrays(10), _arrays(6), None)
    again = _loaders(first.train.data, first.val.data, None, seed=3, memory_budget_bytes=0)
    assert again.train.data is first.train.data
    with pytest.raises(DataError, match="uploaded"):
        _loaders(first.train.data, None, None, pad=2)


def test_cached_datasets_are_accepted():
    data = _arrays(9, size=6, channels=1)
    kw = dict(channels=3, resize=10, train_crop=8, mean=MEAN, std=STD)
    train, val = make_dataset(data, train=True, **kw), make_dataset(data, train=False, **kw)
    loaders = _loaders(train, val, None, resize=10, input_size=8, pad=0, flip=False)
    x, y = _epoch(loaders.val)
    assert torch.equal(x, torch.stack([val[i][0] for i in range(9)]))
    assert torch.equal(_epoch(loaders.train)[1].sort().values, y)
    with pytest.raises(DataError, match="cached dataset"):
        _loaders(train, None, None, resize=12)


def test_image_folder_samples(tmp_path):
    root = make_image_folder(tmp_path / "imgs", classes=2, per_class=5, size=12)
    ds = discover_folder(root, channels=3, resize=8, split=(0.6, 0.4, 0.0))
    loaders = _loaders(ds.train, ds.val, ds.test, decoded=ds.decoded)
    assert loaders.test is None
    ref = make_dataset(ds.val, channels=3, resize=8, train_crop=8, mean=MEAN, std=STD,
                       train=False, decoded=ds.decoded)
    x, y = _epoch(loaders.val)
    assert torch.equal(x, torch.stack([ref[i][0] for i in range(len(ref))]))
    assert y.tolist() == [s.label for s in ds.val]


def test_trains_through_the_loop():
    from ticketzoo.models import build_model
    from ticketzoo.train import TrainConfig, evaluate, train

    data = ArraySamples(_arrays(24).images, np.arange(24) % 3)
    loaders = _loaders(data, data, None, num_classes=3)
    model = build_model("conv2", num_classes=3, input_size=8, seed=0, width=0.125)
    config = TrainConfig(max_epochs=2, device="cpu", patience=None, lr=0.01)
    result = train(model, None, loaders.train, loaders.val, config)
    assert result.final_step == 2 * len(loaders.train)
    assert evaluate(model, loaders.val).num_samples == 24


def test_loader_rejects_bad_batch_size():
    data = _loaders(_arrays(4)).train.data
    assert isinstance(data, DeviceImages)
    with pytest.raises(Exception, match="batch_size"):
        DeviceLoader(data, batch_size=0, crop_size=8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_equal_cpu_batches_and_to_device_is_a_no_op():
    data = _arrays(50, size=10, channels=1)
    kw = dict(resize=10, channels=3, pad=2, num_classes=50)
    cpu = _loaders(data, data, None, **kw)
    gpu = _loaders(data, data, None, device="cuda", channels_last=True, **kw)
    for ours, ref in ((gpu.train, cpu.train), (gpu.val, cpu.val)):
        for (x, y), (x_ref, y_ref) in zip(ours, ref, strict=True):
            assert x.is_cuda and x.is_contiguous(memory_format=torch.channels_last)
            assert torch.equal(x.cpu(), x_ref) and torch.equal(y.cpu(), y_ref)
    runtime = Runtime.create("cuda", channels_last=True)
    x, y = next(iter(gpu.train))
    x2, y2 = runtime.to_device(x, y)
    assert x2.data_ptr() == x.data_ptr() and y2.data_ptr() == y.data_ptr()

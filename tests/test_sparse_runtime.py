"""The sparse runtime: every kernel equals torch's dense result, on every supported layer type,
with batch-norms folded and residual adds fused; the per-machine choice cache; the fallbacks."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from conftest import tiny_ticket
from sparse_build import compiled, sparse_cache  # noqa: F401 - fixtures
from ticketzoo.errors import ConfigError
from ticketzoo.pruning import prune_to_sparsity
from ticketzoo.sparse import SparseModel, sparsify
from ticketzoo.sparse.choose import Chooser
from ticketzoo.sparse.layers import SparseConv2d, SparseLinear

TOL = 1e-4  # relative to the output's largest magnitude


def rel(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out - ref).abs().max() / ref.abs().max())


def pruned(shape, density: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * (torch.rand(shape, generator=g) < density)


def randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Batch-norms with non-trivial statistics and affine terms, so folding them is tested."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))
    return model.eval()


def prune_model(model: nn.Module, sparsity: float) -> nn.Module:
    masks = prune_to_sparsity(model, sparsity)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in masks:
                p.mul_(masks[name])
    return model


# --- the C++ kernels, layer by layer ---------------------------------------------------------

CONVS = [  # (N, C, O, H, W, KH, KW, stride, padding)
    (2, 5, 7, 9, 11, 3, 3, 1, 1),  # 3x3, odd sizes
    (1, 8, 20, 16, 16, 1, 1, 1, 0),  # 1x1: read in place
    (3, 6, 9, 13, 10, 1, 1, 2, 0),  # 1x1 stride 2 (a ResNet downsample)
    (2, 4, 9, 14, 14, 3, 3, 2, 1),  # 3x3 stride 2
    (2, 3, 17, 23, 23, 7, 7, 2, 3),  # the ResNet stem
    (1, 4, 6, 9, 8, 5, 3, 1, 2),  # a non-square kernel
    (1, 16, 33, 7, 7, 3, 3, 1, 1),  # fewer outputs than a vector tile
    (1, 3, 4, 2, 2, 1, 1, 1, 0),  # a plane shorter than one vector
    (1, 4, 5, 3, 3, 3, 3, 2, 1),
    (1, 96, 20, 14, 14, 3, 3, 1, 1),  # many channels: the input is read in L1-sized channel blocks
    (2, 80, 18, 15, 15, 3, 3, 2, 1),  # channel blocks with phase-split (stride 2) input
    (1, 300, 17, 6, 6, 1, 1, 1, 0),  # 1x1, channel blocks over a plane shorter than a tile
]


def conv_layer(case, density, bias, kernel_module):
    n, c, o, h, w, kh, kw, s, p = case
    weight = pruned((o, c, kh, kw), density)
    b = torch.randn(o) if bias else None
    chooser = Chooser(kernel_module, force="sparse")
    return SparseConv2d(weight, b, s, p, chooser, "conv"), weight, b, torch.randn(n, c, h, w)


@pytest.mark.parametrize("case", CONVS, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("epilogue", ["plain", "relu", "residual+relu"])
def test_sparse_conv_equals_dense(compiled, case, epilogue):
    layer, weight, bias, x = conv_layer(case, 0.3, bias=True, kernel_module=compiled)
    ref = F.conv2d(x, weight, bias, stride=case[7], padding=case[8])
    residual = torch.randn_like(ref) if epilogue == "residual+relu" else None
    if residual is not None:
        ref = ref + residual
    if epilogue != "plain":
        ref = torch.relu(ref)
    out = layer(x, residual, epilogue != "plain")
    assert out.shape == ref.shape and rel(out, ref) < TOL


@pytest.mark.parametrize("density", [0.0, 0.02, 1.0])
def test_sparse_conv_any_density_no_bias(compiled, density):
    layer, weight, _, x = conv_layer(CONVS[0], density, bias=False, kernel_module=compiled)
    ref = F.conv2d(x, weight, None, padding=1)
    out = layer(x)
    assert torch.allclose(out, ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("density", [0.005, 0.5])
def test_channel_blocks_with_empty_blocks(compiled, density):
    """Rows whose nonzeros skip whole channel blocks (very sparse) or fill them (half dense)."""
    layer, weight, bias, x = conv_layer((2, 256, 24, 10, 10, 3, 3, 1, 1), density, bias=True,
                                        kernel_module=compiled)
    assert rel(layer(x), F.conv2d(x, weight, bias, padding=1)) < TOL


POOLS = [  # (N, C, H, W, kernel, stride, padding)
    (2, 3, 112, 112, 3, 2, 1),  # the ResNet stem's
    (1, 4, 9, 11, 3, 2, 1),  # odd sizes
    (1, 2, 8, 8, 2, 2, 0),
    (2, 5, 7, 6, 3, 1, 1),
    (1, 1, 5, 5, 5, 1, 2),
    (1, 3, 10, 13, 4, 3, 2),
]


@pytest.mark.parametrize("case", POOLS, ids=lambda c: "x".join(map(str, c)))
def test_max_pool_kernel_equals_torch(compiled, case):
    n, c, h, w, k, s, p = case
    x = torch.randn(n, c, h, w)
    ref = F.max_pool2d(x, k, s, p)
    out = compiled.max_pool2d(x, k, s, p, 2)
    assert out.shape == ref.shape and torch.equal(out, ref)


def test_max_pool_is_swapped_only_where_the_kernel_computes_it(compiled):
    from ticketzoo.sparse.layers import MaxPool2d

    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.MaxPool2d(3, 2, 1), nn.Conv2d(8, 8, 3),
                          nn.MaxPool2d(2, ceil_mode=True), nn.Flatten(), nn.LazyLinear(4))
    x = torch.randn(2, 3, 17, 17)
    with torch.no_grad():
        ref = model(x)
    fast = sparsify(model, kernel="sparse", cache=False)
    pools = [m for m in fast.net.modules() if isinstance(m, (MaxPool2d, nn.MaxPool2d))]
    assert [type(m) for m in pools] == [MaxPool2d, nn.MaxPool2d]  # ceil_mode stays torch's
    assert rel(fast(x), ref) < TOL
    with torch.autocast("cpu", dtype=torch.bfloat16):  # not fp32: torch's pool
        assert fast(x).shape == ref.shape


def test_allocator_tuning_is_applied_once_and_reported():
    from ticketzoo.sparse import allocator

    first = allocator.keep_freed_memory()
    assert isinstance(first, bool) and allocator.keep_freed_memory() is first


@pytest.mark.parametrize("batch", [1, 3, 20])
@pytest.mark.parametrize("relu", [False, True])
def test_sparse_linear_equals_dense(compiled, batch, relu):
    weight, bias, x = pruned((30, 50), 0.2), torch.randn(30), torch.randn(batch, 50)
    layer = SparseLinear(weight, bias, Chooser(compiled, force="sparse"), "fc")
    ref = F.linear(x, weight, bias)
    ref = torch.relu(ref) if relu else ref
    assert rel(layer(x, None, relu), ref) < TOL


def test_kernels_refuse_wrong_inputs(compiled):
    layer, _, _, x = conv_layer(CONVS[0], 0.3, bias=True, kernel_module=compiled)
    with pytest.raises(RuntimeError, match="channels"):
        layer(torch.randn(2, 4, 9, 11))


# --- whole networks ---------------------------------------------------------------------------


class ConvBN(nn.Module):
    """conv-BN-ReLU with stride and padding, a 1x1 conv-BN, a residual add, pooling and a linear head."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 1)
        self.bn2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)) + y)
        return self.fc(F.adaptive_avg_pool2d(y, 1).flatten(1))


def fused_adds(fast: SparseModel) -> int:
    """How many layer calls have a residual add fused in."""
    return len(re.findall(r"residual = (?!None)", fast.net.code))


@pytest.mark.parametrize("kernel", [None, "sparse", "torch-sparse", "dense"])
def test_conv_bn_residual_model(compiled, kernel):
    torch.manual_seed(0)
    model = prune_model(randomise_bn(ConvBN()), 0.6)
    x = torch.randn(3, 3, 12, 12)
    with torch.no_grad():
        ref = model(x)
    fast = sparsify(model, kernel=kernel, cache=False)
    assert rel(fast(x), ref) < TOL
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())  # folded
    assert fused_adds(fast) == 1 and fast.net.code.count("relu = True") == 2
    assert model.training is False and isinstance(model.bn1, nn.BatchNorm2d)  # the original is untouched


def tv_resnet(block, layers) -> nn.Module:
    torch.manual_seed(0)
    return prune_model(randomise_bn(torchvision.models.resnet.ResNet(block, layers, num_classes=7)), 0.9)


@pytest.mark.parametrize("block", ["basic", "bottleneck"])
def test_torchvision_resnets(compiled, block):
    """Basic blocks (resnet18) and bottlenecks (resnet50): stem, maxpool, downsample, adds, avgpool."""
    tv = torchvision.models.resnet
    model = tv_resnet(tv.BasicBlock, [1, 1, 1, 1]) if block == "basic" else tv_resnet(tv.Bottleneck, [1, 1, 1, 1])
    x = torch.randn(2, 3, 40, 40)
    with torch.no_grad():
        ref = model(x)
    fast = sparsify(model, kernel="sparse", cache=False)
    assert rel(fast(x), ref) < TOL
    assert fused_adds(fast) == 4  # one per block
    layers = fast.layers()
    assert {r["kind"] for r in layers} == {"SparseConv2d", "SparseLinear"}
    assert all(r["kernel"] == "sparse" for r in layers)
    auto = sparsify(model, example=x.shape, cache=False, reps=1)  # timed choice: any mix, same outputs
    assert rel(auto(x), ref) < TOL and all(r["kernel"] in ("sparse", "dense", "torch-sparse") for r in auto.layers())
    small = {r["name"]: set(r["ms"]) for r in auto.layers()}  # 40 px, batch 2: the last planes are tiny
    assert small["layer4.0.conv2"] == {"dense", "sparse", "torch-sparse"} and small["conv1"] == {"dense", "sparse"}


@pytest.mark.parametrize("arch", ["lenet_300_100", "conv2", "cifar_resnet20", "cifar_vgg16"])
def test_small_lth_tickets_to_model_sparse(compiled, arch):
    ticket = tiny_ticket(arch, 0.8, name=f"t-{arch.replace('_', '-')}", input_size=16)
    # rewind: the tiny tickets' "trained" set adds noise to every tensor, batch-norm variances too
    dense = ticket.to_model("rewind").eval()
    fast = ticket.to_model("rewind", runtime="sparse")
    assert isinstance(fast, SparseModel) and not fast.training
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert rel(fast(x), dense(x)) < TOL
    fast.train()
    assert not fast.training  # folded batch-norms cannot train


def test_to_model_refuses_an_unknown_runtime(ticket):
    with pytest.raises(ConfigError, match="runtime"):
        ticket.to_model(runtime="fast")


def test_unsupported_layers_stay_dense_and_untraceable_models_still_work(compiled):
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.grouped = nn.Conv2d(4, 4, 3, padding=1, groups=2)
            self.dilated = nn.Conv2d(4, 4, 3, padding=2, dilation=2)
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent: fx cannot trace this
                x = x * 2
            y = self.dilated(self.grouped(x))
            return self.fc(y.mean((2, 3)))

    model = Odd().eval()
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        ref = model(x)
    fast = sparsify(model, kernel="sparse", cache=False)
    assert rel(fast(x), ref) < TOL
    assert isinstance(fast.net.grouped, nn.Conv2d) and isinstance(fast.net.dilated, nn.Conv2d)
    assert isinstance(fast.net.fc, SparseLinear)


def test_bf16_autocast_input_runs_dense(compiled):
    model = prune_model(randomise_bn(ConvBN()), 0.6)
    fast = sparsify(model, kernel="sparse", cache=False)
    x = torch.randn(2, 3, 12, 12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fast(x)
    with torch.no_grad():
        assert rel(out.float(), model(x)) < 5e-2


# --- the kernel-choice cache ------------------------------------------------------------------


def test_choices_are_timed_once_and_cached_per_machine(compiled, tmp_path, monkeypatch):
    built = Path(compiled.__file__).parent  # the session's build: a new cache folder would rebuild
    monkeypatch.setenv("TICKETZOO_SPARSE_CACHE", str(tmp_path / "cache"))
    model = prune_model(randomise_bn(ConvBN()), 0.6)
    fast = sparsify(model, example=(1, 3, 12, 12), build_dir=built)
    files = list((tmp_path / "cache").glob("choices-*.json"))
    assert len(files) == 1
    table = json.loads(files[0].read_text())
    # a 12 px input has few outputs: torch.sparse is timed beside ours (SMALL_OUTPUT)
    assert len(table) == 3 and all(set(e["ms"]) == {"dense", "sparse", "torch-sparse"} for e in table.values())

    def no_timing(*a, **k):
        raise AssertionError("timed again although the choice was cached")

    monkeypatch.setattr(Chooser, "_time", no_timing)
    again = sparsify(model, example=(1, 3, 12, 12), build_dir=built)  # a new process on this machine: read, not timed
    assert [r["kernel"] for r in again.layers()] == [r["kernel"] for r in fast.layers()]
    files[0].write_text("{not json")  # a damaged cache is ignored (and timed again)
    monkeypatch.undo()
    monkeypatch.setenv("TICKETZOO_SPARSE_CACHE", str(tmp_path / "cache"))
    sparsify(model, example=(1, 3, 12, 12), build_dir=built)
    assert len(json.loads(files[0].read_text())) == 3
    # valid JSON with wrong shapes (issue 31 #4): those entries are timed again, never an error
    table = json.loads(files[0].read_text())
    keys = sorted(table)
    table[keys[0]] = 7
    table[keys[1]] = {"kernel": "sparse", "ms": {"dense": None, "sparse": 1.0}}
    table[keys[2]] = {"ms": {"dense": 1.0}}
    files[0].write_text(json.dumps(table))
    again = sparsify(model, example=(1, 3, 12, 12), build_dir=built)
    assert [r["kernel"] for r in again.layers()]
    healed = json.loads(files[0].read_text())
    assert all(isinstance(e, dict) and e["kernel"] in e["ms"] for e in healed.values())


# --- without the C++ kernels --------------------------------------------------------------------


def test_without_a_compiler_torch_sparse_stands_in(tmp_path, monkeypatch, caplog):
    """No compiler: one logged line, never an error, and the same outputs from torch.sparse."""
    from ticketzoo.sparse import kernels as K

    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    with caplog.at_level(logging.WARNING, logger="ticketzoo.sparse"):
        assert K.kernels(build_dir=tmp_path / "build") is None
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 1 and "no C++ compiler" in notes[0] and "\n" not in notes[0]
    monkeypatch.setitem(K._loaded, str(tmp_path / "b2"), None)  # as if the default build had failed
    model = prune_model(randomise_bn(ConvBN()), 0.6)
    fast = sparsify(model, example=(2, 3, 12, 12), build_dir=tmp_path / "b2", cache=False, reps=1)
    assert not fast.compiled
    assert {r["kernel"] for r in fast.layers()} <= {"dense", "torch-sparse"}
    assert all(set(r["ms"]) == {"dense", "torch-sparse"} for r in fast.layers())
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        assert rel(fast(x), model(x)) < TOL
    forced = sparsify(model, kernel="sparse", compile=False, cache=False)  # "sparse" means torch.sparse here
    assert {r["kernel"] for r in (forced(x), forced.layers())[1]} == {"torch-sparse"}
    with torch.no_grad():
        assert rel(forced(x), model(x)) < TOL


def test_a_failing_build_is_a_note_not_an_error(tmp_path, monkeypatch, caplog):
    from ticketzoo.sparse import kernels as K

    fake = tmp_path / "cc"
    fake.write_text("#!/bin/sh\necho 'broken compiler' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CXX", str(fake))
    with caplog.at_level(logging.WARNING, logger="ticketzoo.sparse"):
        assert K.kernels(build_dir=tmp_path / "build") is None
    assert len(caplog.records) == 1 and "did not build" in caplog.records[0].getMessage()


def test_sparsify_refuses_an_unknown_kernel():
    with pytest.raises(ConfigError, match="kernel"):
        sparsify(nn.Linear(2, 2), kernel="fastest", compile=False)


def test_a_built_library_loads_without_compiler_ninja_or_write_access(compiled, monkeypatch):
    """Issue 31 #9: an existing build is imported as it is: no c++ on PATH, no ninja, a
    read-only cache (torch's build lock could not even be created)."""
    from ticketzoo.sparse import kernels as K

    folder = K._folder(None)
    monkeypatch.setenv("CXX", "/no/such/compiler")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delitem(K._loaded, str(folder))
    folder.chmod(0o555)
    try:
        module = K.kernels()
    finally:
        folder.chmod(0o755)
    assert module is not None and hasattr(module, "__file__") and K.why_not() is None


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_a_damaged_library_is_set_aside_and_rebuilt_never_a_bus_error(compiled, tmp_path, monkeypatch, caplog,
                                                                          damage):
    """Issue 31 #3: a truncated (or 0-byte) .so in the build folder is detected before it is
    mapped (a truncated one killed every predict with SIGBUS), named in one line, set aside
    and built again; without a compiler the fallback line names the folder."""
    import shutil

    from ticketzoo.sparse import kernels as K

    built = Path(compiled.__file__)
    folder = tmp_path / built.parent.name  # same folder name: the module's name follows it
    shutil.copytree(built.parent, folder, ignore=shutil.ignore_patterns("lock"))
    library = folder / built.name
    assert K.elf_problem(library) is None
    data = library.read_bytes()
    library.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    assert K.elf_problem(library) is not None
    monkeypatch.setenv("CXX", "/no/such/compiler")
    with caplog.at_level(logging.WARNING, logger="ticketzoo.sparse"):
        assert K.kernels(build_dir=folder) is None  # no compiler: fallback, no crash
    lines = [r.getMessage() for r in caplog.records]
    assert str(library) in lines[0] and ("truncated" in lines[0] or "empty" in lines[0])
    assert str(folder) in K.why_not(folder)
    assert not library.exists() and list(folder.glob(f"{built.name}.damaged-*"))

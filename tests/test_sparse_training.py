"""Sparse training: every layer kind's forward, grad-input, grad-weight and grad-bias equal the
dense masked computation; a whole ResNet-18 step equals dense; the plan swaps and restores
forwards, keeps state dicts, caches its timed choices, falls back without a compiler."""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from sparse_build import sparse_cache  # noqa: F401 - fixture
from ticketzoo.errors import ConfigError
from ticketzoo.sparse import enable_sparse_training
from ticketzoo.sparse.choose import TrainingChooser

TOL = 1e-4  # relative to the reference's largest magnitude


@pytest.fixture(scope="session")
def train_compiled(sparse_cache):  # noqa: F811 - the fixture imported above
    """The compiled training kernels (one build per session); skips without a compiler."""
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        pytest.skip(f"no C++ compiler ({compiler} not on PATH): the sparse kernels cannot be built")
    from ticketzoo.sparse.kernels import train_kernels

    module = train_kernels()
    assert module is not None, "a compiler is installed, yet the sparse training kernels did not build (see the log)"
    return module


def rel(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.detach() - ref.detach()).abs().max() / ref.detach().abs().max().clamp_min(1e-30))


def random_masks(model: nn.Module, density: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random masks on every conv and linear weight, applied to the model (pruned weights 0)."""
    g = torch.Generator().manual_seed(seed)
    masks = {}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            mask = torch.rand(module.weight.shape, generator=g) < density
            with torch.no_grad():
                module.weight.mul_(mask)
            masks[f"{name}.weight"] = mask
    return masks


def sparse_nodes(out: torch.Tensor) -> int:
    """How many sparse-kernel backward nodes the autograd graph of ``out`` holds."""
    seen, stack, count = set(), [out.grad_fn], 0
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        count += type(node).__name__ == "_SparseConvBackward"
        stack.extend(n for n, _ in node.next_functions)
    return count


# --- each layer kind equals dense ---------------------------------------------------------------

LAYERS = {  # name: (layer, input shape)
    "conv1x1": (lambda: nn.Conv2d(16, 24, 1), (2, 16, 9, 9)),
    "conv1x1-large-plane": (lambda: nn.Conv2d(12, 20, 1), (2, 12, 12, 12)),  # read in place, no copy
    "conv3x3": (lambda: nn.Conv2d(12, 20, 3, padding=1), (2, 12, 11, 13)),
    "conv3x3-small-plane": (lambda: nn.Conv2d(12, 20, 3, padding=1), (3, 12, 4, 3)),  # batch stacked
    "conv3x3-stride2": (lambda: nn.Conv2d(12, 20, 3, stride=2, padding=1), (2, 12, 14, 15)),
    "conv7x7-stride2-pad3": (lambda: nn.Conv2d(3, 16, 7, stride=2, padding=3), (2, 3, 23, 22)),
    "conv1x1-stride2": (lambda: nn.Conv2d(16, 32, 1, stride=2), (2, 16, 13, 12)),  # a ResNet downsample
    "conv1x1-stride2-even": (lambda: nn.Conv2d(8, 12, 1, stride=2), (2, 8, 12, 12)),  # output rows = phase rows
    "conv1x1-stride2-wide": (lambda: nn.Conv2d(8, 12, 1, stride=2), (2, 8, 6, 35)),  # vectors of values and zeros
    "conv3x3-7x7-plane": (lambda: nn.Conv2d(24, 16, 3, padding=1), (3, 24, 7, 7)),  # ResNet-50's layer4 at 224 px
    "conv5x3-unpadded": (lambda: nn.Conv2d(6, 10, (5, 3)), (2, 6, 12, 10)),
    "linear": (lambda: nn.Linear(40, 30), (5, 40)),
    "linear-batch-20": (lambda: nn.Linear(40, 30), (20, 40)),
}


@pytest.mark.parametrize("density", [0.0, 0.05, 0.15])  # 0: a layer pruned entirely
@pytest.mark.parametrize("kind", list(LAYERS))
def test_layer_forward_and_gradients_equal_dense(train_compiled, kind, density):
    make, shape = LAYERS[kind]
    torch.manual_seed(0)
    model = nn.Sequential(make())
    masks = random_masks(model, density)
    mask = masks["0.weight"]
    x = torch.randn(shape, requires_grad=True)
    ref = model(x)
    gy = torch.randn_like(ref)
    ref_gx, ref_gw, ref_gb = torch.autograd.grad(ref, [x, model[0].weight, model[0].bias], gy)

    plan = enable_sparse_training(model, masks, runtime="sparse")
    out = model(x)
    assert sparse_nodes(out) == 1, "the layer did not run on the sparse kernel"
    gx, gw, gb = torch.autograd.grad(out, [x, model[0].weight, model[0].bias], gy)
    assert out.shape == ref.shape and rel(out, ref) < TOL
    assert rel(gx, ref_gx) < TOL
    assert rel(gw, ref_gw * mask) < TOL  # the dense gradient, at the kept positions
    assert bool((gw[~mask] == 0).all()), "grad-weight is not exactly zero off the mask"
    assert rel(gb, ref_gb) < TOL
    assert plan.layers()[0]["kernel"] == "sparse"


def test_layer_without_bias_or_input_grad(train_compiled):
    """The stem: no bias, an input that needs no gradient (grad-input is skipped)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 7, stride=2, padding=3, bias=False))
    masks = random_masks(model, 0.1)
    x = torch.randn(2, 3, 20, 20)
    ref = model(x)
    (ref_gw,) = torch.autograd.grad(ref.square().sum(), [model[0].weight])
    enable_sparse_training(model, masks, runtime="sparse")
    out = model(x)
    (gw,) = torch.autograd.grad(out.square().sum(), [model[0].weight])
    assert sparse_nodes(out) == 1 and rel(out, ref) < TOL and rel(gw, ref_gw * masks["0.weight"]) < TOL


def test_linear_with_leading_dimensions(train_compiled):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 8))
    masks = random_masks(model, 0.15)
    x = torch.randn(3, 4, 16, requires_grad=True)
    ref = model(x)
    ref_gx, ref_gw = torch.autograd.grad(ref.sum(), [x, model[0].weight])
    enable_sparse_training(model, masks, runtime="sparse")
    out = model(x)
    gx, gw = torch.autograd.grad(out.sum(), [x, model[0].weight])
    assert out.shape == (3, 4, 8) and rel(out, ref) < TOL and rel(gx, ref_gx) < TOL
    assert rel(gw, ref_gw * masks["0.weight"]) < TOL


# --- a whole network ----------------------------------------------------------------------------


def resnet18(seed: int = 0) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(num_classes=10)
    return model, random_masks(model, 0.1, seed)


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("size,batch_norm", [(32, "running statistics"), (64, "batch statistics")])
def test_resnet18_training_step_equals_dense(train_compiled, size, batch_norm):
    """At 32 px layer4's planes are 1 x 1: with batch 2 its batch-norms would normalise 2 values
    per channel, which amplifies fp32 rounding ~1000x (dense fp32 is itself ~1e-3 off float64
    there), so at 32 px the batch-norms use their running statistics; at 64 px their batch's."""
    dense, masks = resnet18()
    if batch_norm == "running statistics":
        for m in dense.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
    sparse = copy.deepcopy(dense)
    x, y = torch.randn(2, 3, size, size), torch.tensor([3, 7])
    ref_loss, ref_grads = train_step(dense, x, y)

    keys = list(sparse.state_dict())
    plan = enable_sparse_training(sparse, masks, runtime="sparse")
    assert list(sparse.state_dict()) == keys  # nothing added: checkpoints stay the same
    rows = plan.layers()
    assert len(rows) == 21 and all(r["kernel"] == "sparse" for r in rows)  # 20 convs and the head
    assert sparse_nodes(F.cross_entropy(sparse(x), y)) == 21
    loss, grads = train_step(sparse, x, y)
    assert rel(loss, ref_loss) < TOL
    for name, ref in ref_grads.items():  # dense training's gradients, at the kept positions
        assert rel(grads[name], ref * masks[name] if name in masks else ref) < TOL, name
        if name in masks:
            assert bool((grads[name][~masks[name]] == 0).all()), name

    # an optimizer step and the mask keeper work unchanged on the same parameters
    from ticketzoo.masks import MaskSet

    keeper = MaskSet(sparse, masks)
    torch.optim.SGD(sparse.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4).step()
    keeper.apply()
    assert all(bool((p[~masks[n]] == 0).all()) for n, p in sparse.named_parameters() if n in masks)


def test_restore_gives_back_the_original_forward(train_compiled):
    model, masks = resnet18()
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
    keys = list(model.state_dict())
    with enable_sparse_training(model, masks, runtime="sparse") as plan:
        assert plan.active and "forward" in model.conv1.__dict__
        assert rel(model(x), ref) < TOL
    assert not plan.active
    assert not any("forward" in m.__dict__ for m in model.modules())
    out = model(x.requires_grad_())
    assert sparse_nodes(out) == 0 and torch.equal(out.detach(), ref)
    assert list(model.state_dict()) == keys
    plan.restore()  # idempotent
    again = enable_sparse_training(model, masks, runtime="sparse")  # and it can be enabled again
    assert sparse_nodes(model(x)) == 21
    again.restore()


def test_a_deep_copy_of_a_sparse_model_trains_on_its_own_weights(train_compiled):
    model = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 36, 5))
    masks = random_masks(model, 0.15)
    enable_sparse_training(model, masks, runtime="sparse")
    clone = copy.deepcopy(model)
    with torch.no_grad():
        clone[0].weight.mul_(2)
    x = torch.randn(2, 4, 6, 6)
    out = clone(x)
    assert sparse_nodes(out) == 2
    with torch.no_grad():
        ref = F.linear(F.conv2d(x, clone[0].weight, clone[0].bias, padding=1).flatten(1), clone[2].weight, clone[2].bias)
    assert rel(out, ref) < TOL


def test_bf16_autocast_runs_the_sparse_layers_in_fp32(train_compiled):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 4))
    masks = random_masks(model, 0.15)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        ref = model(x)
    enable_sparse_training(model, masks, runtime="sparse")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.dtype == torch.float32 and sparse_nodes(out) == 2
    assert rel(out, ref) < TOL  # fp32 throughout, not bf16's ~1e-2
    out.sum().backward()
    assert model[0].weight.grad.dtype == torch.float32


# --- eligibility, runtime choice, fallbacks --------------------------------------------------------


def test_dense_layers_and_unsupported_layers_keep_their_forward(train_compiled):
    model = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, groups=2), nn.Conv2d(4, 8, 3, padding=1),
                          nn.Conv2d(8, 8, 3, padding=2, dilation=2))
    masks = random_masks(model, 0.1)
    masks["1.weight"] = torch.rand(8, 4, 3, 3) < 0.6  # too dense to gain
    with torch.no_grad():
        model[1].weight.mul_(masks["1.weight"])
    plan = enable_sparse_training(model, masks, runtime="sparse")
    rows = {r["name"]: r for r in plan.layers()}
    assert all(r["kernel"] == "dense" for r in rows.values())
    assert "groups" in rows["0"]["reason"] and "density" in rows["1"]["reason"] and "dilation" in rows["2"]["reason"]
    assert not any("forward" in m.__dict__ for m in model.modules())
    assert enable_sparse_training(model, masks, runtime="sparse", max_density=0.7).layers()[1]["kernel"] == "sparse"


def test_runtime_dense_swaps_nothing_and_unknown_runtimes_are_refused(train_compiled):
    model, masks = resnet18()
    plan = enable_sparse_training(model, masks, runtime="dense")
    assert plan.reason == "runtime dense" and not plan.active
    assert all(r["kernel"] == "dense" for r in plan.layers())
    with pytest.raises(ConfigError, match="runtime"):
        enable_sparse_training(model, masks, runtime="fastest")
    with pytest.raises(ConfigError, match="names no parameter"):
        enable_sparse_training(model, {"nope.weight": torch.ones(3, dtype=torch.bool)}, runtime="sparse")


def test_auto_times_each_layer_once_and_caches_the_choice(train_compiled, tmp_path, monkeypatch):
    monkeypatch.setenv("TICKETZOO_SPARSE_CACHE", str(tmp_path / "cache"))
    built = Path(train_compiled.__file__).parent  # the session's build: a new cache folder would rebuild
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 1), nn.Flatten(),
                          nn.Linear(8 * 100, 4))
    masks = random_masks(model, 0.1)
    x = torch.randn(2, 3, 10, 10)
    ref = model(x)
    plan = enable_sparse_training(model, masks, runtime="auto", example_shape=x.shape, reps=1, build_dir=built)
    rows = plan.layers()
    assert [r["input"] for r in rows] == [[2, 3, 10, 10], [2, 8, 10, 10], [2, 800]]
    assert all(r["kernel"] in ("sparse", "dense") and r["dense_ms"] > 0 and r["sparse_ms"] > 0 for r in rows)
    assert all(r["kernel"] == ("sparse" if r["sparse_ms"] < r["dense_ms"] else "dense") for r in rows)
    assert model.training  # calibration ran in eval mode, then gave the mode back
    assert rel(model(x), ref) < TOL  # whatever was chosen
    files = list((tmp_path / "cache").glob("train-choices-*.json"))
    assert len(files) == 1 and len(json.loads(files[0].read_text())) == 3
    plan.restore()

    def no_timing(*a, **k):
        raise AssertionError("timed again although the choice was cached")

    monkeypatch.setattr(TrainingChooser, "_time", no_timing)
    again = enable_sparse_training(model, masks, runtime="auto", example_shape=x.shape, build_dir=built)  # read
    assert [r["kernel"] for r in again.layers()] == [r["kernel"] for r in rows]
    again.restore()
    # malformed entries (hand-edited, another version) are ignored and timed again, never an error
    table = json.loads(files[0].read_text())
    first, second, third = sorted(table)
    table[first], table[second] = 7, {"kernel": "fastest", "ms": {"dense": 1.0, "sparse": 2.0}}
    table[third] = {"kernel": "sparse", "ms": {"dense": None, "sparse": 1.0}}
    files[0].write_text(json.dumps(table))
    monkeypatch.undo()
    monkeypatch.setenv("TICKETZOO_SPARSE_CACHE", str(tmp_path / "cache"))
    healed = enable_sparse_training(model, masks, runtime="auto", example_shape=x.shape, reps=1, build_dir=built)
    assert all(r["dense_ms"] > 0 for r in healed.layers())
    assert all(e["kernel"] in e["ms"] for e in json.loads(files[0].read_text()).values())
    healed.restore()
    files[0].write_text("{not json")
    lazily = enable_sparse_training(model, masks, runtime="auto", reps=1, build_dir=built)  # chosen at first use
    assert rel(model(x), ref) < TOL and all(r["dense_ms"] is not None for r in lazily.layers())


def test_without_a_compiler_every_layer_trains_dense(tmp_path, monkeypatch, caplog):
    from ticketzoo.sparse import kernels as K

    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("TICKETZOO_SPARSE_CACHE", str(tmp_path / "cache"))
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 16, 4))
    masks = random_masks(model, 0.1)
    x = torch.randn(2, 3, 4, 4)
    ref = model(x)
    with caplog.at_level(logging.WARNING, logger="ticketzoo.sparse"):
        plan = enable_sparse_training(model, masks, runtime="auto", example_shape=x.shape)
    assert "no C++ compiler" in plan.reason and not plan.active
    assert all(r["kernel"] == "dense" and "no C++ compiler" in r["reason"] for r in plan.layers())
    assert any("every layer trains dense" in r.getMessage() for r in caplog.records)
    assert K.why_not(source=K.TRAIN_SOURCE) == plan.reason
    out = model(x)
    assert sparse_nodes(out) == 0 and torch.equal(out, ref)

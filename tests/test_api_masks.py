"""Tests of ticketzoo.masks: the one Mask type, and keep_masks in a user's own training loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import ticketzoo
from ticketzoo.errors import ConfigError, MaskViolationError
from ticketzoo.masks import Mask, MaskSet
from ticketzoo.models import build_model
from ticketzoo.train.checkpoint import masks_digest


def net(seed: int = 0) -> nn.Module:
    return build_model("conv2", num_classes=3, input_size=16, width=0.125, seed=seed)


OPTIMIZERS = {
    "sgd-momentum-wd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-4),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=1e-2),
}


def train_steps(model: nn.Module, optimizer, steps: int = 3) -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x, y = torch.randn(8, 3, 16, 16, generator=g), torch.randint(0, 3, (8,), generator=g)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_keep_masks_holds_pruned_weights_at_zero(opt):
    model = net()
    masks = ticketzoo.prune(model, 0.9)
    # Without it, one plain loop undoes the pruning (the issue: 90% sparse -> 3% after a step).
    masks.apply(model)
    train_steps(model, OPTIMIZERS[opt](model.parameters()))
    assert masks.violations(model) and sum(masks.violations(model).values()) > 0.5 * (masks.num_total - masks.num_kept)

    model = net()
    optimizer = OPTIMIZERS[opt](model.parameters())  # made before keep_masks: no matter
    handle = ticketzoo.keep_masks(model, masks)
    assert not masks.violations(model)  # applied at once
    train_steps(model, optimizer)
    assert not masks.violations(model)
    masks.check(model)
    kept = model.features[0].weight[masks["features.0.weight"]]
    assert kept.count_nonzero() == kept.numel()  # kept weights train
    handle.remove()
    handle.remove()  # idempotent
    train_steps(model, optimizer)
    assert masks.violations(model)  # removed: no longer enforced


def test_keep_masks_leaves_other_optimizers_alone_and_works_as_a_context():
    model, other = net(0), net(1)
    masks = ticketzoo.prune(model, 0.5)
    with ticketzoo.keep_masks(model, masks) as handle:
        assert handle.active
        train_steps(other, torch.optim.SGD(other.parameters(), lr=0.1))
        assert all(p.count_nonzero() > 0.9 * p.numel() for n, p in other.named_parameters() if n in masks)
        train_steps(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
        assert not masks.violations(model)
    assert not handle.active


def test_keep_masks_ends_with_its_model():
    import gc

    from ticketzoo import masks as masks_mod

    model = net()
    handle = ticketzoo.keep_masks(model, ticketzoo.prune(model, 0.5))  # the handle may be dropped too
    assert handle.active
    del model
    gc.collect()
    assert not handle.active and handle not in masks_mod._KEEPERS


def test_keep_masks_follows_a_dtype_change():
    model = net()
    masks = ticketzoo.prune(model, 0.8)
    ticketzoo.keep_masks(model, masks)
    model.double()
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    nn.functional.cross_entropy(model(torch.randn(4, 3, 16, 16, generator=g, dtype=torch.float64)),
                                torch.tensor([0, 1, 2, 0])).backward()
    opt.step()
    assert not masks.violations(model)


def test_mask_checks_what_goes_in():
    m = Mask({"a": torch.tensor([True, False, True])})
    assert m.sparsity == pytest.approx(1 / 3) and m.density == pytest.approx(2 / 3)
    for bad in (torch.tensor([0.0, 1.0]), [True, False], torch.tensor([1, 0])):
        with pytest.raises(ConfigError, match="mask 'b' must be a bool tensor"):
            m["b"] = bad
    with pytest.raises(ConfigError):
        m.update({"": torch.tensor([True])})
    assert Mask().sparsity == 0.0 and Mask().layer_sparsity() == {}
    assert list(m.without(["a"])) == [] and isinstance(m.copy(), Mask)


def test_mask_against_a_model():
    model = net()
    masks = ticketzoo.prune(model, 0.7)
    with pytest.raises(MaskViolationError, match="not exactly zero"):
        masks.check(model)
    masks.apply(model)
    masks.check(model)
    assert masks.digest() == masks_digest(dict(masks))  # the checkpoint's digest is the Mask's
    with pytest.raises(ConfigError, match="names no parameter"):
        Mask({"nope.weight": torch.ones(2, dtype=torch.bool)}).apply(model)
    with pytest.raises(ConfigError, match="has shape"):
        MaskSet(model, {"fc.weight": torch.ones(2, dtype=torch.bool)})
    assert MaskSet(model, Mask.ones_like(model, masks)).params == []  # nothing pruned: no multiply

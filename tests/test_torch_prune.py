"""torch.nn.utils.prune both ways (issue 32): a model pruned by torch becomes a ticket
(``Ticket.from_model``) and the ticket becomes torch's pruning again
(``Ticket.to_model(torch_prune=True)``, :func:`ticketzoo.apply_torch_prune`), exactly."""

from __future__ import annotations

import pytest
import torch
import torch.nn.utils.prune as tprune
from torch import nn

import ticketzoo
from ticketzoo.errors import ConfigError
from ticketzoo.interop import plain_state_dict
from ticketzoo.ticket import Ticket

torchvision = pytest.importorskip("torchvision")


def torch_pruned_resnet18() -> nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    params = [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=0.9)
    return model


def pruned_modules(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if hasattr(m, "weight_mask")}


def test_torch_pruned_resnet18_round_trips_exactly():
    original = torch_pruned_resnet18()
    ticket = Ticket.from_model(original, None, name="torch-pruned-r18", arch="resnet18")
    assert ticket.sparsity == pytest.approx(0.9, abs=1e-4)
    back = ticket.to_model(torch_prune=True)
    want, got = pruned_modules(original), pruned_modules(back)
    assert set(got) == set(want) and len(got) == 21  # 20 convolutions and the head
    for name, m in got.items():
        o = want[name]
        assert torch.equal(m.weight_mask, o.weight_mask) and m.weight_mask.dtype == o.weight_mask.dtype, name
        assert torch.equal(m.weight, o.weight), name  # the effective weight: weight_orig * weight_mask
        # weight_orig: the original's where kept; zero where pruned, where a ticket stores nothing
        assert torch.equal(m.weight_orig, o.weight_orig * o.weight_mask), name
        assert isinstance(m.weight_orig, nn.Parameter) and "weight" not in dict(m.named_parameters(recurse=False))
    a, b = plain_state_dict(original), plain_state_dict(back)  # BN statistics and biases too
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert back.state_dict().keys() == original.state_dict().keys()  # weight_orig/weight_mask names, as torch's

    # Training code written for torch's pruning keeps the ticket: one SGD step (momentum,
    # weight decay) changes the kept weights and leaves the pruned ones zero.
    opt = torch.optim.SGD(back.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    before = {n: m.weight.detach().clone() for n, m in got.items()}
    loss = nn.functional.cross_entropy(back(torch.randn(2, 3, 32, 32)), torch.tensor([1, 7]))
    loss.backward()
    opt.step()
    with torch.no_grad():  # torch's forward pre-hook recomputes weight = weight_orig * weight_mask
        back(torch.randn(2, 3, 32, 32))
    for name, m in got.items():
        pruned = m.weight_mask == 0
        assert (m.weight[pruned] == 0).all(), name
        assert not torch.equal(m.weight[~pruned], before[name][~pruned]), name


def test_wrapped_models_both_ways():
    original = torch_pruned_resnet18()
    plain = Ticket.from_model(original, None, name="plain", arch="resnet18")
    for wrapped in (torch.compile(original), nn.DataParallel(original)):
        masks = Ticket.from_model(wrapped, None, name="wrapped", arch="resnet18").masks
        assert masks.keys() == plain.masks.keys() and all(torch.equal(masks[k], plain.masks[k]) for k in masks)
    for wrap in (torch.compile, nn.DataParallel):
        fresh = plain.to_model()
        wrapped = wrap(fresh)
        assert ticketzoo.apply_torch_prune(wrapped, plain.masks) is wrapped
        assert set(pruned_modules(fresh)) == set(pruned_modules(original))  # on the network inside
        assert all(k.startswith(("_orig_mod.", "module.")) for k in wrapped.state_dict())
        again = Ticket.from_model(wrapped, None, name="again", arch="resnet18")  # and back from the wrapper
        a, b = again.state_dict(), plain.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a) and again.card.layers == plain.card.layers


def test_a_new_head_stays_dense_and_bad_masks_change_nothing():
    ticket = Ticket.from_model(torch_pruned_resnet18(), None, name="r18", arch="resnet18")
    model = ticket.to_model(num_classes=3, seed=0, torch_prune=True)
    assert not hasattr(model.fc, "weight_mask") and hasattr(model.conv1, "weight_mask")
    with pytest.raises(ConfigError, match="dense runtime"):
        ticket.to_model(runtime="sparse", torch_prune=True)
    masks = ticket.masks
    bad = [
        ({**masks, "layer9.conv.weight": masks["conv1.weight"]}, "names no parameter"),
        ({**masks, "fc.weight": masks["conv1.weight"]}, "shape"),
        ({**masks, "fc.weight": masks["fc.weight"].float()}, "bool tensor"),
        ({"conv1": masks["conv1.weight"]}, "names no parameter"),
        ({"bn1.running_var": masks["fc.weight"][0, :64]}, "names no parameter"),  # a buffer
    ]
    fresh = ticket.to_model()
    for given, message in bad:
        with pytest.raises(ConfigError, match=message):
            ticketzoo.apply_torch_prune(fresh, given)
        assert not pruned_modules(fresh)  # every name is checked before any mask is registered
    twice = ticketzoo.apply_torch_prune(ticket.to_model(torch_prune=True), masks)  # torch combines the masks
    assert torch.equal(twice.conv1.weight_mask.bool(), masks["conv1.weight"])

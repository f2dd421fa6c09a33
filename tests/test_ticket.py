"""Ticket round trips, to_model, head swap and the golden file that pins the format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import tiny_ticket
from ticketzoo import codec
from ticketzoo.errors import ConfigError, TicketFormatError
from ticketzoo.ticket import Ticket

GOLDEN = Path(__file__).parent / "golden" / "ticket_v1.safetensors"


@pytest.mark.parametrize(
    "arch,sparsity,kwargs",
    [
        ("conv2", 0.0, {}),
        ("conv2", 0.8, {}),
        ("conv4", 0.97, {}),
        ("cifar_resnet20", 0.5, {}),
        ("lenet_300_100", 0.99, {}),
        ("conv2", 1.0, {}),
    ],
)
def test_round_trip_is_bitwise_exact(tmp_path, arch, sparsity, kwargs):
    t = tiny_ticket(arch, sparsity, name=f"{arch.replace('_', '-')}-x", **kwargs)
    path = tmp_path / "t.safetensors"
    sha = t.save(path)
    back = Ticket.load(path)
    assert back.card == t.card
    for s in ("rewind", "trained"):
        a, b = t.state_dict(s), back.state_dict(s)
        assert a.keys() == b.keys()
        for k in a:
            assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    for k, m in t.masks.items():
        assert torch.equal(back.masks[k], m)
    assert abs(back.sparsity - sparsity) < 0.01
    # Saving the loaded ticket again reproduces the same bytes.
    assert back.save(tmp_path / "again.safetensors") == sha


def test_trained_zero_is_not_pruned(tmp_path):
    """A kept weight that happens to be exactly zero stays kept: the mask is explicit."""
    t = tiny_ticket(sparsity=0.5)
    state = t.state_dict("rewind")
    name = next(iter(t.masks))
    mask = t.masks[name]
    state[name][mask.nonzero()[0].tolist()[0] if mask.ndim == 1 else tuple(mask.nonzero()[0].tolist())] = 0.0
    t2 = Ticket.from_model(state, t.masks, name="z", arch=t.card.arch, source=t.card.source)
    t2.save(tmp_path / "z.safetensors")
    back = Ticket.load(tmp_path / "z.safetensors")
    assert torch.equal(back.masks[name], mask)


def test_to_model_zeroes_pruned_weights_and_swaps_head():
    t = tiny_ticket("conv2", 0.9)
    model = t.to_model("trained")
    params = dict(model.named_parameters())
    for name, m in t.masks.items():
        assert bool((params[name][~m] == 0).all())
        assert torch.equal(params[name].detach(), t.state_dict("trained")[name])
    out = model(torch.zeros(2, 3, 16, 16))
    assert out.shape == (2, 4)
    swapped = t.to_model(num_classes=7)
    assert swapped(torch.zeros(1, 3, 16, 16)).shape == (1, 7)
    assert not any(p.is_meta for p in swapped.parameters())
    with pytest.raises(ConfigError, match="no weight set 'nope'"):
        t.to_model("nope")


def test_sparsity_views(ticket):
    layers = ticket.layer_sparsity()
    assert set(layers) == set(ticket.masks)
    kept = sum(int(m.sum()) for m in ticket.masks.values())
    total = sum(m.numel() for m in ticket.masks.values())
    assert ticket.sparsity == pytest.approx(1 - kept / total)


def test_card_must_match_tensors(tmp_path, ticket):
    """A card whose sparsity disagrees with the masks is refused even with a valid digest."""
    tensors = codec.st_load(ticket.to_bytes())
    card = json.loads(ticket.card.to_json())
    card["sparsity"] = 0.1
    data = codec.pack(tensors, list(ticket.weight_sets), json.dumps(card))
    with pytest.raises(TicketFormatError, match="overall sparsity"):
        Ticket.from_bytes(data, "x.safetensors")


def test_load_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"")
    with pytest.raises(TicketFormatError, match="bad.safetensors: file is too short"):
        Ticket.load(bad)
    with pytest.raises(TicketFormatError, match="cannot read"):
        Ticket.load(tmp_path / "missing.safetensors")


# --- golden file ------------------------------------------------------------------------


def _golden_inputs():
    g = torch.Generator().manual_seed(1234)
    w = torch.randn(4, 2, 3, 3, generator=g)
    fc = torch.randn(3, 10, generator=g).to(torch.float16)
    m = torch.rand(4, 2, 3, 3, generator=g) < 0.4
    m[2] = False  # an empty row
    mfc = torch.ones(3, 10, dtype=torch.bool)  # a 0% layer
    rewind = {"conv.weight": w, "conv.bias": torch.zeros(4), "fc.weight": fc, "steps": torch.tensor(7)}
    trained = {k: (v * 2 if v.is_floating_point() else v + 1) for k, v in rewind.items()}
    card = {"name": "golden", "arch": {"name": "golden", "num_classes": 3, "classifier": ["fc.weight"]},
            "source": {"dataset": "none"}}
    return {"conv.weight": m, "fc.weight": mfc}, {"rewind": rewind, "trained": trained}, json.dumps(card, sort_keys=True)


def _golden_bytes() -> bytes:
    masks, sets, card = _golden_inputs()
    return codec.pack(codec.encode(masks, sets), list(sets), card)


def test_golden_file_pins_the_format():
    """The writer still produces the committed bytes and the reader still reads them."""
    if not GOLDEN.exists():  # pragma: no cover - regenerate deliberately, then commit
        GOLDEN.write_bytes(_golden_bytes())
    data = GOLDEN.read_bytes()
    assert _golden_bytes() == data
    dec = codec.unpack(data, str(GOLDEN))
    masks, sets, _ = _golden_inputs()
    for name, m in masks.items():
        assert torch.equal(dec.masks[name].to_dense(), m)
    for s, state in sets.items():
        for k, v in state.items():
            got = dec.masks[k].scatter(dec.sets[s][k]) if k in dec.masks else dec.sets[s][k]
            expect = v * masks[k].to(v.dtype) if k in masks else v
            assert got.dtype == v.dtype and torch.equal(got, expect)
    assert dec.masks["conv.weight"].indptr.dtype == torch.int32
    assert dec.masks["conv.weight"].indices.dtype == torch.int16


def test_card_name_must_be_a_valid_ticket_name():
    t = tiny_ticket()
    card = json.loads(t.card.to_json())
    card["name"] = "../../evil"
    data = codec.pack(codec.st_load(t.to_bytes()), list(t.weight_sets), json.dumps(card))
    with pytest.raises(TicketFormatError, match="not a valid ticket name"):
        Ticket.from_bytes(data, "x.safetensors")


def test_arch_arguments_that_do_not_fit_the_tensors():
    t = tiny_ticket("conv2", 0.5, width=0.125)
    wrong = t.with_card(arch=t.card.arch.__class__(**{**t.card.arch.__dict__, "kwargs": {"width": 0.25}}))
    with pytest.raises(TicketFormatError, match="does not fit architecture 'conv2'"):
        wrong.to_model()

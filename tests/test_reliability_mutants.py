"""Checksum-consistent mutants of real tickets, and the defects they found.

The helpers build files a hostile or buggy writer could produce: the header JSON or the
tensors are edited and ``payload_sha256`` is recomputed exactly as the codec does, so
each mutant passes the digest check and reaches the checks behind it. ``tests/test_fuzz.py``
and ``scripts/fuzz_campaign.py`` draw mutants from here.
"""

from __future__ import annotations

import json
import math
import tracemalloc

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from conftest import tiny_ticket
from ticketzoo import codec
from ticketzoo.errors import TicketFormatError, TicketzooError
from ticketzoo.ticket import Ticket

# --- helpers (also used by test_fuzz.py and scripts/fuzz_campaign.py) ---------------------


def split(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A valid ticket's stored tensors and header metadata, editable."""
    return dict(st_load(data)), dict(codec.read_metadata(data))


def repack(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> bytes:
    """Serialise with a recomputed, matching ``payload_sha256`` (as ``codec.pack`` does)."""
    meta = {k: v for k, v in meta.items() if k != "payload_sha256"}
    meta["payload_sha256"] = codec.payload_digest(tensors, meta)
    seen, owned = set(), {}
    for k, t in tensors.items():  # safetensors refuses tensors sharing storage
        t = t.contiguous()
        ptr = t.untyped_storage().data_ptr() if t.numel() else -1
        owned[k] = t.clone() if ptr in seen else t
        seen.add(ptr)
    return st_save(owned, metadata=meta)


def edit_card(data: bytes, edit) -> bytes:
    """``edit(card_dict)`` in place, then repack with a consistent digest."""
    tensors, meta = split(data)
    card = json.loads(meta["card"])
    edit(card)
    meta["card"] = json.dumps(card)
    return repack(tensors, meta)


def claim_shape(data: bytes, name: str, shape: list[int]) -> bytes:
    """Make mask ``name`` claim ``shape`` (more rows and/or columns), keeping its kept
    entries, indptr and the card's per-layer table and sparsity consistent: a file that
    passes every format check but describes a huge tensor."""
    tensors, meta = split(data)
    ptr = tensors[f"mask::{name}::indptr"].to(torch.int64)
    rows = shape[0]
    if rows < ptr.numel() - 1:
        raise ValueError("claim_shape only grows the row count")
    ptr = torch.cat([ptr, ptr[-1].repeat(rows + 1 - ptr.numel())])
    tensors[f"mask::{name}::indptr"] = ptr.to(torch.int32 if int(ptr[-1]) < 2**31 else torch.int64)
    tensors[f"mask::{name}::indices"] = tensors[f"mask::{name}::indices"].to(torch.int32)
    tensors[f"mask::{name}::shape"] = torch.tensor(shape, dtype=torch.int64)
    card = json.loads(meta["card"])
    for layer in card["layers"]:
        if layer["name"] == name:
            layer["shape"], layer["total"] = list(shape), math.prod(shape)
    total = sum(layer["total"] for layer in card["layers"])
    card["sparsity"] = 1.0 - sum(layer["kept"] for layer in card["layers"]) / total
    meta["card"] = json.dumps(card)
    return repack(tensors, meta)


def set_tensor(data: bytes, key: str, value: torch.Tensor) -> bytes:
    tensors, meta = split(data)
    tensors[key] = value
    return repack(tensors, meta)


def exercise(data: bytes, path: str = "mutant.safetensors") -> list[str]:
    """Everything a user's command does with a ticket file; returns verify's warnings."""
    ticket = Ticket.from_bytes(data, path)
    ticket.state_dict("rewind")  # export
    ticket.masks  # finetune
    ticket.to_model()
    ticket.to_model(num_classes=ticket.card.arch.num_classes + 1)  # a head swap
    from ticketzoo.registry.api import ticket_warnings

    ticket.check_arch()  # verify
    return ticket_warnings(ticket)


def peak_bytes(fn) -> int:
    """Peak Python-visible allocation of ``fn()`` (numpy arrays included: dense masks and
    weights are built with numpy), whatever it raises."""
    tracemalloc.start()
    try:
        fn()
    except Exception:  # noqa: BLE001, S110 - the caller checks what escapes separately
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


# --- defect 3: a small file claiming a huge tensor ------------------------------------------


@pytest.fixture(scope="module")
def base() -> bytes:
    return tiny_ticket("conv2", 0.7, name="mut").to_bytes()


@pytest.mark.parametrize("shape", [[1_000_000, 1_000_000], [40_000, 40_000], [4, 2**40]])
def test_huge_claimed_shape_fails_before_allocating(tmp_path, base, shape):
    if math.prod(shape) > codec.MAX_NUMEL:
        with pytest.raises(TicketFormatError, match="claims more than"):
            Ticket.from_bytes(claim_shape(base, "fc.weight", shape), "big.safetensors")
        return
    data = claim_shape(base, "fc.weight", shape)
    ticket = Ticket.from_bytes(data, "big.safetensors")  # the format itself is consistent
    for use in (ticket.check_arch, lambda: ticket.state_dict(), lambda: ticket.masks, ticket.to_model):
        with pytest.raises(TicketFormatError, match=r"big.safetensors: tensor 'fc.weight': shape .* does not fit"):
            use()
        assert peak_bytes(use) < 32 * 2**20


def test_verify_builds_the_model_on_meta(tmp_path, base):
    from ticketzoo.registry.api import verify

    path = tmp_path / "big.safetensors"
    path.write_bytes(claim_shape(base, "fc.weight", [40_000, 40_000]))
    with pytest.raises(TicketFormatError, match="does not fit architecture 'conv2'"):
        verify(str(path))


# --- defect 4: card fields reach the model builders ----------------------------------------


def _arch(**changes):
    return lambda card: card["arch"].update(changes)


@pytest.mark.parametrize(
    "edit,message",
    [
        (_arch(num_classes=2**62), "num_classes must be in"),
        (_arch(input_size=2**62), "input_size must be in"),
        (_arch(in_channels=0), "in_channels must be in"),
        (_arch(kwargs={"width": 1e12}), "cannot be built: width must be"),
        (_arch(kwargs={"width": "wide"}), "cannot be built: width must be"),
        (_arch(kwargs={"depth": 3}), "cannot be built: conv2 does not accept"),
        (_arch(kwargs={"width": [1]}), "kwargs\\['width'\\] must be"),
        (_arch(mean=[math.nan, 0, 0]), "arch.mean must hold"),
        (_arch(std=[0, 1, 1]), "arch.std must be positive"),
        (_arch(classifier=["features.0.weight"]), "card names head tensors"),
        (lambda c: c.update(sparsity=float("nan")), "sparsity must be a number in \\[0, 1\\]"),
        (lambda c: c.update(schema=99), "card schema 99 is not supported.*upgrade ticketzoo"),
        (lambda c: c["recipe"].update(rate=-1.0), "recipe.rate"),
        (lambda c: c.update(extra={"source_dense": {}, "source_results": [{"round": 1}]}), "extra source results"),
    ],
)
def test_card_fields_are_validated_as_format_errors(base, edit, message):
    data = edit_card(base, edit)
    with pytest.raises(TicketFormatError, match=message) as e:
        exercise(data, "card.safetensors")
    assert "card.safetensors" in str(e.value)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"groups": 2}, "bad option for resnet18: 'groups'"),
        ({"replace_stride_with_dilation": [True, True, True]}, "bad option for resnet18"),
        ({"zero_init_residual": 3}, "zero_init_residual must be true or false"),
    ],
)
def test_torchvision_options_are_an_allow_list(kwargs, message):
    from ticketzoo.card import ArchConfig
    from ticketzoo.errors import ConfigError
    from ticketzoo.models import build_model

    with pytest.raises(ConfigError, match=message):
        with torch.device("meta"):
            build_model("resnet18", num_classes=10, input_size=32, **kwargs)
    ticket = tiny_ticket("conv2", 0.5)
    arch = ArchConfig("resnet18", 4, classifier=("fc.weight", "fc.bias"), kwargs=kwargs)
    if any(isinstance(v, list) for v in kwargs.values()):  # not a card value at all: refused when made
        with pytest.raises(ConfigError, match="could not be read back"):
            ticket.with_card(arch=arch)
        return
    with pytest.raises(TicketFormatError, match="cannot be built"):
        ticket.with_card(arch=arch).check_arch()


def test_int_typed_bias_is_a_format_error(base):
    tensors, _ = split(base)
    data = set_tensor(base, "rewind::fc.bias", tensors["rewind::fc.bias"].to(torch.int64))
    data = set_tensor(data, "trained::fc.bias", tensors["trained::fc.bias"].to(torch.int64))
    with pytest.raises(TicketFormatError, match="tensor 'fc.bias': dtype torch.int64 does not fit"):
        exercise(data)


# --- defect 10: NaN/inf weights ------------------------------------------------------------


def test_nonfinite_weights_are_a_warning(base):
    tensors, _ = split(base)
    v = tensors["rewind::features.0.weight::values"].clone()
    v[0], v[1] = math.nan, math.inf
    warnings = exercise(set_tensor(base, "rewind::features.0.weight::values", v))
    assert len(warnings) == 1 and "NaN or infinite" in warnings[0] and "rewind::features.0.weight" in warnings[0]


def test_every_mutant_kind_raises_only_our_errors(base):
    """Each edit the fuzzers draw, a few times: a quick, deterministic smoke of the generator."""
    from test_fuzz import MUTATIONS, check_mutant, memory_bound, mutate

    for kind in range(len(MUTATIONS)):
        for seed in range(4):
            data = mutate(base, [(kind, seed)])
            peak, foreign = check_mutant(data)
            assert not foreign, (MUTATIONS[kind].__name__, seed, repr(foreign[0]))
            assert peak < memory_bound(data)

"""Property: mutated ticket files load or raise the project's own errors, within bounded memory.

Mutants come from real tickets: flipped bytes and truncation, and edits of the header JSON
and the tensors that keep ``payload_sha256`` consistent (recomputed as the codec does), so
they get past the digest to the format, card and architecture checks behind it.
``scripts/fuzz_campaign.py`` runs the same mutations at a larger scale, through the CLI too.
"""

from __future__ import annotations

import json
import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import tiny_ticket
from test_reliability_mutants import claim_shape, edit_card, exercise, peak_bytes, repack, split
from ticketzoo.errors import TicketFormatError, TicketzooError
from ticketzoo.ticket import Ticket

DATA = tiny_ticket("conv2", 0.7, name="fuzz").to_bytes()

def memory_bound(data: bytes) -> int:
    """Readers may allocate in proportion to the file (its stored arrays, widened to int64),
    never to what it claims: far above what a tiny ticket needs (~1 MB), far below the
    gigabytes a claimed shape would cost."""
    return 32 * 2**20 + 8 * len(data)


_NASTY = [None, True, -1, 0, 1, 2**31, 2**62, 2**64, 1e308, -1e308, float("nan"), float("inf"), "", "x" * 300,
          "../../x", [], [1, 2], {}, {"a": 1}, 0.5]
_KWARGS = [{"groups": 2}, {"dilation": 2}, {"width": 1e9}, {"width": -1}, {"width": float("nan")},
           {"replace_stride_with_dilation": [True, True, True]}, {"norm_layer": "x"}, {"weights": "IMAGENET"},
           {"width": 0.25}, {"dropout": 2.0}, {"width_mult": 1e9}, {"num_classes": 3}]
_ARCHS = ["conv2", "conv4", "lenet_300_100", "cifar_resnet20", "resnet18", "mobilenet_v2", "vgg11_bn", "densenet121",
          "no-such-arch", "", "CONV2"]
_DTYPES = [torch.int64, torch.int32, torch.int8, torch.uint8, torch.bool, torch.float16, torch.bfloat16,
           torch.float64, torch.complex64]


def _card_paths(card, prefix=()):
    """Every (path) into the card's JSON, for random edits."""
    yield prefix
    if isinstance(card, dict):
        for k, v in card.items():
            yield from _card_paths(v, prefix + (k,))
    elif isinstance(card, list):
        for i, v in enumerate(card):
            yield from _card_paths(v, prefix + (i,))


def _set(card, path, value):
    for p in path[:-1]:
        card = card[p]
    card[path[-1]] = value


def flip_bytes(data: bytes, r: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(r.randint(1, 8)):
        b[r.randrange(len(b))] = r.randrange(256)
    return bytes(b)


def truncate(data: bytes, r: random.Random) -> bytes:
    return data[: r.randrange(len(data))]


def card_value(data: bytes, r: random.Random) -> bytes:
    def edit(card):
        paths = [p for p in _card_paths(card) if p]
        _set(card, r.choice(paths), r.choice(_NASTY))

    return edit_card(data, edit)


def arch_kwargs(data: bytes, r: random.Random) -> bytes:
    return edit_card(data, lambda c: c["arch"].update(kwargs=dict(r.choice(_KWARGS))))


def arch_name(data: bytes, r: random.Random) -> bytes:
    return edit_card(data, lambda c: c["arch"].update(name=r.choice(_ARCHS)))


def arch_numbers(data: bytes, r: random.Random) -> bytes:
    key = r.choice(["num_classes", "in_channels", "input_size"])
    value = r.choice([1, 2, 3, 7, 64, 4096, 4097, 2**20, 2**40, 2**62])
    return edit_card(data, lambda c: c["arch"].update({key: value}))


def mask_shape(data: bytes, r: random.Random) -> bytes:
    tensors, _ = split(data)
    names = [k.split("::")[1] for k in tensors if k.endswith("::shape")]
    name = r.choice(names)
    shape = tensors[f"mask::{name}::shape"].tolist()
    # More rows cost file space (indptr); more columns cost nothing but the claim.
    rows = shape[0] * r.choice([1, 2, 10, 1000])
    grow = r.choice([1, 2, 10, 1000, 40_000, 10**6, 10**9])
    return claim_shape(data, name, [rows] + [d * (grow if i == 0 else 1) for i, d in enumerate(shape[1:])])


def tensor_dtype(data: bytes, r: random.Random) -> bytes:
    tensors, meta = split(data)
    key = r.choice([k for k in tensors if not k.startswith("mask::")])
    base = key.split("::", 1)[1]
    dtype = r.choice(_DTYPES)
    for k in list(tensors):  # every weight set, so the sets still agree
        if k.split("::", 1)[1] == base and not k.startswith("mask::"):
            tensors[k] = tensors[k].to(dtype)
    return repack(tensors, meta)


def nonfinite(data: bytes, r: random.Random) -> bytes:
    tensors, meta = split(data)
    key = r.choice([k for k in tensors if not k.startswith("mask::") and tensors[k].is_floating_point()
                    and tensors[k].numel()])
    t = tensors[key].clone()
    t.view(-1)[r.randrange(t.numel())] = r.choice([float("nan"), float("inf"), float("-inf")])
    tensors[key] = t
    return repack(tensors, meta)


def csr_entry(data: bytes, r: random.Random) -> bytes:
    tensors, meta = split(data)
    key = r.choice([k for k in tensors if k.endswith(("::indptr", "::indices", "::shape")) and tensors[k].numel()])
    t = tensors[key].clone()
    t.view(-1)[r.randrange(t.numel())] = r.choice([-1, 0, 1, 2**15 - 1, 2**31 - 1])
    tensors[key] = t
    return repack(tensors, meta)


def tensor_keys(data: bytes, r: random.Random) -> bytes:
    tensors, meta = split(data)
    key = r.choice(sorted(tensors))
    t = tensors.pop(key)
    if r.random() < 0.5:
        tensors[r.choice([key + "::x", "mask::" + key, key.replace("rewind", "trained"), "::", "a::b::c::d"])] = t
    return repack(tensors, meta)


def header_meta(data: bytes, r: random.Random) -> bytes:
    tensors, meta = split(data)
    key = r.choice(["weight_sets", "format_version", "card", "extra"])
    meta[key] = r.choice(['["rewind"]', '["trained", "rewind"]', "[]", "null", '["rewind", "rewind"]', "2", "1",
                          '["rewind", "mask"]', "[" * 100_000, "1" * 5000, '{"name": 1}', "NaN"])
    return repack(tensors, meta)


MUTATIONS = [flip_bytes, truncate, card_value, arch_kwargs, arch_name, arch_numbers, mask_shape, tensor_dtype,
             nonfinite, csr_entry, tensor_keys, header_meta]


def mutate(data: bytes, plan: list[tuple[int, int]]) -> bytes:
    """Apply ``plan`` (mutation index, seed) steps; a step that cannot apply is skipped."""
    for kind, seed in plan:
        try:
            data = MUTATIONS[kind % len(MUTATIONS)](data, random.Random(seed))
        except Exception:  # noqa: BLE001 - e.g. an earlier step left no valid header to edit
            continue
    return data


def check_mutant(data: bytes) -> tuple[int, list[BaseException]]:
    """(peak bytes, foreign exceptions) of everything a user's command does with ``data``."""
    foreign: list[BaseException] = []

    def run():
        try:
            exercise(data, "fuzz.safetensors")
        except TicketzooError as e:
            assert "fuzz.safetensors" in str(e) or not isinstance(e, TicketFormatError), str(e)
        except Exception as e:  # noqa: BLE001 - what the property forbids
            foreign.append(e)

    return peak_bytes(run), foreign


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(MUTATIONS) - 1), st.integers(0, 2**32)), min_size=1, max_size=3))
def test_consistent_mutants_raise_only_our_errors_in_bounded_memory(plan):
    data = mutate(DATA, plan)
    peak, foreign = check_mutant(data)
    assert not foreign, f"{type(foreign[0]).__name__}: {foreign[0]}"
    assert peak < memory_bound(data), f"peak {peak / 2**20:.0f} MB for a {len(data)} byte file"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(st.tuples(st.integers(0, len(DATA) - 1), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.one_of(st.none(), st.integers(0, len(DATA))),
)
def test_mutated_files_fail_cleanly(edits, cut):
    data = bytearray(DATA)
    for pos, val in edits:
        data[pos] = val
    if cut is not None:
        data = data[:cut]
    try:
        Ticket.from_bytes(bytes(data), "fuzz.safetensors")
    except TicketFormatError as e:
        assert "fuzz.safetensors" in str(e)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_fail_cleanly(blob):
    try:
        Ticket.from_bytes(blob, "r.safetensors")
    except TicketFormatError:
        pass


@pytest.mark.parametrize("command", ["verify", "info", "export"])
def test_cli_on_mutants_says_one_line(tmp_path, capsys, command):
    """The CLI on mutants: exit 0 or 1, never an 'unexpected' crash, never a traceback."""
    from ticketzoo.cli.main import main

    rng = random.Random(command)
    for i in range(12):
        path = tmp_path / f"m{i}.safetensors"
        path.write_bytes(mutate(DATA, [(rng.randrange(2, len(MUTATIONS)), rng.randrange(2**32))]))
        args = [command, str(path)] + (["--out", str(tmp_path / f"d{i}.safetensors")] if command == "export" else [])
        with pytest.raises(SystemExit) as e:
            main(args)
        err = capsys.readouterr().err
        assert e.value.code in (0, 1) and "error: unexpected" not in err and "Traceback" not in err, err
        assert e.value.code == 0 or len(err.strip().splitlines()) == 1, err


def test_header_text_edits_keep_digest(tmp_path):
    """The helper really produces digest-consistent files: an edit shows up as its own error."""
    data = edit_card(DATA, lambda c: c.update(sparsity=float("nan")))
    with pytest.raises(TicketFormatError, match="sparsity") as e:
        Ticket.from_bytes(data, "x.safetensors")
    assert "payload sha256" not in str(e.value)
    assert json.loads(split(data)[1]["card"])["name"] == "fuzz"

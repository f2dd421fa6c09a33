"""CSR mask encoding, invariant checks and the scipy reader."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save as st_save

from ticketzoo import codec
from ticketzoo.codec import CSRMask, mask_to_scipy
from ticketzoo.errors import TicketFormatError


def _random_mask(shape, density, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) < density


@pytest.mark.parametrize(
    "shape,density",
    [((8, 3, 3, 3), 0.3), ((5, 7), 0.0), ((5, 7), 1.0), ((4, 6), 0.5), ((3, 1, 1, 1), 0.6), ((6,), 0.5), ((1, 9), 0.2)],
)
def test_mask_round_trip(shape, density):
    m = _random_mask(shape, density)
    c = CSRMask.from_dense(m)
    assert torch.equal(c.to_dense(), m)
    assert c.nnz == int(m.sum())
    assert c.indptr.dtype == torch.int32 and c.indices.dtype == torch.int16
    sp = mask_to_scipy(c.indptr.numpy(), c.indices.numpy(), np.array(shape))
    assert np.array_equal(sp.toarray(), m.reshape(shape[0], -1).numpy())


def test_empty_rows_and_values_scatter():
    m = torch.zeros(4, 5, dtype=torch.bool)
    m[1, 2] = m[1, 4] = m[3, 0] = True
    c = CSRMask.from_dense(m)
    assert c.indptr.tolist() == [0, 0, 2, 2, 3]
    assert c.indices.tolist() == [2, 4, 0]
    w = torch.arange(20, dtype=torch.float32).reshape(4, 5)
    assert torch.equal(c.scatter(w[m]), w * m)


def test_int32_index_fallback():
    m = torch.zeros(2, 40000, dtype=torch.bool)
    m[0, 39999] = m[1, 0] = m[1, 32768] = True
    c = CSRMask.from_dense(m)
    assert c.indices.dtype == torch.int32
    assert torch.equal(c.to_dense(), m)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_value_dtypes_round_trip(dtype):
    w = torch.randn(6, 4).to(dtype)
    m = _random_mask((6, 4), 0.5)
    tensors = codec.encode({"w": m}, {"rewind": {"w": w, "b": torch.ones(6)}})
    data = codec.pack(tensors, ["rewind"], "{}")
    dec = codec.unpack(data)
    assert dec.sets["rewind"]["w"].dtype == dtype
    assert torch.equal(dec.masks["w"].scatter(dec.sets["rewind"]["w"]), w * m.to(dtype))


def _valid_tensors():
    m = torch.tensor([[True, False, True], [False, False, False], [False, True, True]])
    w = torch.randn(3, 3)
    return codec.encode({"w": m}, {"rewind": {"w": w, "b": torch.zeros(3)}, "trained": {"w": w + 1, "b": torch.ones(3)}})


def _repack(tensors, meta_overrides=None):
    meta = {
        "format": codec.FORMAT_NAME,
        "format_version": "1",
        "weight_sets": json.dumps(["rewind", "trained"]),
        "card": "{}",
    }
    meta.update(meta_overrides or {})
    meta["payload_sha256"] = codec.payload_digest(tensors, meta)
    return st_save(tensors, metadata=meta)


@pytest.mark.parametrize(
    "mutate,problem",
    [
        (lambda t: t.__setitem__("mask::w::indptr", torch.tensor([0, 2, 1, 4], dtype=torch.int32)), "monotone"),
        (lambda t: t.__setitem__("mask::w::indptr", torch.tensor([0, 2, 2], dtype=torch.int32)), "rows \\+ 1"),
        (lambda t: t.__setitem__("mask::w::indptr", torch.tensor([1, 2, 2, 4], dtype=torch.int32)), "start at 0"),
        (lambda t: t.__setitem__("mask::w::indices", torch.tensor([0, 3, 1, 2], dtype=torch.int16)), "out of range"),
        (lambda t: t.__setitem__("mask::w::indices", torch.tensor([2, 0, 1, 2], dtype=torch.int16)), "strictly increasing"),
        (lambda t: t.__setitem__("mask::w::indices", torch.tensor([0, 0, 1, 2], dtype=torch.int16)), "strictly increasing"),
        (lambda t: t.__setitem__("mask::w::indices", torch.tensor([0, 2, 1, 2], dtype=torch.int8)), "int16 or int32"),
        (lambda t: t.__setitem__("mask::w::indptr", torch.tensor([0, 2, 2, 4], dtype=torch.float32)), "int32 or int64"),
        (lambda t: t.__setitem__("rewind::w::values", torch.randn(3)), "values for 4 mask entries"),
        (lambda t: t.__setitem__("rewind::w::values", torch.arange(4)), "floating point"),
        (lambda t: t.pop("trained::b"), "incomplete"),
        (lambda t: t.pop("mask::w::shape"), "missing its 'shape'"),
        (lambda t: t.__setitem__("mask::w::shape", torch.tensor([3, -3])), "negative"),
        (lambda t: t.__setitem__("junk", torch.zeros(1)), "unexpected tensor key"),
        (lambda t: t.__setitem__("trained::w", torch.zeros(3, 3)), "stored as values"),
    ],
)
def test_invariant_violations_are_named(mutate, problem):
    tensors = _valid_tensors()
    mutate(tensors)
    with pytest.raises(TicketFormatError, match=problem) as e:
        codec.unpack(_repack(tensors), "some/file.safetensors")
    assert "some/file.safetensors" in str(e.value)


def test_header_checks():
    tensors = _valid_tensors()
    with pytest.raises(TicketFormatError, match="unsupported format version '2'.*upgrade"):
        codec.unpack(_repack(tensors, {"format_version": "2"}))
    with pytest.raises(TicketFormatError, match="not a ticketzoo ticket"):
        codec.unpack(st_save({"x": torch.zeros(2)}))
    with pytest.raises(TicketFormatError, match="weight_sets"):
        codec.unpack(_repack(tensors, {"weight_sets": '["trained"]'}))
    with pytest.raises(TicketFormatError, match="too short|header length"):
        codec.unpack(b"abc")


def test_digest_catches_any_payload_change():
    data = bytearray(_repack(_valid_tensors()))
    data[-1] ^= 0x01
    with pytest.raises(TicketFormatError, match="payload sha256"):
        codec.unpack(bytes(data))


def test_truncated_file():
    data = _repack(_valid_tensors())
    with pytest.raises(TicketFormatError):
        codec.unpack(data[: len(data) - 7])


def test_dense_tensors_must_agree_across_sets():
    tensors = _valid_tensors()
    tensors["trained::b"] = tensors["trained::b"].double()
    with pytest.raises(TicketFormatError, match="'trained' has torch.float64"):
        codec.unpack(_repack(tensors))
    tensors = _valid_tensors()
    tensors["trained::b"] = torch.ones(4)
    with pytest.raises(TicketFormatError, match=r"\[4\] but 'rewind' has"):
        codec.unpack(_repack(tensors))


def test_unknown_metadata_key_is_refused():
    with pytest.raises(TicketFormatError, match="unexpected header metadata key 'extra'"):
        codec.unpack(_repack(_valid_tensors(), {"extra": "x"}))

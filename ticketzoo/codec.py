"""The ``ticketzoo-csr/1`` codec: masks and weight sets <-> safetensors bytes.

Pure functions, no file I/O. See ``docs/FORMAT.md`` for the specification.

Stored tensor keys (``::`` never occurs in a PyTorch state-dict name):

* ``mask::<name>::shape``   int64 ``[ndim]``, the original shape of a pruned tensor
* ``mask::<name>::indptr``  int32 (int64 when nnz >= 2**31) ``[rows + 1]``
* ``mask::<name>::indices`` int16 (int32 when the row width exceeds 32768) ``[nnz]``
* ``<set>::<name>::values`` the kept values of a pruned tensor, in CSR order
* ``<set>::<name>``         a dense tensor (bias, BatchNorm, unpruned layer)

The header metadata holds ``format``, ``format_version``, ``weight_sets`` (JSON list),
``card`` (JSON) and ``payload_sha256``: a digest over every stored tensor (key, dtype,
shape, bytes in key order) and the other metadata, so a flipped bit anywhere is caught
even when the file travels without its registry entry.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ticketzoo.csr import CSRMask, mask_to_scipy
from ticketzoo.errors import TicketFormatError, short
# the header, read without torch (list, info, gc and completion read it), re-exported
from ticketzoo.fileformat import (_METADATA_KEYS, FORMAT_NAME, FORMAT_VERSION, MAX_HEADER,  # noqa: F401
                                  read_header, read_metadata)

__all__ = ["CSRMask", "Decoded", "FORMAT_VERSION", "encode", "mask_to_scipy", "pack", "unpack", "validate"]

SEP = "::"
MASK = "mask"
REQUIRED_SET = "rewind"

#: What a mask may claim. Its dense size is not in the file (a 4 MB file can claim
#: [10**6, 10**6]), so readers bound it before anything is allocated; 2**31 elements is
#: 20x the largest layer of VGG-16. Tensors are also checked against the architecture.
MAX_NDIM = 8
MAX_NUMEL = 2**31
_SET_NAME = re.compile(r"^[a-z][a-z0-9_]*\Z")
_VALUE_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


@dataclass(frozen=True)
class Decoded:
    """What a ticket file holds, validated: masks, per-set values, card JSON."""

    masks: dict[str, CSRMask]
    #: ``sets[set][name]``: 1-D kept values for pruned names, the dense tensor otherwise
    sets: dict[str, dict[str, torch.Tensor]]
    card_json: str


def _key(*parts: str) -> str:
    return SEP.join(parts)


def encode(
    masks: Mapping[str, torch.Tensor],
    weight_sets: Mapping[str, Mapping[str, torch.Tensor]],
) -> dict[str, torch.Tensor]:
    """Turn boolean masks and full state dicts (one per weight set) into stored tensors.

    Every weight set must hold the same names with the same shapes and dtypes; the
    names in ``masks`` are stored sparse, all others dense.
    """
    if REQUIRED_SET not in weight_sets:
        raise TicketFormatError(f"weight set {REQUIRED_SET!r} is required", tensor=None)
    names = list(weight_sets[REQUIRED_SET])
    out: dict[str, torch.Tensor] = {}
    csr: dict[str, CSRMask] = {}
    for name, mask in masks.items():
        _check_name(name)
        if name not in weight_sets[REQUIRED_SET]:
            raise TicketFormatError("mask has no weight in the rewind set", tensor=name)
        ref = weight_sets[REQUIRED_SET][name]
        if tuple(mask.shape) != tuple(ref.shape) or mask.dtype != torch.bool:
            raise TicketFormatError(
                f"mask must be bool of shape {tuple(ref.shape)}, got {mask.dtype} {tuple(mask.shape)}",
                tensor=name,
            )
        c = csr[name] = CSRMask.from_dense(mask)
        out[_key(MASK, name, "shape")] = torch.tensor(c.shape, dtype=torch.int64)
        out[_key(MASK, name, "indptr")] = c.indptr
        out[_key(MASK, name, "indices")] = c.indices
    for set_name, state in weight_sets.items():
        if not _SET_NAME.match(set_name) or set_name == MASK:
            raise TicketFormatError(f"invalid weight set name {set_name!r}")
        if set(state) != set(names):
            raise TicketFormatError(f"weight set {set_name!r} holds other tensors than 'rewind'")
        for name in names:
            t = state[name].detach().to("cpu")
            ref = weight_sets[REQUIRED_SET][name]
            if t.shape != ref.shape or t.dtype != ref.dtype:
                raise TicketFormatError(
                    f"weight set {set_name!r} has {t.dtype} {tuple(t.shape)}, rewind has "
                    f"{ref.dtype} {tuple(ref.shape)}",
                    tensor=name,
                )
            _check_name(name)
            if name in csr:
                if t.dtype not in _VALUE_DTYPES:
                    raise TicketFormatError(f"pruned tensors must be floating point, got {t.dtype}", tensor=name)
                mask = masks[name].detach().to("cpu", torch.bool)
                out[_key(set_name, name, "values")] = t[mask].contiguous()
            else:
                out[_key(set_name, name)] = t.contiguous()
    return out


def _check_name(name: str) -> None:
    if not name or SEP in name:
        raise TicketFormatError(f"tensor name {name!r} is empty or contains {SEP!r}", tensor=name)


def payload_digest(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> str:
    """sha256 over the metadata (without the digest) and every tensor, in key order."""
    h = hashlib.sha256()
    for k in sorted(metadata):
        if k != "payload_sha256":
            h.update(f"{k}={metadata[k]}\n".encode())
    for k in sorted(tensors):
        t = tensors[k]
        h.update(f"{k}|{t.dtype}|{list(t.shape)}\n".encode())
        if t.numel():
            # Reinterpret as bytes: works for every dtype, bfloat16 included.
            h.update(memoryview(t.contiguous().reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()


def pack(tensors: Mapping[str, torch.Tensor], weight_sets: list[str], card_json: str) -> bytes:
    """Serialise stored tensors plus header metadata into safetensors bytes."""
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "weight_sets": json.dumps(weight_sets),
        "card": card_json,
    }
    metadata["payload_sha256"] = payload_digest(tensors, metadata)
    # safetensors refuses aliased tensors (e.g. equal weight sets sharing storage).
    seen: set[int] = set()
    owned = {}
    for k, t in tensors.items():
        ptr = t.untyped_storage().data_ptr() if t.numel() else -1
        owned[k] = t.clone() if ptr in seen else t
        seen.add(ptr)
    return _canonical_header(st_save(owned, metadata=metadata))


def _canonical_header(data: bytes) -> bytes:
    """Rewrite the header with sorted metadata keys: safetensors orders them at random,
    and identical tickets must be identical bytes. The data section is untouched."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # keep the data section 8-byte aligned, as safetensors does
    return len(text).to_bytes(8, "little") + text + data[8 + n :]


def unpack(data: bytes, path: str | None = None) -> Decoded:
    """Parse and fully validate ticket bytes; raises TicketFormatError on any violation."""
    meta = read_metadata(data, path)
    try:
        # safetensors returns tensors in hash order, different at every call: sort them, so
        # everything built from a loaded ticket is built in one order.
        tensors = dict(sorted(st_load(data).items()))
    except (SafetensorError, ValueError, RuntimeError, OverflowError) as e:
        raise TicketFormatError(f"corrupt safetensors data: {e}", path=path) from None
    if payload_digest(tensors, meta) != meta.get("payload_sha256"):
        raise TicketFormatError(
            "payload sha256 does not match the header (the file was modified or damaged)", path=path
        )
    return validate(tensors, meta, path)


def validate(tensors: dict[str, torch.Tensor], meta: Mapping[str, str], path: str | None = None) -> Decoded:
    """Check every structural invariant and group the tensors by role."""

    def fail(problem: str, tensor: str | None = None) -> TicketFormatError:
        return TicketFormatError(problem, path=path, tensor=tensor)

    try:
        sets = json.loads(meta["weight_sets"])
    except (KeyError, ValueError, RecursionError):
        raise fail("header has no valid 'weight_sets' list") from None
    if not isinstance(sets, list):
        raise fail(f"'weight_sets' must be a list of distinct names including {REQUIRED_SET!r}")
    for s in sets:
        if not isinstance(s, str) or not _SET_NAME.match(s) or s == MASK:
            raise fail(f"invalid weight set name {short(repr(s))}")
    if REQUIRED_SET not in sets or len(set(sets)) != len(sets):
        raise fail(f"'weight_sets' must be a list of distinct names including {REQUIRED_SET!r}")
    card_json = meta.get("card")
    if card_json is None:
        raise fail("header has no 'card'")

    raw_masks: dict[str, dict[str, torch.Tensor]] = {}
    by_set: dict[str, dict[str, dict[str, torch.Tensor]]] = {s: {} for s in sets}
    for key, t in tensors.items():
        parts = key.split(SEP)
        if parts[0] == MASK and len(parts) == 3 and parts[2] in ("shape", "indptr", "indices"):
            raw_masks.setdefault(parts[1], {})[parts[2]] = t
        elif parts[0] in by_set and len(parts) == 2:
            by_set[parts[0]].setdefault(parts[1], {})["dense"] = t
        elif parts[0] in by_set and len(parts) == 3 and parts[2] == "values":
            by_set[parts[0]].setdefault(parts[1], {})["values"] = t
        else:
            raise fail("unexpected tensor key (not part of ticketzoo-csr/1)", key)

    masks = {name: _check_mask(name, parts, fail) for name, parts in raw_masks.items()}

    names = set(by_set[REQUIRED_SET])
    out_sets: dict[str, dict[str, torch.Tensor]] = {}
    for s, entries in by_set.items():
        if set(entries) != names:
            missing = sorted(names - set(entries)) or sorted(set(entries) - names)
            raise fail(f"weight set {s!r} is incomplete or differs from 'rewind' ({missing[0]})", missing[0])
        out: dict[str, torch.Tensor] = {}
        for name, kinds in entries.items():
            if name in masks:
                v = kinds.get("values")
                if v is None or "dense" in kinds:
                    raise fail(f"pruned tensor must be stored as values in set {s!r}", name)
                if v.ndim != 1 or v.numel() != masks[name].nnz:
                    raise fail(
                        f"set {s!r} has {v.numel()} values for {masks[name].nnz} mask entries", name
                    )
                if v.dtype not in _VALUE_DTYPES:
                    raise fail(f"values must be floating point, got {v.dtype}", name)
                out[name] = v
            else:
                if "values" in kinds or "dense" not in kinds:
                    raise fail(f"tensor has values in set {s!r} but no mask", name)
                out[name] = kinds["dense"]
        out_sets[s] = out
    for name in masks:
        if name not in names:
            raise fail("mask has no values in the rewind set", name)
    for name, ref in out_sets[REQUIRED_SET].items():
        for s in sets:
            t = out_sets[s][name]
            if t.dtype != ref.dtype or (name not in masks and t.shape != ref.shape):
                raise fail(
                    f"weight set {s!r} has {t.dtype} {list(t.shape)} but 'rewind' has {ref.dtype} {list(ref.shape)}",
                    name,
                )
    return Decoded(masks=masks, sets=out_sets, card_json=card_json)


def _check_mask(name: str, parts: dict[str, torch.Tensor], fail) -> CSRMask:
    for p in ("shape", "indptr", "indices"):
        if p not in parts:
            raise fail(f"mask is missing its {p!r} tensor", name)
    shape_t, indptr, indices = parts["shape"], parts["indptr"], parts["indices"]
    if shape_t.dtype != torch.int64 or shape_t.ndim != 1 or shape_t.numel() < 1:
        raise fail("mask shape must be a non-empty int64 vector", name)
    if shape_t.numel() > MAX_NDIM:
        raise fail(f"mask shape has {shape_t.numel()} dimensions (at most {MAX_NDIM})", name)
    shape = tuple(int(x) for x in shape_t.tolist())
    if any(d < 0 for d in shape):
        raise fail(f"mask shape {shape} has a negative dimension", name)
    if math.prod(shape) > MAX_NUMEL or max(shape) > MAX_NUMEL:
        raise fail(f"mask shape {list(shape)} claims more than {MAX_NUMEL} elements", name)
    if indptr.dtype not in (torch.int32, torch.int64):
        raise fail(f"indptr must be int32 or int64, got {indptr.dtype}", name)
    if indices.dtype not in (torch.int16, torch.int32):
        raise fail(f"indices must be int16 or int32, got {indices.dtype}", name)
    c = CSRMask(shape, indptr, indices)
    if indptr.ndim != 1 or indptr.numel() != c.rows + 1:
        raise fail(f"indptr has {indptr.numel()} entries, expected rows + 1 = {c.rows + 1}", name)
    if indices.ndim != 1:
        raise fail("indices must be 1-D", name)
    # numpy: these whole-array checks run once per load and must stay cheap.
    ptr = indptr.numpy().astype(np.int64, copy=False)
    idx = indices.numpy().astype(np.int64)
    nnz = idx.shape[0]
    if ptr[0] != 0 or ptr[-1] != nnz:
        raise fail(f"indptr must start at 0 and end at nnz = {nnz}", name)
    diffs = np.diff(ptr)
    if (diffs < 0).any():
        raise fail("indptr is not monotone", name)
    if (diffs > c.cols).any():
        raise fail(f"a row has more entries than its width {c.cols}", name)
    if nnz:
        if idx.min() < 0 or idx.max() >= c.cols:
            raise fail(f"column index out of range [0, {c.cols})", name)
        # Strictly increasing within each row; a decrease is allowed only where a row starts.
        bad = np.diff(idx) <= 0
        starts = ptr[1:-1]
        starts = starts[(starts > 0) & (starts < nnz)]
        bad[starts - 1] = False
        if bad.any():
            raise fail("column indices are not strictly increasing within a row", name)
    return c

"""The torch-free part of the ``ticketzoo-csr/1`` format: the file's name and its header.

A ticket file's safetensors header holds the metadata (format, version, weight sets, card,
payload digest) that ``list``, ``info``, ``cache``, ``gc``, ``rm`` and shell completion
read; this module reads and checks it with the standard library alone, so those commands
never import torch. Decoding and validating the tensors is :mod:`ticketzoo.codec`'s (which
re-exports every name here). See ``docs/FORMAT.md`` for the specification.
"""

from __future__ import annotations

import json
import re

from ticketzoo.errors import TicketFormatError, short

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "MAX_HEADER", "TICKET_FILE", "read_header", "read_metadata"]

#: The ticket file's name in a ticket folder (a registry revision, a Hub repo).
TICKET_FILE = "ticket.safetensors"

FORMAT_NAME = "ticketzoo-csr"
FORMAT_VERSION = 1
_METADATA_KEYS = frozenset({"format", "format_version", "weight_sets", "card", "payload_sha256"})
MAX_HEADER = 100_000_000  # safetensors' own bound on the JSON header


def read_metadata(data: bytes, path: str | None = None) -> dict[str, str]:
    """The header metadata of safetensors bytes, checked for format and version only."""
    if len(data) < 8:
        raise TicketFormatError("file is too short to be a safetensors file", path=path)
    n = int.from_bytes(data[:8], "little")
    if n <= 0 or n > MAX_HEADER or 8 + n > len(data):
        raise TicketFormatError("not a safetensors file (bad header length; truncated?)", path=path)
    try:
        header = json.loads(data[8 : 8 + n])
    except RecursionError:
        raise TicketFormatError("safetensors header is not valid JSON: nested too deeply", path=path) from None
    except (UnicodeDecodeError, ValueError) as e:
        raise TicketFormatError(f"safetensors header is not valid JSON: {str(e)[:200]}", path=path) from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise TicketFormatError(
            "not a ticketzoo ticket (header metadata has no format 'ticketzoo-csr')", path=path
        )
    version = meta.get("format_version")
    if version != str(FORMAT_VERSION):
        newer = isinstance(version, str) and re.fullmatch(r"[0-9]{1,9}", version) and int(version) > FORMAT_VERSION
        raise TicketFormatError(
            f"unsupported format version {short(repr(version))} (this ticketzoo reads version {FORMAT_VERSION})",
            path=path,
            hint="upgrade ticketzoo" if newer else None,
        )
    unknown = sorted(set(meta) - _METADATA_KEYS)
    if unknown:
        raise TicketFormatError(f"unexpected header metadata key {short(repr(unknown[0]))} "
                                "(not part of ticketzoo-csr/1)", path=path)
    if not all(isinstance(v, str) for v in meta.values()):
        raise TicketFormatError("header metadata values must be strings", path=path)
    return meta


def read_header(path: str) -> dict[str, str]:
    """The header metadata of a ticket file, reading only the header (no tensor data)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else 0
            body = f.read(n) if 0 < n <= MAX_HEADER else b""
    except OSError as e:
        raise TicketFormatError(f"cannot read: {e.strerror}", path=path) from None
    return read_metadata(head + body, path)  # a short body fails its length check

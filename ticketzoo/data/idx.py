"""A strict reader of IDX files, the format of MNIST and Fashion-MNIST (gzip'd or raw).

An IDX file is a 4-byte magic ``00 00 <type> <ndim>``, ``ndim`` big-endian uint32 sizes,
then the data in C order. Only unsigned bytes (type ``0x08``) are accepted. The header is
checked against what the file holds before anything is allocated: a raw file's payload
must be exactly the product of its sizes, and a gzip'd file is decompressed in bounded
chunks, so a file never makes us allocate more than it really holds. Gzip is detected
by its magic bytes, not by the file name. Every problem is a one-line
:class:`~ticketzoo.errors.DataError` naming the file.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ticketzoo.errors import DataError

_GZIP_MAGIC = b"\x1f\x8b"
_UBYTE = 0x08
_TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16", 0x0C: "int32",
          0x0D: "float32", 0x0E: "float64"}
# Deflate expands at most 1032:1 (a 258-byte match per 2 bits), so a gzip'd header that
# claims more than this can be refused before decompressing anything.
_MAX_DEFLATE_RATIO = 1032
_CHUNK = 1 << 20  # bytes decompressed per read: bounds what a lying header can cost


def read_idx(path: str | Path, *, ndim: int) -> np.ndarray:
    """The uint8 array with ``ndim`` dimensions stored in the IDX file at ``path``."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as raw:
            compressed = raw.read(2) == _GZIP_MAGIC
            raw.seek(0)
            if compressed:
                with gzip.GzipFile(fileobj=raw) as stream:
                    return _read_stream(stream, path, ndim, size * _MAX_DEFLATE_RATIO)
            return _read_stream(raw, path, ndim, size, exact=True)
    except (OSError, EOFError, zlib.error) as err:  # unreadable, or a damaged gzip stream
        raise DataError(f"{path}: cannot read IDX file: {err}", path=path) from err


def read_idx_pair(images: str | Path, labels: str | Path, *,
                  num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 ``[N, H, W]`` and labels int64 ``[N]`` (each ``< num_classes``)."""
    x = read_idx(images, ndim=3)
    y = read_idx(labels, ndim=1)
    if len(x) != len(y):
        raise DataError(f"{labels}: holds {len(y)} labels but {Path(images).name} holds "
                        f"{len(x)} images", path=labels)
    if y.size and int(y.max()) >= num_classes:
        bad = int(np.flatnonzero(y >= num_classes)[0])
        raise DataError(f"{labels}: label {int(y[bad])} at index {bad} is not below the "
                        f"number of classes ({num_classes})", path=labels)
    return x, y.astype(np.int64)


def _read_stream(f: BinaryIO, path: Path, ndim: int, limit: int, *,
                 exact: bool = False) -> np.ndarray:
    """Parse header and payload from ``f``; ``limit`` bounds the bytes ``f`` can yield
    (exactly its size when ``exact``)."""
    magic = _read_exactly(f, 4, path, "header")
    if magic[:2] != b"\x00\x00":
        raise DataError(f"{path}: not an IDX file (starts with {magic.hex(' ')}, "
                        "expected 00 00)", path=path)
    if magic[2] != _UBYTE:
        what = _TYPES.get(magic[2], "unknown")
        raise DataError(f"{path}: data type 0x{magic[2]:02x} ({what}) is not supported, "
                        "only unsigned bytes (0x08)", path=path)
    if magic[3] != ndim:
        raise DataError(f"{path}: has {magic[3]} dimension(s), expected {ndim}", path=path)
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(_read_exactly(f, 4 * ndim, path, "header"),
                                                dtype=">u4"))
    if 0 in shape:
        raise DataError(f"{path}: empty dimension in shape {shape}", path=path)
    need = math.prod(shape)  # a Python int: no overflow, whatever the header claims
    if need > limit - header or (exact and need != limit - header):
        held = f"holds {limit - header}" if exact else f"can hold at most {limit - header}"
        raise DataError(f"{path}: header declares shape {shape} ({need} bytes) but the file "
                        f"{held} bytes of data", path=path)
    data = _read_bounded(f, need, path)
    if f.read(1):  # a payload longer than declared means a corrupt or wrong header
        raise DataError(f"{path}: more data than the header's shape {shape} declares",
                        path=path)
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def _read_exactly(f: BinaryIO, n: int, path: Path, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise DataError(f"{path}: truncated {what} ({len(data)} of {n} bytes)", path=path)
    return data


def _read_bounded(f: BinaryIO, n: int, path: Path) -> bytearray:
    """Exactly ``n`` bytes, read in chunks so memory grows only with data really read."""
    # One big f.read(n) would allocate n bytes up front, whatever the stream holds.
    out = bytearray()
    while len(out) < n:
        chunk = f.read(min(_CHUNK, n - len(out)))
        if not chunk:
            raise DataError(f"{path}: truncated data ({len(out)} of {n} bytes)", path=path)
        out += chunk
    return out

"""Synthetic image folders, generated offline and byte-for-byte deterministic in a seed.

Two kinds of task with different image statistics:

* ``shapes``: one filled shape (circle, square, ...) of random position, size, rotation
  and colour on a noisy background of another colour; the class is the shape.
* ``textures``: a full-image two-colour pattern (stripes at four orientations,
  checkerboard, dots, grid, rings) of random period and phase; the class is the pattern.
  This is the different distribution to fine-tune a ticket found on ``shapes`` on.

Image ``i`` of class ``k`` comes from its own generator seeded with ``(seed, k, i)``, so
changing ``per_class`` or ``classes`` leaves the existing images unchanged.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ticketzoo.data.splits import split_counts
from ticketzoo.errors import DataError

SHAPES = ("circle", "square", "triangle", "cross", "star", "ring", "diamond", "hexagon")
TEXTURES = ("stripes-horizontal", "stripes-vertical", "stripes-diagonal",
            "stripes-antidiagonal", "checkerboard", "dots", "grid", "rings")
KINDS = {"shapes": SHAPES, "textures": TEXTURES}
FORMATS = ("png", "jpg", "mixed")
_SUPERSAMPLE = 4  # shapes are drawn this much larger, then box-filtered down: smooth edges


def make_image_folder(out: str | Path, *, kind: str = "shapes", classes: int = 4,
                      per_class: int = 60, size: int = 32, seed: int = 0,
                      layout: str = "split", fmt: str = "png", corrupt: int = 0) -> Path:
    """Write ``classes * per_class`` images to the new or empty folder ``out``.

    ``layout="split"`` writes ``out/<class>/*``; ``"presplit"`` writes
    ``out/{train,val,test}/<class>/*`` divided 0.8/0.1/0.1 per class. ``fmt="mixed"``
    alternates PNG and JPEG. ``corrupt`` adds that many broken files to the (train) class
    folders, cycling through a zero-byte JPEG, a truncated JPEG and text named ``.png``.
    """
    names = KINDS.get(kind)
    if names is None:
        raise DataError(f"unknown kind {kind!r}", hint=f"use one of {', '.join(KINDS)}")
    if not 2 <= classes <= len(names):
        raise DataError(f"{kind} has 2 to {len(names)} classes, got {classes}",
                        hint=f"the classes are {', '.join(names)}")
    if per_class < 1 or size < 8 or corrupt < 0:
        raise DataError(f"need per_class >= 1, size >= 8 and corrupt >= 0, got {per_class}, "
                        f"{size} and {corrupt}")
    if layout not in ("split", "presplit") or fmt not in FORMATS:
        raise DataError(f"bad layout {layout!r} or format {fmt!r}",
                        hint=f"layout: split or presplit; format: {', '.join(FORMATS)}")
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} already exists and is not an empty folder", path=out,
                        hint="choose a new folder or delete this one")
    draw = _shape if kind == "shapes" else _texture
    for k, name in enumerate(names[:classes]):
        sizes = split_counts(per_class, (0.8, 0.1, 0.1)) if layout == "presplit" else (per_class,)
        dirs = [out / s / name for s in ("train", "val", "test")] if layout == "presplit" \
            else [out / name]
        i = 0
        for folder, count in zip(dirs, sizes):
            folder.mkdir(parents=True, exist_ok=True)
            for _ in range(count):
                rng = np.random.default_rng([seed, k, i])
                image = Image.fromarray(draw(rng, name, size))
                ext = fmt if fmt != "mixed" else ("png", "jpg")[i % 2]
                _save(image, folder / f"{name}_{i:04d}.{ext}")
                i += 1
    for j in range(corrupt):
        name = names[j % classes]
        folder = out / "train" / name if layout == "presplit" else out / name
        _write_broken(folder, j)
    return out


def _save(image: Image.Image, path: Path) -> None:
    if path.suffix == ".jpg":
        image.save(path, "JPEG", quality=90)
    else:
        image.save(path, "PNG")


def _write_broken(folder: Path, j: int) -> None:
    case = j % 3
    if case == 0:
        (folder / f"broken_{j:03d}.jpg").write_bytes(b"")
    elif case == 1:
        path = folder / f"broken_{j:03d}.jpg"
        Image.new("RGB", (64, 64), (200, 30, 30)).save(path, "JPEG", quality=95)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        (folder / f"broken_{j:03d}.png").write_text("this is not an image\n")


def _colors(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two random colours far enough apart that the pattern stays visible."""
    while True:
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        if np.abs(a - b).sum() > 150:
            return a, b


def _noisy(rng: np.random.Generator, image: np.ndarray, sigma: float) -> np.ndarray:
    noise = rng.normal(0, sigma, image.shape)
    return np.clip(image + noise, 0, 255).round().astype(np.uint8)


def _shape(rng: np.random.Generator, name: str, size: int) -> np.ndarray:
    fg, bg = _colors(rng)
    big = size * _SUPERSAMPLE
    r = rng.uniform(0.18, 0.32) * big
    cx, cy = rng.uniform(r, big - r, 2)
    turn = rng.uniform(0, 2 * math.pi)
    canvas = Image.new("RGB", (big, big), tuple(int(v) for v in bg))
    pen = ImageDraw.Draw(canvas)
    fill = tuple(int(v) for v in fg)
    if name in ("circle", "ring"):
        pen.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill if name == "circle" else None,
                    outline=fill, width=0 if name == "circle" else max(1, int(r * 0.3)))
    else:
        pen.polygon(_polygon(name, r, cx, cy, turn), fill=fill)
    small = canvas.resize((size, size), Image.Resampling.BOX)
    return _noisy(rng, np.asarray(small, dtype=np.float64), 12.0)


def _polygon(name: str, r: float, cx: float, cy: float, turn: float) -> list[tuple[float, float]]:
    if name == "star":
        polar = [(r if j % 2 == 0 else 0.45 * r, j * math.pi / 5) for j in range(10)]
    elif name == "cross":  # a plus sign: arms of half-width w
        w = 0.33 * r
        pts = [(w, r), (w, w), (r, w), (r, -w), (w, -w), (w, -r),
               (-w, -r), (-w, -w), (-r, -w), (-r, w), (-w, w), (-w, r)]
        polar = [(math.hypot(x, y), math.atan2(y, x)) for x, y in pts]
    elif name == "diamond":  # a rhombus, 0.55 as wide as tall
        polar = [(r, 0.0), (0.55 * r, math.pi / 2), (r, math.pi), (0.55 * r, 1.5 * math.pi)]
    else:
        sides = {"triangle": 3, "square": 4, "hexagon": 6}[name]
        polar = [(r, 2 * math.pi * j / sides) for j in range(sides)]
    return [(cx + d * math.cos(a + turn), cy + d * math.sin(a + turn)) for d, a in polar]


_ANGLES = {"stripes-horizontal": 90.0, "stripes-vertical": 0.0,
           "stripes-diagonal": 45.0, "stripes-antidiagonal": 135.0}


def _texture(rng: np.random.Generator, name: str, size: int) -> np.ndarray:
    fg, bg = _colors(rng)
    period = rng.uniform(max(3.0, size / 8), max(4.0, size / 3))
    phase = rng.uniform(0, period, 2)
    tilt = math.radians(_ANGLES.get(name, 0.0) + rng.uniform(-8, 8))
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    u = x * math.cos(tilt) + y * math.sin(tilt) + phase[0]  # across the stripes
    v = -x * math.sin(tilt) + y * math.cos(tilt) + phase[1]
    if name.startswith("stripes"):
        on = np.sin(2 * math.pi * u / period) > 0
    elif name == "checkerboard":
        on = (np.floor(u / period) + np.floor(v / period)) % 2 == 0
    elif name == "dots":
        du, dv = u % period - period / 2, v % period - period / 2
        on = du**2 + dv**2 < (rng.uniform(0.2, 0.35) * period) ** 2
    elif name == "grid":
        width = max(1.0, period * rng.uniform(0.15, 0.3))
        on = (u % period < width) | (v % period < width)
    else:  # rings around a random centre
        cx, cy = rng.uniform(0, size, 2)
        on = np.sin(2 * math.pi * np.hypot(x - cx, y - cy) / period) > 0
    image = np.where(on[..., None], fg, bg).astype(np.float64)
    return _noisy(rng, image, 10.0)

"""What the source images are (sizes, modes) and what they become before the network.

Sizes and modes are read from file headers only (``Image.open(...).size`` / ``.mode``
decode no pixels); folders of more than :data:`MAX_FILES` images are sampled evenly.
Named datasets are arrays, all of one size and mode.
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

MAX_FILES = 2000  # headers read at most; enough for min/median/max and the modes
_GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def source_images(data) -> dict[str, Any]:
    """``{"count", "read", "sizes": [[w, h], n]..., "modes": {mode: n}}`` over all splits."""
    splits = [getattr(data, s) for s in ("train", "val", "test")]
    if hasattr(splits[0], "images"):  # ArraySamples: [N, H, W, C] uint8
        n = sum(len(s) for s in splits)
        _, h, w, c = splits[0].images.shape
        return {"count": n, "read": n, "sizes": [[[int(w), int(h)], n]], "modes": {"L" if c == 1 else "RGB": n}}
    from PIL import Image

    paths = [s[0] for split in splits for s in split]
    step = max(1, -(-len(paths) // MAX_FILES))
    sizes, modes = Counter(), Counter()
    for path in paths[::step]:
        try:
            with Image.open(path) as img:  # header only: no pixel is decoded
                sizes[img.size] += 1
                modes[img.mode] += 1
        except Exception:  # noqa: BLE001 - validated before; a file changed since is not fatal here
            modes["unreadable"] += 1
    return {"count": len(paths), "read": len(paths[::step]),
            "sizes": [[list(size), n] for size, n in sorted(sizes.items())], "modes": dict(modes)}


def transform(info: dict[str, Any], *, channels: int, working: int, input_size: int) -> dict[str, Any]:
    """What the images become: working size, crop, channel conversion, downscale factor."""
    sides = [min(w, h) for (w, h), n in info["sizes"] for _ in range(n)]
    square = all(w == h for (w, h), _ in info["sizes"])
    target = "grey (1 channel)" if channels == 1 else "RGB (3 channels)"
    conversions = []
    for mode in sorted(info["modes"]):
        if mode == "unreadable":
            continue
        grey = mode in _GREY_MODES
        if (channels == 1 and mode == "L") or (channels == 3 and mode == "RGB"):
            continue
        how = " (alpha on black)" if mode in _ALPHA_MODES else " (repeated)" if grey and channels == 3 else ""
        conversions.append(f"{mode} -> {target}{how}")
    median = statistics.median(sides) if sides else working
    return {
        "working_size": working, "input_size": input_size,
        "resize": "none" if sides and set(sides) == {working} and square else
        ("shorter side to " if not square else "to ") + f"{working} px" + (", center square" if not square else ""),
        "crop": f"{input_size} px (random for train, center for val/test)" if working > input_size else "none",
        "channels": conversions, "downscale": round(median / input_size, 2),
    }


def size_text(info: dict[str, Any]) -> str:
    """``250x250 (all 150)`` or ``min 20x24, median 250x250, max 640x480 (150 images)``."""
    items = info["sizes"]
    sampled = f", {info['read']} of {info['count']} read" if info["read"] < info["count"] else ""
    if len(items) <= 3:
        return ", ".join(f"{w}x{h} ({'all ' if len(items) == 1 else ''}{n})" for (w, h), n in items) + sampled
    flat = sorted(((w * h, w, h) for (w, h), n in items for _ in range(n)))
    pick = lambda i: f"{flat[i][1]}x{flat[i][2]}"  # noqa: E731
    return f"min {pick(0)}, median {pick(len(flat) // 2)}, max {pick(-1)} ({info['read']} images{sampled})"


def describe(info: dict[str, Any], how: dict[str, Any]) -> str:
    """One log line: source sizes and modes, then what they become."""
    modes = ", ".join(f"{m} {n}" for m, n in sorted(info["modes"].items()))
    steps = [f"resized {how['resize']}" if how["resize"] != "none" else "kept at "
             f"{how['working_size']} px", f"cropped to {how['crop']}" if how["crop"] != "none" else "",
             "; ".join(how["channels"])]
    line = f"images: {size_text(info)}; modes {modes} -> " + ", ".join(s for s in steps if s)
    if how["downscale"] >= 2:
        line += (f" ({how['downscale']:g}x smaller than the median image: the ticket sees "
                 f"{how['input_size']} px)")
    return line

"""The comparison's figure: test accuracy against the fraction of weights remaining.

As in Frankle & Carbin (Fig. 1) and Sabatelli et al. (Fig. 3): a log x-axis of the
fraction of weights remaining, densest on the left; one line per condition (and source
family) with the std over seeds as error bars; the dense network from scratch as a
dashed line inside a band of its mean ± std. With K folds each point is the pooled test
accuracy over every fold and seed, with its Wilson 95% interval as the error bar and as
the dense network's band. Drawn by matplotlib (Agg, no display), saved
as PNG and SVG, each written atomically.
"""

from __future__ import annotations

import io
from pathlib import Path

from ticketzoo.compare.plan import LABELS
from ticketzoo.compare.stats import Row
from ticketzoo.fileio import atomic_write_bytes

_STYLE = {"rewind": ("-", "o"), "trained": ("--", "s"), "reinit": (":", "^"), "random_prune": ("-.", "v")}


def plot(rows: list[Row], out_stem: Path, *, title: str, caption: str) -> list[Path]:
    """Write ``<out_stem>.png`` and ``.svg``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig = Figure(figsize=(8, 5.6), layout="constrained")
    ax = fig.add_subplot()
    families = list(dict.fromkeys(r.cell.family for r in rows if r.cell.family))
    colors = matplotlib.colormaps["tab10"].colors
    lines = {}
    for r in rows:
        if r.cell.condition != "dense" and r.cell.mean is not None:
            lines.setdefault((r.cell.family, r.cell.condition), []).append(r.cell)
    xs_all = []
    for i, ((family, condition), cells) in enumerate(lines.items()):
        cells = sorted(cells, key=lambda c: c.sparsity)
        # lines at one sparsity are nudged apart (±2.5% of x per line) so error bars do not hide each other
        nudge = 1 + 0.025 * (i - (len(lines) - 1) / 2)
        x = [(1 - c.sparsity) * nudge for c in cells]
        y = [100 * c.mean for c in cells]
        err = _errors(cells)
        xs_all += x
        style, marker = _STYLE.get(condition, ("-", "o"))
        label = LABELS.get(condition, condition) + (f" — {family}" if len(families) > 1 else "")
        ax.errorbar(x, y, yerr=err, linestyle=style, marker=marker, capsize=3, color=colors[i % len(colors)],
                    label=label, linewidth=1.6, markersize=5)
    for j, r in enumerate(r for r in rows if r.cell.condition == "dense" and r.cell.mean is not None):
        mean, std = 100 * r.cell.mean, 100 * (r.cell.std or 0.0)
        if r.cell.paired and (interval := r.cell.interval()):
            low, high = 100 * interval[0], 100 * interval[1]
            label = f"{LABELS['dense']}: {mean:.1f}% [{low:.1f}, {high:.1f}] (band: Wilson 95%)"
        else:
            low, high = mean - std, mean + std
            label = f"{LABELS['dense']}: {mean:.1f}% ± {std:.1f} (band: ± std)"
        ax.axhspan(low, high, color="0.5", alpha=0.18, linewidth=0)
        ax.axhline(mean, color="black", linestyle=(0, (5, 3)), linewidth=1.2, label=label)
        xs_all.append(1.0)
    ax.set_xscale("log")
    if xs_all:
        ax.set_xlim(max(xs_all) * 1.25, min(xs_all) / 1.25)  # densest left, as in the papers
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:g}%"))
    ax.set_xlabel("weights remaining (log scale; sparser to the right)")
    paired = any(r.cell.paired for r in rows)
    ax.set_ylabel("test accuracy (%), pooled over folds and seeds, Wilson 95% interval" if paired
                  else "test accuracy (%), mean ± std over seeds")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    fig.text(0.01, 0.0, caption, ha="left", va="top", fontsize=7.5, wrap=True)
    paths = []
    # SVG text stays text (searchable, selectable); fixed ids: the same results, the same bytes
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "ticketzoo"}):
        blobs = {}
        for fmt in ("png", "svg"):
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, dpi=150, bbox_inches="tight", metadata=_metadata(fmt))
            blobs[fmt] = buf.getvalue()
    for fmt, blob in blobs.items():
        path = out_stem.with_suffix(f".{fmt}")
        atomic_write_bytes(path, blob)
        paths.append(path)
    return paths


def _errors(cells) -> list[float] | list[list[float]]:
    """Error bars: ± std over seeds (one split) or the Wilson interval, as (below, above)."""
    if not any(c.paired for c in cells):
        return [100 * (c.std or 0.0) for c in cells]
    below, above = [], []
    for c in cells:
        low, high = c.interval() or (c.mean, c.mean)
        below.append(100 * (c.mean - low))
        above.append(100 * (high - c.mean))
    return [below, above]


def _metadata(fmt: str) -> dict:
    # No creation date or software version in the files: the same results give the same bytes.
    return {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}

"""Rebuild ``examples/digits``: real handwritten digits for the demo, from scikit-learn's copy.

    python scripts/make_example_digits.py [--csv PATH/digits.csv.gz] [--out examples/digits]

The source is the test set of the UCI "Optical Recognition of Handwritten Digits" data
(Alpaydin & Kaynak 1998; CC BY 4.0), 1,797 8x8 images of 13 writers with pixel counts
0..16, as scikit-learn ships it in ``sklearn/datasets/data/digits.csv.gz`` (64 pixels and
the label per row). The demo folder keeps the first ``--per-class`` images of each digit in
file order, as 8x8 grey PNGs with values scaled to 0..255 (round(v * 255 / 16)). Without
``--csv`` the file is read from an installed scikit-learn; get one without installing with
``pip download --no-deps scikit-learn`` and ``unzip -j WHEEL sklearn/datasets/data/digits.csv.gz``.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _default_csv() -> Path:
    from importlib.util import find_spec

    spec = find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise click.UsageError("scikit-learn is not installed: pass --csv PATH/digits.csv.gz")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"


def read_digits(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images [N, 8, 8] uint8 in 0..255, labels [N])`` from scikit-learn's CSV."""
    with gzip.open(path, "rt") as fh:
        rows = [[int(v) for v in row] for row in csv.reader(fh) if row]
    data = np.asarray(rows, dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 65 or data[:, :64].max() > 16 or data.min() < 0:
        raise click.ClickException(f"{path}: not scikit-learn's digits.csv.gz (64 pixels 0..16 + label)")
    images = np.rint(data[:, :64].reshape(-1, 8, 8) * 255 / 16).astype(np.uint8)
    return images, data[:, 64]


@click.command()
@click.option("--csv", "csv_path", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--out", type=click.Path(file_okay=False), default=str(ROOT / "examples" / "digits"),
              show_default=True)
@click.option("--per-class", type=int, default=30, show_default=True)
def main(csv_path: str | None, out: str, per_class: int) -> None:
    from PIL import Image

    images, labels = read_digits(Path(csv_path) if csv_path else _default_csv())
    out_dir = Path(out)
    for digit in range(10):
        folder = out_dir / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.png"):
            old.unlink()
        rows = np.flatnonzero(labels == digit)[:per_class]
        for row in rows:
            buf = io.BytesIO()
            Image.fromarray(images[row], mode="L").save(buf, format="PNG", optimize=True)
            (folder / f"{row:04d}.png").write_bytes(buf.getvalue())
    click.echo(f"wrote {10 * per_class} images to {out_dir}")


if __name__ == "__main__":
    main()

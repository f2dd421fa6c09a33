"""Generate a synthetic image folder offline, deterministically from a seed.

    python scripts/make_example_data.py OUT --kind shapes --classes 4 --per-class 60 \
        --size 32 --seed 0 --layout split --format png [--corrupt 3]

The logic lives in :func:`ticketzoo.data.synthetic.make_image_folder`.
"""

from __future__ import annotations

import sys

import click

from ticketzoo.data.synthetic import FORMATS, KINDS, make_image_folder
from ticketzoo.errors import TicketzooError


@click.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--kind", type=click.Choice(sorted(KINDS)), default="shapes", show_default=True)
@click.option("--classes", type=int, default=4, show_default=True)
@click.option("--per-class", type=int, default=60, show_default=True)
@click.option("--size", type=int, default=32, show_default=True, help="image side in pixels")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--layout", type=click.Choice(["split", "presplit"]), default="split",
              show_default=True, help="OUT/<class>/ or OUT/{train,val,test}/<class>/")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="png", show_default=True)
@click.option("--corrupt", type=int, default=0, show_default=True,
              help="add this many broken files (zero-byte, truncated JPEG, text as .png)")
def main(out, kind, classes, per_class, size, seed, layout, fmt, corrupt) -> None:
    """Write a synthetic image folder to OUT (a new or empty folder)."""
    try:
        path = make_image_folder(out, kind=kind, classes=classes, per_class=per_class,
                                 size=size, seed=seed, layout=layout, fmt=fmt, corrupt=corrupt)
    except TicketzooError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(1)
    click.echo(f"wrote {classes * per_class} {kind} images ({layout}) to {path}"
               + (f" plus {corrupt} broken files" if corrupt else ""))


if __name__ == "__main__":
    main()

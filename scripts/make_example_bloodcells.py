"""Rebuild ``examples/bloodcells``: real colour blood-cell microscopy for the demo.

    python scripts/make_example_bloodcells.py [--tar ../shared/data/pbc_bloodcells.tar.xz]
                                              [--out examples/bloodcells] [--per-class 40]

The source is the team's balanced subset of the Peripheral Blood Cell dataset (Acevedo et
al., Data in Brief 30 (2020) 105474, doi:10.1016/j.dib.2020.105474; data
doi:10.17632/snkd93bnjr.1; CC BY 4.0), ``pbc_bloodcells/<class>/<file>.jpg``. The demo keeps
the five white-blood-cell classes of a differential count (:data:`CLASSES`) and, per class,
the first ``--per-class`` file names in sorted order, copied byte for byte (the tarball's
subset was already drawn at random). Nothing is resized or re-encoded: every file is the
dataset's own JPEG, and its sha256 is listed in ``SHA256SUMS`` beside the images.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ("basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil")
PREFIX = "pbc_bloodcells/"
SUMS = "SHA256SUMS"


def pick(names: list[str], per_class: int) -> dict[str, list[str]]:
    """The member names kept per class: the first ``per_class`` sorted JPEGs of each."""
    by_class: dict[str, list[str]] = {c: [] for c in CLASSES}
    for name in names:
        parts = name[len(PREFIX):].split("/") if name.startswith(PREFIX) else []
        if len(parts) == 2 and parts[0] in by_class and parts[1].lower().endswith(".jpg"):
            by_class[parts[0]].append(name)
    for cls, members in by_class.items():
        if len(members) < per_class:
            raise click.ClickException(
                f"the tarball holds {len(members)} {cls} image(s), fewer than --per-class {per_class}: "
                "is it pbc_bloodcells.tar.xz?")
        by_class[cls] = sorted(members)[:per_class]
    return by_class


@click.command()
@click.option("--tar", "tar_path", type=click.Path(exists=True, dir_okay=False),
              default=str(ROOT.parent / "shared" / "data" / "pbc_bloodcells.tar.xz"), show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default=str(ROOT / "examples" / "bloodcells"),
              show_default=True)
@click.option("--per-class", type=click.IntRange(min=1), default=40, show_default=True)
def main(tar_path: str, out: str, per_class: int) -> None:
    out_dir = Path(out)
    sums = []
    with tarfile.open(tar_path) as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        for cls, names in pick(list(members), per_class).items():
            folder = out_dir / cls
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            for name in names:
                data = tar.extractfile(members[name]).read()  # a regular file: never None
                target = folder / Path(name).name
                target.write_bytes(data)
                sums.append(f"{hashlib.sha256(data).hexdigest()}  {cls}/{target.name}\n")
    (out_dir / SUMS).write_text("".join(sums))
    click.echo(f"{out_dir}: {len(sums)} images, {per_class} per class ({', '.join(CLASSES)})")


if __name__ == "__main__":
    main()

"""Regenerate the starter zoo: small tickets found by ``find`` itself, shipped in ``cards/``.

    python scripts/make_starter_zoo.py [--out cards] [--keep-run DIR]

1. writes a synthetic image folder offline (``ticketzoo.data.make_image_folder``, kind
   ``shapes``: 4 classes x 300 images, 32 px RGB, seed 0);
2. runs IMP on it on the CPU: Conv-4 at width 0.25, 10 rounds at 20% (global), late resetting
   to k = 1 epoch, Adam lr 1e-3, batch 16, up to 20 epochs per round, early stopping
   (patience 5);
3. copies the tickets of rounds 3, 7 and 10 (48.8%, 79.0%, 89.3% sparse) into
   ``cards/<name>/`` (``ticket.safetensors`` + ``README.md``, ``location: bundled``).

Deterministic: one CPU thread and a fixed ``SOURCE_DATE_EPOCH``, so re-running on the same
torch build rewrites the same bytes. Takes a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
EPOCH = "1767225600"  # 2026-01-01T00:00:00Z: the cards' `created`
CLASSES, PER_CLASS, SIZE, SEED = 4, 300, 32, 0
ROUNDS, SHIP = 10, (3, 7, 10)
PREFIX = "shapes-conv4-"


@click.command()
@click.option("--out", type=click.Path(file_okay=False), default=str(ROOT / "cards"), show_default=True)
@click.option("--keep-run", type=click.Path(file_okay=False), default=None,
              help="Keep the data and run folder here (default: a temporary folder).")
def main(out: str, keep_run: str | None) -> None:
    os.environ["SOURCE_DATE_EPOCH"] = EPOCH
    import torch

    torch.set_num_threads(1)  # results then do not depend on the machine's core count
    from ticketzoo.data import make_image_folder
    from ticketzoo.find import FindRecipe, find_tickets, resolve_data
    from ticketzoo.registry.local import write_ticket_folder
    from ticketzoo.ticket import Ticket
    from ticketzoo.train import TrainConfig

    work = Path(keep_run) if keep_run else Path(tempfile.mkdtemp(prefix="starter-zoo-"))
    try:
        data = work / "shapes"
        if not data.exists():
            make_image_folder(data, kind="shapes", classes=CLASSES, per_class=PER_CLASS,
                              size=SIZE, seed=SEED)
        spec = resolve_data(str(data))
        recipe = FindRecipe(
            arch="conv4", source=spec.source, data_kind=spec.kind, rounds=ROUNDS, rate=0.2,
            scope="global", rewind="1ep", init="xavier", seed=0, input_size=SIZE, channels=3,
            arch_kwargs={"width": 0.25},
            train=TrainConfig(optimizer="adam", lr=1e-3, batch_size=16, max_epochs=20,
                              milestones=(), patience=5, seed=0, device="cpu"))
        provenance = (f"synthetic 'shapes' images ({CLASSES} classes x {PER_CLASS}, {SIZE} px RGB) "
                      f"generated offline by scripts/make_starter_zoo.py with "
                      f"ticketzoo.data.make_image_folder(kind='shapes', seed={SEED}); not a "
                      f"natural-image dataset")
        start = time.perf_counter()
        result = find_tickets(recipe, spec, run_dir=work / "runs", source_description=provenance,
                              description="A starter ticket of the ticketzoo offline demo.")
        click.echo(f"IMP took {time.perf_counter() - start:.0f}s", err=True)
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        for old in out_dir.glob(f"{PREFIX}*"):
            shutil.rmtree(old)
        for r in result.rounds:
            if r.line != "imp" or r.round not in SHIP:
                continue
            path = result.run_dir / r.file
            ticket = Ticket.load(path)
            folder = out_dir / ticket.name
            folder.mkdir()
            write_ticket_folder(folder, path.read_bytes(), ticket.card,
                                extra_meta={"location": "bundled"})
            click.echo(f"{ticket.name}: sparsity {ticket.sparsity:.2%}, test accuracy "
                       f"{r.test_accuracy:.2%}, {path.stat().st_size} bytes -> {folder}")
    finally:
        if not keep_run:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

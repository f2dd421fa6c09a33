"""Rebuild the starter zoo: LeNet-300-100 tickets found by ``ticketzoo find`` on Fashion-MNIST.

    python scripts/make_starter_zoo.py [--data-root /usr/share/datasets/fashion-mnist]
                                       [--out cards] [--jobs 2] [--keep-run DIR]

1. reads Fashion-MNIST from its original IDX files (Debian: ``apt-get install
   dataset-fashion-mnist``), 54,000 train / 6,000 validation (stratified, seed 0) /
   10,000 official test images, 28x28 grey;
2. runs IMP once per seed (0, 1, 2) with Frankle & Carbin's LeNet recipe: Adam lr 1.2e-3,
   batch 60, layerwise pruning of 20% per round (the output layer 10%), reset to the
   original initialisation (k = 0), Glorot-normal init, and a random-reinit control trained
   at every round's mask; at most 20 epochs per training, early stopping on validation loss
   (patience 3) with the best epoch restored, 12 rounds;
3. ships seed 0's tickets of the rounds in ``SHIP`` to ``cards/<name>/``, each card holding
   every round's test accuracy over the three seeds for the ticket, the reinit control and
   the dense network (round 0), with Welch t-tests.

Deterministic: one CPU thread per seed and a fixed ``SOURCE_DATE_EPOCH``, so re-running on
the same torch build rewrites the same bytes. About 22 CPU-minutes per seed (measured); ``--jobs``
seeds run side by side.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
EPOCH = "1767225600"  # 2026-01-01T00:00:00Z: the cards' `created`
SEEDS = (0, 1, 2)
ROUNDS = 12
SHIP = (3, 7, 10, 12)  # rounds whose seed-0 ticket is bundled
PREFIX = "fashionmnist-lenet-300-100-"
PROVENANCE = ("Fashion-MNIST (Xiao, Rasul & Vollgraf 2017; Zalando article photos, MIT licence), "
              "the original IDX files as packaged by Debian (dataset-fashion-mnist)")
DESCRIPTION = ("A starter ticket of the ticketzoo zoo, found on CPU with Frankle & Carbin's "
               "LeNet-300-100 recipe.")


def recipe_for(seed: int):
    from ticketzoo.config.data import DataConfig
    from ticketzoo.find import FindRecipe
    from ticketzoo.train import TrainConfig

    return FindRecipe(
        arch="lenet_300_100", source="fashionmnist", data_kind="named", rounds=ROUNDS, rate=0.2,
        scope="layerwise", rewind="0", weight_init="xavier", seed=seed, control="reinit",
        data=DataConfig(split=(0.9, 0.1, 0.0), split_seed=0, input_size=28, channels=1),  # val: 0.1 of train
        train=TrainConfig(optimizer="adam", lr=1.2e-3, momentum=0.9, batch_size=60, max_epochs=20,
                          milestones=(), patience=3, weight_decay=0.0, seed=seed, device="cpu"))


def run_seed(seed: int, data_root: str, run_dir: str) -> list[dict]:
    """One IMP run (in its own process): the rounds' results as dicts."""
    os.environ["SOURCE_DATE_EPOCH"] = EPOCH
    from ticketzoo.find import find_tickets, resolve_data
    from ticketzoo.train.threads import set_threads

    set_threads(1)  # results depend on the thread count: one, on every machine
    spec = resolve_data("fashionmnist", data_root)
    result = find_tickets(recipe_for(seed), spec, run_dir=run_dir,
                          source_description=PROVENANCE, description=DESCRIPTION)
    return [r.to_dict() | {"run_dir": str(result.run_dir)} for r in result.rounds]


def _stats(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "per_seed": values}


def _welch(a: list[float], b: list[float]) -> dict:
    """Difference of means (a - b) with its standard error and a Welch t-test's p-value."""
    from scipy import stats

    diff = statistics.fmean(a) - statistics.fmean(b)
    se = (statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) ** 0.5
    p = float(stats.ttest_ind(a, b, equal_var=False).pvalue) if se > 0 else (1.0 if diff == 0 else 0.0)
    verdict = "no difference shown" if p >= 0.05 else ("higher" if diff > 0 else "lower")
    return {"diff": diff, "se": se, "p": p, "verdict": verdict}


def source_table(per_seed: dict[int, list[dict]]) -> tuple[dict, list[dict]]:
    """Dense (round 0) and, per round, ticket and reinit test accuracy over the seeds."""
    def acc(seed, round_, line):
        return next(r["test_accuracy"] for r in per_seed[seed] if r["round"] == round_ and r["line"] == line)

    seeds = sorted(per_seed)
    dense = [acc(s, 0, "imp") for s in seeds]
    rows = []
    for round_ in range(1, ROUNDS + 1):
        ticket = [acc(s, round_, "imp") for s in seeds]
        reinit = [acc(s, round_, "reinit") for s in seeds]
        sparsity = next(r["sparsity"] for r in per_seed[seeds[0]] if r["round"] == round_ and r["line"] == "imp")
        rows.append({"round": round_, "sparsity": round(sparsity, 6), "ticket": _stats(ticket),
                     "reinit": _stats(reinit), "ticket_vs_dense": _welch(ticket, dense),
                     "ticket_vs_reinit": _welch(ticket, reinit)})
    return _stats(dense), rows


def _summary(row: dict, dense: dict) -> str:
    pct = lambda s: f"{100 * s['mean']:.2f}% ± {100 * s['std']:.2f}"  # noqa: E731
    vd, vr = row["ticket_vs_dense"], row["ticket_vs_reinit"]
    return (f"Over seeds {', '.join(map(str, SEEDS))} at this sparsity, on the Fashion-MNIST test "
            f"set: ticket {pct(row['ticket'])}, dense network {pct(dense)} (ticket − dense "
            f"{100 * vd['diff']:+.2f} points, Welch p = {vd['p']:.3f}: {vd['verdict']}), random "
            f"reinit of the same mask {pct(row['reinit'])} (ticket − reinit {100 * vr['diff']:+.2f} "
            f"points, p = {vr['p']:.3f}: {vr['verdict']}).")


@click.command()
@click.option("--data-root", default="/usr/share/datasets/fashion-mnist", show_default=True,
              type=click.Path(file_okay=False), help="Folder with Fashion-MNIST's IDX files.")
@click.option("--out", type=click.Path(file_okay=False), default=str(ROOT / "cards"), show_default=True)
@click.option("--jobs", type=int, default=2, show_default=True, help="Seeds run side by side.")
@click.option("--keep-run", type=click.Path(file_okay=False), default=None,
              help="Keep (and resume) the run folders here (default: a temporary folder).")
@click.option("--readmes-only", is_flag=True,
              help="Re-render each bundled card's README.md from its ticket file (the tickets are kept "
                   "byte for byte); for a new card layout.")
def main(data_root: str, out: str, jobs: int, keep_run: str | None, readmes_only: bool) -> None:
    from ticketzoo.folder import write_ticket_folder
    from ticketzoo.ticket import Ticket

    if readmes_only:
        from ticketzoo.fileio import atomic_write_bytes, sha256_bytes
        from ticketzoo.modelcard import render_readme

        for folder in sorted(Path(out).glob(f"{PREFIX}*")):
            data = (folder / "ticket.safetensors").read_bytes()
            card = Ticket.from_bytes(data).card
            text = render_readme(card, sha256=sha256_bytes(data), size=len(data), extra_meta={"location": "bundled"})
            atomic_write_bytes(folder / "README.md", text.encode("utf-8"), registry=True)  # the catalog is a registry
            click.echo(f"{folder.name}: README.md re-rendered")
        return

    work = Path(keep_run) if keep_run else Path(tempfile.mkdtemp(prefix="starter-zoo-"))
    try:
        start = time.perf_counter()
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            futures = {s: pool.submit(run_seed, s, data_root, str(work / "runs")) for s in SEEDS}
            per_seed = {s: f.result() for s, f in futures.items()}
        click.echo(f"IMP of {len(SEEDS)} seeds took {time.perf_counter() - start:.0f}s", err=True)
        dense, rows = source_table(per_seed)
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        for old in out_dir.glob(f"{PREFIX}*"):
            shutil.rmtree(old)
        for r in per_seed[SEEDS[0]]:
            if r["line"] != "imp" or r["round"] not in SHIP:
                continue
            ticket = Ticket.load(Path(r["run_dir"]) / r["file"])  # tickets/<name>/ticket.safetensors
            # (or tickets/<name>.safetensors in a --keep-run folder of an earlier version)
            row = rows[r["round"] - 1]
            card = ticket.card
            extra = {**card.extra, "seeds": list(SEEDS), "source_dense": dense, "source_results": rows}
            ticket = ticket.with_card(description=f"{card.description} {_summary(row, dense)}", extra=extra)
            folder = out_dir / ticket.name
            folder.mkdir()
            write_ticket_folder(folder, ticket.to_bytes(), ticket.card, extra_meta={"location": "bundled"})
            click.echo(f"{ticket.name}: {_summary(row, dense)}")
    finally:
        if not keep_run:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

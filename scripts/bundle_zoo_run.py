"""Bundle tickets of a finished ``ticketzoo find`` run into the catalog (``cards/<name>/``).

    python scripts/bundle_zoo_run.py RUN_DIR [--ship 89,97,99] [--out cards] [--replace-previous]
                                     [--deviation TEXT ...] [--target-dense 0.75] [--bench 224x8,224x1]
                                     [--data DATA [--data-root DIR]] [--machine TEXT]
    python scripts/bundle_zoo_run.py cards/NAME [cards/NAME ...] --bench 224x8,224x1

For the ResNet-50 zoo (scripts/make_resnet50_zoo.sh): one seed per family fits the CPU
budget, so each card holds that seed's measured source test accuracy for every round (dense
round 0, each ticket, the reinit controls where they were trained), the CPU-minutes the run
spent training, the recipe's deviations from Sabatelli et al. and whether the dense target
was met, in its description and in ``extra`` (``source_results``). With ``--data`` (the data
the run trained on) every round is scored again per test image and each ticket is tested
against the dense network and its controls on the same images (exact McNemar, and the bound
on two runs' training-noise difference, :mod:`ticketzoo.find.paired`): that is how one seed
can still say whether a ticket beat its reinit control. Nothing is averaged over
seeds that were not run: the card says "one seed". A round whose accuracy is at chance is
called so. ``--bench SIZExBATCH,...`` also measures each ticket with the sparse CPU runtime
against dense fp32 and bf16 (:func:`ticketzoo.sparse.bench.bench_ticket`, min of 5, on this
machine: run it on a quiet one) and records the figures, the CPU and the thread count in
``extra["speed"]`` and the description. Given bundled card folders instead of a run folder,
it measures those tickets again and replaces the speed they record (and nothing else).
A card folder that already holds a ticket keeps it as an earlier revision
(``cards/NAME/revisions/REV/``, pullable as ``NAME@REV``, its README naming the revision
that superseded it) unless ``--replace-previous`` is given.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent


def _epoch_times(run: Path | None, row: dict) -> list[float]:
    from ticketzoo.find.rundir import epoch_times

    return epoch_times(run, row["round"], None if row["line"] == "imp" else row["line"]) if run else []


def train_minutes(run: Path | None, row: dict) -> float:
    """A line's training minutes: its epochs at their median time (``train.csv``). The wall time
    it records would also count the hours a long job sat paused (SIGSTOP) or shared the CPU."""
    import statistics

    times = _epoch_times(run, row)
    return (statistics.median(times) * len(times) if times else row["time_s"] or 0.0) / 60


def trained_epochs(run: Path | None, row: dict) -> int:
    """Epochs a line trained: a pruned round's start at the rewind point (``train.csv`` rows;
    without one, the schedule's epochs the row records)."""
    return len(_epoch_times(run, row)) or int(row["epochs"] or 0)


def source_results(rows: list[dict], classes: int, test_images: int | None = None,
                   run: Path | None = None, machine: str | None = None) -> dict:
    """Per round: sparsity, ticket and control test accuracy; dense; CPU-minutes (from the
    per-epoch times in ``run`` when given) and the ``machine`` they were measured on."""
    dense = next(r for r in rows if r["round"] == 0 and r["line"] == "imp")
    rounds = []
    for r in sorted((r for r in rows if r["line"] == "imp" and r["round"] > 0), key=lambda r: r["round"]):
        others = [c for c in rows if c["round"] == r["round"] and c["line"] != "imp"]
        controls = {c["line"]: c["test_accuracy"] for c in others}
        rounds.append({"round": r["round"], "sparsity": round(r["sparsity"], 6), "ticket": r["test_accuracy"],
                       "ticket_minus_dense": r["test_accuracy"] - dense["test_accuracy"],
                       **({"controls": controls} if controls else {}), "name": r["ticket"],
                       "epochs": trained_epochs(run, r),
                       **({"control_epochs": {c["line"]: trained_epochs(run, c) for c in others}} if others else {}),
                       "train_minutes": round(sum(train_minutes(run, x) for x in rows
                                                  if x["round"] == r["round"]), 1)})
    minutes = sum(train_minutes(run, r) for r in rows)
    return {"seeds": 1, "dense": dense["test_accuracy"], "dense_epochs": trained_epochs(run, dense),
            "dense_minutes": round(train_minutes(run, dense), 1),
            "chance": 1.0 / classes, "rounds": rounds, "train_cpu_minutes": round(minutes, 1),
            **({"machine": machine} if machine else {}), **({"test_images": test_images} if test_images else {})}


def add_paired(results: dict, run: Path, data: str, data_root: str | None) -> list[str]:
    """Score every line of ``run`` per test image and put each round's McNemar tests in
    ``results`` (``rounds[i]["paired"]``); returns warnings about accuracies that differ from
    the recorded ones."""
    from ticketzoo.find.paired import paired_tests, score_lines

    scores = score_lines(run, data, data_root)
    warnings = [f"round {s.round} ({s.line}): {100 * s.accuracy:.2f}% recomputed, {100 * s.recorded:.2f}% recorded"
                for s in scores if s.recorded is not None and abs(s.accuracy - s.recorded) > 0.5 / len(s.correct)]
    tests = paired_tests(scores)
    for row in results["rounds"]:
        if row["round"] in tests:
            row["paired"] = {k: t.to_dict() for k, t in tests[row["round"]].items()}
    results["paired_note"] = ("exact McNemar tests on the same test images; noise_sd: the sd of the difference "
                              "of two runs from training noise alone, at most (independent errors, Jordan 2024)")
    return warnings


def paired_sentence(what: str, t: dict) -> str:
    p = "no image tells them apart" if t["p"] is None else f"McNemar p = {t['p']:.2g}"
    verdict = ("beyond what training noise alone gives" if t["beyond_noise"] else
               "not beyond what training noise alone could give")
    return (f"ticket − {what} {t['delta']:+.2f} points on the same {t['images']} test images ({t['a_only']} images "
            f"only the ticket got right, {t['b_only']} only the {what}; {p}; two runs differ by at most "
            f"{t['noise_sd']:.2f} points sd from training noise): {verdict}")


def summary(results: dict, row: dict, target: float | None) -> str:
    pct = lambda x: f"{100 * x:.2f}%"  # noqa: E731
    dense = results["dense"]
    untested = "" if row.get("paired") else "; one seed, so no test of the difference"
    text = (f"Source test accuracy from one seed: this ticket {pct(row['ticket'])}, the dense network "
            f"{pct(dense)} (ticket − dense {100 * row['ticket_minus_dense']:+.2f} points{untested})")
    for line, acc in row.get("controls", {}).items():
        text += f", a random {line} of the same mask {pct(acc)}"
    if "dense_epochs" in results:
        text += (f". Epochs: the dense network {results['dense_epochs']}, this ticket {row['epochs']} from its "
                 "rewind point")
        text += "".join(f", the {line} {n}" for line, n in (row.get("control_epochs") or {}).items())
    for key, t in (row.get("paired") or {}).items():
        text += f". Paired: {paired_sentence(key.removeprefix('vs_'), t)}"
    on = f" on {results['machine']}" if results.get("machine") else ""
    text += (f". The run trained for {results['train_cpu_minutes']:.0f} CPU-minutes in all{on} (each epoch "
             "counted at its line's median epoch time, so hours the job sat paused do not count).")
    if row["ticket"] <= results["chance"] + 0.02:
        text += " This ticket is at chance level: it did not train."
    if target is not None and dense < target:
        text += f" The dense network missed the {pct(target)} target of this recipe."
    return text


def measure(ticket, spec: str) -> dict:
    """``bench_ticket`` at ``spec`` ("224x8": input size x batch size) on the trained weights."""
    from ticketzoo.sparse.bench import bench_ticket

    try:
        size, batch = (int(x) for x in spec.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{spec!r} is not SIZExBATCH, e.g. 224x8", param_hint="--bench") from None
    return bench_ticket(ticket, weights="trained" if "trained" in ticket.weight_sets else "rewind",
                        input_size=size, batch_size=batch)


def speed_sentence(b: dict) -> str:
    runs = b["runs"]
    return (f"Measured on {b['cpu']} with {b['threads']} threads at {b['input_size']} px, batch {b['batch_size']} "
            f"(min of {b['repeat']}): sparse runtime {runs['sparse']['ms']:.1f} ms, dense fp32 "
            f"{runs['dense-fp32']['ms']:.1f} ms, dense bf16 {runs['dense-bf16']['ms']:.1f} ms: {b['verdict']}.")


def keep_previous(folder: Path, new_data: bytes) -> None:
    """Move the card folder's current ticket into ``revisions/<rev>/`` (the catalog serves it as
    NAME@REV; its README says which revision superseded it), unless it is the same file."""
    import hashlib

    from ticketzoo.folder import write_ticket_folder
    from ticketzoo.ticket import Ticket

    current = folder / "ticket.safetensors"
    if not current.is_file():
        raise click.ClickException(f"{folder} holds no bundled ticket to keep: use --replace-previous")
    data = current.read_bytes()
    old, new = hashlib.sha256(data).hexdigest()[:12], hashlib.sha256(new_data).hexdigest()[:12]
    if old == new:
        return
    dest = folder / "revisions" / old
    dest.mkdir(parents=True, exist_ok=True)
    write_ticket_folder(dest, data, Ticket.from_bytes(data).card,
                        extra_meta={"location": "bundled", "superseded_by": new})
    click.echo(f"{folder.name}@{old} kept as an earlier revision ({dest})")


def rebench(folder: Path, benches: list[str]) -> None:
    """Measure a bundled ticket again and replace the speed its card records."""
    from ticketzoo.folder import write_ticket_folder
    from ticketzoo.ticket import Ticket

    ticket = Ticket.load(folder / "ticket.safetensors")
    card = ticket.card
    description = card.description
    for old in card.extra.get("speed", []):
        description = description.replace(f" {speed_sentence(old)}", "")
    speed = [measure(ticket, b) for b in benches]
    ticket = ticket.with_card(description=description + "".join(f" {speed_sentence(x)}" for x in speed),
                              extra={**card.extra, "speed": speed})
    write_ticket_folder(folder, ticket.to_bytes(), ticket.card, extra_meta={"location": "bundled"})
    for x in speed:
        click.echo(f"{ticket.name}: {speed_sentence(x)}")


@click.command()
@click.argument("run_dir", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--ship", default="89,97,99", show_default=True, help="Percent sparsities whose tickets ship.")
@click.option("--out", type=click.Path(file_okay=False), default=str(ROOT / "cards"), show_default=True)
@click.option("--deviation", multiple=True, help="A deviation from the paper's recipe, for the cards.")
@click.option("--target-dense", type=float, default=None, help="Dense accuracy the recipe aimed at.")
@click.option("--keep-previous/--replace-previous", "previous", default=True, show_default=True,
              help="Keep a card folder's current ticket as an earlier revision (revisions/REV/, pullable as "
                   "NAME@REV, its README naming the new one), or drop it.")
@click.option("--machine", default=None, metavar="TEXT",
              help="The machine the run trained on, for the cards (default: this machine's CPU).")
@click.option("--data", default=None, metavar="DATA",
              help="The data the run trained on (as given to find): score every round per test image and "
                   "record paired (McNemar) tests of each ticket against dense and its controls.")
@click.option("--data-root", default=None, help="Where a named dataset's files are (find's --data-root).")
@click.option("--bench", "benches", default="", metavar="SxB[,SxB]",
              help="Measure sparse vs dense speed at these input sizes x batch sizes, e.g. 224x8,224x1.")
def main(run_dir: tuple[str, ...], ship: str, out: str, deviation: tuple[str, ...], target_dense: float | None,
         previous: bool, machine: str | None, data: str | None, data_root: str | None, benches: str) -> None:
    from ticketzoo.config.find import percent
    from ticketzoo.folder import write_ticket_folder
    from ticketzoo.ticket import Ticket

    specs = [b for b in benches.split(",") if b.strip()]
    if all((Path(d) / "ticket.safetensors").is_file() for d in run_dir):
        if not specs:
            raise click.UsageError("card folders are re-measured only: give --bench SIZExBATCH")
        for d in run_dir:
            rebench(Path(d), specs)
        return
    if len(run_dir) != 1:
        raise click.UsageError("give one run folder, or bundled card folders (cards/NAME) to re-measure")
    run = Path(run_dir[0])
    log = json.loads((run / "log.json").read_text())
    rows = log["rounds"]
    wanted = {int(x) for x in ship.split(",") if x.strip()}
    shipped = [r for r in rows if r["line"] == "imp" and r["round"] > 0 and percent(r["sparsity"]) in wanted]
    if not shipped:
        raise click.ClickException(f"no round of {run} has a sparsity in {sorted(wanted)}")
    first = Ticket.load(run / shipped[0]["file"])
    counts = json.loads((run / "recipe.json").read_text()).get("data", {}).get("counts", {})
    if machine is None:
        from ticketzoo.sparse.kernels import cpu_name

        machine = f"{cpu_name()}, {os.cpu_count()} cores"
    results = source_results(rows, first.card.arch.num_classes, counts.get("test"), run, machine)
    results["deviations"] = list(deviation)
    if data is not None:
        for warning in add_paired(results, run, data, data_root):
            click.echo(f"warning: {warning} (the recomputed figures are the ones tested)", err=True)
    for r in shipped:
        ticket = Ticket.load(run / r["file"])
        row = next(x for x in results["rounds"] if x["round"] == r["round"])
        card = ticket.card
        notes = "".join(f" Deviation from Sabatelli et al.: {d}." for d in deviation)
        speed = [measure(ticket, b) for b in specs]
        ticket = ticket.with_card(description=f"{card.description} {summary(results, row, target_dense)}{notes}"
                                              + "".join(f" {speed_sentence(x)}" for x in speed),
                                  extra={**card.extra, "source_results": results, **({"speed": speed} if speed else {})})
        folder = Path(out) / ticket.name
        data = ticket.to_bytes()
        if folder.exists() and not previous:
            shutil.rmtree(folder)
        elif folder.exists():
            keep_previous(folder, data)
        folder.mkdir(parents=True, exist_ok=True)
        write_ticket_folder(folder, data, ticket.card, extra_meta={"location": "bundled"})
        click.echo(f"{ticket.name}: {summary(results, row, target_dense)}")


if __name__ == "__main__":
    main()

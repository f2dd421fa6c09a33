"""Time ``ticketzoo find`` on 1 process vs 2 processes (torchrun, gloo) on the CPU.

Usage: ``python scripts/bench_ddp.py [--images 600] [--width 0.5] [--epochs 2] [--lr 0.01] [--repeat 1]``

Runs the same recipe (a conv2 on a synthetic 3-class 32 px folder, one pruning round, so
two trainings) as: one process with 1 thread (the baseline), one process with 2 threads,
and ``torchrun --nproc_per_node 2`` with 1 thread per process; all in this one run, so the
ratios compare like with like on the machine as it is now. Prints, per setting, the wall
time of the command (start-up included), the training time (the sum of the epochs'
``time_s`` in the run's ``train.csv``, the slowest rank's under torchrun) and the speed-up
of each over the baseline (baseline time / time), plus how far the 2-process tickets are
from the 1-process ones (the same global batch: float rounding only, which can break a
near-tie at the pruning threshold the other way).
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click


def _run(cmd: list[str], threads: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "SOURCE_DATE_EPOCH": "1700000000"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise click.ClickException(f"{' '.join(cmd[:6])} ... failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def _train_time(run_dir: Path) -> float:
    total = 0.0
    for path in run_dir.glob("*/round_*/train.csv"):
        with path.open() as f:
            total += sum(float(row["time_s"]) for row in csv.DictReader(f))
    return total


def _compare(a: Path, b: Path) -> tuple[float, int, int]:
    """Largest weight difference where both masks keep a weight, mask entries that differ
    (pruning ties broken differently by float rounding) and mask entries in all."""
    from ticketzoo.ticket import Ticket

    worst, flipped, total = 0.0, 0, 0
    for pa in sorted(a.glob("*/tickets/*/ticket.safetensors")):
        pb = next(b.glob(f"*/tickets/{pa.parent.name}/ticket.safetensors"))
        ta, tb = Ticket.load(pa), Ticket.load(pb)
        for name in ta.masks:
            flipped += int((ta.masks[name] != tb.masks[name]).sum())
            total += ta.masks[name].numel()
        for s in ta.weight_sets:
            sa, sb = ta.state_dict(s), tb.state_dict(s)
            for k in sa:
                diff = (sa[k].float() - sb[k].float()).abs()
                if k in ta.masks:
                    diff = diff[ta.masks[k] & tb.masks[k]]
                worst = max(worst, float(diff.max()) if diff.numel() else 0.0)
    return worst, flipped, total


@click.command()
@click.option("--images", default=600, show_default=True, help="Images in the synthetic folder.")
@click.option("--width", default=0.5, show_default=True, help="conv2 channel multiplier.")
@click.option("--epochs", default=2, show_default=True)
@click.option("--batch-size", default=64, show_default=True, help="The global batch.")
@click.option("--lr", default=0.01, show_default=True,
              help="SGD learning rate (at 0.1 this small net trains chaotically and any float "
                   "difference, 2 processes' included, grows to 1e-3 within an epoch).")
@click.option("--repeat", default=1, show_default=True, help="Runs per setting (the fastest is kept).")
def main(images: int, width: float, epochs: int, batch_size: int, lr: float, repeat: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test suite\'s synthetic images
    from synthetic import make_image_folder

    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as tmp:
        work = Path(tmp)
        data = make_image_folder(work / "bench-shapes", kind="shapes", classes=3,
                                 per_class=images // 3, size=32, seed=0)
        recipe = ["find", "--arch", "conv2", "--width", str(width), "--data", str(data),
                  "--input-size", "32", "--rounds", "1", "--epochs", str(epochs), "--rewind", "1ep",
                  "--batch-size", str(batch_size), "--lr", str(lr), "--milestones", "none", "--patience", "0",
                  "--device", "cpu", "-q"]
        py = [sys.executable, "-m", "ticketzoo"]
        settings = {
            "1 process, 1 thread": (lambda d: py + recipe + ["--threads", "1", "--run-dir", d], 1),
            "1 process, 2 threads": (lambda d: py + recipe + ["--threads", "2", "--run-dir", d], 2),
            "2 processes (torchrun), 1 thread each": (
                lambda d: [sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", "-m", "ticketzoo"]
                + recipe + ["--threads", "1", "--run-dir", d], 1),
        }
        results = {}
        for label, (cmd, threads) in settings.items():
            best = None
            for i in range(repeat):
                run_dir = work / f"{label.split()[0]}-{threads}-{i}"
                wall = _run(cmd(str(run_dir)), threads)
                trained = _train_time(run_dir)
                if best is None or trained < best[1]:
                    best = (wall, trained, run_dir)
            results[label] = best
        base_wall, base_train, base_dir = results["1 process, 1 thread"]
        click.echo(f"find: conv2 x{width}, {images} images of 32 px, {epochs} epochs x 2 trainings, "
                   f"global batch {batch_size}, SGD lr {lr:g}; CPU cores: {os.cpu_count()}")
        click.echo(f"{'setting':40} {'wall s':>8} {'speedup':>7} {'train s':>8} {'speedup':>7}")
        for label, (wall, trained, _) in results.items():
            click.echo(f"{label:40} {wall:8.1f} {base_wall / wall:6.2f}x {trained:8.1f} "
                       f"{base_train / trained:6.2f}x")
        two = results["2 processes (torchrun), 1 thread each"][2]
        worst, flipped, total = _compare(base_dir, two)
        click.echo(f"2 processes vs 1: largest weight difference {worst:.2e} (weights both masks keep); "
                   f"mask entries that differ: {flipped} of {total}")


if __name__ == "__main__":
    main()

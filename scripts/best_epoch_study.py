"""Which epoch should a fine-tune keep? Measures best-epoch criteria on real folders.

For each ticket REF, folder and seed this runs the default ``ticketzoo finetune`` (the
library's ``finetune``, protocol auto) with a probe that scores every epoch's weights on the
run's own validation and test images, image by image. It then prints, per criterion, the
test accuracy of the epoch that criterion would keep (mean ± std over seeds, and how many
test images each figure rests on), beside the last epoch and the oracle (the best test
epoch, which no criterion can know):

  val-loss          the lowest mean validation loss: what ``finetune`` keeps today
  val-acc           the highest validation accuracy, ties broken by the lower loss
  trimmed-loss      the lowest mean validation loss without its worst 5% of images (>= 1),
                    so one image the network is sure about and wrong cannot decide

The probe evaluates under ``torch.random.fork_rng``, so training draws the same random
numbers as without it; the script checks that the val-loss pick's test accuracy equals the
accuracy ``finetune`` reported.

    python scripts/best_epoch_study.py cifar10-resnet50-s97 PATH/TO/OTHER/TICKET \\
        --data ./pbcB --data ./pbcC --seeds 3 --out runs/best-epoch
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import ticketzoo
from ticketzoo.config.finetune import FinetuneConfig
from ticketzoo.data import loading
from ticketzoo.finetune.run import finetune
from ticketzoo.finetune.training import make_run_loaders
from ticketzoo.train import Callback, Runtime

TRIM = 0.05


class EpochProbe(Callback):
    """Per-image validation and test losses and hits of every epoch of every run."""

    def __init__(self, sets: dict, num_classes: int):
        self.sets, self.num_classes = sets, num_classes
        self.runs: dict[int, list[dict]] = {}  # seed -> one record per epoch

    def on_train_start(self, state) -> None:
        self.seed = state.config.seed
        self.runs[self.seed] = []
        self.runtime = Runtime.for_config(state.config)
        with torch.random.fork_rng(devices=[]):
            loaders = make_run_loaders(self.sets, state.config, seed=self.seed, device=state.device,
                                       num_classes=self.num_classes)
            self.batches = {split: list(getattr(loaders, split)) for split in ("val", "test")}

    def on_epoch_end(self, state, metrics) -> None:
        model, record = state.model, {"epoch": state.epoch + 1}
        was_training = model.training
        model.eval()
        try:
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                for split, batches in self.batches.items():
                    losses, hits = [], []
                    for images, labels in batches:
                        x, y = self.runtime.to_device(images, labels)
                        with self.runtime.autocast():
                            logits = model(x).float()
                        losses += F.cross_entropy(logits, y, reduction="none").tolist()
                        hits += (logits.argmax(1) == y).tolist()
                    record[split] = {"loss": losses, "hit": hits}
        finally:
            model.train(was_training)
        self.runs[self.seed].append(record)


def _mean(values) -> float:
    return sum(values) / len(values)


def _trimmed(losses: list[float]) -> float:
    drop = max(1, math.floor(TRIM * len(losses)))
    return _mean(sorted(losses)[:-drop]) if len(losses) > drop else _mean(losses)


CRITERIA = {  # each returns a sort key: the epoch with the smallest key is kept (first on ties)
    "val-loss": lambda r: _mean(r["val"]["loss"]),
    "val-acc": lambda r: (-_mean(r["val"]["hit"]), _mean(r["val"]["loss"])),
    "trimmed-loss": lambda r: _trimmed(r["val"]["loss"]),
    "last epoch": lambda r: -r["epoch"],
    "oracle (test)": lambda r: -_mean(r["test"]["hit"]),
}


def picks(records: list[dict]) -> dict[str, dict]:
    """Per criterion: the epoch it keeps and that epoch's test accuracy."""
    out = {}
    for name, key in CRITERIA.items():
        best = min(records, key=key)
        out[name] = {"epoch": best["epoch"], "test_accuracy": _mean(best["test"]["hit"])}
    return out


def study(refs: list[str], datas: list[str], config: FinetuneConfig, out: Path) -> list[dict]:
    """Fine-tune every ticket on every folder with ``config`` (all its seeds), probed; one row per run."""
    results = []
    for ref in refs:
        ticket = ticketzoo.load(ref)
        for data in datas:
            ds, sets = loading.load(data, config, ticket.card.arch)
            probe = EpochProbe(sets, len(ds.classes))
            folder = out / f"{Path(str(ref)).name.replace('@', '_')}-{Path(data).name}"
            result = finetune(ticket, data, config, out_dir=folder, overwrite=True, callbacks=(probe,))
            for run in result.runs:
                records = probe.runs.get(run.seed)
                if not records:  # diverged in its first epoch: nothing to pick from
                    print(f"{ref} on {data}, seed {run.seed}: {run.status}, no epoch scored", flush=True)
                    continue
                row = {"ticket": str(ref), "data": str(data), "seed": run.seed, "status": run.status,
                       "reported_test": run.test.accuracy if run.test else None,
                       "best_epoch": run.train.best_epoch if run.train else None, "time_s": round(run.time_s, 1),
                       "epochs": len(records), "test_images": len(records[0]["test"]["hit"]),
                       "val_images": len(records[0]["val"]["hit"]), "picks": picks(records),
                       "per_epoch": [{"epoch": r["epoch"], "val_loss": _mean(r["val"]["loss"]),
                                      "val_max_loss": max(r["val"]["loss"]),
                                      "val_acc": _mean(r["val"]["hit"]), "test_acc": _mean(r["test"]["hit"])}
                                     for r in records]}
                results.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "per_epoch"}), flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("refs", nargs="+", help="tickets: name, name@rev or path")
    parser.add_argument("--data", action="append", required=True, help="an image folder (repeat)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True, help="a folder for the runs and study.json")
    args = parser.parse_args(argv)
    results = study(args.refs, args.data, FinetuneConfig(protocol="auto", seeds=args.seeds), args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "study.json").write_text(json.dumps(results, indent=1))
    _print_table(results)
    return 0


def _print_table(results: list[dict]) -> None:
    print("\ncriterion: test accuracy of the epoch it keeps, mean ± std over seeds (points)")
    groups: dict[tuple, list[dict]] = {}
    for row in results:
        groups.setdefault((row["ticket"], row["data"]), []).append(row)
    for (ticket, data), rows in groups.items():
        agree = sum(abs(r["picks"]["val-loss"]["test_accuracy"] - (r["reported_test"] or -1)) < 1e-9 for r in rows)
        print(f"\n{ticket} on {data}: {len(rows)} seed(s), {rows[0]['test_images']} test and "
              f"{rows[0]['val_images']} val images each, {statistics.mean(r['time_s'] for r in rows):.0f} s of training "
              f"per run; val-loss pick = reported accuracy in {agree}/{len(rows)}")
        for name in CRITERIA:
            accs = [100 * r["picks"][name]["test_accuracy"] for r in rows]
            sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
            epochs = ",".join(str(r["picks"][name]["epoch"]) for r in rows)
            print(f"  {name:14s} {statistics.mean(accs):6.2f} ± {sd:5.2f}   epochs {epochs}")


if __name__ == "__main__":
    sys.exit(main())

"""Tickets found on the target itself: Sabatelli et al.'s ``Target-Ticket`` (Table 2).

``compare`` takes :func:`find_on_target` as its ``target_finder`` (the CLI passes it;
compare imports nothing from find). IMP (:func:`ticketzoo.find.find_tickets`) runs on the comparison's own *training* images
only: its ``train/`` is the comparison's train split and its ``val/`` and ``test/`` are
the comparison's val split, copied to ``<out>/target/data``. The comparison's test images
never reach it, so the target ticket is judged on images it has not seen, like the
others. Architecture, input size and channels are those of the first ticket compared;
the training recipe is the comparison's; pruning is find's default (20% of the remaining
weights per round, global, θk at epoch 2). The run folder ``<out>/target/runs`` resumes.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from ticketzoo.config.data import DataConfig
from ticketzoo.config.find import FindRecipe
from ticketzoo.data.source import DataSpec
from ticketzoo.errors import ConfigError

FAMILY = "target"


def find_on_target(ds, arch, train, rounds: int, *, out: Path, seed: int, weight_init: str,
                   progress=None) -> list[Path]:
    """IMP for ``rounds`` rounds on ``ds``'s train split (epochs reported to ``progress``);
    the ticket file of each pruned round, in round order (source ``FAMILY``)."""
    from ticketzoo.find.imp import find_tickets

    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ConfigError(f"target_rounds must be an integer >= 1, got {rounds!r}", field="target_rounds",
                          value=rounds)
    if ds.layout == "named":
        raise ConfigError("a ticket found on the target needs an image folder, not a named dataset",
                          field="target_rounds", hint="compare on an image folder, or leave `target_rounds` out")
    folder = _training_folder(ds, out / "target" / "data")
    recipe = FindRecipe(arch=arch.name, source=FAMILY, data_kind="folder", rounds=rounds, weight_init=weight_init,
                        seed=seed, data=DataConfig(input_size=arch.input_size, channels=arch.in_channels),
                        arch_kwargs=dict(arch.kwargs), train=dataclasses.replace(train, seed=seed))
    spec = DataSpec("folder", FAMILY, folder, None, None)
    result = find_tickets(recipe, spec, run_dir=out / "target" / "runs", progress=progress,
                          source_description="the comparison's own training images")
    return [result.run_dir / r.file for r in result.rounds if r.line == "imp" and r.file and r.sparsity > 0]


def _training_folder(ds, root: Path) -> Path:
    """``root/{train,val,test}/<class>/`` from the train and val splits (val doubles as test)."""
    if root.is_dir():  # made before, from the same split (the sweep's fingerprint says so)
        return root
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for split, samples in (("train", ds.train), ("val", ds.val), ("test", ds.val)):
        for i, sample in enumerate(samples):
            path, label = Path(sample.path), sample.label
            dest = tmp / split / ds.classes[label] / f"{i:06d}-{path.name}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
    tmp.rename(root)
    return root

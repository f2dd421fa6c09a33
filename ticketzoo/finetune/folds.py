"""K-fold designs for ``finetune --compare`` and ``compare``: each fold's data, and what
the design can resolve, said before anything trains.

With ``config.folds`` K > 1 a folder of ``root/<class>/`` images is cut into K stratified
folds (:mod:`ticketzoo.data.folds`); fold ``f``'s sets test on its images and train and
validate on the others. ``folds`` 1 is the folder's own split, as before folds existed.
"""

from __future__ import annotations

from ticketzoo.data.folds import assign_folds, check_folds, class_groups, fold_dataset
from ticketzoo.data.loading import make_sets, ticket_view
from ticketzoo.significance import Resolution, resolution


def fold(ds, config, arch, index: int):
    """``(dataset, sets)`` of fold ``index`` of ``config.folds`` (decoded images reused)."""
    part = fold_dataset(ds, config.folds, index, config.data.split, config.split_seed)
    return part, make_sets(part, config.data, **ticket_view(config, arch))


def folds_of(ds, sets, config, arch) -> dict:
    """``{fold: (dataset, sets)}``: ``{None: (ds, sets)}`` for one split, else every fold."""
    if config.folds == 1:
        return {None: (ds, sets)}
    check_folds(config.folds, class_groups(ds) if ds.layout != "named" else {}, layout=ds.layout)
    return {f: fold(ds, config, arch, f) for f in range(config.folds)}


def count(ds) -> int:
    return len(ds.train) + len(ds.val) + len(ds.test)


def design(ds, config) -> Resolution:
    """What comparing conditions on ``ds`` with ``config``'s folds and seeds can resolve."""
    if config.folds > 1:
        sizes = [len(f) for f in assign_folds(class_groups(ds), config.folds, config.split_seed)]
        return resolution(config.folds, config.seeds, sizes)
    foldable = ds.layout == "split" and min(map(len, class_groups(ds).values()), default=0) >= 5
    return resolution(1, config.seeds, [len(ds.test)], folder_images=count(ds) if foldable else None)

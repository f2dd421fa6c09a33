"""What a fine-tuning run saves, and the checks that guard it.

The saved ticket keeps the base ticket's masks minus the head: the new head is a fresh
*dense* layer, so it has no mask and the card's sparsity covers the pruned body only.
Its ``rewind`` set holds the weights fine-tuning started from (after the head swap),
its ``trained`` set the fine-tuned weights (the best epoch's, when restored). A
``dense`` run saves a ticket without masks, labelled ``control="dense-baseline"``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from ticketzoo.card import Lineage, Recipe, RoundMetrics, RunRecord, SourceData, finetune_preprocess
from ticketzoo.errors import MaskViolationError
from ticketzoo.masks import Mask
from ticketzoo.ticket import Ticket

METRICS_FILE = "metrics.json"


def check_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Raise MaskViolationError unless every pruned weight of ``model`` is exactly zero."""
    Mask(masks).check(model)


def check_saved(saved: Ticket | Path, base: Ticket, *, dense: bool = False) -> None:
    """The saved ticket's masks must equal the base's (head aside), its pruned weights zero."""
    path = saved if isinstance(saved, Path) else saved.name
    saved = Ticket.load(saved) if isinstance(saved, Path) else saved
    want = {} if dense else base.head_masks_dropped()
    got = saved.masks
    differ = sorted(set(got) ^ set(want)) + [n for n in want if n in got and not torch.equal(got[n], want[n])]
    if differ:
        raise MaskViolationError(f"{path}: masks differ from the base ticket's at {', '.join(differ[:3])}")
    for weights in saved.weight_sets:
        state = saved.state_dict(weights)
        for name, mask in got.items():
            if bool((state[name][~mask] != 0).any()):
                raise MaskViolationError(f"{path}: pruned weights of {name} ({weights}) are not zero")


def make_ticket(base: Ticket, kept: dict, run, data, config, name: str,
                base_ref: str, base_sha256: str | None, setup: dict) -> Ticket:
    """The fine-tuned ticket of ``run``: ``kept["start"]`` as rewind, ``kept["final"]`` as trained.

    ``setup`` is what metrics.json records as such: the resolved protocol, threads, images."""
    from ticketzoo.data import source as sources

    card = base.card
    arch = dataclasses.replace(card.arch, num_classes=len(data.classes))
    source = SourceData(sources.label(data), data.classes,
                        f"{sources.description(data)}, fine-tuned from {base_ref}")
    recipe_setup = setup["protocol"]
    # The fine-tune's own recipe: no pruning here (the mask is the parent's, see lineage).
    working = config.working_size(card.arch.input_size)  # the side the training split was cached at
    record = RunRecord(reasons=dict(recipe_setup.get("reasons", {})), weight_sets={
        "rewind": "weights fine-tuning started from (head swapped)",
        "trained": "fine-tuned weights" + (" (best epoch restored)" if run.train.best_epoch else "")})
    # as it ran: this run's training (protocol resolved, its seed) and the working size it cached at
    ran = dataclasses.replace(config, train=run.train_config,
                              data=dataclasses.replace(config.data, resize=working))
    recipe = Recipe(method="finetune", rate=0.0, rounds=0, seed=run.seed, train=run.train_config, finetune=ran,
                    record=record)
    test_acc = run.test.accuracy if run.test else None
    val = [h["val_acc"] for h in run.train.history if h["epoch"] == run.train.best_epoch]
    metrics = (RoundMetrics(round=0, sparsity=run.sparsity, val_accuracy=val[0] if val else None,
                            test_accuracy=test_acc, epochs=run.train.epochs_run),)
    control = {"dense": "dense-baseline", "reinit": "reinit"}.get(config.init)
    lineage = Lineage(parent=base_ref, parent_sha256=base_sha256, relation="finetune", control=control)
    masks = {} if config.init == "dense" else base.head_masks_dropped()
    extra = {"test_accuracy": test_acc, "best_epoch": run.train.best_epoch, "metrics": METRICS_FILE,
             "init": config.init, "seeds": config.seed_list(), "compare": list(config.compare),
             "saved_seed": run.seed, "status": run.status, "p_value_vs_chance": run.p_value,
             "protocol": recipe_setup["protocol"], "skipped_files": len(data.skipped),
             "test_images": run.test.num_samples if run.test else None,
             "parent_source": card.source.dataset,  # the data the mask and start weights came from
             **({"distributed": setup["processes"]} if setup.get("processes", {}).get("world_size", 1) > 1 else {})}
    first = config.seed_list()[0]
    seed_note = (f"; seed {run.seed} is saved, the first of its init that trained (seed {first} did not)"
                 if run.seed != first else f"; seed {run.seed} is saved")
    desc = (f"`{base.name}` fine-tuned on `{source.dataset}` ({len(data.classes)} classes, "
            f"init {config.init}, protocol {recipe_setup['protocol']}{seed_note}); "
            + ("a dense baseline trained from scratch: no mask." if config.init == "dense" else
               "the head is dense, the body keeps the base mask."))
    return Ticket.from_model(kept["start"], masks, name=name, arch=arch, source=source,
                             trained=kept["final"], recipe=recipe, metrics=metrics,
                             lineage=lineage, description=desc, extra=extra,
                             preprocess=finetune_preprocess(config.data, working))

"""The steps of an IMP round: its mask, a control's fresh weights, and its training,
evaluated and judged.

:func:`next_mask` prunes the weights the previous round kept by its trained magnitudes;
:func:`fresh_weights` draws a reinit control's weights.

:func:`train_round` trains a network from given weights under given masks (None: dense) on
a find run's loaders, resuming its per-epoch checkpoint, then evaluates val and test and
judges the run (:mod:`ticketzoo.train.status`: ``ok``, ``diverged`` or ``chance``). A loss
that became NaN/inf is a verdict, not an exception.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ticketzoo.find.report import RoundResult
from ticketzoo.train import status as verdicts

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class TrainedRound:
    """One training of a round, evaluated and judged."""

    val: float | None  # accuracies; None without the split, or when the loss became NaN/inf
    test: float | None
    epochs: int  # completed in the schedule
    time_s: float
    verdict: verdicts.Verdict

    def row(self, round_: int, line: str, sparsity: float) -> RoundResult:
        return RoundResult(round_, line, sparsity, self.val, self.test, self.epochs, self.time_s,
                           status=self.verdict.status, reason=self.verdict.reason)


def train_round(model: nn.Module, weights, masks, src, config, runtime, *, start: int, folder: Path,
                callbacks: list) -> TrainedRound:
    """Train ``model`` from ``weights`` under ``masks`` from step ``start`` on ``src``'s loaders
    (a :class:`~ticketzoo.data.loading.SourceLoaders`), log its epochs to ``folder/train.csv``
    and checkpoint there; evaluate and judge it."""
    from ticketzoo.train import CSVLogger, DivergedError, evaluate, train

    model.load_state_dict(weights)
    t0 = time.perf_counter()
    try:
        tr = train(model, masks, src.train, src.val, config, callbacks=[*callbacks, CSVLogger(folder / "train.csv")],
                   start=start, checkpoint_dir=folder, resume=True)
    except DivergedError as err:  # NaN/inf: nothing to evaluate
        return TrainedRound(None, None, err.epoch - 1, time.perf_counter() - t0,
                            verdicts.diverged(err.epoch, err.lr, err.loss))
    if tr.kernels and tr.kernels["sparse"]:
        log.info(f"{folder.name}: {tr.kernels['sparse']} of {tr.kernels['layers']} masked layers trained on "
                 f"sparse kernels (runtime {tr.kernels['runtime']})")
    val = evaluate(model, src.val, runtime=runtime) if src.val else None
    test = evaluate(model, src.test, runtime=runtime) if src.test else None
    judged = test if test is not None else val
    verdict = verdicts.verdict(tr.history, judged.confusion if judged is not None else None,
                               "test" if test is not None else "val", len(src.classes))
    return TrainedRound(val.accuracy if val else None, test.accuracy if test else None, tr.epochs_run,
                        float(sum(row.get("time_s") or 0.0 for row in tr.history)), verdict)


def next_mask(trained, masks, recipe, round_: int, *, pool, head: str, prunable) -> dict:
    """m_i: prune ``recipe.rate_at(i)`` of the weights in ``pool`` that m_{i-1} (``masks``)
    kept, by round i-1's ``trained`` magnitudes (the head at its own rate when the recipe
    says so); tensors outside the pool keep their mask."""
    from ticketzoo.pruning import magnitude_prune

    rate = recipe.rate_at(round_)
    head_rate = recipe.head_rate_for(rate)
    layer_rates = {head: head_rate} if head_rate is not None and head in pool else {}
    pruned = magnitude_prune({n: trained[n] for n in pool}, {n: masks[n] for n in pool}, rate,
                             scope=recipe.scope, layer_rates=layer_rates)
    return {n: pruned.get(n, masks[n]) for n in prunable}


def control_seed(seed: int, round_: int) -> int:
    """Seed of a control's fresh init / random mask in round ``round_`` (distinct from ``seed``)."""
    return (seed + 1) * 1_000_003 + round_


def fresh_weights(recipe, num_classes: int, round_: int) -> dict:
    """A reinit control's weights for round ``round_``: the recipe's network drawn anew."""
    from ticketzoo.models import build_model

    model = build_model(recipe.arch, num_classes=num_classes, in_channels=recipe.channels,
                        input_size=recipe.input_size, init=recipe.weight_init, seed=control_seed(recipe.seed, round_),
                        **recipe.arch_kwargs)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}

"""Iterative magnitude pruning with rewinding: ``find_tickets(recipe, data) -> FindResult``.

R rounds train R+1 times. Round 0 trains the dense network from θ0 and captures θk at the
rewind step; it is recorded in every card's lineage but emits no ticket. Round r >= 1 prunes
``rate`` of the weights round r-1 kept (by round r-1's trained magnitudes), rewinds the
survivors to θk, trains them from step k (so the LR schedule continues from k, as in Frankle
et al. 2020) and emits ticket r: mask m_r, weight sets ``rewind`` (θk ⊙ m_r) and ``trained``.

Every training is judged as a fine-tuning run is (:mod:`ticketzoo.train.status`): ``ok``,
``diverged`` (NaN/inf or an exploded loss) or ``chance``; the verdict and its reason go into
the round's ``result.json`` and ``log.json``. A round that did not train emits no ticket:

* round 0 (dense): every ticket would descend from it, so the run stops with
  :class:`~ticketzoo.errors.RoundNotTrainedError` before any ticket is written;
* a winning-ticket round r >= 1: the run ends there. Round r+1 would prune by round r's
  trained magnitudes, and a network that does not train at this sparsity is not expected
  to at a higher one. The tickets of rounds < r stay and the result says where it ended
  (``FindResult.failed``); when there are none (r = 1, nothing carried in), the run raises
  :class:`~ticketzoo.errors.RoundNotTrainedError` as for round 0.
* a control: recorded and the run goes on (no later round reads a control).

Resumed, a judged round is not trained again: it ends the run the same way.

Every round is a pure function of what is on disk (θ0, θk, the previous round's ticket, the
recipe): each training reseeds its RNGs and the loader's shuffling generator, and resumes
from its per-epoch checkpoint. A run killed at any point and started again with the same
recipe therefore ends with tickets bitwise identical to an uninterrupted run on CPU. The
tickets' ``created`` field is the run's creation time (``$SOURCE_DATE_EPOCH`` when set).

Under ``torchrun`` every rank runs this same loop: each trains its share of every global
batch (:mod:`ticketzoo.train.distributed`), rank 0 alone reads and writes the run folder
and hands what it read (masks, θk, finished rounds, checkpoints) to the others
(:class:`~ticketzoo.train.platform.Platform`), and rank 0 alone logs and reports progress.
Cards record the process layout in ``extra["distributed"]``.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ticketzoo.card import ArchConfig, SourceData, find_preprocess, now_iso
from ticketzoo.errors import ConfigError, RoundNotTrainedError
from ticketzoo.find.carry import carried_rounds, seed_run
from ticketzoo.config.find import FindRecipe, ticket_name
from ticketzoo.find.report import RoundResult, card_metrics, card_recipe, describe, lineage, write_logs
from ticketzoo.find.rounds import TrainedRound, control_seed, fresh_weights, next_mask, train_round
from ticketzoo.find.rundir import RunDir, load_tensors, save_tensors
from ticketzoo.train import ProgressCallback
from ticketzoo.data.loading import SourceLoaders, load_source
from ticketzoo.data.source import DataSpec, resolve_data
from ticketzoo.masks import Mask
from ticketzoo.progress import Progress
from ticketzoo.train.platform import Platform

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FindResult:
    run_dir: Path
    recipe: FindRecipe
    rounds: tuple[RoundResult, ...]  # round 0 first, controls after their round
    stopped: bool = False  # ended early by its time budget; re-run (or carry) to continue
    failed: RoundResult | None = None  # the winning-ticket round that did not train and ended the run

    @property
    def tickets(self) -> list[Path]:
        return [self.run_dir / r.file for r in self.rounds if r.file]


def find_tickets(recipe: FindRecipe, data: str | DataSpec, *, run_dir: str | Path = "runs",
                 data_root: str | Path | None = None, download: bool = False,
                 device: str | None = None, workers: int | None = None,
                 progress: Progress | None = None, description: str = "",
                 source_description: str = "", threads: int | None = None,
                 time_budget: float | None = None, carry_in: str | Path | None = None,
                 on_ticket: Callable[[Path, RoundResult], Any] | None = None) -> FindResult:
    """Run (or resume) IMP for ``recipe`` on ``data``; see the module docstring.

    ``threads``: torch's CPU thread count (None: chosen from the model's size, see
    :mod:`ticketzoo.train.threads`); recorded in every card, restored on return.
    ``time_budget`` (seconds): stop before a round that would not finish within it.
    ``carry_in``: a carry folder (:mod:`.carry`) a new run folder starts from.
    Messages are logged (``logging``, on rank 0); each epoch reports to ``progress``."""
    from ticketzoo.models import build_model, check_input, get_arch
    from ticketzoo.train import Runtime, resolve_device
    from ticketzoo.train.device import resolve_cpu_runtime
    from ticketzoo.train.threads import choose_threads, set_threads

    spec = resolve_data(data, data_root) if isinstance(data, str) else data
    if (spec.kind, spec.source) != (recipe.data_kind, recipe.source):
        raise ConfigError(f"recipe is for {recipe.data_kind} '{recipe.source}' but the data is "
                          f"{spec.kind} '{spec.source}'")
    family = get_arch(recipe.arch).family  # unknown names fail before any data is read
    # "auto" CPU precision resolved here, for every round, and recorded in recipe.json and the
    # cards; not hashed, so the run folder is the same on every CPU
    recipe = dataclasses.replace(recipe, train=resolve_cpu_runtime(recipe.train, family, "find"))
    config = recipe.train if device is None else dataclasses.replace(recipe.train, device=device)
    platform = Platform.join()  # under torchrun: join the group before the loaders are built
    processes = platform.describe(config.batch_size)  # refuses a batch the ranks cannot share
    dev = resolve_device(config.device)
    with platform.main_first(download):  # one rank downloads; the others read what it wrote
        src = load_source(spec, recipe.data, batch_size=config.batch_size, seed=config.seed, device=dev,
                          workers=workers, download=download,
                          channels_last=Runtime.for_config(config, dev).channels_last)
    if src.skipped:
        first = src.skipped[0]
        log.warning(f"skipped {len(src.skipped)} unreadable file(s) (first: {first.path}: {first.reason}); "
                    "`strict` makes this an error")
    model = build_model(recipe.arch, num_classes=len(src.classes), in_channels=recipe.channels,
                        input_size=recipe.input_size, init=recipe.weight_init, seed=recipe.seed,
                        **recipe.arch_kwargs)
    check_input(model, recipe.channels, recipe.input_size)
    count = choose_threads(threads, model, in_channels=recipe.channels, input_size=recipe.input_size)
    ipe = len(src.train)
    if recipe.rewind_step.iterations(ipe) >= config.max_epochs * ipe:
        raise ConfigError(f"rewind step {recipe.rewind} is at or past the end of training "
                          f"({config.max_epochs} epochs of {ipe} iterations)", field="rewind",
                          value=str(recipe.rewind))
    fingerprint = {"classes": list(src.classes), "counts": src.counts}
    root = RunDir.locate(run_dir, recipe)
    opened: list[RunDir] = []

    def open_run() -> dict:  # on rank 0: lock, create or check the folder, maybe seed it
        opened.append(RunDir.open(root, recipe, fingerprint, now_iso(), processes))
        if carry_in is not None:
            seed_run(opened[0], carry_in)
        return opened[0].meta

    meta = platform.from_main(open_run)
    run = opened[0] if opened else RunDir.follow(root, recipe, meta)
    previous = set_threads(count)
    try:
        imp = _IMP(recipe, config, run, src, model, platform, progress,
                   description, source_description, on_ticket, count, processes)
        if dev.type == "cpu":
            imp._say(f"threads: {count} ({'set by `threads`' if threads else 'chosen from the model size'})")
        return imp.run(time_budget)
    finally:
        set_threads(previous)
        run.close()


class _IMP:
    def __init__(self, recipe, config, run, src: SourceLoaders, model, platform: Platform, progress,
                 description, source_description, on_ticket, threads: int, processes: dict):
        from ticketzoo.models import classifier_names, prunable_names
        from ticketzoo.train import Runtime

        self.recipe, self.config, self.run_dir, self.src, self.model = recipe, config, run, src, model
        self.platform, self.progress = platform, progress
        self.description, self.on_ticket = description, on_ticket
        self.runtime = Runtime.for_config(config)
        self.ipe = len(src.train)
        self.k = recipe.rewind_step.iterations(self.ipe)
        head = classifier_names(model)[0]
        names = prunable_names(model)
        excluded = {head} if recipe.exclude_head else set()
        if recipe.exclude_first_conv:
            convs = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
            excluded |= {f"{convs[0]}.weight"} if convs else set()
        self.prunable, self.pool = names, [n for n in names if n not in excluded]
        self.head = head
        self.arch = ArchConfig(recipe.arch, len(src.classes), recipe.channels, recipe.input_size,
                               src.mean, src.std, classifier_names(model), dict(recipe.arch_kwargs))
        text = "; ".join(t for t in (source_description.strip(), src.description) if t)
        self.source = SourceData(recipe.source, src.classes, text)
        self.results: list[RoundResult] = []
        self.taken: set[str] = set()
        self.threads = threads  # torch's CPU thread count, recorded in the cards
        self.processes = processes  # world size, per-rank batch, backend (cards of W > 1)

    # --- the loop ---------------------------------------------------------------------

    def run(self, time_budget: float | None = None) -> FindResult:
        run, r = self.run_dir, self.recipe
        started = time.monotonic()
        plan = (f"sparsities {', '.join(f'{x:g}' for x in r.sparsities)}" if r.sparsities
                else f"rate {r.rate:g}")
        self._say(f"IMP of {r.arch} on {r.source}: {r.rounds} round(s), {plan}, "
                  f"{r.scope}, rewind {r.rewind_step} ({self.k} it), run folder {run.root}")
        carried = self.platform.from_main(lambda: carried_rounds(run))
        if carried is None:
            self.platform.write(lambda: run.theta0.exists() or save_tensors(run.theta0, self._state()))
            prev, first = self._round0(), 1
            masks = {n: torch.ones_like(t, dtype=torch.bool) for n, t in self._state().items()
                     if n in self.prunable}
        else:  # seeded from a carry folder: rounds up to `last` ran elsewhere
            last, rows = carried
            self.results += rows
            self.taken |= {x.ticket for x in rows if x.ticket}
            prev, first = next(x for x in rows if x.round == last and x.line == "imp"), last + 1
            masks = self.platform.from_main(lambda: load_tensors(run.round_dir(last) / "mask.safetensors"))
            masks = {n: masks[n] for n in self.prunable}
            self._say(f"continuing after round {last}, carried from an earlier job")
        stopped, failed = False, None
        for i in range(first, r.rounds + 1):
            if time_budget is not None and self.platform.from_main(
                    lambda: run.result(i) is None and self._out_of_time(started, time_budget, i)):
                self._say(f"stopping before round {i}: the time budget of {time_budget:.0f}s "
                          "would run out during it")
                stopped = True
                break
            masks = self.platform.from_main(lambda: self._mask(i, prev, masks))  # rank 0 prunes
            row = self._line(i, "imp", masks, self.platform.from_main(lambda: load_tensors(run.thetak)), prev)
            if not row.trained:  # later masks would be pruned by its weights: see the module docstring
                if prev.ticket is None:  # the run would end without a ticket
                    self.platform.write(lambda: write_logs(run.root, r, self.results))
                    raise self._not_trained(row)
                self._warn(f"round {i} did not train ({row.status}: {row.reason}): no ticket saved; "
                           f"IMP ends here, the tickets up to round {prev.round} stay")
                failed = row
                break
            prev = row
            if not r.controls_at(i):
                pass
            elif r.control == "reinit":
                fresh = fresh_weights(r, self.arch.num_classes, i)
                self._line(i, "reinit", masks, fresh, prev)
            elif r.control == "random-prune":
                from ticketzoo.pruning import random_masks_like

                rand = random_masks_like({n: masks[n] for n in self.pool}, seed=control_seed(r.seed, i))
                self._line(i, "random-prune", {**masks, **rand},
                           self.platform.from_main(lambda: load_tensors(run.thetak)), prev)
            self.platform.write(lambda: write_logs(run.root, r, self.results))
        self.platform.write(lambda: write_logs(run.root, r, self.results))
        return FindResult(run.root, r, tuple(self.results), stopped, failed)

    def _out_of_time(self, started: float, budget: float, i: int) -> bool:
        """Would round ``i`` (its ticket and its control, each trained from the rewind point to
        the end of the schedule) overrun?

        Epochs are costed at the median epoch so far, not at the rounds' wall time: an epoch
        that ran while the job was paused (SIGSTOP) or shared the CPU would inflate the
        estimate by hours and stop a run that has time left."""
        times: list[float] = []
        for x in self.results:
            got = self.run_dir.epoch_times(x.round, None if x.line == "imp" else x.line)
            times += got or ([x.time_s / x.epochs] * x.epochs if x.epochs else [])  # carried rows
        if not times:
            return False
        lines = 1 + self.recipe.controls_at(i)
        epochs = self.recipe.train.max_epochs - self.k / self.ipe  # a pruned line starts at k
        estimate = statistics.median(times) * epochs * lines
        return time.monotonic() - started + estimate > budget

    def _round0(self) -> RoundResult:
        run = self.run_dir
        done = self.platform.from_main(lambda: run.result(0))
        if done is None:
            self._say("round 0: dense training")
            callbacks = []
            if self.k == 0:
                self.platform.write(lambda: run.thetak.exists()
                            or save_tensors(run.thetak, load_tensors(run.theta0)))
            else:
                from ticketzoo.train import SnapshotAt

                callbacks.append(SnapshotAt(self.k, lambda sd: self.platform.is_main
                                            and save_tensors(run.thetak, sd)))
            theta0 = self.platform.from_main(lambda: load_tensors(run.theta0))
            out = self._train(theta0, None, 0, run.round_dir(0), callbacks)
            if out.verdict.status != "diverged" and not self.platform.from_main(run.thetak.exists):
                raise ConfigError(f"training stopped after {out.epochs} epoch(s), before the "
                                  f"rewind step {self.recipe.rewind_step}",
                                  hint="rewind earlier, or raise `patience` / `max_epochs`")
            done = out.row(0, "imp", 0.0).to_dict()
            trained = self._state() if out.verdict.status == "ok" else None  # pruned from, when ok

            def write() -> None:
                if trained is not None:
                    save_tensors(run.round_dir(0) / "trained.safetensors", trained)
                run.write_result(0, done)

            self.platform.write(write)
        result = RoundResult.from_dict(done)
        self.results.append(result)
        if not result.trained:  # every ticket would descend from it: stop before the first
            self.platform.write(lambda: write_logs(run.root, self.recipe, self.results))
            raise self._not_trained(result)
        self._say(f"round 0: test accuracy {_pct(result.test_accuracy)}")
        return result

    def _not_trained(self, result: RoundResult) -> RoundNotTrainedError:
        """The error of a round that did not train and leaves the run without a ticket."""
        lr = self.config.lr
        hint = (f"lower the learning rate `lr`: it was {lr:g}" if result.status == "diverged" else
                "train longer (`max_epochs`), on more images, or with another learning rate `lr`")
        what = ("the dense network" if result.round == 0 else
                f"the first ticket, {result.sparsity:.0%} of the weights pruned")
        return RoundNotTrainedError(
            f"round {result.round} ({what}) {result.status}: {result.reason}; IMP stopped, no ticket "
            f"saved (results in {self.run_dir.root / 'log.json'})",
            round=result.round, status=result.status, reason=result.reason, run_dir=self.run_dir.root,
            hint=hint)

    def _line(self, i: int, line: str, masks, weights, parent: RoundResult) -> RoundResult:
        run, sub = self.run_dir, None if line == "imp" else line
        done = self.platform.from_main(lambda: run.result(i, sub))
        if done is None:
            s = Mask(masks).sparsity
            self._say(f"round {i}/{self.recipe.rounds} ({line}): sparsity {s:.2%}")
            out = self._train(weights, masks, self.k, run.round_dir(i, sub), [])
            result = out.row(i, line, s)
            if out.verdict.status == "ok":  # only a round that trained is a ticket
                name = ticket_name(self.recipe.source, self.recipe.arch, s, i, self.taken,
                                   None if line == "imp" else line)
                result = dataclasses.replace(result, ticket=name, file=run.ticket_file(name))

            def emit() -> dict:  # rank 0 writes the ticket and the round's result
                row = result
                if row.ticket is not None:
                    row = dataclasses.replace(row, sha256=self._emit(row, weights, masks, parent))
                run.write_result(i, row.to_dict(), sub)
                return row.to_dict()

            done = self.platform.from_main(emit)
        result = RoundResult.from_dict(done)
        self.results.append(result)
        if result.ticket is None:
            if line != "imp":  # the winning line's failure is told where it ends the run
                self._warn(f"round {i} ({line}) did not train ({result.status}: {result.reason}): "
                           "no ticket saved for this baseline; the run goes on")
            return result
        self.taken.add(result.ticket)
        if self.on_ticket is not None:  # publishing writes: rank 0 alone, the others wait
            self.platform.write(lambda: self.on_ticket(run.root / result.file, result))
        return result

    # --- steps ------------------------------------------------------------------------

    def _train(self, weights, masks, start: int, folder: Path, callbacks: list) -> TrainedRound:
        """Train from ``weights`` under ``masks``, evaluate and judge it (:func:`.rounds.train_round`)."""
        self.src.generator.manual_seed(self.config.seed)  # same data order every round
        return train_round(self.model, weights, masks, self.src, self.config, self.runtime, start=start,
                           folder=folder, callbacks=[*callbacks, ProgressCallback(self.progress)])

    def _mask(self, i: int, prev: RoundResult, masks):
        """m_i (:func:`.rounds.next_mask`), read back when it was computed before."""
        path = self.run_dir.round_dir(i) / "mask.safetensors"
        if path.exists():  # safetensors sorts keys: restore module order (it is in the card)
            loaded = load_tensors(path)
            return {n: loaded[n] for n in self.prunable}
        new = next_mask(self._trained_of(prev), masks, self.recipe, i, pool=self.pool, head=self.head,
                        prunable=self.prunable)
        save_tensors(path, new)
        return new

    def _trained_of(self, prev: RoundResult) -> dict[str, torch.Tensor]:
        if prev.round == 0:
            return load_tensors(self.run_dir.round_dir(0) / "trained.safetensors")
        from ticketzoo.ticket import Ticket

        return Ticket.load(self.run_dir.root / prev.file).state_dict("trained")

    def _emit(self, result: RoundResult, weights, masks, parent: RoundResult) -> str:
        from ticketzoo.ticket import Ticket

        weights = {k: weights[k] for k in self.model.state_dict()}  # module order, as loaded
        imp_rows = [x for x in self.results if x.line == "imp"]
        metrics = card_metrics(imp_rows + [result] if result.line == "imp" else [result])
        ticket = Ticket.from_model(
            weights, masks, name=result.ticket, arch=self.arch, source=self.source,
            trained=self._state(), recipe=card_recipe(self.recipe, result.round, self.ipe),
            metrics=metrics, lineage=lineage(result.line, parent), preprocess=find_preprocess(self.recipe.data),
            description=describe(self.recipe, result, self.description),
            extra={"round": result.round, "line": result.line, "epochs": result.epochs,
                   "cpu_threads": self.threads, "test_images": self.src.counts.get("test"),  # model-index's n
                   **({"distributed": self.processes} if self.processes["world_size"] > 1 else {})},
        ).with_card(created=self.run_dir.created)
        sha = self.run_dir.write_ticket(result.ticket, ticket.to_bytes(), ticket.card)
        self._say(f"  ticket {result.ticket}: test accuracy {_pct(result.test_accuracy)}")
        return sha

    def _state(self) -> dict[str, torch.Tensor]:
        from ticketzoo.train import cpu_state_dict

        return cpu_state_dict(self.model)

    def _say(self, text: str) -> None:
        if self.platform.is_main:  # every rank runs this loop: one tells it
            log.info(text)

    def _warn(self, text: str) -> None:
        if self.platform.is_main:
            log.warning(text)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.2%}"

"""A finished run's networks on the same test images: which image each one gets right.

One seed of a ResNet-50 family is what a CPU affords, so ticket, dense network and controls
cannot be compared over seeds. They can be compared image by image: every line of a run is
scored on the same test split, so :func:`ticketzoo.significance.mcnemar` tests each pair on
the images only one of them got right. The weights are the run's own (round 0's
``trained.safetensors``, each ticket's ``trained`` set), evaluated as ``find`` evaluated them
(its data config, precision and layout), so the accuracies should match ``log.json``; where
they do not (another CPU's bf16 kernels round differently) the recomputed ones are used and
the difference is returned for the caller to report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ticketzoo.config.find import FindRecipe
from ticketzoo.errors import ConfigError
from ticketzoo.find.report import RoundResult


@dataclass(frozen=True)
class LineScores:
    """One trained line of a run on the test split."""

    round: int
    line: str  # "imp" (round 0: the dense network) or a control
    correct: list[bool]  # per test image, in the loader's order
    recorded: float | None  # the test accuracy log.json holds

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / len(self.correct)


def score_lines(run_dir: str | Path, data: str, data_root: str | None = None) -> list[LineScores]:
    """Every line of ``run_dir`` that trained, scored per image on the run's test split of
    ``data`` (the same ``data`` the run was started with)."""
    from ticketzoo.data.loading import load_source
    from ticketzoo.data.source import resolve_data
    from ticketzoo.find.rundir import load_tensors
    from ticketzoo.models import build_model
    from ticketzoo.ticket import Ticket
    from ticketzoo.train import Runtime

    root = Path(run_dir)
    meta = json.loads((root / "recipe.json").read_text(encoding="utf-8"))
    recipe = FindRecipe.from_dict(meta["recipe"])
    rows = [RoundResult.from_dict(r) for r in json.loads((root / "log.json").read_text(encoding="utf-8"))["rounds"]]
    runtime = Runtime.for_config(recipe.train, "cpu")
    spec = resolve_data(data, data_root)
    src = load_source(spec, recipe.data, batch_size=256, seed=recipe.train.seed, device=torch.device("cpu"),
                      channels_last=runtime.channels_last)
    expected = meta.get("data", {})
    if list(src.classes) != expected.get("classes") or src.counts != expected.get("counts"):
        raise ConfigError(f"{data} is not the data {root} was trained on (classes or split sizes differ)",
                          field="data", value=data)
    if src.test is None:
        raise ConfigError(f"{root}'s recipe has no test split to score", field="data", value=data)
    model = build_model(recipe.arch, num_classes=len(src.classes), in_channels=recipe.channels,
                        input_size=recipe.input_size, **recipe.arch_kwargs)
    model = runtime.prepare_model(model)
    scores = []
    for row in rows:
        if not row.trained or (row.round > 0 and not row.file):
            continue
        weights = (load_tensors(root / "round_00" / "trained.safetensors") if row.round == 0
                   else Ticket.load(root / row.file).state_dict("trained"))
        model.load_state_dict(weights)
        scores.append(LineScores(row.round, row.line, _correct(model, src.test, runtime), row.test_accuracy))
    return scores


def _correct(model: torch.nn.Module, loader, runtime) -> list[bool]:
    model.eval()
    out: list[bool] = []
    with torch.no_grad():
        for images, labels in loader:
            x, y = runtime.to_device(images, labels)
            with runtime.autocast():
                out += (model(x).float().argmax(1) == y).tolist()
    return out


def paired_tests(scores: list[LineScores]) -> dict[int, dict]:
    """Per pruning round: its ticket against the dense network (``vs_dense``) and against each
    control trained in that round (``vs_reinit``, ...), as :class:`~ticketzoo.significance.McNemar`."""
    from ticketzoo.significance import mcnemar

    by = {(s.round, s.line): s for s in scores}
    dense = by.get((0, "imp"))
    tests: dict[int, dict] = {}
    for (r, line), ticket in sorted(by.items()):
        if r == 0 or line != "imp":
            continue
        row = {} if dense is None else {"vs_dense": mcnemar(ticket.correct, dense.correct)}
        for (r2, other), control in by.items():
            if r2 == r and other != "imp":
                row[f"vs_{other}"] = mcnemar(ticket.correct, control.correct)
        tests[r] = row
    return tests

"""Winning tickets by iterative magnitude pruning with rewinding (``ticketzoo find``).

Typical use::

    from ticketzoo.find import FindRecipe, find_tickets, resolve_data
    spec = resolve_data("cifar10", data_root="data")
    recipe = FindRecipe(arch="cifar_resnet20", source=spec.source, data_kind=spec.kind,
                        rounds=5, rewind="2ep", train=TrainConfig(max_epochs=30))
    result = find_tickets(recipe, spec, run_dir="runs")
    result.tickets  # one ticket file per round

Modules, each importing only those above it: ``recipe`` (the typed recipe, its hash, ticket
names), ``sources`` (``data`` to loaders), ``rundir`` (the resumable run folder),
``report`` (cards, logs), ``imp`` (the driver), ``paired`` (a finished run's lines scored
per test image, for paired tests of one seed).
"""

from ticketzoo.find.imp import FindResult, find_tickets
from ticketzoo.config.find import CONTROLS, FindRecipe, ticket_name
from ticketzoo.find.report import RoundResult
from ticketzoo.data.source import DataSpec, resolve_data

__all__ = [
    "CONTROLS",
    "DataSpec",
    "FindRecipe",
    "FindResult",
    "RoundResult",
    "find_tickets",
    "resolve_data",
    "ticket_name",
]

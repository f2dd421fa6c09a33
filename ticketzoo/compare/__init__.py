"""``ticketzoo compare``: does a ticket found elsewhere train better on *this* dataset?

    from ticketzoo.compare import CompareConfig, SweepTicket, compare
    tickets = [SweepTicket.of(ticket, path, sha256) for ticket, path, sha256 in loaded]
    result = compare(tickets, "examples/digits", CompareConfig(), out_dir="compared/digits")
    result.rows  # mean ± std per condition and sparsity, differences with Welch t-tests

Modules, each importing only those above it: ``plan`` (conditions, jobs, families),
``stats`` (mean ± std, differences, Welch), ``jobs`` (one resumable job), ``runner``
(jobs here or in spawned processes), ``progress``, ``report`` (CSV, JSON, tables),
``plot`` (matplotlib), ``sweep`` (the whole comparison).
"""

from ticketzoo.compare.plan import LABELS, Job, SweepTicket, family_members, family_of, make_plan
from ticketzoo.compare.stats import Cell, Diff, Row, diff, summarize
from ticketzoo.compare.sweep import CompareResult, compare
from ticketzoo.config.compare import CONDITIONS, CompareConfig

__all__ = [
    "CONDITIONS",
    "LABELS",
    "Cell",
    "CompareConfig",
    "CompareResult",
    "Diff",
    "Job",
    "Row",
    "SweepTicket",
    "compare",
    "diff",
    "family_members",
    "family_of",
    "make_plan",
    "summarize",
]

"""A sweep shared out over ``torchrun``'s processes: each rank runs its share of the jobs.

Jobs are independent trainings, so no process group is joined and every job trains in
one process (``torchrun --nproc_per_node N`` on one machine, or ``--nnodes M`` with the
output folder on a disk every machine shares). Rank ``r`` of ``W`` takes the pending
jobs ``r, r + W, …``; rank 0 also finds the target tickets first (the others wait for
them) and, when every job has a result or a failure recorded by this launch, writes the
report. A job's result is its ``result.json`` (:mod:`.jobs`); a job that raised leaves
``failed.json`` naming the launch (torchrun's run id), so a rerun retries it. On a machine
with GPUs each process trains on its own, ``cuda:LOCAL_RANK`` (its ``--jobs`` workers too).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path

from ticketzoo.compare import jobs as jobs_mod
from ticketzoo.compare.plan import Job, SweepTicket
from ticketzoo.errors import ConfigError
from ticketzoo.fileio import atomic_write_bytes

log = logging.getLogger(__name__)

FAILED_FILE, TARGET_FILE = "failed.json", "target.json"
POLL_S = 2.0


def run_id() -> str:
    """This launch: torchrun's ``--rdzv-id`` (a fresh one per ``--standalone`` launch)."""
    return os.environ.get("TORCHELASTIC_RUN_ID", "none")


def check_launch() -> None:
    """Ranks tell this launch's files from an earlier one's by torchrun's run id."""
    if run_id() == "none":
        raise ConfigError("torchrun gave this launch no run id: the processes cannot tell its files "
                          "from an earlier launch's", field="rdzv_id",
                          hint="start torchrun with --standalone (one machine) or --rdzv-id ID")


def share(plan: list[Job], done: set[str], rank: int, world: int) -> list[Job]:
    """Rank ``rank``'s jobs: every ``world``-th of the whole plan, from its own index, that
    is not done. By position in the plan (the same on every rank), not in the pending list,
    which ranks reading the folder at different moments may see differently."""
    return [j for i, j in enumerate(plan) if i % world == rank and j.key not in done]


def rank_device(device: str | None) -> str | None:
    """The GPU of this process (``cuda:LOCAL_RANK``) when the recipe runs on CUDA
    (``auto`` or ``cuda``) and there is one; None to keep the recipe's device."""
    import torch

    if str(device or "auto") not in ("auto", "cuda") or not torch.cuda.is_available():
        return None
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return f"cuda:{local % torch.cuda.device_count()}"


def clear_failed(out: Path, jobs: list[Job]) -> None:
    """Forget earlier failures of the jobs this rank is about to run."""
    for job in jobs:
        (jobs_mod.job_dir(out, job.key) / FAILED_FILE).unlink(missing_ok=True)


def mark_failed(out: Path, job: Job, error: str) -> None:
    folder = jobs_mod.job_dir(out, job.key)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / FAILED_FILE, json.dumps({"run": run_id(), "error": error}).encode())


def _failed(out: Path, job: Job) -> str | None:
    try:
        data = json.loads((jobs_mod.job_dir(out, job.key) / FAILED_FILE).read_text())
    except (OSError, ValueError):
        return None
    return str(data.get("error")) if data.get("run") == run_id() else None


def wait_for_jobs(out: Path, jobs: list[Job], fingerprint: str, poll_s: float = POLL_S) -> list[tuple[Job, str]]:
    """Block until each of ``jobs`` has a result or a failure of this launch; returns the
    failures. A rank that dies ends the whole launch (torchrun stops the others)."""
    waiting, told = list(jobs), False
    while True:
        waiting = [j for j in waiting if jobs_mod.finished(out, j, fingerprint) is None and _failed(out, j) is None]
        if not waiting:
            return [(j, e) for j in jobs if (e := _failed(out, j)) is not None]
        if not told:
            log.info(f"waiting for {len(waiting)} job(s) on the other processes")
            told = True
        time.sleep(poll_s)


def publish_targets(out: Path, tickets: list[SweepTicket]) -> None:
    """Rank 0: the target tickets it found, for the other ranks of this launch."""
    data = {"run": run_id(), "tickets": [dataclasses.asdict(t) for t in tickets]}
    atomic_write_bytes(out / "target" / TARGET_FILE, json.dumps(data).encode())


def wait_for_targets(out: Path, poll_s: float = POLL_S) -> list[SweepTicket]:
    """The target tickets rank 0 found in this launch."""
    path = out / "target" / TARGET_FILE
    while True:
        try:
            data = json.loads(path.read_text())
            if data.get("run") == run_id():
                return [SweepTicket(**t) for t in data["tickets"]]
        except (OSError, ValueError):
            pass
        time.sleep(poll_s)

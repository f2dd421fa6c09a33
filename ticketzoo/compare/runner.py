"""Run a sweep's pending jobs, in this process or in spawned worker processes.

``workers=1`` runs the jobs here, one after another. ``workers=N`` starts N processes
with the ``spawn`` method (no forked torch state), each with one torch thread on CPU; with
several GPUs, worker ``i`` takes GPU ``i mod count``. A job that raises (other than a
diverged or collapsed run, which is a recorded result) is reported as failed and the
others go on; rerunning the sweep retries it. Epoch progress comes back over a queue.
"""

from __future__ import annotations

import dataclasses
import queue as queue_mod
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from ticketzoo.compare.jobs import SweepContext, run_job
from ticketzoo.compare.plan import Job

_WORKER: dict[str, Any] = {}  # in a worker process: its device and the progress queue


class NoProgress:
    """The progress interface :func:`run_jobs` reports to; this one shows nothing."""

    def start(self, total: int, done: int, workers: int) -> None: ...
    def job_started(self, job: Job) -> None: ...
    def epoch(self, key: str, epoch: int, max_epochs: int) -> None: ...
    def job_done(self, job: Job, record: dict | None, error: str | None) -> None: ...
    def close(self) -> None: ...


def run_jobs(jobs: list[Job], ctx: SweepContext, *, workers: int = 1, threads: int = 1,
             done: int = 0, progress=None) -> tuple[dict[str, dict], list[tuple[Job, str]]]:
    """Run ``jobs``; returns ``({key: record}, [(job, error)])``. ``done`` counts the
    sweep's jobs finished before (for the progress display)."""
    progress = progress or NoProgress()
    progress.start(len(jobs) + done, done, workers)
    try:
        if workers <= 1 or len(jobs) <= 1:
            return _here(jobs, ctx, threads, progress)
        return _pool(jobs, ctx, workers, progress)
    finally:
        progress.close()


def _here(jobs, ctx, threads, progress):
    from ticketzoo.train.threads import set_threads

    records, failures = {}, []
    previous = set_threads(threads)
    try:
        for job in jobs:
            progress.job_started(job)
            try:
                records[job.key] = record = run_job(job, ctx, progress.epoch)
            except Exception as e:  # noqa: BLE001 - one broken job must not end the sweep
                failures.append((job, _text(e)))
                progress.job_done(job, None, failures[-1][1])
                continue
            progress.job_done(job, record, None)
    finally:
        set_threads(previous)
    return records, failures


def _pool(jobs, ctx, workers, progress):
    import multiprocessing as mp

    spawn = mp.get_context("spawn")
    counter, events = spawn.Value("i", 0), spawn.Queue()
    gpus = _gpu_count(ctx)
    records, failures = {}, []
    with ProcessPoolExecutor(max_workers=workers, mp_context=spawn, initializer=_init_worker,
                             initargs=(counter, gpus, events)) as pool:
        pending = {pool.submit(_work, job, ctx): job for job in jobs}
        try:
            while pending:
                finished, _ = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                _drain(events, progress, {j.key: j for j in pending.values()})
                for future in finished:
                    job = pending.pop(future)
                    error = future.exception()
                    if error is None:
                        records[job.key] = future.result()
                    else:
                        failures.append((job, _text(error)))
                    progress.job_done(job, records.get(job.key), failures[-1][1] if error else None)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return records, failures


def _drain(events, progress, jobs: dict[str, Job]) -> None:
    while True:
        try:
            kind, key, *rest = events.get_nowait()
        except queue_mod.Empty:
            return
        if kind == "start" and key in jobs:
            progress.job_started(jobs[key])
        elif kind == "epoch":
            progress.epoch(key, *rest)


def _init_worker(counter, gpus: int, events) -> None:
    import torch

    torch.set_num_threads(1)  # N workers on N cores: one thread each, no oversubscription
    with counter.get_lock():
        index, counter.value = counter.value, counter.value + 1
    _WORKER.update(device=f"cuda:{index % gpus}" if gpus > 1 else None, events=events)


def _work(job: Job, ctx: SweepContext) -> dict:
    events = _WORKER["events"]
    if _WORKER.get("device") and ctx.device is None:  # under torchrun the rank's GPU is set already
        ctx = dataclasses.replace(ctx, device=_WORKER["device"])
    events.put(("start", job.key))
    return run_job(job, ctx, lambda key, epoch, total: events.put(("epoch", key, epoch, total)))


def _gpu_count(ctx: SweepContext) -> int:
    """GPUs to spread workers over: only when the recipe runs on CUDA (``auto`` or ``cuda``)."""
    import torch

    device = str(ctx.recipe.device or "auto")
    if device.startswith("cuda:") or device == "cpu" or not torch.cuda.is_available():
        return 0
    return torch.cuda.device_count()


def _text(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"

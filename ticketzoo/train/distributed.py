"""Many processes, one training: ``torchrun`` + DistributedDataParallel, and rank helpers.

A process started by ``torchrun`` (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and the
rendezvous address in its environment) joins the process group in :func:`ensure`: NCCL
when CUDA is available (each process on GPU ``LOCAL_RANK``), gloo on CPU. Everything else
here is a no-op in a plain single process, so the library has one code path.

The contract every caller keeps:

* **Same global batch.** ``batch_size`` is the *global* batch; each of the ``W`` ranks
  trains on a strided share of every global batch (:class:`Shard`, defined with the
  loaders in :mod:`ticketzoo.data.loaders`, which read only that share), and the loss is
  scaled so that DDP's average of the ranks' gradients is the gradient of the global
  batch's mean loss: a run on ``W`` processes trains what one process trains, up to the
  order of float sums.
* **Same decisions.** Metrics are reduced across ranks before anything reads them, so
  early stopping, divergence and time budgets decide the same on every rank; a decision
  taken on one rank alone goes through :func:`any_rank` or :func:`from_main`.
* **Rank 0 writes.** Files (tickets, logs, checkpoints, registry entries) are written by
  the main rank only (:func:`is_main`); what other ranks need from disk they get from
  rank 0 through :func:`from_main`, so no rank reads a file another is writing and the
  run folder need not be shared between machines.

Objects sent by :func:`from_main` travel pickled between the processes of one job (the
torch collective ``broadcast_object_list``); files are never unpickled.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from typing import Any, Callable, Iterator, TypeVar

import torch
from torch import nn

from ticketzoo.data.loaders import IGNORE_LABEL as IGNORE  # noqa: F401  (re-exported)
from ticketzoo.data.loaders import BatchShard as Shard  # noqa: F401  (re-exported)
from ticketzoo.errors import ConfigError, TicketzooError

T = TypeVar("T")


class RankError(TicketzooError, RuntimeError):
    """Another rank failed at a step all ranks take together; this rank stops too."""


#: Set (to "1") while a torchrun process trains alone (:func:`alone`); inherited by the
#: worker processes it spawns, so they do not join the launch's process group either.
ALONE_ENV = "TICKETZOO_TRAIN_ALONE"


def launched() -> bool:
    """True in a process started by ``torchrun`` with more than one process in all
    (and not inside :func:`alone`)."""
    if os.environ.get(ALONE_ENV) == "1":
        return False
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


@contextlib.contextmanager
def alone() -> Iterator[None]:
    """Train in this process alone although ``torchrun`` started it: no process group is
    joined inside (for work shared out by rank, each piece trained by one process)."""
    if active():
        raise ConfigError("this process already trains in a process group: it cannot train alone")
    before = os.environ.get(ALONE_ENV)
    os.environ[ALONE_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ALONE_ENV, None)
        else:
            os.environ[ALONE_ENV] = before


def launch_layout() -> tuple[int, int]:
    """``(rank, world size)`` that ``torchrun`` gave this process, read from its environment
    without joining a process group: ``(0, 1)`` in a plain process. For work shared out by
    rank (``compare``'s independent jobs), where each process trains alone."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return (int(os.environ.get("RANK", "0")), world) if world > 1 else (0, 1)
    except ValueError:
        return 0, 1


def active() -> bool:
    """A process group of more than one process is up."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return torch.distributed.get_world_size() if active() else 1


def rank() -> int:
    return torch.distributed.get_rank() if active() else 0


def is_main() -> bool:
    """Rank 0 (or the only process): the one that writes files and prints progress."""
    return rank() == 0


def backend() -> str | None:
    return torch.distributed.get_backend() if active() else None


def ensure() -> bool:
    """Join the process group when launched by ``torchrun``; True when a group is up.

    Idempotent. The group is left at exit (``atexit``). On a machine with CUDA each
    process takes GPU ``LOCAL_RANK``, so ``cuda`` means the process's own GPU."""
    import torch.distributed as dist

    if not launched():
        return False
    if dist.is_initialized():
        return True
    if not dist.is_available():
        raise ConfigError("this PyTorch build has no torch.distributed: cannot run under torchrun")
    cuda = torch.cuda.is_available()
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise ConfigError(f"local rank {local} has no GPU: {torch.cuda.device_count()} visible",
                              hint="start at most one process per GPU on each machine")
        torch.cuda.set_device(local)
    # One backend per device type: collectives on CPU tensors go through gloo, on CUDA
    # tensors through NCCL, so CPU runs and GPU runs share every call below.
    dist.init_process_group(backend="cpu:gloo,cuda:nccl" if cuda else "gloo")
    atexit.register(teardown)
    return True


def teardown() -> None:
    """Leave the process group (a no-op when none is up)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def describe(batch_size: int) -> dict[str, Any]:
    """What a card and a run folder record about the process layout (global batch included)."""
    w = world_size()
    return {"world_size": w, "per_rank_batch": per_rank_batch(batch_size), "global_batch": batch_size,
            "backend": backend() or "none"}


def per_rank_batch(batch_size: int) -> int:
    """``batch_size / world_size``; a global batch the ranks cannot share equally is refused."""
    w = world_size()
    Shard(0, w, 0, batch_size)  # the one check (ConfigError, field "batch_size")
    return batch_size // w


# --- collectives (no-ops in one process) -----------------------------------------------

def barrier() -> None:
    if active():
        torch.distributed.barrier()


@contextlib.contextmanager
def main_first(when: bool = True) -> Iterator[None]:
    """Rank 0 runs the block first, the other ranks after it (e.g. a dataset download into a
    folder they share: no rank reads a half-written file). A no-op in one process. If rank 0
    fails inside, torchrun stops the waiting ranks."""
    first = when and active()
    if first and not is_main():
        barrier()
    yield
    if first and is_main():
        barrier()


def all_reduce_(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """In-place sum (or ``"max"``) over ranks; returns ``tensor``."""
    if active():
        ops = {"sum": torch.distributed.ReduceOp.SUM, "max": torch.distributed.ReduceOp.MAX}
        torch.distributed.all_reduce(tensor, op=ops[op])
    return tensor


def max_float(value: float) -> float:
    """The largest ``value`` over ranks (e.g. an epoch's wall time, so logs agree)."""
    if not active():
        return value
    return float(all_reduce_(torch.tensor([value], dtype=torch.float64, device=_comm_device()), "max"))


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any: a collective "should stop"."""
    if not active():
        return flag
    return bool(all_reduce_(torch.tensor([int(flag)], device=_comm_device()), "max").item())


def from_main(fn: Callable[[], T]) -> T:
    """``fn()`` run on rank 0, its result given to every rank.

    If ``fn`` raises on rank 0 the error is raised there and every other rank raises a
    :class:`RankError` with its message, so all stop together instead of waiting."""
    if not active():
        return fn()
    box: list[Any] = [None]
    error: BaseException | None = None
    if is_main():
        try:
            box[0] = ("ok", fn())
        except Exception as e:  # noqa: BLE001 - handed on to the other ranks, then re-raised
            error, box[0] = e, ("error", str(e))
    torch.distributed.broadcast_object_list(box, src=0)
    if error is not None:
        raise error
    status, value = box[0]
    if status == "error":
        raise RankError(f"rank 0 stopped: {value}")
    return value


def _comm_device() -> torch.device:
    """Where collective tensors live: the process's GPU under NCCL, else the CPU."""
    if torch.cuda.is_available() and torch.distributed.get_backend() != "gloo":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# --- the model and the batches ------------------------------------------------------------

def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` inside DistributedDataParallel when a group is up, else ``model`` itself.

    DDP shares the model's parameter tensors, so masks applied to ``model`` after every
    optimizer step apply on every rank; its gradient all-reduce averages the ranks."""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)

"""Per-epoch checkpoints of a training run, written atomically, read without unpickling.

A checkpoint holds only tensors and plain containers (``torch.load(weights_only=True)``):
model, optimizer and grad-scaler state, the position (epoch/step), the best epoch's
weights, callback states (early-stopping counters, history), every RNG the run draws
from (torch CPU/CUDA, Python, NumPy, the train loader's generator) and the config hash,
so a resumed run on CPU ends bitwise identical to an uninterrupted one.

:class:`Writer` writes them, after every epoch or at most once per ``every_s`` seconds.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch

from ticketzoo.errors import CheckpointError
from ticketzoo.fileio import atomic_write
from ticketzoo.masks import Mask
from ticketzoo.train.callbacks import TrainState
from ticketzoo.train.device import cpu_state_dict

FORMAT = "ticketzoo-train-checkpoint"
VERSION = 1
FILENAME = "checkpoint.pt"
log = logging.getLogger(__name__)
_REQUIRED = (
    "config_hash", "epoch", "step", "finished", "stopped_early", "model", "optimizer", "rng", "best"
)  # fmt: skip


def save_atomic(payload: Mapping[str, Any], path: str | Path) -> Path:
    """``torch.save`` to a temp file beside ``path``, fsync, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda handle: torch.save(dict(payload), handle))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and sanity-check a checkpoint; any problem is a :class:`CheckpointError`."""
    path = Path(path)
    hint = "delete it to start the run over, or use a new run directory"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, forbidden global, ...
        raise CheckpointError(f"{path}: unreadable checkpoint ({exc})", hint=hint) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a ticketzoo training checkpoint", hint=hint)
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {payload.get('version')!r} is not supported "
            f"(this ticketzoo reads version {VERSION})",
            hint=hint,
        )
    missing = [key for key in _REQUIRED if key not in payload]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}", hint=hint)
    return payload


def check_compatible(payload: Mapping[str, Any], path: Path, **expected: Any) -> None:
    """Refuse a checkpoint written with a different config hash, masks or start step."""
    for key, value in expected.items():
        found = payload.get(key)
        if found != value:
            what = {"config_hash": "training config", "masks_digest": "masks"}.get(key, key)
            short = lambda v: v[:12] if isinstance(v, str) else v  # noqa: E731
            raise CheckpointError(
                f"{path} was written with a different {what} ({short(found)} != {short(value)})",
                hint="use a new run directory, or resume with the same arguments",
            )


def masks_digest(masks: Mapping[str, torch.Tensor] | None) -> str:
    """sha256 of mask names, shapes and bits: detects resuming with another ticket."""
    return Mask(masks or {}).digest()


def _generators(loader: Any) -> list[torch.Generator]:
    """The loader's shuffling generators: ``loader.generator`` and its sampler's."""
    found: list[torch.Generator] = []
    for owner in (loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        gen = getattr(owner, "generator", None)
        if isinstance(gen, torch.Generator) and all(gen is not g for g in found):
            found.append(gen)
    sampler = getattr(getattr(loader, "batch_sampler", None), "sampler", None)
    gen = getattr(sampler, "generator", None)
    if isinstance(gen, torch.Generator) and all(gen is not g for g in found):
        found.append(gen)
    return found


def capture_rng(loader: Any = None) -> dict[str, Any]:
    """Every RNG state a run draws from, as tensors and plain containers."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
        "python": [version, list(py_state), py_gauss],
        "numpy": [kind, torch.from_numpy(np.array(keys)), int(pos), int(has_gauss), float(gauss)],
        "loader": [g.get_state() for g in _generators(loader)],
    }


def restore_rng(state: Mapping[str, Any], loader: Any = None) -> None:
    """Inverse of :meth:`capture_rng` (the loader must expose the same generators)."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, py_state, py_gauss = state["python"]
    random.setstate((version, tuple(py_state), py_gauss))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy(), pos, has_gauss, gauss))
    generators = _generators(loader)
    if len(generators) != len(state["loader"]):
        raise CheckpointError(
            f"the checkpoint saved {len(state['loader'])} loader generator(s) but the train "
            f"loader has {len(generators)}",
            hint="resume with a loader built the same way (same shuffle/generator arguments)",
        )
    for gen, gen_state in zip(generators, state["loader"]):
        gen.set_state(gen_state)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), Python's ``random`` and NumPy's global RNG."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def callback_states(callbacks: Iterable[Any]) -> list[dict[str, Any] | None]:
    """``[{"name": class name, "state": cb.state_dict()} or None]`` in callback order."""
    out: list[dict[str, Any] | None] = []
    for cb in callbacks:
        fn = getattr(cb, "state_dict", None)
        out.append({"name": type(cb).__name__, "state": fn()} if callable(fn) else None)
    return out


def load_callback_states(callbacks: Iterable[Any], states: list[dict[str, Any] | None]) -> None:
    """Give each callback the state saved at its position, if of the same class."""
    for cb, saved in zip(callbacks, states):
        fn = getattr(cb, "load_state_dict", None)
        if saved is not None and callable(fn) and saved["name"] == type(cb).__name__:
            fn(saved["state"])


def run_payload(
    expected: Mapping[str, Any], state: TrainState, scaler: Any, best: Mapping[str, Any],
    callbacks: list, loader: Any, *, finished: bool, stopped_early: bool,
) -> dict[str, Any]:  # fmt: skip
    """The checkpoint of ``state`` at an epoch boundary (see the module docstring).

    A finished run's checkpoint holds only the weights it ends with (the best epoch's when
    one was kept) and no optimizer state: resuming it only returns them, and a ResNet-50's
    shrinks from 377 MB (weights, AdamW state, best weights) to 94 MB."""
    model, best = cpu_state_dict(state.model), dict(best)
    if finished and best.get("state") is not None:
        model, best["state"] = best["state"], None
    return {
        "format": FORMAT, "version": VERSION, **expected, "config": state.config.to_dict(),
        "epoch": state.epoch, "step": state.step, "finished": finished,
        "stopped_early": stopped_early, "stop_reason": state.stop_reason, "model": model,
        "optimizer": None if finished else state.optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None and not finished else None, "best": best,
        "callbacks": callback_states(callbacks), "rng": capture_rng(loader),
    }  # fmt: skip


class Writer:
    """Writes a run's epoch-boundary checkpoints to ``path``: every epoch (``every_s`` 0), or at
    most once per ``every_s`` seconds and whenever the run finishes.

    Why the interval: a ResNet-50 fine-tune's checkpoint (weights, AdamW state, best weights:
    377 MB) takes ~0.7 s to write on a 2-core CPU, a quarter of a 2-second epoch. Between
    writes the latest boundary is kept in memory (a copy) and :meth:`flush` writes it when
    the run is interrupted (Ctrl-C, an error), so only a process killed outright loses more
    than the epoch it was in: at most ``every_s`` seconds of training.
    """

    def __init__(self, path: Path, every_s: float = 0.0) -> None:
        self.path, self.every_s = path, every_s
        self.last = time.monotonic()
        self.pending: dict[str, Any] | None = None

    def epoch_end(self, payload: dict[str, Any], *, force: bool = False) -> None:
        """Write ``payload`` (:func:`run_payload`) now, or keep a copy until it is due."""
        now = time.monotonic()
        if force or now - self.last >= self.every_s:
            save_atomic(payload, self.path)
            self.last, self.pending = now, None
        else:  # the live optimizer state and callbacks move on: copy all but the fresh weights
            self.pending = {k: v if k == "model" else copy.deepcopy(v) for k, v in payload.items()}

    def flush(self) -> None:
        """Write the boundary kept in memory, if any (an interrupted run's last epoch)."""
        if self.pending is not None:
            payload, self.pending = self.pending, None
            try:
                save_atomic(payload, self.path)
            except Exception as exc:  # the interruption being handled matters more
                log.warning("%s: the last epoch's checkpoint could not be written: %s", self.path, exc)


def apply_run(
    payload: dict[str, Any], path: Path, expected: Mapping[str, Any], model: torch.nn.Module,
    optimizer: torch.optim.Optimizer, scaler: Any, callbacks: list, loader: Any,
) -> dict[str, Any]:  # fmt: skip
    """Check a checkpoint read by :func:`load_checkpoint` and put it into model, optimizer,
    scaler, callbacks and RNGs (so one rank may read it and every rank apply it)."""
    check_compatible(payload, path, **expected)
    try:
        model.load_state_dict(payload["model"])
        if payload["optimizer"] is not None:  # None: a finished run (see run_payload)
            optimizer.load_state_dict(payload["optimizer"])
        if scaler is not None and payload.get("scaler"):
            scaler.load_state_dict(payload["scaler"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: does not fit this model ({exc})") from exc
    load_callback_states(callbacks, payload.get("callbacks") or [])
    restore_rng(payload["rng"], loader)
    return payload

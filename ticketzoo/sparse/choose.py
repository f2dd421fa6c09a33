"""Per-layer kernel choice: time each candidate on the layer's real input, keep the fastest.

A choice depends on the machine, the thread count, the layer (shape, stride, nonzeros) and
the input's shape; it is made the first time a layer sees an input shape and kept in a JSON
file per machine (:func:`~ticketzoo.sparse.kernels.cache_dir`), so a later process on the same
machine skips the timing. :class:`Chooser` picks inference kernels (forward only);
:class:`TrainingChooser` picks training kernels (forward + backward) against dense in the
run's precision. Both keep their choices in a :class:`ChoiceCache`.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ticketzoo.sparse.layers import DENSE, SPARSE

_log = logging.getLogger(__name__)


class ChoiceCache:
    """A per-machine JSON table of timed choices, ``{key: {"kernel": name, "ms": {name: ms}}}``:
    read once (a damaged file or entry only loses timings), written atomically and merged with
    what another process added. ``what`` names the user in log lines."""

    def __init__(self, path: Path | None, what: str) -> None:
        self.path = Path(path) if path is not None else None
        self.what = what
        self.table: dict[str, dict] = self._read()
        self._dirty = False

    def get(self, key: str, candidates) -> dict | None:
        """The entry of ``key`` if it timed exactly ``candidates``, else None (time again)."""
        entry = self.table.get(key)
        return entry if entry is not None and set(entry["ms"]) == set(candidates) else None

    def put(self, key: str, times: dict[str, float]) -> dict:
        """Record ``times`` (seconds per kernel) under ``key``; returns the entry (fastest kept)."""
        entry = {"kernel": min(times, key=times.get), "ms": {k: round(v * 1e3, 4) for k, v in times.items()}}
        self.table[key] = entry
        self._dirty = True
        return entry

    def _read(self) -> dict[str, dict]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            table = json.loads(self.path.read_text())
        except (OSError, ValueError):  # a damaged cache is only lost timings: time again
            _log.info("%s: ignoring unreadable kernel-choice cache %s", self.what, self.path)
            return {}
        if not isinstance(table, dict):
            table = {}
        good = {k: v for k, v in table.items() if _well_formed(v)}
        if len(good) < len(table):  # valid JSON, wrong shapes (hand-edited, another version)
            _log.info("%s: ignoring %d malformed entr(ies) of %s; they are timed again",
                      self.what, len(table) - len(good), self.path)
        return good

    def save(self) -> None:
        """Write new choices to the cache file (atomically); a read-only cache is skipped."""
        if self.path is None or not self._dirty:
            return
        from ticketzoo.fileio import atomic_write_bytes

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            merged = {**self._read(), **self.table}  # another process may have added choices
            atomic_write_bytes(self.path, json.dumps(merged, indent=1, sort_keys=True).encode())
            self._dirty = False
        except OSError as e:
            _log.info("%s: kernel choices not cached (%s)", self.what, e)


def min_time(fn: Callable[[], object], repeat: int, warmup: int = 1) -> float:
    """The fastest of ``repeat`` calls (seconds) after ``warmup`` untimed ones: on a shared
    machine the minimum is the run least disturbed by other work."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


class Chooser:
    """Times candidate kernels (min of ``reps`` runs after one warm-up) and remembers the winner.

    ``force`` names one kernel for every layer (``"dense"``, ``"sparse"``, ``"torch-sparse"``),
    for tests and benchmarks. ``path`` is the cache file (None: remember in memory only).
    """

    def __init__(self, kernels, *, path: Path | None = None, reps: int = 3, force: str | None = None) -> None:
        self.kernels = kernels
        self.cache = ChoiceCache(path, "sparse runtime")
        self.reps = max(1, int(reps))
        self.force = force
        self.used: dict[str, dict] = {}  # layer name -> the entry it used last, for reports
        self._memo: dict[tuple, str] = {}  # (layer, shapes, threads) -> kernel: no key strings per call

    def choose(self, layer, x: torch.Tensor, residual, relu: bool) -> str:
        memo = (id(layer), tuple(x.shape), residual is not None, relu, torch.get_num_threads())
        kernel = self._memo.get(memo)
        if kernel is None:
            kernel = self._memo[memo] = self._choose(layer, x, residual, relu)
        return kernel

    def _choose(self, layer, x: torch.Tensor, residual, relu: bool) -> str:
        if self.force is not None:
            self.used[layer.layer_name] = {"kernel": self.force, "density": layer.density}
            return self.force
        key = f"t={torch.get_num_threads()}|{layer.key(x, residual, relu)}"
        candidates = layer.candidates(x)
        entry = self.cache.get(key, candidates)
        if entry is None:
            entry = self.cache.put(key, {k: self._time(layer, k, x, residual, relu) for k in candidates})
        self.used[layer.layer_name] = {**entry, "density": layer.density}
        return entry["kernel"]

    def _time(self, layer, kernel: str, x, residual, relu) -> float:
        # The residual is never written in place by any kernel, so it can be reused.
        try:
            layer.run(kernel, x, residual, relu)  # also the warm-up
        except RuntimeError as e:  # a kernel refusing this input: never chosen
            _log.debug("sparse runtime: %s kernel %s failed: %s", layer.layer_name, kernel, e)
            return float("inf") if kernel != DENSE else 0.0
        return min_time(lambda: layer.run(kernel, x, residual, relu), self.reps, warmup=0)

    def save(self) -> None:
        """Write new choices to the cache file (atomically); a read-only cache is skipped."""
        self.cache.save()


class TrainingChooser:
    """Times a training layer's dense and sparse forward+backward at an input shape (min of
    ``reps`` after a warm-up; dense under ``dense_autocast``, the run's precision), keeps the
    faster, and remembers it per machine (``path``; None: memory only)."""

    def __init__(self, path: Path | None, reps: int, dense_autocast: torch.dtype | None) -> None:
        self.cache = ChoiceCache(path, "sparse training")
        self.reps = max(1, int(reps))
        self.dense_autocast = dense_autocast
        self._memo: dict[tuple, str] = {}

    def choose(self, layer, module: nn.Module, shape: tuple, needs_gx: bool) -> str:
        threads = torch.get_num_threads()
        memo = (id(layer), shape, needs_gx, threads)
        kernel = self._memo.get(memo)
        if kernel is not None:
            return kernel
        dense = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dense_autocast]
        key = f"t={threads}|dense={dense}|{layer.key(shape, needs_gx)}"
        entry = self.cache.get(key, (DENSE, SPARSE))
        if entry is None:
            entry = self.cache.put(key, {k: self._time(layer, module, shape, needs_gx, k) for k in (DENSE, SPARSE)})
            self.cache.save()
        layer.row.update(kernel=entry["kernel"], dense_ms=entry["ms"][DENSE], sparse_ms=entry["ms"][SPARSE],
                         input=list(shape), grad_input=needs_gx)
        self._memo[memo] = entry["kernel"]
        return entry["kernel"]

    def _time(self, layer, module: nn.Module, shape: tuple, needs_gx: bool, kernel: str) -> float:
        """Seconds for one forward+backward of ``layer`` on random tensors of the real shapes (the
        model's parameters are not touched)."""
        g = torch.Generator().manual_seed(0)
        x = torch.randn(shape, generator=g).requires_grad_(needs_gx)
        w = module.weight.detach().clone().requires_grad_()
        b = module.bias.detach().clone().requires_grad_() if module.bias is not None else None
        inputs = [t for t in (x, w, b) if t is not None and t.requires_grad]
        amp = kernel == DENSE and self.dense_autocast is not None

        def forward():
            with torch.autocast("cpu", dtype=self.dense_autocast or torch.bfloat16, enabled=amp):
                return layer.run_sparse(x, w, b) if kernel == SPARSE else layer.run_dense(x, w, b)

        with torch.enable_grad():
            try:
                y = forward()
                gy = torch.randn(y.shape, generator=g).to(y.dtype)
            except RuntimeError as e:  # a kernel refusing this input: never chosen
                _log.debug("sparse training: %s %s failed: %s", layer.name, kernel, e)
                return float("inf") if kernel == SPARSE else 0.0
            torch.autograd.grad(forward(), inputs, gy)  # warm-up: allocator, oneDNN primitives
            return min_time(lambda: torch.autograd.grad(forward(), inputs, gy), self.reps, warmup=0)


def _well_formed(entry) -> bool:
    """A cache entry as :meth:`ChoiceCache.put` writes it: ``{"kernel": name, "ms": {name:
    milliseconds}}`` with the chosen kernel among the timed ones."""
    if not isinstance(entry, dict) or not isinstance(entry.get("kernel"), str) or not isinstance(entry.get("ms"), dict):
        return False
    times = entry["ms"]
    return entry["kernel"] in times and all(
        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in times.items())

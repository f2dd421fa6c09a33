"""Per-layer kernel choice: time each candidate on the layer's real input, keep the fastest.

A choice depends on the machine, the thread count, the layer (shape, stride, nonzeros) and
the input's shape; it is made the first time a layer sees an input shape and kept in a JSON
file per machine (:func:`~ticketzoo.sparse.kernels.cache_dir`), so a later process on the same
machine skips the timing.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch

from ticketzoo.sparse.layers import DENSE

_log = logging.getLogger(__name__)


class Chooser:
    """Times candidate kernels (min of ``reps`` runs after one warm-up) and remembers the winner.

    ``force`` names one kernel for every layer (``"dense"``, ``"sparse"``, ``"torch-sparse"``),
    for tests and benchmarks. ``path`` is the cache file (None: remember in memory only).
    """

    def __init__(self, kernels, *, path: Path | None = None, reps: int = 3, force: str | None = None) -> None:
        self.kernels = kernels
        self.path = Path(path) if path is not None else None
        self.reps = max(1, int(reps))
        self.force = force
        self.table: dict[str, dict] = self._read()
        self.used: dict[str, dict] = {}  # layer name -> the entry it used last, for reports
        self._memo: dict[tuple, str] = {}  # (layer, shapes, threads) -> kernel: no key strings per call
        self._dirty = False

    def _read(self) -> dict[str, dict]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            table = json.loads(self.path.read_text())
        except (OSError, ValueError):  # a damaged cache is only lost timings: time again
            _log.info("sparse runtime: ignoring unreadable kernel-choice cache %s", self.path)
            return {}
        if not isinstance(table, dict):
            table = {}
        good = {k: v for k, v in table.items() if _well_formed(v)}
        if len(good) < len(table):  # valid JSON, wrong shapes (hand-edited, another version)
            _log.info("sparse runtime: ignoring %d malformed entr(ies) of %s; they are timed again",
                      len(table) - len(good), self.path)
        return good

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
        entry = self.table.get(key)
        candidates = layer.candidates(x)
        if entry is None or set(entry.get("ms", {})) != set(candidates):
            times = {k: self._time(layer, k, x, residual, relu) for k in candidates}
            entry = {"kernel": min(times, key=times.get), "ms": {k: round(v * 1e3, 4) for k, v in times.items()}}
            self.table[key] = entry
            self._dirty = True
        self.used[layer.layer_name] = {**entry, "density": layer.density}
        return entry["kernel"]

    def _time(self, layer, kernel: str, x, residual, relu) -> float:
        # The residual is never written in place by any kernel, so it can be reused.
        try:
            layer.run(kernel, x, residual, relu)
        except RuntimeError as e:  # a kernel refusing this input: never chosen
            _log.debug("sparse runtime: %s kernel %s failed: %s", layer.layer_name, kernel, e)
            return float("inf") if kernel != DENSE else 0.0
        best = float("inf")
        for _ in range(self.reps):
            start = time.perf_counter()
            layer.run(kernel, x, residual, relu)
            best = min(best, time.perf_counter() - start)
        return best

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
            _log.info("sparse runtime: kernel choices not cached (%s)", e)


def _well_formed(entry) -> bool:
    """A cache entry as :meth:`Chooser._choose` writes it: ``{"kernel": name, "ms": {name:
    milliseconds}}`` with the chosen kernel among the timed ones."""
    if not isinstance(entry, dict) or not isinstance(entry.get("kernel"), str) or not isinstance(entry.get("ms"), dict):
        return False
    times = entry["ms"]
    return entry["kernel"] in times and all(
        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in times.items())

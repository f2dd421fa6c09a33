"""The run folder of one IMP recipe: what is on disk, written atomically, read safely.

Layout (``<run-dir>/<source>-<arch>-<hash12>/``)::

    recipe.json                 the recipe, its hash, the run's creation time, the data's
                                classes and split sizes (checked on resume)
    theta0.safetensors          θ0, the weights before any training
    thetak.safetensors          θk, the rewind point captured during round 0
    round_NN/mask.safetensors   the round's mask (rounds >= 1)
    round_NN/checkpoint.pt      per-epoch training checkpoint (removed when the round ends)
    round_NN/train.csv          per-epoch metrics
    round_NN/result.json        written last: the round is done
    round_NN/<control>/...      the same for the control network of that round
    tickets/<name>/             one ticket folder per round (and per control): ticket.safetensors
                                + README.md, written by :func:`ticketzoo.folder.write_ticket_folder`
                                (run folders of earlier versions hold ``tickets/<name>.safetensors``;
                                their rows keep that path and are read as they are)
    log.csv, log.json           the summary of every finished round

Tensors are stored as safetensors and read with ``safetensors`` (never unpickled);
training checkpoints are read with ``torch.load(weights_only=True)``.

Under ``torchrun`` rank 0 opens (locks, creates or checks) the folder and alone writes
into it; the other ranks hold a :meth:`RunDir.follow` copy that names the same paths but
creates nothing. ``recipe.json`` records the process layout (``processes``: world size,
per-rank batch, backend; absent in folders of one process): a run is resumed only with
the world size it was started with.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Mapping

import torch

from ticketzoo.errors import CheckpointError, ConfigError
from ticketzoo.config.find import FindRecipe, diff_fields
from ticketzoo.config import Config
from ticketzoo.fileio import atomic_write_bytes, fsync_dir

RECIPE_FILE = "recipe.json"
_HINT = "use another `run_dir`, or delete the folder to start over"


def epoch_times(root: Path, r: int, line: str | None = None) -> list[float]:
    """Seconds per epoch of round ``r``'s ``line`` (``line`` None: the ticket) in run folder
    ``root``, from its ``train.csv``; empty when there is none (a round carried from elsewhere)."""
    path = Path(root) / f"round_{r:02d}" / (line or "") / "train.csv"
    try:
        with path.open(newline="", encoding="utf-8") as f:
            return [float(row["time_s"]) for row in csv.DictReader(f) if row.get("time_s")]
    except (OSError, ValueError, KeyError):
        return []


def write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=True, allow_nan=True) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable ({e})", hint=_HINT) from None


def save_tensors(path: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    from safetensors.torch import save

    data = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, save(data))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        return dict(load(path.read_bytes()))
    except (OSError, SafetensorError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable tensors ({e})", hint=_HINT) from None



def write_ticket_dir(parent: Path, name: str, data: bytes, card) -> str:
    """Write the ticket folder ``parent/<name>/`` atomically; returns the file's sha256.

    The folder is filled by :func:`ticketzoo.folder.write_ticket_folder` under a temp name and
    renamed into place, so a killed process leaves a whole folder or none (its stale temp
    folder is removed by the next write of that name). A folder already there comes from a
    round killed before its ``result.json``: the round's bytes are the same again, so it is
    replaced."""
    from ticketzoo.folder import write_ticket_folder

    final = parent / name
    for stale in parent.glob(f".{name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = parent / f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir()  # mode 0777 & ~umask, as the files in it: a run's tickets are shared
    try:
        sha = write_ticket_folder(tmp, data, card)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(parent)
    return sha


class RunDir:
    """One run folder; :meth:`open` creates it or checks it belongs to ``recipe``."""

    def __init__(self, root: Path, recipe: FindRecipe, meta: dict[str, Any], *, writer: bool = True):
        self.root, self.recipe, self.meta = root, recipe, meta
        self.writer = writer  # False on ranks other than 0: paths only, nothing created
        self._lock = None

    @classmethod
    def follow(cls, root: Path, recipe: FindRecipe, meta: dict[str, Any]) -> RunDir:
        """The run folder rank 0 opened, as another rank sees it: no lock, no writes."""
        return cls(root, recipe, meta, writer=False)

    @classmethod
    def locate(cls, run_dir: str | Path, recipe: FindRecipe) -> Path:
        """``run_dir`` itself when it already is a run folder, else ``run_dir/<run name>``."""
        base = Path(run_dir).expanduser()
        return base if (base / RECIPE_FILE).is_file() else base / recipe.run_name()

    @classmethod
    def open(cls, root: Path, recipe: FindRecipe, data: Mapping[str, Any], created: str,
             processes: Mapping[str, Any] | None = None) -> RunDir:
        """Create ``root`` for ``recipe`` or resume it; a different recipe or data is refused,
        and so is a run of another world size (``processes``, see the module docstring)."""
        from filelock import FileLock, Timeout

        root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(root / ".lock"), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise CheckpointError(f"run folder {root} is in use by another find process",
                                  hint="wait for it to finish, or use another `run_dir`") from None
        try:
            meta = cls._check_or_write(root / RECIPE_FILE, recipe, dict(data), created)
            meta = cls._check_processes(root / RECIPE_FILE, meta, dict(processes or {}))
        except BaseException:
            lock.release()
            raise
        run = cls(root, recipe, meta)
        run._lock = lock
        return run

    @staticmethod
    def _check_or_write(path: Path, recipe: FindRecipe, data: dict, created: str) -> dict:
        if not path.exists():
            meta = {"hash": recipe.hash(), "recipe": recipe.to_dict(), "created": created,
                    "data": data, "format": "ticketzoo-find-run/1"}
            write_json(path, meta)
            return meta
        meta = read_json(path)
        if not isinstance(meta, dict) or "recipe" not in meta:
            raise CheckpointError(f"{path} is not a ticketzoo find recipe", hint=_HINT)
        try:  # read as it is today (a recipe.json of an older release is upgraded)
            old = FindRecipe.from_dict(meta["recipe"])
        except ConfigError as e:
            raise CheckpointError(f"{path} holds a recipe this ticketzoo cannot read: {e.message}", hint=_HINT) from None
        # the hash says whether it is the same recipe; the fields in today's layout say how they differ,
        # without where and how it ran (device, CPU precision, memory: unhashed)
        differ = [] if old.hash() == recipe.hash() else diff_fields(Config.hashed_dict(old), Config.hashed_dict(recipe))
        if differ:
            raise CheckpointError(
                f"run folder {path.parent} was made by a different recipe: {'; '.join(differ)}",
                hint=_HINT)
        differ = diff_fields(meta.get("data", {}), data)
        if differ:
            raise CheckpointError(
                f"run folder {path.parent} was made from different data: {'; '.join(differ)}",
                hint="point `data` at the same images, or use another `run_dir`")
        return meta

    @staticmethod
    def _check_processes(path: Path, meta: dict, processes: dict) -> dict:
        """Record the process layout in a new folder; refuse another world size on resume."""
        want = int(processes.get("world_size", 1))
        if not any(path.parent.glob("round_*")):  # nothing trained yet: whoever runs it now
            new = {k: v for k, v in meta.items() if k != "processes"}
            new = {**new, "processes": processes} if want > 1 else new
            if new != meta:
                write_json(path, new)
            return new
        found = int((meta.get("processes") or {}).get("world_size", 1))
        if found != want:
            raise CheckpointError(
                f"run folder {path.parent} was started on {found} process(es); this run has {want}",
                field="world_size", value=want,
                hint=f"resume it with {found} process(es) (torchrun --nproc_per_node {found}; "
                     "1: without torchrun), or use another `run_dir`")
        return meta

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # --- paths ------------------------------------------------------------------------

    @property
    def created(self) -> str:
        return str(self.meta.get("created", ""))

    def round_dir(self, r: int, line: str | None = None) -> Path:
        d = self.root / f"round_{r:02d}"
        d = d / line if line else d
        if self.writer:
            d.mkdir(parents=True, exist_ok=True)
        return d

    @property
    def theta0(self) -> Path:
        return self.root / "theta0.safetensors"

    @property
    def thetak(self) -> Path:
        return self.root / "thetak.safetensors"

    @property
    def tickets(self) -> Path:
        d = self.root / "tickets"
        if self.writer:
            d.mkdir(exist_ok=True)
        return d

    def ticket_file(self, name: str) -> str:
        """Where ticket ``name`` goes, relative to the run folder (recorded in its row)."""
        from ticketzoo.ticket import TICKET_FILE

        return f"tickets/{name}/{TICKET_FILE}"

    def write_ticket(self, name: str, data: bytes, card) -> str:
        """Write ticket folder ``tickets/<name>/`` (see :func:`write_ticket_dir`); its sha256."""
        return write_ticket_dir(self.tickets, name, data, card)

    def result(self, r: int, line: str | None = None) -> dict[str, Any] | None:
        path = self.root / f"round_{r:02d}" / (line or "") / "result.json"
        return read_json(path) if path.is_file() else None

    def epoch_times(self, r: int, line: str | None = None) -> list[float]:
        """Seconds per epoch of round ``r``'s ``line`` (see :func:`epoch_times`)."""
        return epoch_times(self.root, r, line)

    def write_result(self, r: int, result: Mapping[str, Any], line: str | None = None) -> None:
        folder = self.round_dir(r, line)
        write_json(folder / "result.json", dict(result))
        (folder / "checkpoint.pt").unlink(missing_ok=True)  # the round is done: free the disk

"""One exception hierarchy for ticketzoo.

Every error a user can cause derives from :class:`TicketzooError` and also from the
builtin that best describes it, so callers may catch either. The CLI turns any
``TicketzooError`` into a one-line message on stderr and exit code 1.

Messages speak the library's language, never the CLI's: an error about one setting names
it in ``field`` (the config field or keyword, e.g. ``"lr"``) with the offending ``value``,
and a message or hint that mentions another setting writes its field name in backticks
(for example `patience`). The CLI maps fields to its flags in one table (``ticketzoo.cli.errors``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

def short(text: str, limit: int = 160) -> str:
    """``text`` cut in the middle when long: a message echoing input stays one readable line."""
    if len(text) <= limit:
        return text
    half = max(8, limit // 2 - 12)
    return f"{text[:half]}…({len(text)} characters)…{text[-half:]}"


class TicketzooError(Exception):
    """Base class of all ticketzoo errors.

    ``hint`` is an optional sentence saying how to fix the problem; the CLI prints it
    after the message. ``field`` names the setting at fault (a config field or keyword
    argument such as ``"lr"``) and ``value`` the value it was given.
    """

    def __init__(self, message: str, *, hint: str | None = None, field: str | None = None,
                 value: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.field = field
        self.value = value

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class TicketFormatError(TicketzooError, ValueError):
    """A ticket file violates the ``ticketzoo-csr`` format.

    ``path`` names the file (when known) and ``tensor`` the offending tensor.
    """

    def __init__(
        self,
        problem: str,
        *,
        path: str | Path | None = None,
        tensor: str | None = None,
        hint: str | None = None,
        **fields: Any,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.tensor = tensor
        self.problem = problem
        where = short(self.path) if self.path else "<bytes>"
        if tensor:
            where = f"{where}: tensor {short(repr(tensor))}"
        super().__init__(f"{where}: {problem}", hint=hint, **fields)


class IntegrityError(TicketzooError, ValueError):
    """A file's sha256 differs from the one recorded for it."""

    def __init__(self, message: str, *, path: str | Path | None = None, hint: str | None = None,
                 **fields: Any):
        self.path = str(path) if path is not None else None
        super().__init__(message, hint=hint, **fields)


class InvalidRefError(TicketzooError, ValueError):
    """A ticket reference or ticket name is malformed."""

    def __init__(self, message: str, *, ref: str | None = None, hint: str | None = None,
                 **fields: Any):
        self.ref = ref
        super().__init__(message, hint=hint, **fields)


class TicketNotFoundError(TicketzooError, LookupError):
    """A well-formed reference that names no ticket in the registry asked."""

    def __init__(self, message: str, *, ref: str | None = None, hint: str | None = None,
                 **fields: Any):
        self.ref = ref
        super().__init__(message, hint=hint, **fields)


class RegistryError(TicketzooError, OSError):
    """A registry could not be read or written (permissions, disk full, lock)."""


class StorageError(TicketzooError, OSError):
    """A file could not be written or read: disk full, permission denied, read-only folder.

    ``path`` names the file, ``errno`` the cause (``errno.ENOSPC``, ``errno.EACCES``, ...)."""

    def __init__(self, message: str, *, path: str | Path | None = None, errno: int | None = None,
                 hint: str | None = None, **fields: Any):
        self.path = str(path) if path is not None else None
        super().__init__(message, hint=hint, **fields)
        self.errno = errno


class HubError(RegistryError):
    """The Hugging Face Hub (or a compatible server) refused or could not be reached."""


class UnknownArchitectureError(TicketzooError, KeyError):
    """An architecture name that the model registry does not know."""

    def __init__(self, message: str, *, name: str | None = None, hint: str | None = None,
                 **fields: Any):
        self.name = name
        super().__init__(message, hint=hint, **fields)

    # KeyError.__str__ would quote the message; keep the plain sentence.
    __str__ = TicketzooError.__str__


class DataError(TicketzooError, ValueError):
    """A dataset or image folder cannot be used as given."""

    def __init__(self, message: str, *, path: str | Path | None = None, hint: str | None = None,
                 **fields: Any):
        self.path = str(path) if path is not None else None
        super().__init__(message, hint=hint, **fields)


class ConfigError(TicketzooError, ValueError):
    """A recipe or option value is out of range or inconsistent."""


class MissingDependencyError(TicketzooError, ImportError):
    """An optional feature whose packages are not installed (``pip install 'ticketzoo[onnx]'``)."""


class ArgumentTypeError(TicketzooError, TypeError):
    """A library function was given an object of the wrong kind (``prune(None, 0.9)``)."""


class CheckpointError(TicketzooError, RuntimeError):
    """A run directory or checkpoint cannot be resumed (different recipe, corrupt file)."""


class TrainingDivergedError(TicketzooError, ArithmeticError):
    """The training loss became NaN or infinite (usually: the learning rate is too high)."""


class RoundNotTrainedError(TicketzooError, RuntimeError):
    """An IMP round did not train: ``status`` is ``diverged`` or ``chance`` (the verdicts of
    :mod:`ticketzoo.train.status`), ``reason`` says why, ``round`` which (0: the dense
    network, from which every ticket would descend), ``run_dir`` where its result is."""

    def __init__(self, message: str, *, round: int, status: str, reason: str | None,
                 run_dir: str | Path | None = None, hint: str | None = None, **fields: Any):
        super().__init__(message, hint=hint, **fields)
        self.round, self.status, self.reason = round, status, reason
        self.run_dir = str(run_dir) if run_dir is not None else None


class MaskViolationError(TicketzooError, RuntimeError):
    """A trained model broke its ticket's mask (a pruned weight is not exactly zero)."""

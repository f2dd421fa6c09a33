"""Library errors worded for the command line: one table from config fields to flags.

The library names the setting at fault in ``error.field`` (``"lr"``, ``"max_epochs"``) and
writes other settings' field names in backticks in its messages and hints; it never
names a flag. Here a field becomes the flag of the command that ran: the option whose
Python name is the field (``--lr`` for ``lr``), unless :data:`FLAGS` says otherwise.
"""

from __future__ import annotations

import re

import click

#: Fields whose flag is not ``--`` + the field with ``-`` for ``_``, per command ("*": all).
FLAGS: dict[str, dict[str, str]] = {
    "*": {
        "overwrite": "--force",
        "arch_kwargs": "--width",
        "out_dir": "--out",
    },
    "find": {"data_kind": "--data"},
    "finetune": {"overrides": "--protocol"},
    "push": {"license": "--license"},  # its Python name is license_ (a builtin)
}

_TICKED = re.compile(r"`([a-z_][a-z0-9_.]*)`")


def flag_for(field: str | None, command: click.Command | None) -> str | None:
    """The flag of ``command`` that sets ``field`` (``train.lr`` counts as ``lr``), or None."""
    if not field or command is None:
        return None
    name = field.rsplit(".", 1)[-1]
    table = {**FLAGS["*"], **FLAGS.get(command.name or "", {})}
    options = {p.name: p for p in command.params if isinstance(p, click.Option)}
    longs = {o for p in options.values() for o in p.opts if o.startswith("--")}
    if name in table and table[name] in longs:
        return table[name]
    option = options.get(name)
    if option is None or option.hidden:
        return None
    return next((o for o in option.opts if o.startswith("--")), None)


def is_usage_error(error: Exception, command: click.Command | None, args: list[str] = ()) -> bool:
    """The command line was wrong, so exit 2 like click's type errors: a setting's value
    refused (:class:`~ticketzoo.errors.ConfigError`) that one of the command's flags sets, or
    a malformed ticket name or reference (:class:`~ticketzoo.errors.InvalidRefError`) typed
    as one of ``args`` (``push --name Bad_Name``, ``rm ./x``, ``pull hf://``). The same
    errors about a name read from a file are the file's problem: exit 1."""
    from ticketzoo.errors import ConfigError, InvalidRefError

    if isinstance(error, InvalidRefError):
        ref = error.ref
        return ref is not None and any(a == ref or a.endswith(f"={ref}") for a in map(str, args))
    return isinstance(error, ConfigError) and flag_for(getattr(error, "field", None), command) is not None


def describe(error: Exception, command: click.Command | None) -> str:
    """One line for ``error``: its field as the command's flag, backticked fields as flags."""
    message = getattr(error, "message", None) or str(error)
    hint = getattr(error, "hint", None)
    field = getattr(error, "field", None)
    flag = flag_for(field, command)
    if flag is not None:
        # "lr must be > 0" reads "--lr must be > 0"; other sentences get the flag in front.
        for spelling in dict.fromkeys((field, field.rsplit(".", 1)[-1])):
            if re.match(rf"{re.escape(spelling)}\b(?![.])", message):
                message = flag + message[len(spelling):]
                break
        else:
            message = f"{flag}: {message}"
    text = flags_in(message, command) + (f" ({flags_in(hint, command)})" if hint else "")
    return " ".join(text.splitlines())


def flags_in(text: str, command: click.Command | None) -> str:
    """``text`` with each backticked field the command has a flag for written as that flag."""
    return _TICKED.sub(lambda m: flag_for(m.group(1), command) or m.group(0), text)


def os_error_line(error: OSError) -> str:
    """An OSError no library code worded (e.g. making a folder on a full disk): the file
    and the cause, never "unexpected"."""
    from ticketzoo.fileio import WRITE_CAUSES, storage_error

    if error.filename is not None and error.errno in WRITE_CAUSES:
        return storage_error(error, error.filename).message
    if error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    return error.strerror or str(error)

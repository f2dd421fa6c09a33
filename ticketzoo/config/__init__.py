"""One base for ticketzoo's frozen config dataclasses: ``to_dict``, strict ``from_dict``, ``hash``.

A config is a frozen dataclass that inherits :class:`Config`. Its fields say, through
``dataclasses.field(metadata=...)``, how they serialise:

* ``UNHASHED`` (``{"hash": False}``): *where* a run executes, not *what* it computes
  (device, threads); in :meth:`Config.to_dict`, left out of :meth:`Config.hash`.
* ``LATER`` (``{"later": True}``): added after the first release; left out of
  :meth:`Config.to_dict` (and so the hash) while at its default, so the hashes of every
  config written before the field existed (run folders, checkpoints) stay the same.

Fields a user sets on the command line are declared with :func:`option`, which adds the
option's help text (and flag, metavar, choices) to the field's metadata: the CLI makes its
flags from the fields (``ticketzoo.cli.options.config_specs``), as open_lth's
``Hparams.add_args`` does, so help and choices are written once, here, without torch.

Calling :meth:`Config.check_types` from ``__post_init__`` normalises values (an int for a
float field, a list for a tuple) and refuses a wrong type with a :class:`ConfigError`
naming the field; :meth:`Config.from_dict` also refuses unknown keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from typing import Any, ClassVar, Iterable, Mapping

from ticketzoo.errors import ConfigError

UNHASHED: Mapping[str, Any] = types.MappingProxyType({"hash": False})
LATER: Mapping[str, Any] = types.MappingProxyType({"later": True})


def option(default: Any = dataclasses.MISSING, *, help: str, flag: str | None = None,
           metavar: str | None = None, choices: tuple[str, ...] | None = None, hashed: bool = True,
           later: bool = False, default_factory: Any = dataclasses.MISSING) -> Any:
    """A config field with its command-line option: ``help``, ``flag`` (default ``--`` + the
    name with ``-`` for ``_``), ``metavar``, ``choices``; ``hashed=False`` is ``UNHASHED``,
    ``later=True`` is ``LATER``."""
    meta: dict[str, Any] = {"help": help}
    for key, value in (("flag", flag), ("metavar", metavar), ("choices", choices)):
        if value is not None:
            meta[key] = value
    if not hashed:
        meta["hash"] = False
    if later:
        meta["later"] = True
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata=types.MappingProxyType(meta))


class Config:
    """Mixin for frozen config dataclasses (see the module docstring)."""

    #: What one field is called in messages: "unknown training option(s): ...".
    config_label: ClassVar[str] = "option"

    # --- types -----------------------------------------------------------------------

    def check_types(self) -> None:
        """Normalise every field to its annotated type; a wrong type is a ConfigError."""
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            fixed = _coerce(hints[f.name], value, f.name)
            if fixed is not value:
                object.__setattr__(self, f.name, fixed)

    # --- dict ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; nested configs as dicts, tuples as lists, ``LATER`` fields
        only when not at their default."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("later") and value == _default(f):
                continue
            out[f.name] = _plain(value)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, prefix: str = ""):
        """Inverse of :meth:`to_dict`: missing keys take defaults; unknown keys and wrong
        types raise :class:`ConfigError` naming the field (dotted when nested)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{prefix.rstrip('.') or cls.__name__} must be a mapping, "
                              f"got {type(data).__name__}", field=prefix.rstrip(".") or None)
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown {cls.config_label}(s): {', '.join(prefix + u for u in unknown)}",
                              hint=f"valid: {', '.join(sorted(names))}", field=prefix + unknown[0],
                              value=data[unknown[0]])
        hints = _hints(cls)
        values = {}
        for key, value in data.items():
            tp = hints[key]
            sub = config_type(tp)
            if sub is not None and isinstance(value, Mapping):
                values[key] = sub.from_dict(value, prefix=f"{prefix}{key}.")
            else:
                values[key] = _coerce(tp, value, prefix + key)
        try:
            return cls(**values)
        except ConfigError as e:
            if prefix and e.field and not e.field.startswith(prefix):
                e.field = prefix + e.field
            raise

    # --- hash ------------------------------------------------------------------------

    def hashed_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` without the ``UNHASHED`` fields, at every level."""
        out = {}
        for f in dataclasses.fields(self):
            if not f.metadata.get("hash", True):
                continue
            value = getattr(self, f.name)
            if f.metadata.get("later") and value == _default(f):
                continue
            out[f.name] = value.hashed_dict() if isinstance(value, Config) else _plain(value)
        return out

    def hash(self) -> str:
        """sha256 hex of the canonical JSON of :meth:`hashed_dict`."""
        canonical = json.dumps(self.hashed_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def hashname(self) -> str:
        """The first 12 hex digits of :meth:`hash`: a stable folder name."""
        return self.hash()[:12]

    def settings_dict(self, *, varied: Iterable[str] = ()) -> dict[str, Any]:
        """The config's part of a resume :func:`fingerprint`: :meth:`to_dict` with the
        ``UNHASHED`` fields (and ``varied``: fields the caller varies itself) as ``None``
        and nested configs as their :meth:`hash`."""
        varied = set(varied)
        out = self.to_dict()
        for f in dataclasses.fields(self):
            if not f.metadata.get("hash", True) or f.name in varied:
                out[f.name] = None
            elif f.name in out and isinstance(getattr(self, f.name), Config):
                out[f.name] = getattr(self, f.name).hash()
        return out


def unhashed_fields(cls: type) -> tuple[str, ...]:
    """The names of ``cls``'s ``UNHASHED`` fields: where and how a run executes."""
    return tuple(f.name for f in dataclasses.fields(cls) if not f.metadata.get("hash", True))


def fingerprint(parts: Mapping[str, Any]) -> str:
    """sha256 hex of ``parts`` as sorted JSON: what a resumable run's results depend on
    (config :meth:`~Config.settings_dict`, data, parents), recorded beside them so that a
    resume with other settings is refused. The form is frozen: recorded values must match."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _plain(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def config_type(tp: Any) -> type[Config] | None:
    """The Config class in ``tp`` (``X`` or ``X | None``), else None."""
    for t in (tp, *typing.get_args(tp)):
        if isinstance(t, type) and issubclass(t, Config):
            return t
    return None


def _coerce(tp: Any, value: Any, name: str) -> Any:
    """``value`` as type ``tp`` (int -> float, list -> tuple), or ConfigError naming ``name``."""
    ok, fixed = fit(tp, value)
    if not ok:
        raise ConfigError(f"{name} must be {describe_type(tp)}, got {value!r}", field=name, value=value)
    return fixed


def fit(tp: Any, value: Any) -> tuple[bool, Any]:
    """``(True, value as tp)`` when ``value`` fits type ``tp`` (an int for a float, a list for a
    tuple; never a bool for a number), else ``(False, value)``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True, value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return True, None
        for a in args:
            if a is not type(None):
                ok, fixed = fit(a, value)
                if ok:
                    return True, fixed
        return False, value
    if origin is typing.Literal:
        return value in args, value
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            return False, value
        items = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
        if len(items) != len(value):
            return False, value
        out = []
        for item_tp, v in zip(items, value):
            ok, fixed = fit(item_tp, v)
            if not ok:
                return False, value
            out.append(fixed)
        out = tuple(out)
        return True, value if isinstance(value, tuple) and all(a is b for a, b in zip(out, value)) else out
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            return False, value
        return True, value if isinstance(value, dict) else dict(value)
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False, value
        return True, value if isinstance(value, float) else float(value)
    if isinstance(tp, type):
        return isinstance(value, tp), value
    return True, value


def describe_type(tp: Any) -> str:
    """``tp`` in words for messages: "an integer", "a list of 3 numbers", ..."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        parts = ["null" if a is type(None) else describe_type(a) for a in args]
        return " or ".join(parts) if len(parts) < 3 else f"{', '.join(parts[:-1])} or {parts[-1]}"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {describe_type(args[0]).split(' ', 1)[-1]}s"
        return f"a list of {len(args)} {describe_type(args[0]).split(' ', 1)[-1]}s"
    if origin is dict or tp is dict:
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, f"a {getattr(tp, '__name__', tp)}")

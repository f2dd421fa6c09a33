"""Ticket names: one rule, in the lowest module, for every reader and writer.

Names match ``[a-z0-9][a-z0-9._-]*`` (at most 96 characters, no ``..``): no slash and no
leading dot, so a name can never leave a registry folder.
"""

from __future__ import annotations

import re

from ticketzoo.errors import InvalidRefError, short

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,95}\Z")
NAME_RULE = "names use lowercase letters, digits, '.', '_' and '-', and start with a letter or digit"


def valid_name(name: object) -> bool:
    """Whether ``name`` is a valid ticket name."""
    return isinstance(name, str) and bool(NAME_RE.match(name)) and ".." not in name


def shown(text: object, limit: int = 80) -> str:
    """``repr(text)``, shortened: error messages echo user input, never thousands of characters."""
    return short(repr(text), limit)


_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def slug(text: object, limit: int = 96, empty: str = "data") -> str:
    """``text`` as a name part: lower-case, runs of other characters as ``-``, no ``..``, no
    leading or trailing ``-._``, at most ``limit`` characters; ``empty`` when nothing is left.
    Run folders, ticket names and fine-tuned ticket names are made with it."""
    out = _UNSAFE.sub("-", str(text).lower()).strip("-._")
    out = re.sub(r"\.{2,}", ".", out)[:limit].rstrip("-._")
    return out or empty


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid ticket name, else raise InvalidRefError."""
    if not valid_name(name):
        raise InvalidRefError(f"invalid ticket name {shown(name)}", ref=name, hint=NAME_RULE)
    return name


_FAMILY_SUFFIX = re.compile(r"-s\d+$")


def family_of(name: str) -> str:
    """The family a ticket name belongs to: the name without its ``-sNN`` sparsity suffix."""
    return _FAMILY_SUFFIX.sub("", name)


def family_members(prefix: str, names) -> list[str]:
    """Names of the family ``prefix``: exactly ``prefix-sNN`` (NN digits), by NN ascending."""
    pattern = re.compile(re.escape(prefix) + r"-s(\d+)$")
    found = [(int(m.group(1)), n) for n in set(names) if (m := pattern.fullmatch(n))]
    return [n for _, n in sorted(found)]

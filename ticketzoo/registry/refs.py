"""Ticket references: one strict parser for every form a user may type.

Forms:

* ``name`` / ``name@rev``                  a ticket in the local registry or the catalog
* ``hf://org/repo[/name][@rev]``           a ticket on the Hugging Face Hub
* ``file:///dir/name[@rev]``               a ticket in another local-layout registry
* a path to a ``.safetensors`` file or to a folder holding ``ticket.safetensors``

Names match ``[a-z0-9][a-z0-9._-]*`` (at most 96 characters): no slashes, no leading
dot, so a name can never escape the registry folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from ticketzoo.card import valid_name
from ticketzoo.errors import InvalidRefError

REV_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
HF_SEGMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
NAME_RULE = "names use lowercase letters, digits, '.', '_' and '-', and start with a letter or digit"


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid ticket name, else raise InvalidRefError."""
    if not valid_name(name):
        raise InvalidRefError(f"invalid ticket name {name!r}", ref=name, hint=NAME_RULE)
    return name


def _check_rev(rev: str, ref: str) -> str:
    if not REV_RE.match(rev) or ".." in rev:
        raise InvalidRefError(f"invalid revision {rev!r} in {ref!r}", ref=ref, hint="a revision is a hash, branch or tag")
    return rev


@dataclass(frozen=True)
class Ref:
    """A parsed reference. ``kind`` is ``name``, ``hf``, ``file`` or ``path``."""

    kind: str
    text: str
    name: str | None = None  # ticket name (for hf: within the repo, None = repo root)
    revision: str | None = None
    repo_id: str | None = None  # hf only: "org/repo"
    root: Path | None = None  # file registries: the registry folder
    path: Path | None = None  # path refs

    def __str__(self) -> str:
        return self.text


def _split_rev(body: str, ref: str) -> tuple[str, str | None]:
    if "@" not in body:
        return body, None
    body, rev = body.rsplit("@", 1)
    return body, _check_rev(rev, ref)


def parse_ref(text: str) -> Ref:
    """Parse a reference; errors say what is wrong and show the accepted forms."""
    forms = "use NAME, NAME@REV, hf://ORG/REPO[/NAME][@REV], file:///DIR/NAME or a path to a ticket file"
    if not isinstance(text, str) or not text.strip():
        raise InvalidRefError("empty ticket reference", ref=text, hint=forms)
    text = text.strip()
    if text.startswith("hf://"):
        body, rev = _split_rev(text[len("hf://") :], text)
        parts = body.split("/")
        if len(parts) not in (2, 3) or not all(HF_SEGMENT_RE.match(p) for p in parts[:2]):
            raise InvalidRefError(f"malformed hub reference {text!r}", ref=text, hint=forms)
        name = check_name(parts[2]) if len(parts) == 3 else None
        return Ref("hf", text, name=name, revision=rev, repo_id="/".join(parts[:2]))
    if text.startswith("file://"):
        body, rev = _split_rev(text, text)
        url = urlparse(body)
        if url.netloc not in ("", "localhost"):
            raise InvalidRefError(f"file URLs must be local: {text!r}", ref=text, hint="write file:///abs/dir/NAME")
        p = Path(unquote(url.path))
        return Ref("file", text, name=check_name(p.name), revision=rev, root=p.parent)
    if "://" in text:
        raise InvalidRefError(f"unsupported scheme in {text!r}", ref=text, hint=forms)
    p = Path(text).expanduser()
    if text.endswith(".safetensors") or "/" in text or text.startswith(".") or p.exists():
        return Ref("path", text, path=p)
    body, rev = _split_rev(text, text)
    return Ref("name", text, name=check_name(body), revision=rev)


def parse_registry_url(url: str) -> Ref:
    """Parse a ``--registry`` value: ``file:///dir`` or ``hf://org``/``hf://org/repo``."""
    hint = "use file:///abs/dir or hf://ORG (or hf://ORG/REPO for one repo of many tickets)"
    if url.startswith("file://"):
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
            raise InvalidRefError(f"invalid registry URL {url!r}", ref=url, hint=hint)
        return Ref("file", url, root=Path(unquote(parsed.path)))
    if url.startswith("hf://"):
        parts = [p for p in url[len("hf://") :].split("/") if p]
        if len(parts) not in (1, 2) or not all(HF_SEGMENT_RE.match(p) for p in parts):
            raise InvalidRefError(f"invalid registry URL {url!r}", ref=url, hint=hint)
        return Ref("hf", url, repo_id="/".join(parts))
    raise InvalidRefError(f"invalid registry URL {url!r}", ref=url, hint=hint)

"""Ticket references: one strict parser for every form a user may type.

Forms:

* ``name`` / ``name@rev``                  a ticket in the local registry or the catalog
* ``hf://org/repo[/name][@rev]``           a ticket on the Hugging Face Hub
* ``file:///dir/name[@rev]``               a ticket in another local-layout registry
* a path to a ``.safetensors`` file or to a folder holding ``ticket.safetensors``

A reference that is a valid ``name[@rev]`` is a name, even when the current folder holds
a file or folder of that name: a path is written as one (``./NAME``, ``/abs/NAME``,
``~/NAME``, anything with a ``/``, or ending in ``.safetensors``). ``file://`` URLs
cannot hold ``?`` or ``#`` (they would silently name another path): write ``%3F``, ``%23``.

Names match ``[a-z0-9][a-z0-9._-]*`` (at most 96 characters): no slashes, no leading
dot, so a name can never escape the registry folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from ticketzoo.errors import InvalidRefError
from ticketzoo.names import NAME_RULE, check_name, shown, valid_name  # noqa: F401 (re-exported)

REV_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}\Z")
HF_SEGMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}\Z")
#: Longer than any path the OS accepts (PATH_MAX is 4096 on Linux): refused before any file call.
MAX_REF_LEN = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check_rev(rev: str, ref: str) -> str:
    if not REV_RE.match(rev) or ".." in rev:
        raise InvalidRefError(f"invalid revision {shown(rev)} in {shown(ref)}", ref=ref,
                              hint="a revision is a hash, branch or tag")
    return rev


def _check_text(text: str, what: str) -> None:
    """Refuse what no file name or URL may hold: over-long input and control characters (NUL)."""
    if len(text) > MAX_REF_LEN:
        raise InvalidRefError(f"{what} {shown(text)} is too long (over {MAX_REF_LEN} characters)", ref=text[:200])
    if _CONTROL.search(text):
        raise InvalidRefError(f"{what} {shown(text)} contains a control character", ref=text[:200],
                              hint="names, URLs and paths cannot hold NUL, newlines or other control characters")


@dataclass(frozen=True)
class Ref:
    """A parsed reference. ``kind`` (``name``, ``hf``, ``file``, ``path``, or ``local`` for the local
    registry as a target) picks its backend in :func:`ticketzoo.registry.base.backend_for`."""

    kind: str
    text: str
    name: str | None = None  # ticket name (for hf: within the repo, None = repo root)
    revision: str | None = None
    repo_id: str | None = None  # hf only: "org/repo"
    root: Path | None = None  # file registries: the registry folder
    path: Path | None = None  # path refs
    setting: str | None = None  # registry targets: what named it ("registry" keyword or an environment variable)

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
    _check_text(text, "ticket reference")
    if text.startswith("hf://"):
        body, rev = _split_rev(text[len("hf://") :], text)
        parts = body.split("/")
        if len(parts) not in (2, 3) or not all(HF_SEGMENT_RE.match(p) for p in parts[:2]):
            raise InvalidRefError(f"malformed hub reference {shown(text)}", ref=text, hint=forms)
        name = check_name(parts[2]) if len(parts) == 3 else None
        return Ref("hf", text, name=name, revision=rev, repo_id="/".join(parts[:2]))
    if text.startswith("file://"):
        _check_plain_url(text, text)
        body, rev = _split_rev(text, text)
        url = urlparse(body)
        if url.netloc not in ("", "localhost"):
            raise InvalidRefError(f"file URLs must be local: {shown(text)}", ref=text,
                                  hint="write file:///abs/dir/NAME")
        path = unquote(url.path)
        _check_text(path, "file URL path")  # %00 unquotes to NUL
        p = Path(path)
        return Ref("file", text, name=check_name(p.name), revision=rev, root=p.parent)
    if "://" in text:
        raise InvalidRefError(f"unsupported scheme in {shown(text)}", ref=text, hint=forms)
    p = Path(text).expanduser()
    if text.endswith(".safetensors") or "/" in text or text.startswith((".", "~")):
        return Ref("path", text, path=p)
    body, rev = text.rsplit("@", 1) if "@" in text else (text, None)
    if valid_name(body) and (rev is None or (REV_RE.match(rev) and ".." not in rev)):
        return Ref("name", text, name=body, revision=rev)  # a name, whatever the current folder holds
    if path_exists(p):
        return Ref("path", text, path=p)
    body, rev = _split_rev(text, text)
    return Ref("name", text, name=check_name(body), revision=rev)


def _check_plain_url(url: str, ref: str) -> None:
    """``?`` and ``#`` would end a file URL's path (urlparse drops the rest): refuse them."""
    for char, code in (("?", "%3F"), ("#", "%23")):
        if char in url:
            raise InvalidRefError(f"{shown(url)}: a file:// URL cannot hold {char!r}: it would end the path "
                                  "there", ref=ref, hint=f"write {char!r} in a folder name as {code}")


def path_exists(p: Path) -> bool:
    """``p.exists()``, False for a name the OS refuses (too long, NUL) instead of raising."""
    try:
        return p.exists()
    except (OSError, ValueError):
        return False


def parse_registry_url(url: str, *, setting: str = "registry") -> Ref:
    """Parse a registry setting: ``file:///dir``, a plain folder path (the same thing), or
    ``hf://org``/``hf://org/repo``. ``setting`` names where the value came from in errors:
    the ``registry`` keyword (``--registry``), or an environment variable, whose value
    must not be a relative path (it would mean another folder in every directory)."""
    hint = "use file:///abs/dir (or a folder path) or hf://ORG (or hf://ORG/REPO for one repo of many tickets)"
    field = None if setting.isupper() else setting
    fields = {"field": field, "value": url} if field else {}
    if not isinstance(url, str) or not url.strip():
        raise InvalidRefError(f"invalid registry URL {shown(url)}", hint=hint, **fields)
    url = url.strip()
    _check_text(url, "registry URL")
    if url.startswith("file://"):
        _check_plain_url(url, url)
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
            raise InvalidRefError(f"invalid registry URL {shown(url)}", ref=url, hint=hint, **fields)
        path = unquote(parsed.path)
        _check_text(path, "registry URL path")  # %00 unquotes to NUL
        return Ref("file", url, root=Path(path), setting=setting)
    if url.startswith("hf://"):
        parts = [p for p in url[len("hf://") :].split("/") if p]
        if len(parts) not in (1, 2) or not all(HF_SEGMENT_RE.match(p) for p in parts):
            raise InvalidRefError(f"invalid registry URL {shown(url)}", ref=url, hint=hint, **fields)
        return Ref("hf", url, repo_id="/".join(parts), setting=setting)
    if "://" in url:
        raise InvalidRefError(f"unsupported scheme in registry URL {shown(url)}", ref=url, hint=hint, **fields)
    given = Path(url).expanduser()
    if field is None and not given.is_absolute():
        raise InvalidRefError(f"{shown(url)} is a relative path; a registry setting must be absolute",
                              ref=url, hint=f"set {setting} to /abs/dir, file:///abs/dir or hf://ORG")
    root = given.absolute()  # a plain folder: the file:// registry there
    return Ref("file", root.as_uri(), root=root, setting=setting)


def local_registry_ref(root: Path) -> Ref:
    """The local registry (``$TICKETZOO_HOME``) as a push/list target."""
    return Ref("local", "local", root=root)

"""Hub *test double*: the write half of a Hugging Face Hub, for ticketzoo's tests only.

This is NOT a Hub implementation. It implements exactly what ticketzoo's tests need
from ``huggingface_hub`` (verified against huggingface_hub 2.4.0) and nothing more:

* Downloads are served by **olah** (PyPI ``olah``, an HF mirror server) running in
  offline mode over a directory of local git repositories (its ``mirrors-path``).
  This module does not serve file bytes itself.
* Uploads are what olah lacks, so this module implements them, writing real git
  commits/tags/branches (via the ``git`` CLI) into the *same* repositories olah
  serves. Every file is stored as a regular git blob: the preupload answer is
  ``uploadMode: "regular"`` for all files, so content travels inline (base64) in the
  NDJSON commit payload and neither LFS nor Xet is ever involved.

Topology: ONE endpoint (``HF_ENDPOINT``). :class:`HubTestServer` listens on loopback;
it handles the write endpoints below itself and forwards every other request to olah
unchanged (a small reverse proxy). Before forwarding a read it fills three gaps of
olah 0.5.4's offline mirror mode, which otherwise answers all of them with
``401 RepoNotFound``:

* unknown revision of an existing repo   -> ``404`` + ``X-Error-Code: RevisionNotFound``
* missing file at an existing revision   -> ``404`` + ``X-Error-Code: EntryNotFound``
* ``/api/{type}/{org}/{name}`` (no revision; used by ``repo_info``/``repo_exists``)
  -> forwarded to olah as ``.../revision/main``

Write endpoints (all require ``Authorization: Bearer <token>``; a missing or unknown
token gets ``401`` with ``X-Error-Message: Invalid credentials in Authorization
header``, which huggingface_hub raises as a plain ``HfHubHTTPError``):

* ``POST   /api/repos/create``                     create_repo (initial commit: .gitattributes)
* ``DELETE /api/repos/delete``                     delete_repo
* ``POST   /api/{type}s/{org}/{name}/preupload/{rev}``  always ``uploadMode: regular``
* ``POST   /api/{type}s/{org}/{name}/commit/{rev}``     NDJSON: header, file, deletedFile, deletedFolder
* ``POST   /api/{type}s/{org}/{name}/tag/{rev}``        create_tag (annotated if a message is given)
* ``DELETE /api/{type}s/{org}/{name}/tag/{tag}``        delete_tag
* ``POST   /api/{type}s/{org}/{name}/branch/{branch}``  create_branch
* ``DELETE /api/{type}s/{org}/{name}/branch/{branch}``  delete_branch

Also answered here (no auth): ``POST /api/validate-yaml`` (accepts everything; README
metadata is not validated), ``GET /api/whoami-v2`` (token required) and ``GET /api/models``
(``list_models``; only ``author=`` and ``filter=`` are honoured, ``filter`` as a tag the
default branch's ``README.md`` front matter lists, one page, no other fields than
``id``/``modelId``/``sha``/``tags``).

Not supported (clear 4xx/501 answers): LFS/Xet uploads, pull requests (``create_pr``),
private/gated visibility (every repo is readable), repo settings, spaces features.

Layout of the repository root (olah's ``mirrors-path``)::

    <root>/models/<org>/<name>      bare git repo of model repo "<org>/<name>"
    <root>/datasets/<org>/<name>    ... datasets, spaces likewise

Standard library only. Run ``python upload_server.py --help`` for a manual stack.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Mapping
from urllib.parse import unquote, urlsplit

DEFAULT_BRANCH = "main"
# url segment <-> repo_type as used by huggingface_hub
URL_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
TYPE_URLS = {v: k for k, v in URL_TYPES.items()}
_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
_INITIAL_GITATTRIBUTES = (
    b"# Created by ticketzoo's test hub server (tests/hubserver/upload_server.py).\n"
    b"# Files in this repository are stored as regular git blobs (no LFS, no Xet).\n"
)
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"


class HubError(Exception):
    """An HF-style error answer: status + X-Error-Code / X-Error-Message headers."""

    def __init__(self, status: int, message: str, code: str | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


# --------------------------------------------------------------------------- git


class GitRepos:
    """Bare git repositories under ``root`` in olah's mirror layout, driven by the git CLI."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.lock = threading.RLock()  # one writer at a time, server-wide

    # -- paths / names
    def path(self, repo_type: str, repo_id: str) -> Path:
        org, name = split_repo_id(repo_id)
        return self.root / TYPE_URLS[repo_type] / org / name

    def exists(self, repo_type: str, repo_id: str) -> bool:
        return (self.path(repo_type, repo_id) / "HEAD").is_file()

    # -- plumbing
    @staticmethod
    def _env(user: str = "hubtest", index: str | None = None) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(
            GIT_CONFIG_NOSYSTEM="1",
            GIT_CONFIG_GLOBAL=os.devnull,
            GIT_TERMINAL_PROMPT="0",
            GIT_AUTHOR_NAME=user,
            GIT_AUTHOR_EMAIL=f"{user}@hubtest.invalid",
            GIT_COMMITTER_NAME=user,
            GIT_COMMITTER_EMAIL=f"{user}@hubtest.invalid",
        )
        if index is not None:  # index ops on a bare repo need *a* work tree; it stays empty
            env["GIT_INDEX_FILE"] = index
            env["GIT_WORK_TREE"] = os.path.dirname(index)
        return env

    def git(self, repo: Path, *args: str, input: bytes | None = None, check: bool = True,
            user: str = "hubtest", index: str | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            ["git", "--git-dir", str(repo), *args],
            input=input, capture_output=True, env=self._env(user, index),
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
        return proc

    def resolve(self, repo: Path, rev: str) -> str | None:
        """Commit sha for a branch / tag / (short) sha, or None."""
        if not rev or rev.startswith("-") or "\x00" in rev:
            return None
        p = self.git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
        return p.stdout.decode().strip() if p.returncode == 0 else None

    def ref_sha(self, repo: Path, ref: str) -> str | None:
        p = self.git(repo, "rev-parse", "--verify", "--quiet", ref, check=False)
        return p.stdout.decode().strip() if p.returncode == 0 else None

    def blob_sha(self, repo: Path, commit: str, path: str) -> str | None:
        p = self.git(repo, "rev-parse", "--verify", "--quiet", f"{commit}:{path}", check=False)
        if p.returncode != 0:
            return None
        sha = p.stdout.decode().strip()
        kind = self.git(repo, "cat-file", "-t", sha, check=False).stdout.decode().strip()
        return sha if kind == "blob" else None

    def init(self, repo_type: str, repo_id: str, user: str = "hubtest") -> str:
        """Create the bare repo with an initial commit (like the Hub does); return its sha."""
        path = self.path(repo_type, repo_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "--bare", "-b", DEFAULT_BRANCH, str(path)],
                       check=True, capture_output=True, env=self._env(user))
        return self.commit(path, DEFAULT_BRANCH, {".gitattributes": _INITIAL_GITATTRIBUTES},
                           "initial commit", user=user)

    def commit(self, repo: Path, branch: str, changes: Mapping[str, bytes | None], message: str,
               *, user: str = "hubtest", parent: str | None = None,
               deleted_folders: tuple[str, ...] = (), ref: str | None = None) -> str:
        """Commit ``changes`` (path -> bytes, or None to delete) on top of ``parent``.

        ``ref`` (default ``refs/heads/<branch>``) is moved to the new commit with a
        compare-and-swap against its old value. With no ``parent`` the ref's current
        commit is used (a missing ref means a root commit).
        """
        ref = ref or f"refs/heads/{branch}"
        with self.lock, tempfile.TemporaryDirectory() as tmp:
            index = os.path.join(tmp, "index")
            old = self.ref_sha(repo, ref)
            base = parent if parent is not None else old
            if base:
                self.git(repo, "read-tree", base, index=index)
            for folder in deleted_folders:
                listed = self.git(repo, "ls-files", "-z", "--", folder.rstrip("/") + "/",
                                  index=index).stdout.split(b"\0")
                files = [f.decode() for f in listed if f]
                if not files:
                    raise HubError(404, f"A folder with this name doesn't exist: {folder}", "EntryNotFound")
                for f in files:
                    self.git(repo, "update-index", "--force-remove", "--", f, index=index)
            for p, content in changes.items():
                if content is None:
                    if not self.git(repo, "ls-files", "--", p, index=index).stdout.strip():
                        raise HubError(404, f"A file with this name doesn't exist: {p}", "EntryNotFound")
                    self.git(repo, "update-index", "--force-remove", "--", p, index=index)
                else:
                    blob = self.git(repo, "hash-object", "-w", "--stdin", input=content).stdout.decode().strip()
                    self.git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{p}", index=index)
            tree = self.git(repo, "write-tree", index=index).stdout.decode().strip()
            args = ["commit-tree", tree] + (["-p", base] if base else [])
            new = self.git(repo, *args, input=message.encode(), user=user).stdout.decode().strip()
            self.git(repo, "update-ref", "-m", "hubtest", ref, new, old or "")
            return new


def split_repo_id(repo_id: str) -> tuple[str, str]:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(_NAME_RE.match(p) and ".." not in p for p in parts):
        raise HubError(400, f"Invalid repo id {repo_id!r} (this test server needs 'org/name')")
    return parts[0], parts[1]


def _check_ref_name(name: str) -> str:
    if (not name or name.startswith(("-", "/")) or ".." in name or name.endswith((".lock", "/"))
            or re.search(r"[\x00-\x20~^:?*\[\\]", name) or "//" in name or "@{" in name):
        raise HubError(400, f"Invalid reference name {name!r}")
    return name


def _check_path(path: str) -> str:
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..", ".git") for p in parts):
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return path


# --------------------------------------------------------------------------- HTTP

_REPO = r"/api/(?P<type>models|datasets|spaces)/(?P<org>[^/]+)/(?P<name>[^/]+)"
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
               "trailer", "transfer-encoding", "upgrade", "content-length", "date", "server", "host"}


@dataclass
class ServerConfig:
    repos: GitRepos
    olah_url: str                      # e.g. http://127.0.0.1:12345
    tokens: dict = field(default_factory=dict)  # token -> user name
    request_log: list = field(default_factory=list)  # (method, path, status), for debugging


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ticketzoo-hubtest/0"
    timeout = 60
    cfg: ServerConfig  # set on the subclass built by HubTestServer

    # quiet by default; HubTestServer keeps a structured request_log instead
    def log_message(self, format, *args):  # noqa: A002
        pass

    # ---- plumbing
    def _base(self) -> str:
        return f"http://{self.headers.get('Host') or '%s:%d' % self.server.server_address[:2]}"

    def _read_body(self) -> None:
        """Read the whole request body up front, so an early error answer never leaves
        unread bytes on a keep-alive connection."""
        self._raw_body = b""
        n = self.headers.get("Content-Length")
        if n is not None:
            self._raw_body = self.rfile.read(int(n))
        elif self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            raise HubError(411, "chunked request bodies are not supported by this test server")

    def _body(self) -> bytes:
        return self._raw_body

    def _json_body(self) -> dict:
        try:
            data = json.loads(self._body() or b"{}")
        except ValueError:
            raise HubError(400, "Invalid JSON body") from None
        if not isinstance(data, dict):
            raise HubError(400, "JSON body must be an object")
        return data

    def _send(self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None,
              content_type: str | None = "application/json") -> None:
        self.cfg.request_log.append((self.command, self.path, status))  # before the client sees it
        self.send_response(status)
        hdrs = dict(headers or {})
        if content_type and body and not any(k.lower() == "content-type" for k in hdrs):
            hdrs["Content-Type"] = content_type
        for k, v in hdrs.items():
            self.send_header(k, v)
        if not any(k.lower() == "content-length" for k in hdrs):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _send_json(self, status: int, obj) -> None:
        self._send(status, json.dumps(obj).encode())

    def _send_error(self, err: HubError) -> None:
        headers = {"X-Error-Message": err.message.replace("\n", " ")}
        if err.code:
            headers["X-Error-Code"] = err.code
        self._send(err.status, json.dumps({"error": err.message, **err.extra}).encode(), headers)

    def _user(self) -> str:
        auth = self.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if not token or token not in self.cfg.tokens:
            raise HubError(401, INVALID_CREDENTIALS)
        return self.cfg.tokens[token]

    # ---- dispatch
    def do_GET(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def _dispatch(self) -> None:
        path = urlsplit(self.path).path
        try:
            self._read_body()
            for method, rx, fn in _ROUTES:
                if method == self.command:
                    m = rx.fullmatch(path)
                    if m:
                        return fn(self, **{k: unquote(v) for k, v in m.groupdict().items()})
            if self.command in ("GET", "HEAD") or (self.command == "POST" and "/paths-info/" in path):
                return self._read(path)
            raise HubError(501, f"{self.command} {path} is not implemented by ticketzoo's test hub server")
        except HubError as e:
            self._send_error(e)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # pragma: no cover - surfaced to the client as a 500
            self._send_error(HubError(500, f"test hub server error: {type(e).__name__}: {e}"))

    # ---- reads: fill olah's offline-mode gaps, then proxy
    def _read(self, path: str) -> None:
        repos = self.cfg.repos
        forward = self.path
        m = re.fullmatch(_REPO + r"(?P<rest>/.*)?", path)
        if m:
            repo_type, repo_id = URL_TYPES[m["type"]], f"{unquote(m['org'])}/{unquote(m['name'])}"
            rest = m["rest"] or ""
            if self._known(repo_type, repo_id):
                repo = repos.path(repo_type, repo_id)
                if rest in ("", "/"):  # repo info at the default branch
                    query = urlsplit(self.path).query
                    forward = f"{path.rstrip('/')}/revision/{DEFAULT_BRANCH}" + (f"?{query}" if query else "")
                else:
                    r = re.match(r"/(revision|tree|paths-info|commits)/([^/]+)", rest)
                    if r and repos.resolve(repo, unquote(r[2])) is None:
                        raise HubError(404, f"Invalid rev id: {unquote(r[2])}", "RevisionNotFound")
        else:
            m = re.fullmatch(r"/(?:(?P<type>datasets|spaces)/)?(?P<org>[^/]+)/(?P<name>[^/]+)"
                             r"/resolve/(?P<rev>[^/]+)/(?P<file>.+)", path)
            if m:
                repo_type = URL_TYPES[m["type"]] if m["type"] else "model"
                repo_id = f"{unquote(m['org'])}/{unquote(m['name'])}"
                if self._known(repo_type, repo_id):
                    repo = repos.path(repo_type, repo_id)
                    rev, file = unquote(m["rev"]), unquote(m["file"])
                    sha = repos.resolve(repo, rev)
                    if sha is None:
                        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
                    if repos.blob_sha(repo, sha, file) is None:
                        raise HubError(404, f'{file} does not exist on "{rev}"', "EntryNotFound")
        self._proxy(forward)

    def _known(self, repo_type: str, repo_id: str) -> bool:
        try:
            return self.cfg.repos.exists(repo_type, repo_id)
        except HubError:
            return False

    def _proxy(self, target: str) -> None:
        olah = urlsplit(self.cfg.olah_url)
        body = self._body() if self.command == "POST" else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        conn = http.client.HTTPConnection(olah.hostname, olah.port, timeout=60)
        try:
            conn.request(self.command, target, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            out = {}
            for k, v in resp.getheaders():
                if k.lower() == "location" and v.startswith(self.cfg.olah_url):
                    v = self._base() + v[len(self.cfg.olah_url):]
                if k.lower() not in _HOP_BY_HOP:
                    out[k] = v
            if self.command == "HEAD" and resp.getheader("Content-Length") is not None:
                out["Content-Length"] = resp.getheader("Content-Length")
            self._send(resp.status, data, out, content_type=None)
        finally:
            conn.close()

    # ---- writes
    def _repo_for_write(self, type_url: str, org: str, name: str) -> tuple[str, str, Path]:
        repo_type, repo_id = URL_TYPES[type_url], f"{org}/{name}"
        if not self.cfg.repos.exists(repo_type, repo_id):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo_type, repo_id, self.cfg.repos.path(repo_type, repo_id)

    def create_repo(self) -> None:
        user = self._user()
        data = self._json_body()
        name, org = data.get("name"), data.get("organization") or user
        repo_type = data.get("type") or "model"
        if repo_type not in TYPE_URLS:
            raise HubError(400, f"Invalid repo type {repo_type!r}")
        repo_id = f"{org}/{name}"
        split_repo_id(repo_id)
        prefix = "" if repo_type == "model" else TYPE_URLS[repo_type] + "/"
        url = f"{self._base()}/{prefix}{repo_id}"
        with self.cfg.repos.lock:
            if self.cfg.repos.exists(repo_type, repo_id):
                # the body carries "url": create_repo(exist_ok=True) reads it from the 409
                raise HubError(409, f"You already created this {repo_type} repo", url=url)
            self.cfg.repos.init(repo_type, repo_id, user=user)
        self._send_json(200, {"url": url, "name": repo_id, "id": repo_id})

    def delete_repo(self) -> None:
        user = self._user()
        data = self._json_body()
        repo_type = data.get("type") or "model"
        repo_id = f"{data.get('organization') or user}/{data.get('name')}"
        with self.cfg.repos.lock:
            if repo_type not in TYPE_URLS or not self.cfg.repos.exists(repo_type, repo_id):
                raise HubError(404, "Repository not found", "RepoNotFound")
            shutil.rmtree(self.cfg.repos.path(repo_type, repo_id))
        self._send(200, b"")

    def validate_yaml(self) -> None:
        self._body()
        self._send_json(200, {"errors": [], "warnings": []})

    def whoami(self) -> None:
        user = self._user()
        self._send_json(200, {"type": "user", "id": user, "name": user, "fullname": user,
                              "orgs": [], "auth": {"type": "access_token",
                                                   "accessToken": {"displayName": "hubtest", "role": "write"}}})

    def list_models(self) -> None:
        from urllib.parse import parse_qs

        query = parse_qs(urlsplit(self.path).query)
        authors = query.get("author", [])
        wanted = set(query.get("filter", []))
        root = self.cfg.repos.root / TYPE_URLS["model"]
        out = []
        for org_dir in sorted(root.iterdir()) if root.is_dir() else []:
            if authors and org_dir.name not in authors:
                continue
            for repo in sorted(p for p in org_dir.iterdir() if p.is_dir()):
                sha = self.cfg.repos.resolve(repo, DEFAULT_BRANCH)
                tags = _readme_tags(self.cfg.repos, repo, sha) if sha else []
                if wanted and not wanted <= set(tags):
                    continue
                repo_id = f"{org_dir.name}/{repo.name}"
                out.append({"id": repo_id, "modelId": repo_id, "sha": sha, "tags": tags, "private": False})
        self._send_json(200, out)

    def preupload(self, type: str, org: str, name: str, rev: str) -> None:  # noqa: A002
        self._user()
        _, _, repo = self._repo_for_write(type, org, name)
        data = self._json_body()
        sha = self.cfg.repos.resolve(repo, rev)
        if sha is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        files = []
        for f in data.get("files", []):
            path = _check_path(f.get("path", ""))
            files.append({"path": path, "uploadMode": "regular", "shouldIgnore": False,
                          "oid": self.cfg.repos.blob_sha(repo, sha, path)})
        self._send_json(200, {"files": files, "commitOid": sha})

    def commit(self, type: str, org: str, name: str, rev: str) -> None:  # noqa: A002
        user = self._user()
        _, repo_id, repo = self._repo_for_write(type, org, name)
        query = urlsplit(self.path).query
        if re.search(r"(^|&)create_pr=(1|true)", query):
            raise HubError(501, "Pull requests (create_pr) are not supported by ticketzoo's test hub server")
        header, changes, folders = None, {}, []
        for line in self._body().splitlines():
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                key, value = item["key"], item["value"]
            except (ValueError, KeyError, TypeError):
                raise HubError(400, "Malformed NDJSON commit payload") from None
            if key == "header":
                header = value
            elif key == "file":
                if value.get("encoding", "base64") != "base64":
                    raise HubError(400, f"Unsupported encoding {value.get('encoding')!r}")
                changes[_check_path(value["path"])] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                changes[_check_path(value["path"])] = None
            elif key == "deletedFolder":
                folders.append(_check_path(value["path"].rstrip("/")))
            elif key == "lfsFile":
                raise HubError(400, "LFS/Xet files are not supported by ticketzoo's test hub server "
                                    "(preupload always answers uploadMode=regular)")
            else:
                raise HubError(400, f"Unknown commit operation {key!r}")
        if not header or not header.get("summary"):
            raise HubError(400, "Commit header with a summary is required")
        message = header["summary"] + (f"\n\n{header['description']}" if header.get("description") else "")
        repos = self.cfg.repos
        with repos.lock:
            head = repos.ref_sha(repo, f"refs/heads/{rev}")
            if head is None:
                raise HubError(404, f"Invalid rev id: {rev} (commits go to an existing branch)",
                               "RevisionNotFound")
            parent = header.get("parentCommit")
            if parent and not head.startswith(parent.lower()):
                raise HubError(412, f"A commit has happened since {parent}: {rev} is at {head}")
            sha = repos.commit(repo, rev, changes, message, user=user, deleted_folders=tuple(folders))
        self._send_json(200, {"success": True, "commitOid": sha, "commitMessage": message,
                              "commitUrl": f"{self._repo_url(type, repo_id)}/commit/{sha}",
                              "hookOutput": ""})

    def _repo_url(self, type_url: str, repo_id: str) -> str:
        prefix = "" if type_url == "models" else type_url + "/"
        return f"{self._base()}/{prefix}{repo_id}"

    def create_tag(self, type: str, org: str, name: str, rev: str) -> None:  # noqa: A002
        user = self._user()
        _, _, repo = self._repo_for_write(type, org, name)
        data = self._json_body()
        tag = _check_ref_name(str(data.get("tag", "")))
        repos = self.cfg.repos
        with repos.lock:
            sha = repos.resolve(repo, rev)
            if sha is None:
                raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            if repos.ref_sha(repo, f"refs/tags/{tag}") is not None:
                raise HubError(409, f"Tag {tag} already exists")
            args = ["tag", "-a", "-m", data["message"]] if data.get("message") else ["tag"]
            repos.git(repo, *args, "--", tag, sha, user=user)
        self._send_json(200, {"success": True})

    def delete_tag(self, type: str, org: str, name: str, rev: str) -> None:  # noqa: A002
        self._delete_ref(type, org, name, "tags", rev)

    def create_branch(self, type: str, org: str, name: str, rev: str) -> None:  # noqa: A002
        self._user()
        _, _, repo = self._repo_for_write(type, org, name)
        data = self._json_body()
        branch = _check_ref_name(rev)
        start = data.get("startingPoint") or DEFAULT_BRANCH
        repos = self.cfg.repos
        with repos.lock:
            sha = repos.resolve(repo, start)
            if sha is None:
                raise HubError(404, f"Invalid rev id: {start}", "RevisionNotFound")
            if repos.ref_sha(repo, f"refs/heads/{branch}") is not None:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            repos.git(repo, "update-ref", f"refs/heads/{branch}", sha, "")
        self._send_json(200, {"success": True})

    def delete_branch(self, type: str, org: str, name: str, rev: str) -> None:  # noqa: A002
        if rev == DEFAULT_BRANCH:
            raise HubError(403, "Cannot delete the default branch")
        self._delete_ref(type, org, name, "heads", rev)

    def _delete_ref(self, type_url: str, org: str, name: str, kind: str, ref: str) -> None:
        self._user()
        _, _, repo = self._repo_for_write(type_url, org, name)
        full = f"refs/{kind}/{_check_ref_name(ref)}"
        with self.cfg.repos.lock:
            if self.cfg.repos.ref_sha(repo, full) is None:
                raise HubError(404, f"Invalid rev id: {ref}", "RevisionNotFound")
            self.cfg.repos.git(repo, "update-ref", "-d", full)
        self._send(200, b"")


def _readme_tags(repos: GitRepos, repo: Path, sha: str) -> list[str]:
    """The ``tags:`` list and ``library_name`` of a README's YAML front matter (a plain
    line scan: the test server has no YAML parser, and our cards write block lists)."""
    p = repos.git(repo, "show", f"{sha}:README.md", check=False)
    if p.returncode != 0:
        return []
    lines = p.stdout.decode("utf-8", "replace").splitlines()
    if not lines or lines[0].strip() != "---":
        return []
    tags, in_tags = [], False
    for line in lines[1:]:
        if line.strip() == "---":
            break
        if line.startswith("library_name:"):
            tags.append(line.split(":", 1)[1].strip())
        if in_tags and line.lstrip().startswith("- "):
            tags.append(line.lstrip()[2:].strip())
            continue
        in_tags = line.startswith("tags:")
    return tags


def _route(method: str, pattern: str, fn) -> tuple:
    return method, re.compile(pattern), fn


_ROUTES = [
    _route("POST", r"/api/repos/create", _Handler.create_repo),
    _route("DELETE", r"/api/repos/delete", _Handler.delete_repo),
    _route("POST", r"/api/validate-yaml", _Handler.validate_yaml),
    _route("GET", r"/api/whoami-v2", _Handler.whoami),
    _route("GET", r"/api/models", _Handler.list_models),
    _route("POST", _REPO + r"/preupload/(?P<rev>[^/]+)", _Handler.preupload),
    _route("POST", _REPO + r"/commit/(?P<rev>[^/]+)", _Handler.commit),
    _route("POST", _REPO + r"/tag/(?P<rev>[^/]+)", _Handler.create_tag),
    _route("DELETE", _REPO + r"/tag/(?P<rev>[^/]+)", _Handler.delete_tag),
    _route("POST", _REPO + r"/branch/(?P<rev>[^/]+)", _Handler.create_branch),
    _route("DELETE", _REPO + r"/branch/(?P<rev>[^/]+)", _Handler.delete_branch),
]


class HubTestServer:
    """The front server (one HF endpoint): writes handled here, reads proxied to olah."""

    def __init__(self, repos: GitRepos, olah_url: str, tokens: Mapping[str, str],
                 host: str = "127.0.0.1", port: int = 0):
        self.config = ServerConfig(repos=repos, olah_url=olah_url.rstrip("/"), tokens=dict(tokens))
        handler = type("HubTestHandler", (_Handler,), {"cfg": self.config})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "HubTestServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="hubtest-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join(5)


# --------------------------------------------------------------------------- olah


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def default_olah_executable() -> str:
    venv = os.environ.get("TICKETZOO_OLAH_VENV", "/work/olah-venv")
    return os.environ.get("TICKETZOO_OLAH") or os.path.join(venv, "bin", "olah-cli")


class OlahProcess:
    """olah in offline mode serving ``mirrors_root`` on a free loopback port."""

    def __init__(self, executable: str, mirrors_root: str | os.PathLike, workdir: str | os.PathLike,
                 host: str = "127.0.0.1", port: int | None = None):
        self.executable, self.host = executable, host
        self.port = port or free_port(host)
        self.workdir = Path(workdir)
        self.mirrors_root = Path(mirrors_root)
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / "olah.log"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> "OlahProcess":
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "olah.toml"
        # offline + an unroutable upstream: olah never leaves loopback.
        cfg.write_text(
            "[basic]\n"
            f'host = "{self.host}"\nport = {self.port}\n'
            f"repos-path = {json.dumps(str(self.workdir / 'cache'))}\n"
            f"mirrors-path = [{json.dumps(str(self.mirrors_root))}]\n"
            'hf-scheme = "http"\nhf-netloc = "127.0.0.1:9"\nhf-lfs-netloc = "127.0.0.1:9"\n'
            f'mirror-scheme = "http"\nmirror-netloc = "{self.host}:{self.port}"\n'
            f'mirror-lfs-netloc = "{self.host}:{self.port}"\n'
            "metadata-cache-ttl = 0\n"
            "[accessibility]\noffline = true\n"
        )
        env = dict(os.environ, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
                   HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", PYTHONUNBUFFERED="1")
        for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
                  "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
            env.pop(k, None)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.executable, "-c", str(cfg), "--log-path", str(self.workdir / "logs")],
            cwd=self.workdir, stdout=self._log, stderr=subprocess.STDOUT, env=env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"olah exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=2)
                conn.request("GET", "/api/models/hubtest-ready/probe/revision/main")
                conn.getresponse().read()
                conn.close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"olah did not start within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if getattr(self, "_log", None):
            self._log.close()


# --------------------------------------------------------------------------- stack


class HubStack:
    """olah + :class:`HubTestServer` over one repository root: what the tests talk to.

    ``endpoint`` is the single URL to use as ``HF_ENDPOINT`` / ``HfApi(endpoint=...)``.
    """

    def __init__(self, workdir: str | os.PathLike, olah_executable: str | None = None,
                 token: str = "hf_hubtest_write_token", user: str = "hubtest"):
        self.workdir = Path(workdir)
        self.root = self.workdir / "repos"            # olah mirrors-path
        self.root.mkdir(parents=True, exist_ok=True)
        self.token, self.user = token, user
        self.repos = GitRepos(self.root)
        self.olah = OlahProcess(olah_executable or default_olah_executable(), self.root, self.workdir / "olah")
        self.server: HubTestServer | None = None

    def start(self) -> "HubStack":
        self.olah.start()
        try:
            self.server = HubTestServer(self.repos, self.olah.url, {self.token: self.user}).start()
        except BaseException:
            self.olah.stop()
            raise
        return self

    def stop(self) -> None:
        if self.server:
            self.server.stop()
        self.olah.stop()

    def __enter__(self) -> "HubStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        assert self.server is not None, "stack not started"
        return self.server.url

    @property
    def olah_url(self) -> str:
        return self.olah.url

    @property
    def request_log(self) -> list:
        return self.server.config.request_log if self.server else []

    # ---- direct git helpers (bypass HTTP; for arranging test situations)
    def repo_path(self, repo_id: str, repo_type: str = "model") -> Path:
        return self.repos.path(repo_type, repo_id)

    def create_repo_with_files(self, repo_id: str, files: Mapping[str, bytes], tag: str | None = None,
                               repo_type: str = "model", message: str = "Add files") -> str:
        """Create ``repo_id`` (if needed) and commit ``files`` on main; optionally tag it. Returns the sha."""
        with self.repos.lock:
            if not self.repos.exists(repo_type, repo_id):
                self.repos.init(repo_type, repo_id, user=self.user)
            path = self.repos.path(repo_type, repo_id)
            sha = self.repos.commit(path, DEFAULT_BRANCH, {_check_path(k): v for k, v in files.items()},
                                    message, user=self.user)
            if tag:
                self.repos.git(path, "tag", "--", _check_ref_name(tag), sha)
        return sha

    def tamper(self, repo_id: str, filename: str, new_bytes: bytes, revision: str = DEFAULT_BRANCH,
               repo_type: str = "model") -> str:
        """Replace ``filename`` behind ``revision`` with ``new_bytes`` by a new git commit.

        A branch gets a new commit on top; a tag is force-moved to a new commit whose
        parent is the tagged one (a re-pointed tag). Returns the new commit sha. A full
        commit sha cannot be re-pointed: use :meth:`corrupt_blob` for that case.
        """
        path = self.repos.path(repo_type, repo_id)
        with self.repos.lock:
            if self.repos.ref_sha(path, f"refs/heads/{revision}"):
                return self.repos.commit(path, revision, {filename: new_bytes}, f"tamper {filename}",
                                         user="tamperer")
            if self.repos.ref_sha(path, f"refs/tags/{revision}"):
                base = self.repos.resolve(path, revision)
                new = self.repos.commit(path, revision, {filename: new_bytes}, f"tamper {filename}",
                                        user="tamperer", parent=base, ref="refs/hubtest/tamper")
                self.repos.git(path, "update-ref", "-d", "refs/hubtest/tamper")
                self.repos.git(path, "update-ref", f"refs/tags/{revision}", new)
                return new
        raise ValueError(f"{revision!r} is neither a branch nor a tag of {repo_id}; use corrupt_blob()")

    def corrupt_blob(self, repo_id: str, filename: str, new_bytes: bytes, revision: str = DEFAULT_BRANCH,
                     repo_type: str = "model") -> str:
        """Overwrite the stored git object of ``filename`` at ``revision`` in place (bit rot).

        Commit shas, ETag and X-Repo-Commit stay the same while the served bytes change:
        the case only a client-side content hash check can catch. Returns the blob sha.
        """
        path = self.repos.path(repo_type, repo_id)
        sha = self.repos.resolve(path, revision)
        blob = sha and self.repos.blob_sha(path, sha, filename)
        if not blob:
            raise FileNotFoundError(f"{filename} at {revision} in {repo_id}")
        obj = path / "objects" / blob[:2] / blob[2:]
        if not obj.is_file():
            raise RuntimeError(f"blob {blob} is packed; cannot corrupt it in place")
        obj.chmod(0o644)
        obj.write_bytes(zlib.compress(b"blob %d\x00" % len(new_bytes) + new_bytes))
        return blob


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run olah + ticketzoo's test hub server on loopback (manual use).")
    ap.add_argument("--workdir", default=None, help="directory for repos/ and olah state (default: temp dir)")
    ap.add_argument("--olah", default=default_olah_executable(), help="path to olah-cli")
    ap.add_argument("--token", default="hf_hubtest_write_token")
    args = ap.parse_args(argv)
    workdir = args.workdir or tempfile.mkdtemp(prefix="hubtest-")
    with HubStack(workdir, args.olah, token=args.token) as stack:
        print(f"HF_ENDPOINT={stack.endpoint}\nHF_TOKEN={stack.token}\nrepos: {stack.root}\n"
              f"olah: {stack.olah_url} (log {stack.olah.log_path})", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

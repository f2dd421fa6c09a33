"""The Hugging Face Hub backend: ``push`` and ``pull`` through ``huggingface_hub``.

Repo layout (see ``docs/HUB.md``) is the local registry's revision folder, unchanged:

* ``--registry hf://ORG`` (default): one ticket per repo ``ORG/NAME``, files at the root::

      ticket.safetensors
      README.md             model card; front matter ``ticketzoo: {sha256, size, ...}``

* ``--registry hf://ORG/REPO``: a family repo, one folder per ticket plus an index card::

      README.md             lists the family (front matter ``ticketzoo: {family: [...]}``)
      NAME/ticket.safetensors
      NAME/README.md

Pulls go through ``hf_hub_download`` and the Hugging Face cache, so ``HF_HOME``,
``HF_HUB_CACHE``, ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and ``HF_TOKEN`` behave as
documented. ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` are read here at call time (the
library reads them once, at import). Requests wait at most ``$TICKETZOO_HUB_TIMEOUT``
seconds (:mod:`.hub_http`). A push is one commit. The token is never printed.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ticketzoo.errors import IntegrityError, InvalidRefError, TicketFormatError, TicketNotFoundError
from ticketzoo.fileformat import TICKET_FILE
from ticketzoo.folder import README, read_entry, verify_entry, write_ticket_folder
from ticketzoo.registry.base import Pushed
from ticketzoo.registry.hub_errors import NoTicketError, Target, offline_push, translated
from ticketzoo.registry.hub_http import bounded

if TYPE_CHECKING:
    from ticketzoo.ticket import Ticket

COMMIT_RE = re.compile(r"^[0-9a-f]{40}\Z")
_TRUE = {"1", "ON", "YES", "TRUE"}


def _endpoint() -> str | None:
    value = os.environ.get("HF_ENDPOINT", "").strip().rstrip("/")
    return value or None


def _offline() -> bool:
    from huggingface_hub import constants

    if os.environ.get("TICKETZOO_OFFLINE", "").upper() in _TRUE:  # ticketzoo's own switch (issue 19)
        return True
    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    return (env or "").upper() in _TRUE or (env is None and constants.HF_HUB_OFFLINE)


def _target(repo_id: str, name: str | None, revision: str | None) -> Target:
    from huggingface_hub import constants

    return Target(repo_id, name, revision, _endpoint() or constants.ENDPOINT, _offline())


# --- pull ----------------------------------------------------------------------------------


def download(repo_id: str, name: str | None, revision: str | None) -> Path:
    """The cached folder holding ``ticket.safetensors`` + ``README.md`` of one hub ticket.

    ``name`` picks the folder of a family repo (None: the repo root). Both files come
    from the same commit. The file is checked against the sha256 and size its README
    records; on a mismatch the cached copy is evicted and IntegrityError raised.
    """
    with bounded():
        return _download(repo_id, name, revision)


def _download(repo_id: str, name: str | None, revision: str | None) -> Path:
    from huggingface_hub import hf_hub_download

    t = _target(repo_id, name, revision)

    def fetch(filename: str, rev: str | None) -> Path:
        with translated(t, file=filename):
            return Path(hf_hub_download(repo_id, filename, revision=rev, endpoint=_endpoint(),
                                        local_files_only=t.offline))

    try:
        readme = fetch(t.prefix + README, revision)
        folder = readme.parent
        commit = (folder.parent if name else folder).name  # .../snapshots/<commit>/[name/]README.md
        ticket = fetch(t.prefix + TICKET_FILE, commit if COMMIT_RE.match(commit) else revision)
    except NoTicketError as e:
        raise _no_ticket(t, e) from None
    if ticket.parent != folder:  # pragma: no cover - only with an unusual cache layout
        raise IntegrityError(f"{t.url}: README.md and ticket.safetensors came from different snapshots")
    _check(t, folder, commit)
    return folder


def _no_ticket(t: Target, e: TicketNotFoundError) -> TicketNotFoundError:
    """Say which tickets the repo does hold, when it is a family repo."""
    if t.offline:
        return e
    try:
        from huggingface_hub import HfApi

        files = HfApi(endpoint=_endpoint()).list_repo_files(t.repo_id, revision=t.revision)
    except Exception:  # noqa: BLE001 - best effort: the original error stands
        return e
    names = _family_names(files)
    if not names:
        return e
    hint = f"it holds tickets {', '.join(names)}: pull hf://{t.repo_id}/NAME"
    return TicketNotFoundError(e.message, ref=e.ref, hint=hint)


def _family_names(files: list[str]) -> list[str]:
    return sorted({f.split("/")[0] for f in files if f.count("/") == 1 and f.endswith("/" + TICKET_FILE)})


def _check(t: Target, folder: Path, commit: str) -> None:
    """sha256/size of the cached file against its README; evict the cached file if they differ."""
    try:
        entry = read_entry(folder, location=t.url)
    except TicketFormatError as e:
        raise TicketNotFoundError(
            f"hub repo {t.repo_id} has a README.md that is not a ticketzoo card ({e.problem})", ref=t.url
        ) from None
    try:
        verify_entry(entry)
        return
    except IntegrityError as e:
        problem = e.message.split(": ", 1)[-1]
    path = entry.file
    _evict(path)
    raise IntegrityError(
        f"{t.url} (commit {commit[:12]}): ticket.safetensors {problem} (recorded in its README.md); "
        "nothing was imported",
        path=path,
        hint="the file on the hub was changed or damaged after it was published; "
        "pin a known-good commit with @SHA or ask the publisher",
    )


def _evict(path: Path) -> None:
    """Remove a bad file from the HF cache (snapshot link and blob) so it is never reused."""
    for p in {path.resolve(), path}:
        try:
            p.unlink()
        except OSError:
            pass


# --- push ----------------------------------------------------------------------------------


def upload(
    ticket: Ticket,
    data: bytes,
    repo_id: str,
    name: str,
    *,
    private: bool = False,
    revision: str | None = None,
    tag: str | None = None,
    message: str | None = None,
    license: str | None = None,  # noqa: A002 - the Hub's front-matter key
) -> Pushed:
    """Publish ``data`` (the ticket's bytes) in ONE commit; create the repo when missing.

    ``repo_id`` is ``ORG`` (repo ``ORG/NAME``, files at the root) or ``ORG/REPO`` (a
    family repo: files under ``NAME/`` and an updated index ``README.md``).
    """
    with bounded():
        return _upload(ticket, data, repo_id, name, private=private, revision=revision, tag=tag, message=message,
                       license=license)


def _upload(ticket, data, repo_id, name, *, private, revision, tag, message, license) -> Pushed:  # noqa: A002
    from huggingface_hub import CommitOperationAdd, HfApi

    family = "/" in repo_id
    repo = repo_id if family else f"{repo_id}/{name}"
    t = _target(repo, name if family else None, revision)
    if t.offline:
        raise offline_push()
    if revision is not None and COMMIT_RE.match(revision):
        raise InvalidRefError(f"revision {revision!r} is a commit; push to a branch name", ref=revision,
                              field="revision", value=revision)
    api = HfApi(endpoint=_endpoint())  # token: HF_TOKEN, else the `hf auth login` token file
    message = message or f"Add ticket {name} (sparsity {ticket.card.sparsity:.1%})"
    with tempfile.TemporaryDirectory(prefix="ticketzoo-push-") as tmp:
        sha = write_ticket_folder(Path(tmp), data, ticket.card, front={"license": license} if license else None)
        ops = [CommitOperationAdd(t.prefix + f, str(Path(tmp) / f)) for f in (TICKET_FILE, README)]
        with translated(t, writing=True):
            api.create_repo(repo, private=private, exist_ok=True)
            if revision is not None:
                api.create_branch(repo, branch=revision, exist_ok=True)
            if family:
                ops.append(CommitOperationAdd(README, _family_readme(api, repo, revision, ticket).encode()))
            info = api.create_commit(repo, ops, commit_message=message, revision=revision,
                                     commit_description=f"{t.prefix}{TICKET_FILE} sha256 {sha}")
    if tag:
        _tag(api, t, tag, info.oid)
    location = f"hf://{repo}/{name}" if family else f"hf://{repo}"
    return Pushed(name, location, info.oid, sha, url=str(info.commit_url or ""))


def _tag(api, t: Target, tag: str, oid: str) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    from ticketzoo.errors import HubError

    done = f"pushed commit {oid[:12]} to {t.repo_id} but"
    try:
        with translated(t, writing=True):
            try:
                api.create_tag(t.repo_id, tag=tag, revision=oid)
            except HfHubHTTPError as e:
                if getattr(e.response, "status_code", None) == 409:
                    raise HubError(f"{done} tag {tag!r} already exists there",
                                   hint="tags are never moved: choose a new tag") from None
                raise
    except HubError as e:
        if e.message.startswith(done):
            raise
        raise HubError(f"{done} could not tag it {tag!r}: {e.message}", hint=e.hint) from None


def _family_readme(api, repo: str, revision: str | None, ticket: Ticket) -> str:
    """The family repo's index card: every ticket folder, with arch and sparsity."""
    from huggingface_hub import ModelCardData

    names = sorted(set(_family_names(api.list_repo_files(repo, revision=revision))) | {ticket.name})
    rows: dict[str, dict] = {}
    try:  # rows of the previous index (so tickets need not be downloaded to list them)
        card = api.model_info(repo, revision=revision).card_data
        old = ((card.to_dict() if card else {}).get("ticketzoo") or {}).get("family") or []
        rows = {r["name"]: r for r in old if isinstance(r, dict) and isinstance(r.get("name"), str)}
    except Exception:  # noqa: BLE001, S110 - no or foreign index card: list names only
        pass
    c = ticket.card
    rows[ticket.name] = {"name": ticket.name, "arch": c.arch.name, "source": c.source.dataset,
                         "sparsity": round(c.sparsity, 6)}
    family = [rows.get(n, {"name": n}) for n in names]
    meta = ModelCardData(library_name="ticketzoo", tags=["lottery-ticket", "sparse", "ticketzoo"],
                         ticketzoo={"family": family})
    lines = ["---", meta.to_yaml(), "---", "", f"# {repo}", "",
             "A family of sparse lottery tickets published with ticketzoo (not on PyPI yet).",
             "Each folder holds one ticket (`ticket.safetensors` and its card `README.md`).", "",
             "| ticket | architecture | source | sparsity | pull |", "|---|---|---|---|---|"]
    for r in family:
        sp = f"{r['sparsity']:.2%}" if isinstance(r.get("sparsity"), (int, float)) else "?"
        lines.append(f"| [{r['name']}]({r['name']}/README.md) | `{r.get('arch', '?')}` | {r.get('source', '?')} "
                     f"| {sp} | `ticketzoo pull hf://{repo}/{r['name']}` |")
    return "\n".join(lines) + "\n"


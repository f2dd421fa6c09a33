"""The Hugging Face Hub backend (:class:`HubBackend`) over :mod:`.hub`'s download and upload.

``list --registry hf://ORG[/REPO]`` reads only the ``README.md`` cards (through the Hugging Face cache), never a ticket file:

* ``hf://ORG``: every model repo of ORG tagged ``ticketzoo`` whose root README is a
  ticketzoo card (other repos, family repos included, are not tickets and are skipped);
* ``hf://ORG/REPO``: every ``NAME/`` folder of a family repo.

A family folder whose card cannot be read is reported as damaged, as in a local listing.
"""

from __future__ import annotations

from pathlib import Path

from ticketzoo.errors import IntegrityError, RegistryError, TicketFormatError, TicketNotFoundError
from ticketzoo.folder import README, Entry, read_entry
from ticketzoo.registry.base import Backend, Fetched, Listing, Opened, Pushed
from ticketzoo.registry.hub import _endpoint, _family_names, _target, download, upload
from ticketzoo.registry.hub_errors import translated
from ticketzoo.registry.hub_http import bounded
from ticketzoo.registry.refs import Ref, parse_ref


def hub_entries(target: Ref) -> Listing:
    with bounded():
        return _entries(target)


def _entries(target: Ref) -> Listing:
    from huggingface_hub import HfApi

    api = HfApi(endpoint=_endpoint())
    t = _target(target.repo_id, None, None)
    with translated(t):
        if "/" in target.repo_id:  # a family repo
            items = [(target.repo_id, n) for n in _family_names(api.list_repo_files(target.repo_id))]
        else:
            items = [(m.id, None) for m in api.list_models(author=target.repo_id, filter="ticketzoo")]
    rows, damaged = [], []
    for repo, name in sorted(items):
        try:
            entry = _card(repo, name)
        except (TicketFormatError, IntegrityError, RegistryError, TicketNotFoundError) as e:
            if name is not None:
                damaged.append((name, str(e)))
            continue  # a repo of the org that is not a ticket
        rows.append((entry, target.text, None))
    return rows, damaged


def _card(repo: str, name: str | None) -> Entry:
    from huggingface_hub import hf_hub_download

    t = _target(repo, name, None)
    with translated(t, file=t.prefix + README):
        readme = Path(hf_hub_download(repo, t.prefix + README, endpoint=_endpoint(), local_files_only=t.offline))
    return read_entry(readme.parent, location=t.url)


class HubBackend(Backend):
    """``hf://ORG/REPO[/NAME][@REV]`` references and ``hf://ORG[/REPO]`` registries."""

    options = frozenset({"private", "revision", "tag", "message", "license"})

    def fetch(self, ref: Ref) -> Fetched:
        # download() checks the sha256 itself, to evict a bad copy from the HF cache
        return Fetched(download(ref.repo_id, ref.name, ref.revision), ref.text, verified=True)

    def locate(self, target: Ref, name: str, revision: str | None) -> Ref:
        # hf://org -> the repo org/NAME; hf://org/repo -> the folder NAME of a family repo.
        return parse_ref(f"hf://{target.repo_id}/{name}" + (f"@{revision}" if revision else ""))

    def publish(self, opened: Opened, target: Ref, name: str, options: dict) -> Pushed:
        ticket, data = opened.ticket, opened.data
        if ticket.name != name:
            ticket = ticket.with_card(name=name)
            data = ticket.to_bytes()
        return upload(ticket, data, target.repo_id, name, **options)

    def entries(self, target: Ref) -> Listing:
        return hub_entries(target)

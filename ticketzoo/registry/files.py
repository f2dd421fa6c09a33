"""Backends for registries in a folder: the local one and ``file://`` (or plain folder) ones.

Both store the layout of :mod:`.local`; they differ only in where the folder is and how
their location is shown (``local`` or ``file:///DIR``).
"""

from __future__ import annotations

from ticketzoo.registry.base import Backend, Fetched, Listing, Opened, Pushed
from ticketzoo.registry.checks import listing_problem
from ticketzoo.registry.local import LocalRegistry
from ticketzoo.registry.refs import Ref, parse_ref


class FileBackend(Backend):
    """``file:///DIR/NAME[@REV]`` references and ``file:///DIR`` (or ``DIR``) registries."""

    def registry(self, target: Ref) -> LocalRegistry:
        return LocalRegistry(target.root, location=target.root.as_uri())

    def fetch(self, ref: Ref) -> Fetched:
        reg = self.registry(ref)
        return Fetched(reg.resolve(ref.name, ref.revision).folder, reg.location)

    def locate(self, target: Ref, name: str, revision: str | None) -> Ref:
        return parse_ref((target.root / name).as_uri() + (f"@{revision}" if revision else ""))

    def publish(self, opened: Opened, target: Ref, name: str, options: dict) -> Pushed:
        reg = self.registry(target)
        stored = reg.publish(opened.ticket, name=name, data=opened.data)
        return Pushed(stored.name, reg.location, stored.revision, stored.sha256)

    def entries(self, target: Ref) -> Listing:
        found, damaged = self.registry(target).scan()
        where = self.registry(target).location
        return [(e, where, listing_problem(e)) for e in found], damaged


class LocalBackend(FileBackend):
    """The local registry (``$TICKETZOO_HOME``) as a push or list target."""

    def registry(self, target: Ref) -> LocalRegistry:
        return LocalRegistry(target.root, location="local")

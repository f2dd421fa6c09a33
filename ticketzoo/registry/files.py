"""Backends for registries in a folder: the local one and ``file://`` (or plain folder) ones.

Both store the layout of :mod:`.local`; they differ only in where the folder is and how
their location is shown (``local`` or ``file:///DIR``).
"""

from __future__ import annotations

import os
from pathlib import Path

from ticketzoo.errors import ConfigError
from ticketzoo.folder import Entry
from ticketzoo.registry.base import Backend, Fetched, Listing, Opened, Pushed, import_folder
from ticketzoo.registry.checks import listing_problem
from ticketzoo.registry.local import LocalRegistry
from ticketzoo.registry.refs import Ref, parse_ref


class FileBackend(Backend):
    """``file:///DIR/NAME[@REV]`` references and ``file:///DIR`` (or ``DIR``) registries."""

    def registry(self, target: Ref) -> LocalRegistry:
        """The folder registry ``target`` names; a registry *setting* (``--registry``,
        ``$TICKETZOO_REGISTRY``) must name an existing folder: a typo is an error naming the
        setting, never a new folder made without a word."""
        if target.setting is not None:
            problem = None if target.root.is_dir() else (
                "is not a folder" if target.root.exists() else "does not exist")
            if problem:
                message = f"the registry folder {target.root} {problem}"
                if target.setting.isupper():
                    raise ConfigError(f"{target.setting}: {message}",
                                      hint=f"create the folder, or set {target.setting} to an existing one")
                raise ConfigError(message, field=target.setting, value=str(target.root),
                                  hint="create it first with mkdir, or give an existing registry")
        return LocalRegistry(target.root, location=target.root.as_uri(), setting=target.setting or "registry")

    def folder_registry(self, target: Ref) -> LocalRegistry:
        return self.registry(target)

    def check_target(self, target: Ref) -> None:
        self.registry(target)

    def fetch(self, ref: Ref) -> Fetched:
        reg = self.registry(ref)
        return Fetched(reg.resolve(ref.name, ref.revision).folder, reg.location)

    def pull(self, ref: Ref, local: LocalRegistry) -> Entry:
        """Import the revision holding the registry's read lock, so no rm or gc there
        removes it midway; a registry that is the local one is read in place."""
        reg = self.registry(ref)
        if _same(reg.root, local.root):
            return local.pull(ref.name, ref.revision)
        return reg.read(ref.name, ref.revision, lambda entry: import_folder(local, entry.folder, reg.location))

    def locate(self, target: Ref, name: str, revision: str | None) -> Ref:
        self.registry(target)  # a setting naming no folder is refused here, not read as "no ticket"
        return parse_ref((target.root / name).as_uri() + (f"@{revision}" if revision else ""))

    def publish(self, opened: Opened, target: Ref, name: str, options: dict) -> Pushed:
        reg = self.registry(target)
        stored = reg.publish(opened.ticket, name=name, data=opened.data)
        return Pushed(stored.name, reg.location, stored.revision, stored.sha256)

    def entries(self, target: Ref) -> Listing:
        reg = self.registry(target)
        with reg.reading():
            found, damaged = reg.scan()
            return [(e, reg.location, listing_problem(e)) for e in found], damaged


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


class LocalBackend(FileBackend):
    """The local registry (``$TICKETZOO_HOME``) as a push or list target."""

    def registry(self, target: Ref) -> LocalRegistry:
        return LocalRegistry(target.root, location="local")

"""pytest fixtures for tests of ticketzoo's hub backend against a loopback HF-compatible server.

Register from ``tests/conftest.py`` with ``pytest_plugins = ["hubserver.fixtures"]``.

``hub_server`` (session): olah (offline, serving local git repos) behind ticketzoo's
test hub server (:mod:`.upload_server`, which adds the write API). Attributes:

* ``endpoint``  URL for ``HF_ENDPOINT`` / ``HfApi(endpoint=...)`` (reads and writes)
* ``token``     a valid write token; any other token (or none) gets 401 on writes
* ``root``      git repos root: ``root/models/<org>/<name>`` are bare git repos
* ``create_repo_with_files(repo_id, files, tag=None) -> sha``  arrange a repo directly in git
* ``tamper(repo_id, filename, new_bytes, revision="main") -> sha``  new commit (branch) or
  re-pointed tag with different bytes
* ``corrupt_blob(repo_id, filename, new_bytes, revision="main")``  same sha/ETag, other bytes
* ``new_repo_id(stem) -> "hubtest/<stem>-<n>"``  unique repo ids within the session
* ``env(hf_home, token=False) -> dict``  environment for a subprocess (HF_ENDPOINT, HF_HOME,
  HF_HUB_CACHE, ...); merge it into ``os.environ`` yourself
* ``request_log``  list of ``(method, path, status)`` seen by the front server

olah runs from its own virtualenv (its pins differ from ours): ``TICKETZOO_OLAH`` is the
path to its ``olah-cli``; default ``$TICKETZOO_OLAH_VENV/bin/olah-cli`` with
``TICKETZOO_OLAH_VENV=/work/olah-venv``. ``tests/hubserver/install_olah.sh`` creates it.
Without it the tests using these fixtures are skipped, saying so (or fail, when
``TICKETZOO_REQUIRE_OLAH=1``, as CI sets it).

``hub_env`` (function): points this process's huggingface_hub at ``hub_server`` with a
fresh ``HF_HOME`` under ``tmp_path`` (env vars *and* the import-time constants of
``huggingface_hub.constants``, which it reads only once at import).
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from .upload_server import HubStack, default_olah_executable

_LOOPBACK = "127.0.0.1,localhost"


class HubServer(HubStack):
    """:class:`HubStack` plus conveniences for tests."""

    _counter = itertools.count(1)

    def new_repo_id(self, stem: str = "repo") -> str:
        return f"{self.user}/{stem}-{next(self._counter)}"

    def env(self, hf_home: str | os.PathLike, token: bool = False) -> dict:
        hf_home = str(hf_home)
        env = {
            "HF_ENDPOINT": self.endpoint,
            "HF_HOME": hf_home,
            "HF_HUB_CACHE": os.path.join(hf_home, "hub"),
            "HF_XET_CACHE": os.path.join(hf_home, "xet"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "NO_PROXY": _LOOPBACK,
            "no_proxy": _LOOPBACK,
        }
        if token:
            env["HF_TOKEN"] = self.token
        return env


def olah_executable_or_skip() -> str:
    exe = default_olah_executable()
    # CI sets TICKETZOO_REQUIRE_OLAH=1 so that a broken install fails instead of skipping.
    give_up = pytest.fail if os.environ.get("TICKETZOO_REQUIRE_OLAH") == "1" else pytest.skip
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        give_up(
            f"olah not installed at {exe} (hub backend tests need it): run "
            "tests/hubserver/install_olah.sh or set TICKETZOO_OLAH to an olah-cli executable"
        )
    if shutil.which("git") is None:
        give_up("git CLI not found (the test hub stores repos as git repositories)")
    return exe


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory):
    exe = olah_executable_or_skip()
    workdir = tmp_path_factory.mktemp("hubserver")
    server = HubServer(workdir, exe, token="hf_hubtest_" + secrets.token_hex(12))
    server.start()
    try:
        yield server
    finally:
        server.stop()


_CONSTANT_PATHS = {  # huggingface_hub.constants attribute -> path under HF_HOME
    "HF_HOME": "",
    "HF_HUB_CACHE": "hub",
    "HUGGINGFACE_HUB_CACHE": "hub",
    "HF_ASSETS_CACHE": "assets",
    "HF_XET_CACHE": "xet",
    "HF_TOKEN_PATH": "token",
    "HF_STORED_TOKENS_PATH": "stored_tokens",
}


@dataclass
class HubEnv:
    endpoint: str
    home: Path
    cache_dir: Path
    env: dict  # the variables set; reuse for subprocesses


@pytest.fixture
def hub_env(hub_server, tmp_path, monkeypatch) -> HubEnv:
    from huggingface_hub import constants, hf_api

    home = tmp_path / "hf_home"
    home.mkdir()
    env = hub_server.env(home)
    for k in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    endpoint = hub_server.endpoint
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    for name, sub in _CONSTANT_PATHS.items():
        if hasattr(constants, name):
            monkeypatch.setattr(constants, name, str(home / sub) if sub else str(home))
    # module-level helpers (huggingface_hub.create_repo, upload_file, ...) are bound to an
    # HfApi built at import time; point it at the test server too.
    monkeypatch.setattr(hf_api.api, "endpoint", endpoint)
    return HubEnv(endpoint=endpoint, home=home, cache_dir=home / "hub", env=env)

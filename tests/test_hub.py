"""The hub backend end to end: the CLI against the loopback HF-compatible test server.

Each ``Home`` is one user machine: its own ``TICKETZOO_HOME`` and Hugging Face cache
(``HF_HOME``/``HF_HUB_CACHE``), ``HF_ENDPOINT`` pointing at ``hub_server``. The CLI runs
in a subprocess, so huggingface_hub reads the environment exactly as a user's would.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import tiny_ticket
from ticketzoo.folder import write_ticket_folder
from ticketzoo.ticket import Ticket

CLEAN = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TICKETZOO_CATALOG",
         "HF_ENDPOINT", "HF_HOME", "HF_HUB_CACHE", "TICKETZOO_DEBUG")


class Home:
    def __init__(self, hub_server, root: Path, token: bool = True):
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if k not in CLEAN}
        self.env.update(hub_server.env(root / "hf", token=token), TICKETZOO_HOME=str(root / "tz"))

    def run(self, *args, check: int | None = 0, **env) -> subprocess.CompletedProcess:
        p = subprocess.run([sys.executable, "-m", "ticketzoo", *args], check=False, capture_output=True, text=True,
                           env={**self.env, **env}, timeout=120)
        if check is not None:
            assert p.returncode == check, (args, p.returncode, p.stdout, p.stderr)
        return p

    def push(self, path: Path, registry: str, *args) -> dict:
        return json.loads(self.run("push", str(path), "--registry", registry, "--json", *args).stdout)

    def pull(self, *args, **env) -> bytes:
        path = self.run("pull", *args, **env).stdout.strip()
        assert path.startswith(str(self.root / "tz")), path  # imported into the local registry
        return Path(path).read_bytes()

    def error(self, *args, **env) -> str:
        p = self.run(*args, check=1, **env)
        assert p.stdout == "" and "Traceback" not in p.stderr, p.stderr
        return " ".join(p.stderr.split())  # rich wraps long lines

    def local_names(self) -> list[str]:
        tickets = self.root / "tz" / "tickets"
        return sorted(p.name for p in tickets.iterdir()) if tickets.is_dir() else []


@pytest.fixture
def home(hub_server, tmp_path):
    def make(label: str, token: bool = True) -> Home:
        return Home(hub_server, tmp_path / label, token)

    return make


def ticket_file(tmp_path: Path, name: str, seed: int = 0, sparsity: float = 0.8) -> Path:
    path = tmp_path / f"{name}-{seed}.safetensors"
    tiny_ticket(name=name, seed=seed, sparsity=sparsity).save(path)
    return path


def git(hub_server, repo_id: str, *args: str) -> str:
    return hub_server.repos.git(hub_server.repo_path(repo_id), *args).stdout.decode()


def org_and_name(hub_server, stem: str) -> tuple[str, str]:
    org, name = hub_server.new_repo_id(stem).split("/")
    return org, name.lower()


def test_push_then_pull_from_a_second_home_and_cache(hub_server, home, tmp_path):
    org, name = org_and_name(hub_server, "rt")
    src = ticket_file(tmp_path, name)
    a, b = home("a"), home("b")
    pushed = a.push(src, f"hf://{org}")
    assert pushed["location"] == f"hf://{org}/{name}" and len(pushed["revision"]) == 40
    assert pushed["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert set(git(hub_server, f"{org}/{name}", "ls-tree", "--name-only", "main").split()) == {
        ".gitattributes", "README.md", "ticket.safetensors"}

    assert b.pull(name, "--registry", f"hf://{org}") == src.read_bytes()
    assert list((b.root / "hf" / "hub").glob(f"models--{org}--{name}/snapshots/*/ticket.safetensors"))
    assert b.local_names() == [name]

    # offline, same HF cache, a third registry home: served from the cache
    c = Home(hub_server, tmp_path / "c")
    c.env.update(HF_HOME=b.env["HF_HOME"], HF_HUB_CACHE=b.env["HF_HUB_CACHE"])
    seen = len(hub_server.request_log)
    assert c.pull(f"hf://{org}/{name}", HF_HUB_OFFLINE="1") == src.read_bytes()
    assert len(hub_server.request_log) == seen  # not one request
    msg = c.error("pull", f"hf://{org}/{name}@v9", HF_HUB_OFFLINE="1")
    assert "not in the Hugging Face cache" in msg and "unset HF_HUB_OFFLINE" in msg and "cached revisions: main" in msg


# --- in-process: the same CLI entry point, without a Python start-up per call -----------------


@pytest.fixture
def cli(hub_server, hub_env, monkeypatch, capsys):
    """Run ``ticketzoo ARGS`` in this process (hub_env: fresh HF_HOME, HF_ENDPOINT set)."""
    from ticketzoo.cli.main import main

    monkeypatch.setenv("HF_TOKEN", hub_server.token)

    def run(*args: str, check: int = 0) -> tuple[str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            main(list(args))
        out, err = capsys.readouterr()
        assert e.value.code == check, (args, e.value.code, out, err)
        if check:
            assert out == "" and "Traceback" not in err, err
        return out, " ".join(err.split())

    return run


def local_names() -> list[str]:
    tickets = Path(os.environ["TICKETZOO_HOME"]) / "tickets"
    return sorted(p.name for p in tickets.iterdir()) if tickets.is_dir() else []


def pushed(cli, path: Path, registry: str, *args: str) -> dict:
    return json.loads(cli("push", str(path), "--registry", registry, "--json", *args)[0])


def pulled(cli, *args: str) -> bytes:
    return Path(cli("pull", *args)[0].strip()).read_bytes()


def test_tag_and_commit_revisions(hub_server, cli, tmp_path):
    org, name = org_and_name(hub_server, "tag")
    v1, v2 = ticket_file(tmp_path, name, seed=1), ticket_file(tmp_path, name, seed=2)
    first = pushed(cli, v1, f"hf://{org}", "--tag", "v1", "--message", "first ticket")
    second = pushed(cli, v2, f"hf://{org}")
    assert first["revision"] != second["revision"] and len(second["revision"]) == 40
    assert git(hub_server, f"{org}/{name}", "log", "--format=%s", "main").split("\n")[1] == "first ticket"

    assert pulled(cli, f"hf://{org}/{name}@v1") == v1.read_bytes()  # the tag kept the old bytes
    assert pulled(cli, f"hf://{org}/{name}") == v2.read_bytes()
    assert pulled(cli, f"hf://{org}/{name}@{first['revision']}") == v1.read_bytes()
    _, msg = cli("push", str(v2), "--registry", f"hf://{org}", "--tag", "v1", check=1)
    assert "tag 'v1' already exists" in msg and "pushed commit" in msg


def test_family_repo(hub_server, cli, tmp_path):
    org, repo = org_and_name(hub_server, "family")
    one, two = ticket_file(tmp_path, "fam-one", sparsity=0.5), ticket_file(tmp_path, "fam-two", sparsity=0.9)
    assert pushed(cli, one, f"hf://{org}/{repo}")["location"] == f"hf://{org}/{repo}/fam-one"
    pushed(cli, two, f"hf://{org}/{repo}", "--revision", "main")
    assert set(git(hub_server, f"{org}/{repo}", "ls-tree", "-r", "--name-only", "main").split()) == {
        ".gitattributes", "README.md", "fam-one/README.md", "fam-one/ticket.safetensors",
        "fam-two/README.md", "fam-two/ticket.safetensors"}
    assert len(git(hub_server, f"{org}/{repo}", "log", "--format=%H", "main").split()) == 3  # init + 2 pushes
    index = git(hub_server, f"{org}/{repo}", "show", "main:README.md")
    assert "| [fam-one](fam-one/README.md) | `conv2` | synthetic | 50.00% |" in index
    assert "| [fam-two](fam-two/README.md) | `conv2` | synthetic | 90.00% |" in index

    assert pulled(cli, f"hf://{org}/{repo}/fam-two") == two.read_bytes()
    assert pulled(cli, "fam-one", "--registry", f"hf://{org}/{repo}") == one.read_bytes()
    msg = cli("pull", f"hf://{org}/{repo}", check=1)[1]
    assert "has no ticket" in msg and "it holds tickets fam-one, fam-two" in msg
    assert "has no ticket" in cli("pull", f"hf://{org}/{repo}/fam-three", check=1)[1]


def test_list_a_hub_registry(hub_server, cli, tmp_path):
    org, name = org_and_name(hub_server, "listed")
    single = ticket_file(tmp_path, name, sparsity=0.5)
    pushed(cli, single, f"hf://{org}", "--license", "mit")
    hub_server.create_repo_with_files(f"{org}/not-a-ticket", {"README.md": b"# some other model\n"})
    family = f"{org}/{org_and_name(hub_server, 'shelf')[1]}"
    for n, sp in (("shelf-a", 0.6), ("shelf-b", 0.9)):
        pushed(cli, ticket_file(tmp_path, n, sparsity=sp), f"hf://{family}")
    rows = json.loads(cli("list", "--registry", f"hf://{family}", "--json")[0])
    assert [(r["name"], r["where"], round(r["sparsity"], 1)) for r in rows] == [
        ("shelf-a", f"hf://{family}", 0.6), ("shelf-b", f"hf://{family}", 0.9)]
    rows = json.loads(cli("list", "--registry", f"hf://{org}", "--json")[0])
    assert name in [r["name"] for r in rows]  # the family repo and the foreign repo are not listed
    assert not {"shelf-a", "shelf-b", "not-a-ticket"} & {r["name"] for r in rows}
    assert local_names() == []  # listing downloads no ticket into the local registry
    card = git(hub_server, f"{org}/{name}", "show", "main:README.md")
    assert "license: mit" in card and "base_model" not in card  # not a fine-tune
    msg = cli("list", "--registry", f"hf://{org}/{name}-missing", check=1)[1]
    assert f"no hub repo {org}/{name}-missing" in msg


def test_tampered_file_is_caught_and_nothing_imported(hub_server, cli, tmp_path):
    org, name = org_and_name(hub_server, "tamper")
    src = ticket_file(tmp_path, name)
    pushed(cli, src, f"hf://{org}")
    evil = bytearray(src.read_bytes())
    evil[-100] ^= 0x01  # same size, one bit flipped in the tensor data
    hub_server.tamper(f"{org}/{name}", "ticket.safetensors", bytes(evil))
    _, msg = cli("pull", f"hf://{org}/{name}", check=1)
    assert "sha256" in msg and "differs from the recorded" in msg and "nothing was imported" in msg
    assert local_names() == []
    # the bad copy was evicted from the HF cache: an offline retry does not use it
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        assert "not in the Hugging Face cache" in cli("pull", f"hf://{org}/{name}", check=1)[1]
    finally:
        del os.environ["HF_HUB_OFFLINE"]


def test_bit_rot_with_unchanged_commit_is_caught(hub_server, cli, tmp_path):
    org, name = org_and_name(hub_server, "rot")
    sha = pushed(cli, ticket_file(tmp_path, name), f"hf://{org}")["revision"]
    hub_server.corrupt_blob(f"{org}/{name}", "ticket.safetensors", b"\0" * 64, revision=sha)
    msg = cli("pull", f"hf://{org}/{name}@{sha}", check=1)[1]
    assert "size 64 differs from the recorded" in msg and local_names() == []


def test_missing_repo_bad_revision_and_no_ticket(hub_server, cli):
    org, name = org_and_name(hub_server, "err")
    msg = cli("pull", f"hf://{org}/{name}", check=1)[1]
    assert f"no hub repo {org}/{name}" in msg and "HF_TOKEN" in msg
    hub_server.create_repo_with_files(f"{org}/{name}", {"notes.txt": b"no ticket here"})
    assert f"hub repo {org}/{name} has no ticket" in cli("pull", f"hf://{org}/{name}", check=1)[1]
    assert "revision 'nope' not found" in cli("pull", f"hf://{org}/{name}@nope", check=1)[1]
    assert "revision 'v2' not found" in cli("pull", f"{name}@v2", "--registry", f"hf://{org}", check=1)[1]


def test_unreachable_endpoint(hub_server, cli, tmp_path, monkeypatch):
    import time

    org, name = org_and_name(hub_server, "down")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(time, "sleep", lambda s: None)  # huggingface_hub's retry back-off (~23 s)
    msg = cli("pull", f"hf://{org}/{name}", check=1)[1]
    assert f"cannot reach the hub at http://127.0.0.1:{port}" in msg and "HF_ENDPOINT" in msg
    msg = cli("push", str(ticket_file(tmp_path, name)), "--registry", f"hf://{org}", check=1)[1]
    assert "cannot reach the hub" in msg


def test_unreachable_with_a_cached_copy_suggests_offline(hub_server, cli, tmp_path, monkeypatch):
    import time

    org, name = org_and_name(hub_server, "cached")
    src = ticket_file(tmp_path, name)
    pushed(cli, src, f"hf://{org}", "--tag", "v1")
    assert pulled(cli, f"hf://{org}/{name}@v1") == src.read_bytes()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(time, "sleep", lambda s: None)
    monkeypatch.setenv("TICKETZOO_HOME", str(tmp_path / "other-home"))
    # the cached ref is used as huggingface_hub does when the hub is down
    assert pulled(cli, f"hf://{org}/{name}@v1") == src.read_bytes()
    msg = cli("pull", f"hf://{org}/{name}", check=1)[1]  # main was never cached
    assert "cannot reach" in msg and "HF_HUB_OFFLINE=1" in msg and "v1" in msg


def test_push_needs_a_valid_token_and_never_prints_it(hub_server, cli, tmp_path, monkeypatch):
    org, name = org_and_name(hub_server, "auth")
    src = ticket_file(tmp_path, name)
    monkeypatch.delenv("HF_TOKEN")
    msg = cli("push", str(src), "--registry", f"hf://{org}", check=1)[1]
    assert "needs a Hugging Face token" in msg and "HF_TOKEN" in msg
    bad = "hf_wrong_" + "x" * 24
    monkeypatch.setenv("HF_TOKEN", bad)
    msg = cli("push", str(src), "--registry", f"hf://{org}", check=1)[1]
    assert "rejected your token" in msg and bad not in msg
    assert not hub_server.repo_path(f"{org}/{name}").exists()
    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    out, err = cli("push", str(src), "--registry", f"hf://{org}")
    assert hub_server.token not in out + err and f"pushed {name}@" in out


def test_catalog_name_resolves_through_the_hub(hub_server, cli, tmp_path, monkeypatch):
    org, name = org_and_name(hub_server, "cat")
    src = ticket_file(tmp_path, name)
    pushed(cli, src, f"hf://{org}")
    catalog = tmp_path / "catalog"
    (catalog / name).mkdir(parents=True)
    write_ticket_folder(catalog / name, src.read_bytes(), Ticket.load(src).card,
                        extra_meta={"location": f"hf://{org}/{name}"})
    (catalog / name / "ticket.safetensors").unlink()  # the catalog holds the card only
    monkeypatch.setenv("TICKETZOO_CATALOG", str(catalog))
    assert pulled(cli, name) == src.read_bytes()

    # the hub's README is self-consistent, but the bytes are not what the catalog published
    other = ticket_file(tmp_path, name, seed=5)
    hub_server.create_repo_with_files(f"{org}/{name}", {"ticket.safetensors": other.read_bytes(),
                                                        "README.md": _readme_for(other)})
    monkeypatch.setenv("TICKETZOO_HOME", str(tmp_path / "second-home"))
    msg = cli("pull", name, check=1)[1]
    assert "differs from the catalog's" in msg and local_names() == []


def _readme_for(path: Path) -> bytes:
    folder = path.parent / "readme-only"
    folder.mkdir(exist_ok=True)
    write_ticket_folder(folder, path.read_bytes(), Ticket.load(path).card)
    return (folder / "README.md").read_bytes()


# --- a hub that never answers, or refuses: bounded, quiet, says what to do ---------------------


class SilentHub:
    """A TCP server that accepts connections and never answers."""

    def __enter__(self):
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.conns = []
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self):
        while True:
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                return

    def __exit__(self, *exc):
        self.sock.close()
        for c in self.conns:
            c.close()


def _cli_without_hub(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    import time

    base = {k: v for k, v in os.environ.items() if k not in CLEAN}
    base.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_CACHE=str(tmp_path / "hf" / "hub"), HF_HUB_DISABLE_TELEMETRY="1",
                TICKETZOO_HOME=str(tmp_path / "tz"), NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    start = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "ticketzoo", *args], capture_output=True, text=True,
                       env={**base, **env}, timeout=60)
    return p, time.monotonic() - start


def test_a_hub_that_never_answers_is_bounded(tmp_path):
    with SilentHub() as hub:
        p, took = _cli_without_hub(tmp_path, "pull", "hf://org/name", HF_ENDPOINT=f"http://127.0.0.1:{hub.port}",
                                   TICKETZOO_HUB_TIMEOUT="1")
    err = " ".join(p.stderr.split())
    assert p.returncode == 1 and f"cannot reach the hub at http://127.0.0.1:{hub.port}" in err, p.stderr
    assert "TICKETZOO_HUB_TIMEOUT (now 1 s)" in err and "HF_HUB_OFFLINE=1" in err
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert took < 30, took  # python start-up included; the hub wait itself is about 1 s


def test_a_refused_hub_fails_fast_without_retry_noise(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    p, took = _cli_without_hub(tmp_path, "pull", "hf://org/name", HF_ENDPOINT=f"http://127.0.0.1:{port}")
    assert p.returncode == 1 and "cannot reach the hub" in p.stderr and "Retry" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr  # was 11 retry lines and ~25 s
    assert took < 20, took


def test_hub_timeout_setting(monkeypatch):
    from ticketzoo.errors import ConfigError
    from ticketzoo.registry.hub_http import DEFAULT_TIMEOUT, hub_timeout

    monkeypatch.delenv("TICKETZOO_HUB_TIMEOUT", raising=False)
    assert hub_timeout() == DEFAULT_TIMEOUT == 10
    monkeypatch.setenv("TICKETZOO_HUB_TIMEOUT", "2.5")
    assert hub_timeout() == 2.5
    for bad in ("soon", "0", "-1", "nan", "1e9"):
        monkeypatch.setenv("TICKETZOO_HUB_TIMEOUT", bad)
        with pytest.raises(ConfigError, match="TICKETZOO_HUB_TIMEOUT must be a number of seconds"):
            hub_timeout()

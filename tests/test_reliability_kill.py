"""kill -9 during push and pull: no visible partial ticket, and the next writer cleans up.

A forked child runs the push or pull and SIGKILLs itself at its k-th filesystem call
(mkdir, open, fsync, rename, replace, unlink, rmdir), for every k the operation makes:
every point where a crash can interrupt it, deterministically and without a Python start-up
per run. ``scripts/fuzz_campaign.py`` also kills real CLI processes at random times.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from conftest import tiny_ticket
from ticketzoo.registry import api
from ticketzoo.registry.local import LocalRegistry

OPS = ("mkdir", "open", "fsync", "rename", "replace", "unlink", "rmdir")
LEFTOVER = re.compile(r"^\.(tmp-|bad-|probe-)|\.tmp$")

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def run_killed_at(k: int, action, count_file: Path | None = None) -> int:
    """Run ``action()`` in a forked child killed at its k-th filesystem call; returns how
    the child ended (-9: killed, 0: finished)."""
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        code = 0
        try:
            calls = [0]

            def wrap(fn):
                def counted(*args, **kwargs):
                    calls[0] += 1
                    if calls[0] == k:
                        os.kill(os.getpid(), signal.SIGKILL)
                    return fn(*args, **kwargs)

                return counted

            for name in OPS:
                setattr(os, name, wrap(getattr(os, name)))
            action()
            if count_file is not None:
                with open(count_file, "w") as f:
                    f.write(str(calls[0]))
        except BaseException:  # noqa: BLE001
            code = 3
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"child killed at call {k} hung")
        time.sleep(0.005)


def leftovers(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if LEFTOVER.search(p.name)] if root.exists() else []


def assert_nothing_partial(reg: LocalRegistry) -> None:
    """Whatever a reader can see is a whole, verified ticket."""
    for name in reg.names():
        reg.pull(name)  # HEAD names a complete revision whose sha256 matches
        for rev in reg.revisions(name):
            reg.pull(name, rev)
    assert api.last_pulled(reg.root) is None or api.last_pulled(reg.root).name in reg.names()


def kill_everywhere(tmp_path: Path, action, reg: LocalRegistry) -> int:
    count = tmp_path / "count"
    reset()
    assert run_killed_at(10**9, action, count) == 0  # a full run, to count its calls
    total = int(count.read_text())
    assert total > 5
    for k in range(1, total + 1):
        reset()
        assert run_killed_at(k, action) == -signal.SIGKILL
        assert_nothing_partial(reg)
        # the next writer sweeps what the killed one left, under the lock
        LocalRegistry(reg.root).publish(tiny_ticket(name="next", seed=k % 3))
        assert leftovers(reg.root) == [], (k, leftovers(reg.root))
        assert_nothing_partial(reg)
    return total


def reset() -> None:
    """An empty local registry folder (existing, so every run makes the same calls)."""
    home = Path(os.environ["TICKETZOO_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    for p in sorted(home.rglob("*"), reverse=True):
        if p.is_dir() and not p.is_symlink():
            p.rmdir()
        else:
            p.unlink()


def test_push_killed_at_every_step(tmp_path):
    src = tmp_path / "t.safetensors"
    tiny_ticket(name="killed-push").save(src)
    reg = LocalRegistry()
    total = kill_everywhere(tmp_path, lambda: api.push(str(src)), reg)
    reset()
    api.push(str(src))
    assert reg.pull("killed-push").file.read_bytes() == src.read_bytes() and total


def test_pull_killed_at_every_step(tmp_path):
    remote = tmp_path / "remote"
    LocalRegistry(remote).publish(tiny_ticket(name="killed-pull"))
    reg = LocalRegistry()
    kill_everywhere(tmp_path, lambda: api.pull("killed-pull", f"file://{remote}"), reg)
    assert leftovers(remote) == []

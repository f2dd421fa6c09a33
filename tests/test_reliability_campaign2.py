"""Regressions of the second reliability campaign (issue 22, and issue 19's items 2 and 4).

Each test names the defect it pins. Disk-full cases use a small tmpfs where this process
may mount one (root), else are skipped; read-only homes use a read-only bind mount; an
unreadable entry needs a second uid (``setpriv`` to ``nobody``), else is skipped.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from conftest import tiny_ticket
from ticketzoo.errors import InvalidRefError, RegistryError, TicketNotFoundError
from ticketzoo.registry import api
from ticketzoo.registry.local import LocalRegistry
from ticketzoo.registry.refs import parse_ref, parse_registry_url

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cli(capsys):
    """``ticketzoo ARGS`` in this process: (exit code, stdout, stderr on one line)."""
    from ticketzoo.cli.main import main

    def run(*args) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            main([str(a) for a in args])
        out, err = capsys.readouterr()
        assert "Traceback" not in err and "error: unexpected" not in err, err
        if e.value.code == 1:
            assert len([l for l in err.strip().splitlines() if l.startswith("error:")]) == 1, err
        return e.value.code, out, " ".join(err.split())

    return run


def two_revisions(name: str = "zz") -> tuple[LocalRegistry, str, str]:
    """A local ticket with two revisions: (registry, old, head)."""
    reg = LocalRegistry()
    old = reg.publish(tiny_ticket(name=name, seed=0)).revision
    head = reg.publish(tiny_ticket(name=name, seed=1)).revision
    return reg, old, head


def saved(tmp_path: Path, name: str, seed: int = 0) -> Path:
    path = tmp_path / f"{name}.safetensors"
    tiny_ticket(name=name, seed=seed).save(path)
    return path


# --- 1. push with no argument after a failed fine-tune ---------------------------------------


def test_push_after_a_failed_finetune_refuses_instead_of_publishing_the_base(cli, tmp_path):
    from synthetic import make_image_folder

    LocalRegistry().publish(tiny_ticket(name="starter"))
    assert cli("pull", "starter")[0] == 0
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    data = make_image_folder(tmp_path / "d", kind="textures", classes=2, per_class=40, size=16)
    code, _, err = cli("finetune", "starter", "--data", data, "--out", tmp_path / "A", "--epochs", 2,
                       "--split", "0.5,0.1,0.4", "--optimizer", "adam", "--batch-size", 8, "--device", "cpu",
                       "--lr", 1e9)
    assert code == 1 and "diverged" in err
    code, out, err = cli("push", "--registry", zoo)
    assert code == 1 and "the last fine-tune into" in err and "failed (" in err and "diverged" in err, err
    assert str(tmp_path / "A") in err and LocalRegistry(zoo).names() == []
    # a fine-tune that fails on a missing folder is a failed fine-tune too
    assert cli("pull", "starter")[0] == 0
    code, _, err = cli("finetune", "starter", "--data", tmp_path / "no-such-folder", "--out", tmp_path / "B")
    assert code in (1, 2)
    code, _, err = cli("push", "--registry", zoo)
    assert code == 1 and "failed (image folder" in err and LocalRegistry(zoo).names() == []
    # a later successful command is what push takes, and it names it
    assert cli("pull", "starter")[0] == 0
    code, out, err = cli("push", "--registry", zoo)
    assert code == 0 and "pushing the ticket pulled last: starter" in err


def test_push_in_a_fresh_home_after_a_finetune_that_never_started_says_why(cli, tmp_path):
    code, _, err = cli("finetune", "--data", tmp_path)  # nothing pulled: it cannot start
    assert code == 1 and "none pulled yet" in err
    code, _, err = cli("push", "--registry", tmp_path)
    assert code == 1 and "the last fine-tune failed (no ticket given and none pulled yet)" in err, err


def test_finetune_state_in_the_library(tmp_path):
    tuned = saved(tmp_path, "tuned")
    api.finetune_started(tmp_path / "out")  # no result and no failure recorded: killed, or running
    with pytest.raises(TicketNotFoundError, match=r"did not finish \(it was killed, or still runs\)"):
        api.push(registry=str(tmp_path))
    api.finetune_failed("no run trained")
    with pytest.raises(TicketNotFoundError, match=r"the last fine-tune into .*out failed \(no run trained\)"):
        api.push(registry=str(tmp_path))
    api.remember_finetuned(tuned)
    assert api.ticket_to_push().source == str(tuned)


# --- 2. readers take the lock; gc decides under it ---------------------------------------------


def test_gc_old_revisions_spares_a_revision_pulled_after_gc_started(monkeypatch):
    """The issue's deterministic case: gc starts, then `pull zz@OLD` completes before gc gets
    the lock. gc must read "pulled last" under the lock, so OLD stays."""
    reg, old, head = two_revisions()
    real = LocalRegistry._locked
    pulled = []

    def locked(self, what, work, **kw):
        if what.startswith("collect garbage") and not pulled:
            pulled.append(api.pull(f"zz@{old}"))  # runs while gc waits for the lock
        return real(self, what, work, **kw)

    monkeypatch.setattr(LocalRegistry, "_locked", locked)
    report = api.collect_garbage(old_revisions=True)
    assert pulled and pulled[0].file.is_file(), [str(i.path) for i in report.removed]
    assert reg.revisions("zz") == sorted([old, head])
    assert api.open_base(None).ref == f"zz@{old}"  # finetune without a ticket still finds it


def test_a_pull_whose_revision_is_removed_before_it_is_recorded_fails(monkeypatch):
    """`pull zz@OLD` racing `rm zz@OLD`: a revision gone by the time the pull records it is
    "removed while it was being read", never exit 0 with a path that does not exist."""
    import ticketzoo.registry.local as local_mod

    reg, old, _ = two_revisions()
    real = local_mod.verify_entry

    def verify_then_removed(entry):
        out = real(entry)
        shutil.rmtree(entry.folder)  # a remover that took no lock (the lock-free fallback)
        return out

    monkeypatch.setattr(local_mod, "verify_entry", verify_then_removed)
    with pytest.raises(TicketNotFoundError, match="was removed .* while it was being read"):
        api.pull(f"zz@{old}")
    assert reg.read_state().get("last_pulled") is None


def test_rm_waits_for_a_reader():
    reg, old, _ = two_revisions()
    done = threading.Event()

    def rm():
        api.remove_ticket(f"zz@{old}")
        done.set()

    with reg.reading():
        entry = reg.resolve("zz", old)
        thread = threading.Thread(target=rm)
        thread.start()
        assert not done.wait(0.5)  # rm cannot take the lock while a reader holds it
        assert entry.file.read_bytes()
    thread.join(30)
    assert done.is_set() and not entry.folder.exists()


def test_a_reader_inside_a_writer_does_not_wait_on_itself(tmp_path):
    from ticketzoo.registry import lock

    reg = LocalRegistry()
    rev = reg.publish(tiny_ticket(name="one")).revision
    assert api.remove_ticket("one") == ("one", [rev])  # rm resolves under its own lock
    with lock.exclusive(reg.root):
        with reg.reading():  # re-entrant: the writer's own reads
            pass
    with reg.reading(), pytest.raises(RegistryError, match="while this process is reading it"):
        reg.publish(tiny_ticket(name="two"))


# --- 3. a ticket removed mid-read is not damage -------------------------------------------------


@pytest.mark.parametrize("command", ["verify", "pull", "info"])
def test_a_ticket_removed_mid_read_says_removed(cli, monkeypatch, command):
    import ticketzoo.registry.local as local_mod

    reg, old, head = two_revisions()
    real = local_mod.read_entry
    armed = [True]

    def read_then_gone(folder, **kw):
        entry = real(folder, **kw)
        if armed and folder.name == head:
            armed.clear()
            shutil.rmtree(folder.parent)  # `rm zz` between reading the README and the file
        return entry

    monkeypatch.setattr(local_mod, "read_entry", read_then_gone)
    code, out, err = cli(command, "zz")
    assert code == 1 and "was removed from local while it was being read" in err, err
    assert "missing" not in err and "damaged" not in err and "cannot read ticket card" not in err


# --- 4. disk full -------------------------------------------------------------------------------


@pytest.fixture
def full_disk(tmp_path):
    """A 512 KiB tmpfs, filled to the last byte (skipped where it cannot be mounted)."""
    where = tmp_path / "full"
    where.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(where)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        (where / "out").mkdir()
        fd = os.open(where / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            for size in (4096, 1):
                while True:
                    os.write(fd, b"\0" * size)
        except OSError:
            pass
        finally:
            os.close(fd)
        yield where / "out"
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_torch_checkpoint_at_enospc_names_the_file(full_disk):
    import torch

    from ticketzoo.errors import StorageError
    from ticketzoo.fileio import atomic_write

    target = full_disk / "ckpt.pt"
    with pytest.raises(StorageError) as e:
        atomic_write(target, lambda f: torch.save({"w": torch.zeros(50_000)}, f))
    assert e.value.errno == errno.ENOSPC and f"no space left on the device holding {target}" in str(e.value)
    assert list(full_disk.iterdir()) == []  # nothing partial


def test_export_and_finetune_out_on_a_full_disk_say_so(cli, full_disk, tmp_path):
    from synthetic import make_image_folder

    LocalRegistry().publish(tiny_ticket(name="kept", sparsity=0.5))
    code, _, err = cli("export", "kept", "--out", full_disk / "dense.safetensors")
    assert code == 1 and f"no space left on the device holding {full_disk / 'dense.safetensors'}" in err, err
    assert list(full_disk.iterdir()) == []
    data = make_image_folder(tmp_path / "d", kind="textures", classes=2, per_class=10, size=16)
    code, _, err = cli("finetune", "kept", "--data", data, "--out", full_disk / "ft", "--epochs", 1,
                       "--device", "cpu")
    assert code == 1 and "no space left on the device holding" in err and str(full_disk / "ft") in err, err
    assert not [p for p in (full_disk / "ft").rglob("*") if p.is_file()]  # nothing partial


def test_a_push_on_a_full_disk_names_the_device_and_leaves_nothing(full_disk, tmp_path):
    with pytest.raises(RegistryError, match="no space left on the device holding .*nothing was published"):
        api.push(str(saved(tmp_path, "big")), str(full_disk))
    assert not (full_disk / "tickets" / "big").exists()


def test_write_errors_without_a_full_device_are_injected(tmp_path, monkeypatch):
    """The same wording from a fault-injected write (no tmpfs needed)."""
    from ticketzoo import fileio
    from ticketzoo.errors import StorageError

    def failing(_):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(StorageError, match=f"no space left on the device holding {tmp_path / 'x.bin'}"):
        fileio.atomic_write(tmp_path / "x.bin", failing)
    with pytest.raises(StorageError, match="permission denied"):
        fileio.atomic_write(tmp_path / "y.bin", lambda f: (_ for _ in ()).throw(PermissionError(errno.EACCES, "no")))
    assert list(tmp_path.iterdir()) == []


# --- 5. a pull that succeeded says so -----------------------------------------------------------


def test_a_pull_whose_state_cannot_be_written_succeeds_with_a_warning(cli, monkeypatch):
    import ticketzoo.registry.local as local_mod

    reg, _, head = two_revisions()
    real = local_mod.atomic_write_bytes

    def no_room_for_state(path, data, **kw):
        if Path(path).name == "state.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data, **kw)

    monkeypatch.setattr(local_mod, "atomic_write_bytes", no_room_for_state)
    code, out, err = cli("pull", "zz")
    assert code == 0 and out.strip() == str(reg.resolve("zz").file), err
    assert "warning:" in err and "no space left on the device holding" in err and "state.json" in err


# --- 6. no folders left behind ------------------------------------------------------------------


def test_a_failed_first_push_to_a_file_registry_leaves_no_folder(tmp_path, monkeypatch):
    import ticketzoo.folder as folder_mod

    zoo = tmp_path / "zoo"
    zoo.mkdir()
    real = folder_mod.atomic_write_bytes

    def failing(path, data, **kw):
        if Path(path).name == "README.md":
            raise OSError(errno.EIO, "Input/output error")
        return real(path, data, **kw)

    monkeypatch.setattr(folder_mod, "atomic_write_bytes", failing)
    with pytest.raises(RegistryError):
        api.push(str(saved(tmp_path, "first")), f"file://{zoo}")
    assert not (zoo / "tickets" / "first").exists()


def test_later_pushes_and_gc_registry_remove_a_headless_ticket_folder(cli, tmp_path):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    api.push(str(saved(tmp_path, "kept")), str(zoo))
    (zoo / "tickets" / "orphan" / "abcdef012345").mkdir(parents=True)  # a killed first push
    code, out, err = cli("gc", "--registry", zoo, "--dry-run")
    assert code == 0 and "unfinished push (no HEAD)" in out, err
    code, out, _ = cli("gc", "--registry", f"file://{zoo}", "--json")
    assert code == 0 and [Path(i["path"]).name for i in json.loads(out)["removed"]] == ["orphan"]
    (zoo / "tickets" / "orphan2").mkdir()
    api.push(str(saved(tmp_path, "other", 1)), str(zoo))  # the next writer sweeps it
    assert sorted(p.name for p in (zoo / "tickets").iterdir()) == ["kept", "other"]
    assert cli("gc", "--registry", "hf://org")[0] == 2  # a flag that does not apply (docs/CLI.md)


def test_a_refused_finetune_out_inside_the_registry_leaves_no_folder(cli, tmp_path, isolated_home):
    from synthetic import make_image_folder

    LocalRegistry().publish(tiny_ticket(name="starter"))
    data = make_image_folder(tmp_path / "d", kind="textures", classes=2, per_class=4, size=16)
    inside = isolated_home / "tickets" / "x"
    code, _, err = cli("finetune", "starter", "--data", data, "--out", inside, "--epochs", 1, "--device", "cpu")
    assert code == 1 and "inside the ticket registry" in err
    assert not inside.exists()
    code, _, err = cli("compare", "starter", "--data", data, "--out", inside / "c", "--epochs", 1, "--device", "cpu")
    assert code in (1, 2) and not inside.exists(), err


# --- 7. read-only and foreign folders -----------------------------------------------------------


@pytest.fixture
def read_only_home(isolated_home):
    """The local home, holding a pulled ticket, made read-only by a read-only bind mount."""
    reg, _, _ = two_revisions()
    api.pull("zz")
    if os.geteuid() != 0 or subprocess.run(["mount", "--bind", str(isolated_home), str(isolated_home)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot bind-mount here")
    try:
        if subprocess.run(["mount", "-o", "remount,ro,bind", str(isolated_home)],
                          capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only")
        yield reg
    finally:
        subprocess.run(["umount", "-l", str(isolated_home)], check=False)


def test_every_read_works_in_a_read_only_home(cli, read_only_home, tmp_path):
    reg = read_only_home
    with pytest.raises(OSError):
        (reg.root / "probe").write_text("x")  # the home really is read-only
    code, out, err = cli("pull", "zz")
    assert code == 0 and out.strip() == str(reg.resolve("zz").file) and "warning:" in err, err
    for args in (["verify", "zz"], ["info", "zz"], ["list"], ["gc", "--dry-run"], ["list", "--json"]):
        code, _, err = cli(*args)
        assert code == 0, (args, err)
    code, _, err = cli("rm", "zz")
    assert code == 1 and "read-only" in err.lower()


def test_finetune_with_a_read_only_home_succeeds_and_warns(cli, read_only_home, tmp_path):
    from synthetic import make_image_folder

    data = make_image_folder(tmp_path / "d", kind="textures", classes=2, per_class=40, size=16)
    code, out, err = cli("finetune", "zz", "--data", data, "--out", tmp_path / "o", "--epochs", 8,
                         "--split", "0.5,0.1,0.4", "--optimizer", "adam", "--lr", 0.01, "--batch-size", 8,
                         "--device", "cpu")
    assert code == 0 and (tmp_path / "o" / "ticket.safetensors").is_file(), err
    assert "warning:" in err and "will not know this fine-tune" in err


def _as_nobody(args, env) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                           "ticketzoo", *map(str, args)], env=env, capture_output=True, text=True, timeout=300)


def test_one_unreadable_entry_is_a_warning_in_list_for_another_user(monkeypatch):
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run as a second user")
    top = Path(tempfile.mkdtemp(prefix="tz-nobody-", dir="/tmp"))
    try:
        os.chmod(top, 0o755)
        home = top / "home"
        reg = LocalRegistry(home)
        reg.publish(tiny_ticket(name="fine"))
        bad = reg.publish(tiny_ticket(name="secret", seed=3))
        for p in home.rglob("*"):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        os.chmod(bad.folder, 0o700)  # another user's revision: this user cannot look in
        env = {**os.environ, "TICKETZOO_HOME": str(home), "PYTHONPATH": str(ROOT), "HOME": str(top)}
        env.pop("TICKETZOO_DEBUG", None)
        done = _as_nobody(["list", "--json"], env)
        assert done.returncode == 0, done.stderr
        names = [r["name"] for r in json.loads(done.stdout)]
        assert "fine" in names and "secret" not in names
        assert "warning:" in done.stderr and "secret" in done.stderr and "ermission denied" in done.stderr
        done = _as_nobody(["pull", "fine"], env)  # a home this user cannot write: the pull still works
        assert done.returncode == 0 and done.stdout.strip().endswith("ticket.safetensors"), done.stderr
    finally:
        shutil.rmtree(top, ignore_errors=True)


# --- 8. settings --------------------------------------------------------------------------------


def test_a_registry_setting_that_is_a_file_names_the_setting(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = cli("push", saved(tmp_path, "t"), "--registry", blocker)
    assert code == 2 and err.startswith("error: --registry: the registry folder") and "is not a folder" in err
    assert "TICKETZOO_HOME" not in err


def test_a_relative_or_missing_default_remote_is_an_error_naming_it(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = saved(tmp_path, "t")
    monkeypatch.setenv("TICKETZOO_REGISTRY", "garbage:::")
    code, _, err = cli("push", path)
    assert code == 1 and "TICKETZOO_REGISTRY" in err and "relative" in err
    assert not (tmp_path / "garbage:::").exists()
    monkeypatch.setenv("TICKETZOO_REGISTRY", str(tmp_path / "missing"))
    code, _, err = cli("push", path)
    assert code == 1 and "TICKETZOO_REGISTRY: the registry folder" in err and "does not exist" in err
    assert not (tmp_path / "missing").exists()
    code, _, err = cli("push", path, "--registry", tmp_path / "typo")
    assert code == 2 and "--registry: the registry folder" in err and not (tmp_path / "typo").exists()


def test_finetune_push_to_a_missing_registry_fails_before_training(cli, tmp_path):
    LocalRegistry().publish(tiny_ticket(name="starter"))
    code, _, err = cli("finetune", "starter", "--data", tmp_path, "--out", tmp_path / "o", "--push",
                       "--registry", tmp_path / "typo")
    assert code == 2 and "--registry: the registry folder" in err and "does not exist" in err, err
    assert not (tmp_path / "o").exists() and not (tmp_path / "typo").exists()


@pytest.mark.parametrize("char", ["#", "?"])
def test_file_urls_with_a_fragment_or_query_are_refused(cli, tmp_path, char):
    with pytest.raises(InvalidRefError, match="cannot hold"):
        parse_registry_url(f"file://{tmp_path}/a{char}b")
    with pytest.raises(InvalidRefError, match="cannot hold"):
        parse_ref(f"file://{tmp_path}/a{char}b/name")
    assert cli("list", "--registry", f"file://{tmp_path}{char}x")[0] == 2  # a flag value typed wrong


def test_list_of_a_missing_registry_folder_is_an_error(cli, tmp_path):
    code, out, err = cli("list", "--registry", tmp_path / "no" / "such")
    assert code == 2 and "does not exist" in err and "no tickets match" not in out


# --- 9. a bare name is a name -------------------------------------------------------------------


def test_a_bare_name_is_a_name_even_beside_a_folder_of_that_name(cli, tmp_path, monkeypatch):
    LocalRegistry().publish(tiny_ticket(name="zz"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "zz").mkdir()
    assert parse_ref("zz").kind == "name" and parse_ref("./zz").kind == "path"
    assert parse_ref("zz.safetensors").kind == "path" and parse_ref(str(tmp_path / "zz")).kind == "path"
    for command in ("pull", "info", "verify"):
        code, _, err = cli(command, "zz")
        assert code == 0, (command, err)
    (tmp_path / "Loose_Folder").mkdir()  # not a valid name: still a path, as typed
    assert parse_ref("Loose_Folder").kind == "path"


# --- issue 19.2 and 19.4 ------------------------------------------------------------------------


def test_pushed_folders_are_0755_and_files_0644_under_umask_022(tmp_path):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    old = os.umask(0o022)
    try:
        api.push(str(saved(tmp_path, "shared")), f"file://{zoo}")
        LocalRegistry().publish(tiny_ticket(name="local-one"))
    finally:
        os.umask(old)
    for root in (zoo, LocalRegistry().root):
        for p in (root / "tickets").rglob("*"):
            mode = stat.S_IMODE(p.stat().st_mode)
            assert mode == (0o755 if p.is_dir() else 0o644), (p, oct(mode))


def test_pull_of_a_missing_revision_says_the_revision_is_missing(cli):
    reg, old, head = two_revisions()
    code, _, err = cli("pull", "zz@zzzz")
    assert code == 1 and "revision 'zzzz' of 'zz' not found" in err and "no ticket named" not in err, err
    assert old in err and head in err
    code, _, err = cli("pull", "nothere@abcd")
    assert code == 1 and "no ticket named 'nothere'" in err

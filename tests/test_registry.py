"""Local registry, refs, catalog, file:// push/pull, atomicity and locking."""

from __future__ import annotations

import errno
import multiprocessing as mp
from pathlib import Path

import pytest

from conftest import tiny_ticket
from ticketzoo.errors import IntegrityError, InvalidRefError, RegistryError, TicketNotFoundError
from ticketzoo.registry import api
from ticketzoo.registry.local import LocalRegistry
from ticketzoo.registry.refs import check_name, parse_ref, parse_registry_url


@pytest.mark.parametrize("bad", ["../x", "/abs", "", "A", ".hidden", "a/b", "a..b", "x" * 97, "-x", "a b"])
def test_bad_names_are_refused(bad):
    with pytest.raises(InvalidRefError):
        check_name(bad)


def test_parse_ref_forms(tmp_path):
    assert parse_ref("cifar10-resnet50-s97").kind == "name"
    r = parse_ref("abc@0123abcd")
    assert (r.name, r.revision) == ("abc", "0123abcd")
    h = parse_ref("hf://org/repo/tick-1@v1")
    assert (h.kind, h.repo_id, h.name, h.revision) == ("hf", "org/repo", "tick-1", "v1")
    assert parse_ref("hf://org/repo").name is None
    f = parse_ref("file:///srv/zoo/t1@abcd")
    assert (f.kind, f.root, f.name, f.revision) == ("file", Path("/srv/zoo"), "t1", "abcd")
    assert parse_ref("./x.safetensors").kind == "path"
    for bad in ["hf://only", "hf://a/b/c/d", "s3://x", "file://host/x", "x@", "UPPER", "x@a..b"]:
        with pytest.raises(InvalidRefError):
            parse_ref(bad)
    assert parse_registry_url("file:///tmp/r").root == Path("/tmp/r")
    plain = parse_registry_url("/tmp/r")  # a plain folder is the file:// registry there
    assert (plain.kind, plain.root, plain.text) == ("file", Path("/tmp/r"), "file:///tmp/r")
    assert parse_registry_url("rel/zoo").root == Path.cwd() / "rel" / "zoo"
    for bad in ("s3://bucket", "", "hf://a/b/c", "file://host/x"):
        with pytest.raises(InvalidRefError, match="registry URL"):
            parse_registry_url(bad)


def test_publish_resolve_and_revisions(tmp_path):
    reg = LocalRegistry(tmp_path / "reg")
    a = reg.publish(tiny_ticket(name="t1", seed=0))
    b = reg.publish(tiny_ticket(name="t1", seed=1))
    assert a.revision != b.revision
    assert reg.resolve("t1").revision == b.revision
    assert reg.resolve("t1", a.revision[:6]).sha256 == a.sha256
    assert sorted(reg.revisions("t1")) == sorted([a.revision, b.revision])
    again = reg.publish(a.file.read_bytes())  # same content: same revision, HEAD moves back
    assert again.revision == a.revision and reg.resolve("t1").revision == a.revision
    with pytest.raises(TicketNotFoundError, match="revisions:"):
        reg.resolve("t1", "ffffff")
    assert [p.name for p in (tmp_path / "reg" / "tickets" / "t1").iterdir() if p.name.startswith(".tmp")] == []


def test_push_then_pull_through_file_registry_gives_identical_bytes(tmp_path, monkeypatch):
    src = tmp_path / "t.safetensors"
    tiny_ticket(name="shared-t").save(src)
    remote = tmp_path / "remote"
    remote.mkdir()  # a registry setting must name an existing folder
    pushed = api.push(str(src), f"file://{remote}")
    assert pushed.sha256 and pushed.location.startswith("file://")
    monkeypatch.setenv("TICKETZOO_HOME", str(tmp_path / "home2"))
    entry = api.pull("shared-t", f"file://{remote}")
    assert entry.file.read_bytes() == src.read_bytes()
    assert str(entry.file).startswith(str(tmp_path / "home2"))
    assert api.last_pulled().name == "shared-t"
    # also via a file:// ref with a revision
    assert api.pull(f"file://{remote}/shared-t@{pushed.revision}").sha256 == pushed.sha256


def test_pull_catches_flipped_byte(tmp_path):
    reg = LocalRegistry()
    entry = reg.publish(tiny_ticket(name="flip"))
    data = bytearray(entry.file.read_bytes())
    data[len(data) // 2] ^= 0x10
    entry.file.chmod(0o644)
    entry.file.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sha256"):
        api.verify("flip")
    with pytest.raises(IntegrityError):
        api.pull("flip")


def test_unknown_name_suggests(tmp_path):
    LocalRegistry().publish(tiny_ticket(name="conv-ticket"))
    with pytest.raises(TicketNotFoundError, match="did you mean conv-ticket"):
        api.pull("conv-tickt")


def test_unwritable_registry(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(RegistryError, match="not writable"):
        LocalRegistry(blocker / "reg").publish(tiny_ticket())


def test_disk_full_during_push_leaves_nothing(tmp_path, monkeypatch):
    reg = LocalRegistry(tmp_path / "reg")
    import ticketzoo.folder as local_mod  # the one folder writer

    real = local_mod.atomic_write_bytes

    def failing(path, data, **kw):
        if Path(path).name == "README.md":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data, **kw)

    monkeypatch.setattr(local_mod, "atomic_write_bytes", failing)
    with pytest.raises(RegistryError, match="no space left on the device holding.*nothing was published"):
        reg.publish(tiny_ticket(name="full"))
    assert reg.names() == []
    assert not (tmp_path / "reg" / "tickets" / "full").exists()  # a failed first push leaves no folder


def _push_many(root: str, seed: int) -> str:
    return LocalRegistry(root).publish(tiny_ticket(name="busy", seed=seed)).revision


def test_concurrent_pushes_are_safe(tmp_path):
    root = str(tmp_path / "reg")
    with mp.get_context("spawn").Pool(2) as pool:
        revs = pool.starmap(_push_many, [(root, s) for s in range(4)])
    reg = LocalRegistry(root)
    assert sorted(reg.revisions("busy")) == sorted(set(revs))
    assert reg.resolve("busy").revision in revs
    for r in revs:
        reg.pull("busy", r)  # every revision intact


def test_pull_repairs_a_damaged_local_copy_from_the_catalog(tmp_path, monkeypatch):
    catalog = tmp_path / "catalog"
    src = LocalRegistry(tmp_path / "src").publish(tiny_ticket(name="cat-t"))
    import shutil

    shutil.copytree(src.folder, catalog / "cat-t")
    monkeypatch.setenv("TICKETZOO_CATALOG", str(catalog))
    entry = api.pull("cat-t")
    data = bytearray(entry.file.read_bytes())
    data[100] ^= 1
    entry.file.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=f"delete {entry.folder}"):
        api.verify("cat-t")
    assert api.pull("cat-t").file.read_bytes() == src.file.read_bytes()
    api.verify("cat-t")


def test_only_pull_changes_the_last_pulled_ticket(tmp_path):
    reg = LocalRegistry()
    reg.publish(tiny_ticket(name="first", seed=0))
    reg.publish(tiny_ticket(name="second", seed=1))
    api.pull("first")
    api.open_ticket("second")
    api.resolve_card("second")
    api.verify("second")
    assert api.last_pulled().name == "first"

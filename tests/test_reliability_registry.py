"""Registry integrity against a hostile or damaged folder, and the CLI's messages about it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import tiny_ticket
from ticketzoo.errors import IntegrityError, InvalidRefError, RegistryError
from ticketzoo.registry import api
from ticketzoo.registry.local import LocalRegistry
from ticketzoo.registry.refs import parse_ref, parse_registry_url
from ticketzoo.ticket import Ticket


@pytest.fixture
def cli(capsys):
    """``ticketzoo ARGS`` in this process: (exit code, stdout, stderr)."""
    from ticketzoo.cli.main import main

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            main([str(a) for a in args])
        out, err = capsys.readouterr()
        assert "Traceback" not in err and "error: unexpected" not in err, err
        if e.value.code == 1:
            assert len(err.strip().splitlines()) == 1, err
        return e.value.code, out, " ".join(err.split())

    return run


@pytest.fixture
def stored():
    entry = LocalRegistry().publish(tiny_ticket(name="kept", sparsity=0.75))
    return entry


# --- defect 2: no command writes inside the registry ----------------------------------------


def test_export_refuses_to_overwrite_a_stored_ticket(cli, stored, tmp_path):
    before = stored.file.read_bytes()
    for extra in ([], ["--force"]):
        code, _, err = cli("export", "kept", "--out", stored.file, *extra)
        assert code == 1 and "inside the ticket registry" in err, err
    code, _, err = cli("export", "kept", "--out", stored.folder / "dense.safetensors", "--force")
    assert code == 1 and "inside the ticket registry" in err
    assert stored.file.read_bytes() == before and not (stored.folder / "dense.safetensors").exists()
    assert cli("verify", "kept")[0] == 0 and cli("pull", "kept")[0] == 0
    link = tmp_path / "link.safetensors"  # a link into the registry is the registry too
    link.symlink_to(stored.file)
    assert cli("export", "kept", "--out", link, "--force")[0] == 1 and stored.file.read_bytes() == before


def test_export_needs_force_to_overwrite(cli, stored, tmp_path):
    out = tmp_path / "dense.safetensors"
    out.write_bytes(b"mine")
    code, _, err = cli("export", "kept", "--out", out)
    assert code == 2 and "--force" in err and out.read_bytes() == b"mine"
    assert cli("export", "kept", "--out", out, "--force")[0] == 0 and out.read_bytes() != b"mine"


def test_any_write_into_a_registry_folder_is_refused(stored, tmp_path):
    remote = LocalRegistry(tmp_path / "remote")
    entry = remote.publish(tiny_ticket(name="far"))
    for target in (stored.file, entry.file, entry.folder.parent / "HEAD"):
        with pytest.raises(RegistryError, match="inside the ticket registry"):
            tiny_ticket(name="other").save(target)
    remote.pull("far")


# --- defect 6: names read from a registry's files -------------------------------------------


def test_head_leading_outside_a_file_registry_is_refused(cli, tmp_path):
    outside = LocalRegistry(tmp_path / "outside").publish(tiny_ticket(name="evil", seed=3))
    remote = tmp_path / "remote"
    LocalRegistry(remote).publish(tiny_ticket(name="good"))
    rel = os.path.relpath(outside.folder, remote / "tickets" / "good")
    (remote / "tickets" / "good" / "HEAD").write_text(rel + "\n")
    code, _, err = cli("pull", "good", "--registry", f"file://{remote}")
    assert code == 1 and "does not name a revision" in err and "damaged" in err
    assert LocalRegistry().names() == []


def test_revision_folder_that_is_a_link_or_mislabelled_is_refused(tmp_path):
    reg = LocalRegistry(tmp_path / "reg")
    a = reg.publish(tiny_ticket(name="a"))
    b = LocalRegistry(tmp_path / "elsewhere").publish(tiny_ticket(name="a", seed=4))
    shutil.rmtree(a.folder)
    a.folder.symlink_to(b.folder)
    with pytest.raises(RegistryError, match="not a link"):
        reg.resolve("a")
    a.folder.unlink()
    shutil.copytree(b.folder, a.folder)  # the README records another revision than its folder
    with pytest.raises(IntegrityError, match=f"records ticket a@{b.revision}, but its folder is a@{a.revision}"):
        reg.resolve("a")


# --- defect 7: listings agree with the ticket's own header ----------------------------------


def _readme_says_resnet50(entry) -> None:
    readme = entry.folder / "README.md"
    text = readme.read_text()
    start = text.index("<!-- ticketzoo-card") + len("<!-- ticketzoo-card")
    end = text.index("-->", start)
    card = json.loads(text[start:end])
    card["arch"]["name"] = "resnet50"
    readme.write_text(text[:start] + "\n" + json.dumps(card) + "\n" + text[end:])


def test_edited_readme_is_caught_by_verify_list_and_info(cli, stored):
    _readme_says_resnet50(stored)
    code, _, err = cli("verify", "kept")
    assert code == 1 and "differs from the ticket file's own header" in err and "arch: README says 'resnet50'" in err
    code, out, _ = cli("list", "--json")
    row = next(r for r in json.loads(out) if r["name"] == "kept")
    assert row["arch"] == "resnet50" and "README says 'resnet50', the ticket says 'conv2'" in row["problem"]
    code, out, _ = cli("list")
    assert "problem" in out.splitlines()[0] and "differs" in out
    assert cli("info", "kept")[0] == 1


def test_edited_front_matter_is_caught(cli, stored):
    readme = stored.folder / "README.md"
    readme.write_text(readme.read_text().replace("arch: conv2", "arch: resnet50", 1))
    code, _, err = cli("verify", "kept")
    assert code == 1 and "arch: README front matter says 'resnet50', the ticket says 'conv2'" in err
    rows = json.loads(cli("list", "--json")[1])
    assert "front matter" in next(r for r in rows if r["name"] == "kept")["problem"]


def test_info_fails_on_a_missing_or_damaged_ticket_file(cli, stored):
    data = bytearray(stored.file.read_bytes())
    data[-10] ^= 1
    stored.file.write_bytes(bytes(data))
    code, _, err = cli("info", "kept")
    assert code == 1 and "sha256" in err
    stored.file.unlink()
    code, _, err = cli("info", "kept")
    assert code == 1 and "ticket file is missing" in err
    code, out, _ = cli("list", "--json")
    assert next(r for r in json.loads(out) if r["name"] == "kept")["problem"] == "ticket file is missing"


# --- defect 8: crash-style messages ---------------------------------------------------------


def test_overlong_ref_and_control_characters_are_invalid_refs(cli, tmp_path):
    for ref in ("a" * 5000, "a/" * 2500, "x" * 300 + ".safetensors"):
        code, _, err = cli("info", ref)
        assert code == 1 and len(err) < 400, err
    with pytest.raises(InvalidRefError, match="too long"):
        parse_ref("b" * 5000)
    with pytest.raises(InvalidRefError, match="control character"):
        parse_registry_url("file:///tmp/a%00b")
    with pytest.raises(InvalidRefError, match="control character"):
        parse_ref("file:///tmp/a%00b/name")
    code, _, err = cli("pull", "x", "--registry", "file:///tmp/a%00b")
    assert code == 1 and "control character" in err


# --- defect 9: leftovers of killed writers ---------------------------------------------------


def test_leftovers_are_swept_by_the_next_writer(stored):
    reg = LocalRegistry()
    base = stored.folder.parent
    junk = [base / ".tmp-killed", base / ".bad-killed", reg.tickets / ".probe-x"]
    for j in junk[:2]:
        j.mkdir()
        (j / "ticket.safetensors").write_bytes(b"partial")
    junk[2].write_bytes(b"")
    files = [base / ".HEAD.abc.tmp", reg.root / ".state.json.abc.tmp"]
    for f in files:
        f.write_bytes(b"x")
    mine = reg.root / ".notes.tmp"  # the registry root may hold the user's own files: kept
    mine.write_bytes(b"keep")
    api.pull("kept")  # records the pull: a writer, under the lock
    assert not any(p.exists() for p in junk + files) and mine.exists()
    assert reg.pull("kept").sha256 == stored.sha256
    assert {p.name for p in base.iterdir()} == {stored.revision, "HEAD"}


def test_unknown_architecture_is_refused_by_verify_and_push(cli, tmp_path):
    t = tiny_ticket(name="odd-arch")
    t = t.with_card(arch=t.card.arch.__class__(**{**t.card.arch.__dict__, "name": "resnet9000"}))
    path = tmp_path / "odd.safetensors"
    t.save(path)
    code, out, err = cli("verify", path, "--json")
    assert code == 1 and "architecture 'resnet9000' is unknown to ticketzoo" in err, err
    assert json.loads(out)["ok"] is False and "resnet9000" in json.loads(out)["error"]  # --json answers on stdout
    assert "cannot be checked" in err and "valid names:" in err
    for target in ([], ["--registry", tmp_path / "zoo"]):
        code, out, err = cli("push", path, *target)
        assert code == 1 and "architecture 'resnet9000' is unknown" in err, err
    assert LocalRegistry().names() == [] and not (tmp_path / "zoo" / "tickets").exists()
    assert Ticket.load(path).name == "odd-arch"  # the file itself is valid: only its arch is unknown

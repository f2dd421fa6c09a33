"""Third fault campaign (issue 31): what the fixes so far hold."""

from __future__ import annotations

import pytest

from ticketzoo.errors import TicketzooError


@pytest.mark.parametrize("text", ["evil\n", "evil\r\n", "a\nb"])
def test_a_trailing_newline_is_no_valid_name_rev_or_license(text):
    """``^...$`` with ``.match()`` let one trailing newline through: every such pattern ends
    in ``\\Z`` now (names, revisions, sha256/commit ids, license ids)."""
    from ticketzoo.card.validate import LICENSE_RE
    from ticketzoo.folder import SHA_RE
    from ticketzoo.names import valid_name
    from ticketzoo.registry import local
    from ticketzoo.registry.hub import COMMIT_RE
    from ticketzoo.registry.refs import REV_RE, parse_ref

    assert not valid_name(text)
    assert not LICENSE_RE.match("mit\n") and not REV_RE.match("v1\n")
    assert not local.REV_RE.match("ab" * 6 + "\n") and not SHA_RE.match("ab" * 32 + "\n")
    assert not COMMIT_RE.match("ab" * 20 + "\n")
    # a typed reference is stripped of surrounding blanks: never a name that holds a newline
    if text.strip() == text:
        with pytest.raises(TicketzooError):
            parse_ref(text)
    else:
        assert parse_ref(text).name == text.strip()


def test_push_refuses_a_name_or_license_with_a_newline(tmp_path, cli, ticket_file):
    registry = tmp_path / "reg"
    registry.mkdir()
    code, _, err = cli("push", ticket_file, "--registry", f"file://{registry}", "--name", "evil\n")
    assert code == 2 and "invalid ticket name" in err  # typed: a usage error (docs/CLI.md)
    code, _, err = cli("push", ticket_file, "--registry", f"file://{registry}", "--license", "mit\n")
    assert code == 2 and "is not a Hub license id" in err
    code, _, err = cli("push", ticket_file, "--registry", f"file://{registry}", "--license", "cc-by-4")
    assert code == 2 and "did you mean cc-by-4.0" in err  # checked against the Hub's list (issue 31 #2)
    assert not any(registry.iterdir()) or not any(p.name.endswith("\n") for p in registry.rglob("*"))


def test_control_characters_in_card_text_are_printed_escaped(tmp_path, cli):
    """An ESC in a description or class name reaches the terminal written out (``\\x1b``),
    never as a command that clears the screen or erases a line (issue 31 #8)."""
    import dataclasses

    from conftest import tiny_ticket

    t = tiny_ticket()
    t = t.with_card(description="fine\x1b[2J\x1b[1A\x1b[2Kgone\x9b31m",
                    source=dataclasses.replace(t.card.source, dataset="ev\x1b[31mil",
                                               classes=tuple(f"c{i}\x1b[1A" for i in range(len(t.card.source.classes)))))
    path = tmp_path / "t.safetensors"
    t.save(path)
    code, out, err = cli("info", path)
    assert code == 0, err
    assert "\x1b" not in out and "\x9b" not in out
    assert "\\x1b[2J" in out or "\\x1b[31m" in out  # shown, escaped


def test_printable_escapes_controls_and_keeps_rows_whole(capsys):
    from ticketzoo.cli.console import print_columns, printable

    assert printable("a\x1b[2Jb\tc\nd") == "a\\x1b[2Jb\tc\nd"
    assert printable("a\nb", one_line=True) == "a\\nb"
    print_columns(["name", "note"], [["evil\nname", "x\x1b[1Ay"]])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "\x1b" not in lines[1] and "evil\\nname" in lines[1]


def test_compare_refuses_an_out_folder_with_files_it_did_not_write(tmp_path):
    """compare --out on a folder holding the user's own runs.csv / plot.png and no sweep.json
    is refused without --force, and nothing there changes (issue 31 #5)."""
    from test_compare import make_tickets, recipe

    from synthetic import make_image_folder
    from ticketzoo.compare import CompareConfig, compare
    from ticketzoo.errors import CheckpointError

    data = make_image_folder(tmp_path / "stripes", kind="textures", classes=2, per_class=10, size=16)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "runs.csv").write_text("my own results\n")
    (out / "plot.png").write_bytes(b"mine")
    with pytest.raises(CheckpointError, match="no sweep.json"):
        compare(make_tickets(tmp_path), data, CompareConfig(recipe(epochs=1, seeds=1)), out_dir=out)
    assert (out / "runs.csv").read_text() == "my own results\n" and sorted(p.name for p in out.iterdir()) == \
        ["plot.png", "runs.csv"]


def test_finetune_force_replaces_only_its_own_files(tmp_path, cli):
    """--force starts over by removing what a fine-tune wrote (ticket, metrics, run
    checkpoints and logs); the user's files in the same folders stay (issue 31 #6)."""
    from conftest import colour_folder, tiny_ticket
    from test_finetune import QUICK_ARGS

    base = tmp_path / "base.safetensors"
    tiny_ticket().save(base)
    data = colour_folder(tmp_path / "f", per_class=20)
    out = tmp_path / "out"
    args = ["finetune", base, "--data", data, "--out", out, "--epochs", 4, "--quiet", *QUICK_ARGS]
    code, _, err = cli(*args)
    assert code == 0, err
    old = (out / "metrics.json").read_text()
    (out / "logs" / "mine.txt").write_text("keep")
    (out / "checkpoints" / "mine.pt").write_bytes(b"keep")
    (out / "notes.md").write_text("keep")
    code, _, err = cli(*args, "--force", "--seed", 1)
    assert code == 0, err
    assert (out / "metrics.json").read_text() != old and (out / "ticket.safetensors").exists()
    for kept in (out / "logs" / "mine.txt", out / "checkpoints" / "mine.pt", out / "notes.md"):
        assert kept.read_bytes() == b"keep"
    assert sorted(p.name for p in (out / "logs").iterdir()) == ["mine.txt", "rewind-seed1.csv"]


def test_a_folder_nested_a_thousand_levels_is_a_clear_error(tmp_path):
    """No RecursionError: the walk keeps its own stack and names the folder too deep (issue 31 #11)."""
    import os

    from ticketzoo.data import discover_folder
    from ticketzoo.data.walk import MAX_DEPTH, walk
    from ticketzoo.errors import DataError
    from ticketzoo.predict import image_files

    root = tmp_path / "deep"
    (root / "cls").mkdir(parents=True)
    (root / "other").mkdir()
    fds = [os.open(root / "cls", os.O_RDONLY)]
    try:  # 1,200 levels: relative mkdirs, since the full path outgrows PATH_MAX
        for _ in range(1200):
            os.mkdir("d", dir_fd=fds[-1])
            fds.append(os.open("d", os.O_RDONLY, dir_fd=fds[-1]))
        with pytest.raises(DataError, match=f"deeper than {MAX_DEPTH} levels"):
            image_files(root)
        with pytest.raises(DataError, match="deeper than"):
            discover_folder(root, split=(0.5, 0.25, 0.25))
    finally:  # removed bottom-up here: a recursive rmtree (pytest's cleanup) would fail on it
        os.close(fds.pop())
        while fds:
            os.rmdir("d", dir_fd=fds[-1])
            os.close(fds.pop())
    flat = tmp_path / "flat"
    (flat / "a" / "b").mkdir(parents=True)
    (flat / "a" / "b" / "x.png").write_bytes(b"")
    assert [(os.path.relpath(p, flat), sorted(d), f) for p, d, f in walk(flat)] == \
        [(".", ["a"], []), ("a", ["b"], []), (os.path.join("a", "b"), [], ["x.png"])]


def test_a_huge_png_is_skipped_with_one_reason_naming_its_size(tmp_path, monkeypatch, recwarn):
    """An image above MAX_PIXELS that cannot be decoded at reduced scale is skipped before it
    is decoded, with no raw DecompressionBombWarning (issue 31 #12); JPEGs still decode."""
    from PIL import Image

    from ticketzoo.data import images

    monkeypatch.setattr(images, "MAX_PIXELS", 20 * 20)
    Image.new("RGB", (30, 30)).save(tmp_path / "big.png")
    Image.new("RGB", (30, 30)).save(tmp_path / "big.jpg")
    Image.new("RGB", (20, 20)).save(tmp_path / "ok.png")
    array, reason = images.try_decode(tmp_path / "big.png", channels=3, resize=16)
    assert array is None and reason.startswith("image too large: 30 x 30 pixels")
    assert images.try_decode(tmp_path / "big.jpg", channels=3, resize=16)[0].shape == (16, 16, 3)
    assert images.try_decode(tmp_path / "ok.png", channels=3, resize=16)[0].shape == (16, 16, 3)
    assert not [w for w in recwarn if "DecompressionBomb" in type(w.message).__name__]


def test_predict_and_bench_say_why_the_sparse_kernels_are_not_used(tmp_path, cli, monkeypatch):
    """Issue 31 #10: the fallback to torch.sparse is said, with its real cause, by predict and
    bench (not "no C++ compiler" when the compiler exists but the build failed)."""
    from conftest import colour_folder, tiny_ticket

    monkeypatch.setenv("TICKETZOO_SPARSE_CACHE", str(tmp_path / "cache"))
    fake = tmp_path / "cc"
    fake.write_text("#!/bin/sh\necho 'broken compiler' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CXX", str(fake))
    path = tmp_path / "t.safetensors"
    tiny_ticket(trained=True).save(path)
    data = colour_folder(tmp_path / "imgs", per_class=2)
    code, _, err = cli("predict", path, "--data", data)
    assert code == 0, err
    assert "note: the sparse runtime runs on torch.sparse here: the C++ kernels did not build" in err
    code, out, err = cli("bench", path, "--repeat", 1)
    assert code == 0, err
    assert "torch.sparse: the C++ kernels did not build" in out and "no C++ compiler" not in out


def test_verify_path_checks_the_sha256_its_folder_records(tmp_path, cli):
    """Issue 31 #7: `verify PATH` on a registry revision folder whose ticket.safetensors was
    swapped for another ticket fails (exit 1) on the sha256 its README records."""
    import shutil

    from ticketzoo.api import pull

    entry = pull("fashionmnist-lenet-300-100-s79")
    other = pull("fashionmnist-lenet-300-100-s93")
    folder = tmp_path / "rev"
    shutil.copytree(entry.folder, folder)
    code, out, err = cli("verify", folder / "ticket.safetensors")
    assert code == 0 and "sha256 and format verified" in out, err
    shutil.copyfile(other.file, folder / "ticket.safetensors")
    code, out, err = cli("verify", folder)
    assert code == 1 and ("sha256" in err or "size" in err) and "ok" not in out


def test_minor_wordings(tmp_path, cli, ticket_file):
    """Issue 31's minor rows: `push --license ""` names the license, not hf://; `predict --data
    FIFO` says what the path is."""
    import os

    registry = tmp_path / "reg"
    registry.mkdir()
    code, _, err = cli("push", ticket_file, "--registry", f"file://{registry}", "--license", "")
    assert code == 2 and "not a Hub license id" in err and "hf://" not in err
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code, _, err = cli("predict", ticket_file, "--data", fifo)
    assert code != 0 and "not a regular file or a folder" in err


def test_list_filters_match_patterns_and_refuse_an_empty_range(cli):
    """Issue 32: `list --arch LeNet` / `--source fashion` / `--arch '*lenet*'` find the LeNets;
    --min-sparsity above --max-sparsity is refused, not silently empty."""
    import json

    for flags in (["--arch", "LeNet"], ["--arch", "*lenet*"], ["--source", "fashion"]):
        code, out, err = cli("list", *flags, "--json")
        assert code == 0, err
        data = json.loads(out)
        names = [r["name"] for r in (data["tickets"] if isinstance(data, dict) else data)]
        assert any(n.startswith("fashionmnist-lenet") for n in names), (flags, names)
    code, _, err = cli("list", "--min-sparsity", ".95", "--max-sparsity", ".5")
    assert code != 0 and "above max_sparsity" in err.replace("--max-sparsity", "max_sparsity")


def test_finetune_on_a_missing_gpu_fails_before_reading_the_folder(tmp_path, cli, ticket_file, monkeypatch):
    import torch

    from ticketzoo.data import loading

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(loading, "discover_folder", lambda *a, **k: pytest.fail("the folder was read"))
    code, _, err = cli("finetune", ticket_file, "--data", tmp_path, "--device", "cuda", "--out", tmp_path / "o")
    assert code != 0 and "CUDA is not available" in err

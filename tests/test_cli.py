"""CLI: exit codes, one-line errors on stderr, --json, the main verbs end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from conftest import tiny_ticket
from ticketzoo.models import build_model


def run(*args, env=None, check=None):
    e = {**os.environ, **(env or {})}
    p = subprocess.run([sys.executable, "-m", "ticketzoo", *args], capture_output=True, text=True, env=e)
    if check is not None:
        assert p.returncode == check, (p.returncode, p.stdout, p.stderr)
    return p


def test_help_and_usage_errors():
    assert "find" in run("--help", check=0).stdout or "list" in run("--help").stdout
    p = run("info", check=2)
    assert "Missing argument" in p.stderr and p.stdout == ""
    run("bogus", check=2)


def test_push_list_info_verify_export(tmp_path):
    src = tmp_path / "t.safetensors"
    tiny_ticket(name="cli-t", sparsity=0.75).save(src)
    out = run("push", str(src), check=0).stdout
    assert "pushed cli-t@" in out
    rows = json.loads(run("list", "--json", check=0).stdout)
    assert [r["name"] for r in rows if r["where"].startswith("local")] == ["cli-t"]
    assert json.loads(run("list", "--json", "--min-sparsity", "0.9").stdout) == [] or all(
        r["sparsity"] >= 0.9 for r in json.loads(run("list", "--json", "--min-sparsity", "0.9").stdout)
    )
    info = json.loads(run("info", "cli-t", "--json", check=0).stdout)
    assert info["name"] == "cli-t" and len(info["file"]["sha256"]) == 64
    assert "per-layer sparsity" in run("info", "cli-t", check=0).stdout
    assert json.loads(run("verify", "cli-t", "--json", check=0).stdout)["ok"] is True
    dense = tmp_path / "dense.safetensors"
    run("export", "cli-t", "--out", str(dense), "--weights", "trained", check=0)
    model = build_model("conv2", num_classes=4, input_size=16, width=0.125)
    model.load_state_dict(load_file(dense))  # strict: loads into the plain model


def test_pull_prints_path(tmp_path):
    remote = tmp_path / "remote"
    remote.mkdir()  # a registry setting names an existing folder
    src = tmp_path / "t.safetensors"
    tiny_ticket(name="remote-t").save(src)
    run("push", str(src), "--registry", f"file://{remote}", check=0)
    path = run("pull", "remote-t", "--registry", f"file://{remote}", check=0).stdout.strip()
    assert open(path, "rb").read() == src.read_bytes()


@pytest.mark.parametrize(
    "args,message",
    [
        (["info", "../x"], "no ticket file at ../x"),
        (["pull", "nope"], "no ticket named 'nope'"),
        (["push", "x.safetensors", "--registry", "s3://x"], "no ticket file"),
        (["verify", "missing.safetensors"], "no ticket file"),
    ],
)
def test_user_errors_are_one_line(tmp_path, args, message):
    p = run(*args, check=1)
    assert message in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args,message",
    [
        (["pull", "Bad_Name"], "invalid ticket name"),
        (["info", "Bad_Name"], "invalid ticket name"),
        (["push", "x.safetensors", "--name", "Bad_Name"], "invalid ticket name"),
        (["push", "x.safetensors", "--name=Bad_Name"], "invalid ticket name"),
        (["rm", "./x"], "is not a ticket NAME[@REV]"),
        (["pull", "../x"], "is a file path"),
        (["pull", "hf://"], "malformed hub reference"),
    ],
)
def test_a_malformed_name_typed_is_a_usage_error(tmp_path, args, message):
    """One rule (docs/CLI.md): what was typed is wrong, so exit 2, as for a flag out of range."""
    if args[0] == "push":
        tiny_ticket().save(tmp_path / "x.safetensors")
        args = [a.replace("x.safetensors", str(tmp_path / "x.safetensors")) for a in args]
    p = run(*args, check=2)
    assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_corrupt_file_error_and_debug_traceback(tmp_path):
    bad = tmp_path / "bad.safetensors"
    data = bytearray(tiny_ticket().to_bytes())
    data[-3] ^= 0xFF
    bad.write_bytes(bytes(data))
    p = run("verify", str(bad), check=1)
    assert "bad.safetensors" in p.stderr and "payload sha256" in p.stderr and "Traceback" not in p.stderr
    p = run("verify", str(bad), env={"TICKETZOO_DEBUG": "1"})
    assert p.returncode != 0 and "Traceback" in p.stderr


def test_unknown_architecture_is_a_clear_error(tmp_path):
    t = tiny_ticket(name="odd-arch")
    t = t.with_card(arch=t.card.arch.__class__(**{**t.card.arch.__dict__, "name": "resnet9000"}))
    path = tmp_path / "odd.safetensors"
    t.save(path)
    # verify checks every tensor against the architecture, so one it does not know is refused (REG, issue 11)
    p = run("verify", str(path), check=1)
    assert "architecture 'resnet9000' is unknown" in p.stderr and "Traceback" not in p.stderr
    from ticketzoo.errors import UnknownArchitectureError
    from ticketzoo.ticket import Ticket

    with pytest.raises(UnknownArchitectureError, match="resnet9000.*resnet50"):
        Ticket.load(path).to_model()


def test_brackets_in_data_are_printed_verbatim(tmp_path):
    from ticketzoo.card import Lineage

    t = tiny_ticket(name="x-conv2-s20-reinit").with_card(description="a [/b] b [red]c", lineage=Lineage(control="reinit"))
    path = tmp_path / "t.safetensors"
    t.save(path)
    out = run("info", str(path), check=0).stdout
    assert "a [/b] b [red]c" in out and "reinit control" in out
    run("push", str(path), check=0)
    listing = run("list", check=0).stdout
    assert "control" in listing.splitlines()[0] and "reinit" in listing
    p = run("pull", "hf://a", check=2)  # typed wrong: a usage error
    assert "hf://ORG/REPO[/NAME][@REV]" in p.stderr and "Traceback" not in p.stderr


# --- shared options and the field -> flag table (issue 11) ------------------------------------


def main_cli(capsys, *args):
    """In-process ``ticketzoo ARGS``: (exit code, stdout, stderr)."""
    from ticketzoo.cli.main import main

    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def _command(name):
    import click

    from ticketzoo.cli.main import cli

    return cli.get_command(click.Context(cli), name)


def test_find_and_finetune_share_their_option_groups():
    import click

    from ticketzoo.cli.options import GROUPS

    def spellings(command):
        return {p.name: (tuple(p.opts), tuple(p.secondary_opts), p.hidden)
                for p in command.params if isinstance(p, click.Option)}

    find, finetune = spellings(_command("find")), spellings(_command("finetune"))
    for group in GROUPS.values():
        probe = group()(click.command()(lambda **kw: None))
        for name, spelling in spellings(probe).items():
            if name == "channels":  # a ticket's images have its own channels: finetune leaves it out
                assert find[name] == spelling and name not in finetune
                continue
            assert find[name] == finetune[name] == spelling, name
    # one name per concept: --epochs in both, the old finetune spelling only as a hidden alias
    assert find["max_epochs"][0] == finetune["max_epochs"][0] == ("--epochs",)
    assert finetune["max_epochs__alias_of__"] == (("--max-epochs",), (), True)
    # --init: find's old spelling of --weight-init (hidden); finetune's starting weights
    assert find["weight_init__alias_of__"][0] == ("--init",) and find["weight_init__alias_of__"][2]
    assert finetune["init"][0] == ("--init",) and not finetune["init"][2]


def test_a_library_error_names_the_flag(capsys, tmp_path):
    """A refused flag value exits 2 (usage), as click's own type errors do (issue 19)."""
    base = tmp_path / "base.safetensors"
    tiny_ticket(name="base").save(base)
    code, out, err = main_cli(capsys, "finetune", base, "--data", tmp_path, "--lr", -1)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("error: --lr must be > 0, got -1.0")
    code, _, err = main_cli(capsys, "finetune", base, "--data", tmp_path, "--max-epochs", 0)  # old spelling
    assert code == 2 and err.startswith("error: --epochs must be >= 1, got 0")
    code, _, err = main_cli(capsys, "finetune", base, "--data", tmp_path, "--warmup-epochs", 4, "--epochs", 4)
    assert code == 2 and "--warmup-epochs must be >= 0 and below --epochs (4), got 4" in err
    code, _, err = main_cli(capsys, "find", "--arch", "conv2", "--data", "cifar10", "--rounds", 0)
    assert code == 2 and err.startswith("error: --rounds must be a positive integer")
    code, _, err = main_cli(capsys, "find", "--arch", "conv2", "--data", "cifar10", "--rewind", "100ep",
                            "--epochs", 10)
    assert code == 2 and err.startswith("error: --rewind step 100ep is at or past the end")
    assert "(rewind earlier, or raise --epochs)" in err


def test_malformed_numbers_are_usage_errors_in_both_commands(capsys, tmp_path):
    for args in (["find", "--arch", "conv2", "--data", "cifar10"], ["finetune", tmp_path / "t", "--data", tmp_path]):
        for bad in ("0.5,x,0.2", "0.5,0.5"):
            code, _, err = main_cli(capsys, *args, "--split", bad)
            assert code == 2 and "--split" in err, (args, bad, err)


def test_old_spellings_still_work(capsys, monkeypatch):
    import ticketzoo.find as find

    from ticketzoo.errors import ConfigError

    seen = {}

    def fake_find(recipe, spec, **kw):
        seen["recipe"] = recipe
        raise ConfigError("stopped by the test")

    monkeypatch.setattr(find, "find_tickets", fake_find)
    args = ["find", "--arch", "conv2", "--data", "cifar10", "--epochs", 7, "--rewind", "1ep"]
    assert main_cli(capsys, *args, "--init", "default")[0] == 1
    assert seen["recipe"].weight_init == "default" and seen["recipe"].train.max_epochs == 7
    assert seen["recipe"].train.milestones == ()  # 50,60,75 lie past 7 epochs
    assert main_cli(capsys, *args, "--weight-init", "default", "--max-epochs", 9)[0] == 1
    assert seen["recipe"].weight_init == "default" and seen["recipe"].train.max_epochs == 7  # --epochs wins
    assert main_cli(capsys, *args, "--schedule", "cosine")[0] == 1
    assert seen["recipe"].train.schedule == "cosine" and seen["recipe"].train.milestones == ()


def test_describe_words_fields_as_flags():
    from ticketzoo.cli.errors import describe, flag_for
    from ticketzoo.errors import CheckpointError, ConfigError

    find, finetune = _command("find"), _command("finetune")
    assert flag_for("max_epochs", finetune) == flag_for("train.max_epochs", find) == "--epochs"
    assert flag_for("weight_init", find) == "--weight-init" and flag_for("init", finetune) == "--init"
    assert flag_for("nonsense", find) is None and flag_for("lr", None) is None
    assert flag_for("license", _command("push")) == "--license"  # an explicit row of the table
    e = CheckpointError("a run is there", hint="pass `resume` to continue it, `overwrite` to start over, "
                        "or another `out_dir`; `nonsense` stays")
    assert describe(e, finetune) == ("a run is there (pass --resume to continue it, --force to start over, "
                                     "or another --out; `nonsense` stays)")
    assert describe(ConfigError("the learning rate is too high", field="lr"), find) == \
        "--lr: the learning rate is too high"
    assert describe(ConfigError("lr must be > 0", field="lr"), None) == "lr must be > 0"
    assert describe(ConfigError("lr must be > 0", field="train.lr"), find) == "--lr must be > 0"


def test_help_of_the_training_commands_imports_no_torch():
    """The shared option groups are plain click: `find --help` and `finetune --help` stay instant."""
    for name in ("find", "finetune"):
        code = (f"import sys\nfrom ticketzoo.cli.main import main\ntry:\n    main([{name!r}, '--help'])\n"
                "except SystemExit as e:\n    assert e.code == 0\n"
                "assert 'torch' not in sys.modules and 'numpy' not in sys.modules\n")
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert p.returncode == 0 and "--epochs" in p.stdout and "--max-epochs" not in p.stdout, p.stderr


def test_every_option_of_every_command_has_help():
    """Issue 32: `bench`/`predict --batch-size` had no help; no visible option may lack it."""
    import click

    from ticketzoo.cli.main import cli

    ctx = click.Context(cli)
    missing = [f"{name} {p.opts[0]}" for name in cli.list_commands(ctx)
               for p in cli.get_command(ctx, name).params
               if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip()]
    assert not missing, missing


def test_help_points_to_the_cli_docs_a_wheel_ships():
    """`ticketzoo --help` names docs/CLI.md by a path that exists, and a wheel carries docs/
    as ticketzoo/_docs (pyproject's force-include), where an installed CLI finds it."""
    import tomllib

    out = " ".join(run("--help", check=0).stdout.split())
    path = Path(out.split("JSON keys and exit codes: ", 1)[1].split()[0])
    assert path.name == "CLI.md" and path.is_file() and "## Exit codes" in path.read_text()
    root = Path(__file__).parents[1]
    wheel = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["force-include"]["docs"] == "ticketzoo/_docs" and (root / "docs" / "CLI.md").is_file()

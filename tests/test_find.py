"""``ticketzoo find``: IMP rounds, rewinding, controls, resume after kill -9, bad input, starter zoo."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import colour_folder
from ticketzoo.config.data import DATA_FIELDS, DataConfig
from ticketzoo.find import FindRecipe, find_tickets, resolve_data, ticket_name
from ticketzoo.find.rundir import load_tensors
from ticketzoo.data.loading import load_source
from ticketzoo.models import build_model
from ticketzoo.ticket import Ticket
from ticketzoo.train import TrainConfig, train

EPOCH = "1700000000"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return colour_folder(tmp_path_factory.mktemp("data") / "tiny-colours")


def _recipe(folder: Path, **kw) -> FindRecipe:
    spec = resolve_data(str(folder))
    cfg = TrainConfig(max_epochs=kw.pop("epochs", 3), lr=0.03, batch_size=8, milestones=(), patience=None,
                      device="cpu")
    data = {"input_size": 16, "channels": 3, **{k: kw.pop(k) for k in [k for k in kw if k in DATA_FIELDS]}}
    base = dict(arch="conv2", source=spec.source, data_kind=spec.kind, rounds=3, rewind="1ep",
                data=DataConfig(**data), arch_kwargs={"width": 0.125}, train=cfg)
    return FindRecipe(**{**base, **kw})


def _find(folder, tmp_path, **kw):
    recipe = _recipe(folder, **kw)
    return recipe, find_tickets(recipe, str(folder), run_dir=tmp_path / "runs")


@pytest.fixture(scope="module")
def imp3(folder, tmp_path_factory):
    return _find(folder, tmp_path_factory.mktemp("imp3"))


def test_three_rounds_sparsity_rewind_nesting(folder, imp3):
    recipe, result = imp3
    assert [r.round for r in result.rounds] == [0, 1, 2, 3]
    tickets = [Ticket.load(p) for p in result.tickets]
    assert [t.name for t in tickets] == [f"tiny-colours-conv2-s{n}" for n in (20, 36, 49)]
    total = sum(m.numel() for m in tickets[0].masks.values())
    for r, t in enumerate(tickets, 1):
        assert abs(t.sparsity - (1 - 0.8**r)) <= 1.0 / total + 1e-12
        assert t.weight_sets == ("rewind", "trained")
    # Rewind weights are θk (the snapshot at 1 epoch) under the round's mask.
    thetak = load_tensors(result.run_dir / "thetak.safetensors")
    for t in tickets:
        rewind, trained, masks = t.state_dict("rewind"), t.state_dict("trained"), t.masks
        for name, value in thetak.items():
            expect = value * masks[name] if name in masks else value
            assert torch.equal(rewind[name], expect), name
        for name, m in masks.items():
            assert not trained[name][~m].any()
        assert not torch.equal(trained["fc.weight"], rewind["fc.weight"])
    for a, b in zip(tickets, tickets[1:]):  # nested: a later mask keeps a subset
        assert all(not (b.masks[n] & ~a.masks[n]).any() for n in a.masks)
    # θk is exactly one epoch of the dense training from θ0, reproduced independently.
    model = build_model("conv2", num_classes=3, input_size=16, init="xavier", seed=0, width=0.125)
    assert all(torch.equal(v, load_tensors(result.run_dir / "theta0.safetensors")[k])
               for k, v in model.state_dict().items())
    src = load_source(resolve_data(str(folder)), DataConfig(input_size=16, channels=3), batch_size=8, seed=0,
                      device="cpu")
    from ticketzoo.train.threads import set_threads

    previous = set_threads(tickets[0].card.extra["cpu_threads"])  # floats depend on it
    try:
        train(model, None, src.train, src.val, dataclasses.replace(recipe.train, max_epochs=1))
    finally:
        set_threads(previous)
    assert all(torch.equal(v, thetak[k]) for k, v in model.state_dict().items())


def test_cards_lineage_and_logs(imp3):
    recipe, result = imp3
    tickets = [Ticket.load(p) for p in result.tickets]
    for r, t in enumerate(tickets, 1):
        card = t.card
        assert [m.round for m in card.metrics] == list(range(r + 1))
        assert card.metrics[-1].test_accuracy == result.rounds[r].test_accuracy
        assert card.recipe.method == "imp" and card.recipe.rounds == r and card.recipe.rewind == "1ep"
        assert card.recipe.record.recipe_hash == recipe.hash() and card.recipe.find == result.recipe
        assert (card.arch.in_channels, card.arch.input_size, card.arch.num_classes) == (3, 16, 3)
        assert card.source.dataset == "tiny-colours" and "seed 0" in card.source.description
        assert card.lineage.parent == (tickets[r - 2].name if r > 1 else None)
    log = json.loads((result.run_dir / "log.json").read_text())
    assert [row["ticket"] for row in log["rounds"]] == [None] + [t.name for t in tickets]
    assert (result.run_dir / "log.csv").read_text().count("\n") == 5
    assert not list(result.run_dir.glob("round_*/checkpoint.pt"))  # finished rounds free disk


def test_rerun_resumes_without_training(folder, imp3):
    recipe, result = imp3
    before = [p.read_bytes() for p in result.tickets]
    again = find_tickets(recipe, str(folder), run_dir=result.run_dir)
    assert again.run_dir == result.run_dir and [p.read_bytes() for p in again.tickets] == before


def test_rewind_zero_is_theta0(folder, tmp_path):
    _, result = _find(folder, tmp_path, rounds=1, rewind="0", epochs=2)
    t = Ticket.load(result.tickets[0])
    theta0 = load_tensors(result.run_dir / "theta0.safetensors")
    rewind = t.state_dict("rewind")
    assert all(torch.equal(rewind[n], v * t.masks[n] if n in t.masks else v) for n, v in theta0.items())


def test_layerwise_head_half_rate_and_exclusions(folder, tmp_path):
    _, result = _find(folder, tmp_path / "a", rounds=1, scope="layerwise", epochs=2)
    t = Ticket.load(result.tickets[0])
    for layer in t.card.layers:
        rate = 0.1 if layer.name == "fc.weight" else 0.2
        assert layer.kept == layer.total - int(layer.total * rate + 0.5), layer.name
    assert t.card.recipe.find.head_rate_for() == 0.1
    _, result = _find(folder, tmp_path / "b", rounds=1, epochs=2, exclude_head=True,
                      exclude_first_conv=True)
    layers = {layer.name: layer for layer in Ticket.load(result.tickets[0]).card.layers}
    assert layers["fc.weight"].sparsity == 0 and layers["features.0.weight"].sparsity == 0
    pool = [v for k, v in layers.items() if k not in ("fc.weight", "features.0.weight")]
    kept, total = sum(v.kept for v in pool), sum(v.total for v in pool)
    assert kept == total - int(total * 0.2 + 0.5)


def test_controls(folder, tmp_path):
    _, result = _find(folder, tmp_path / "r", rounds=1, epochs=2, control="reinit")
    assert [r.line for r in result.rounds] == ["imp", "imp", "reinit"]
    win, ctl = (Ticket.load(p) for p in result.tickets)
    assert ctl.name == win.name + "-reinit" and ctl.card.lineage.control == "reinit"
    assert ctl.card.lineage.parent == win.name
    assert all(torch.equal(win.masks[n], ctl.masks[n]) for n in win.masks)
    assert not torch.equal(win.state_dict("rewind")["fc.weight"], ctl.state_dict("rewind")["fc.weight"])
    _, result = _find(folder, tmp_path / "p", rounds=1, epochs=2, control="random-prune")
    win, ctl = (Ticket.load(p) for p in result.tickets)
    assert ctl.name.endswith("-randprune") and ctl.card.lineage.control == "random-prune"
    assert [layer.kept for layer in win.card.layers] == [layer.kept for layer in ctl.card.layers]
    assert any(not torch.equal(win.masks[n], ctl.masks[n]) for n in win.masks)
    thetak = load_tensors(result.run_dir / "thetak.safetensors")
    assert torch.equal(ctl.state_dict("rewind")["fc.weight"], thetak["fc.weight"] * ctl.masks["fc.weight"])


def test_ticket_names():
    taken = {"c10-cifar-resnet20-s99"}
    assert ticket_name("C10", "cifar_resnet20", 0.9912, 21, taken) == "c10-cifar-resnet20-s99-r21"
    assert ticket_name("My Photos!", "resnet50", 0.2, 1, set(), "reinit") == "my-photos-resnet50-s20-reinit"


def _cli(*args: str, env=None, **kw) -> subprocess.Popen:
    e = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH, **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "ticketzoo", "find", *args], env=e,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kw)


def test_kill9_resume_is_bitwise_identical(tmp_path, capsys, monkeypatch):
    data = colour_folder(tmp_path / "colours", per_class=12)
    args = ["--arch", "conv2", "--width", "0.25", "--data", str(data), "--input-size", "16",
            "--rounds", "3", "--epochs", "5", "--rewind", "1ep", "--batch-size", "2", "--device",
            "cpu", "--patience", "0", "--lr", "0.01", "-q"]
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    assert _main("find", *args, "--run-dir", str(tmp_path / "straight"), capsys=capsys)[0] == 0
    victim = _cli(*args, "--run-dir", str(tmp_path / "killed"))
    deadline = time.monotonic() + 120
    while not list((tmp_path / "killed").glob("*/round_02/checkpoint.pt")):
        assert victim.poll() is None and time.monotonic() < deadline, victim.stderr.read()
        time.sleep(0.002)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    run = next((tmp_path / "killed").iterdir())
    assert not (run / "round_02" / "result.json").exists()  # killed mid-round
    resumed = _cli(*args, "--run-dir", str(tmp_path / "killed"))
    assert resumed.wait() == 0, resumed.stderr.read()
    killed = sorted((run / "tickets").rglob("*"))
    straight = sorted(next((tmp_path / "straight").iterdir()).joinpath("tickets").rglob("*"))
    rel = [p.relative_to(run) for p in killed]
    assert rel == [p.relative_to(straight[0].parent.parent) for p in straight] and len(killed) == 9
    assert sum(p.name == "ticket.safetensors" for p in killed) == 3  # 3 folders, no temp left
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(killed, straight) if a.is_file())


def test_tickets_are_ticket_folders(imp3):
    from ticketzoo.folder import read_entry, verify_entry

    _, result = imp3
    for r in result.rounds[1:]:
        folder = result.run_dir / "tickets" / r.ticket
        assert r.file == f"tickets/{r.ticket}/ticket.safetensors"
        assert sorted(p.name for p in folder.iterdir()) == ["README.md", "ticket.safetensors"]
        entry = verify_entry(read_entry(folder))
        assert (entry.name, entry.sha256) == (r.ticket, r.sha256)


def test_a_run_folder_of_bare_ticket_files_resumes(folder, imp3, tmp_path):
    """Run folders of earlier versions hold ``tickets/<name>.safetensors``: resume reads them."""
    import shutil

    recipe, result = imp3
    old = tmp_path / "old"
    shutil.copytree(result.run_dir, old)
    for r in result.rounds[1:]:
        (old / "tickets" / r.ticket / "ticket.safetensors").rename(old / "tickets" / f"{r.ticket}.safetensors")
        shutil.rmtree(old / "tickets" / r.ticket)
        path = old / f"round_{r.round:02d}" / "result.json"
        row = json.loads(path.read_text())
        path.write_text(json.dumps({**row, "file": f"tickets/{r.ticket}.safetensors"}))
    (old / "round_03" / "result.json").unlink()  # round 3 to do again, after bare rounds 1-2
    (old / "tickets" / f"{result.rounds[-1].ticket}.safetensors").unlink()
    again = find_tickets(recipe, str(folder), run_dir=old)
    assert [r.file for r in again.rounds[1:3]] == [f"tickets/{r.ticket}.safetensors" for r in result.rounds[1:3]]
    assert again.rounds[3].file == result.rounds[3].file  # new rounds: a ticket folder
    assert [p.read_bytes() for p in again.tickets] == [p.read_bytes() for p in result.tickets]


def _main(*args: str, capsys) -> tuple[int, str]:
    from ticketzoo.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(list(args))
    return exc.value.code, capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--data", "nosuchset"], "unknown dataset 'nosuchset'"),
    (["--arch", "resnet9000"], "unknown architecture 'resnet9000'"),
    (["--data", "mnist", "--data-root", "/nonexistent/zz"], "dataset root /nonexistent/zz does not exist"),
    (["--rate", "1.5"], "--rate must lie strictly between 0 and 1"),
    (["--rate", "0"], "--rate must lie strictly between 0 and 1"),
    (["--rounds", "0"], "--rounds must be a positive integer"),
    (["--arch", "cifar_vgg16", "--input-size", "8"], "input_size 8 is too small for cifar_vgg16"),
    (["--arch", "resnet18", "--input-size", "16"], "input_size 16 is too small for resnet18"),
])
def test_bad_input(folder, tmp_path, capsys, extra, message):
    args = ["find", "--arch", "conv2", "--data", str(folder), "--rounds", "1", "--epochs", "2",
            "--rewind", "1ep", "--device", "cpu", "--run-dir", str(tmp_path), "-q", *extra]
    code, err = _main(*args, capsys=capsys)
    usage = message.startswith(("--rate", "--rounds"))  # a flag's value out of range: exit 2, as click's (issue 19)
    assert code == (2 if usage else 1) and err.startswith("error: ") and message in err, err
    assert err.count("\n") == 1


def test_run_folder_of_another_recipe(folder, tmp_path, capsys, imp3):
    _, result = imp3
    args = ["find", "--arch", "conv2", "--width", "0.125", "--data", str(folder), "--input-size",
            "16", "--rounds", "3", "--epochs", "3", "--rewind", "1ep", "--batch-size", "8",
            "--milestones", "none", "--patience", "0", "--device", "cpu", "-q"]
    code, err = _main(*args, "--rate", "0.3", "--run-dir", str(result.run_dir), capsys=capsys)
    assert code == 1 and "different recipe: rate (0.2 -> 0.3)" in err and err.count("\n") == 1


def _fake_mnist(root: Path, n: int = 30) -> None:
    """MNIST's IDX files of digits 0 (left half lit) and 1 (right half lit): learnt at once."""
    import struct

    import numpy as np

    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 2
    for prefix in ("train", "t10k"):
        lit = (np.arange(28)[None, None, :] >= 14) == labels[:, None, None].astype(bool)
        images = np.clip(rng.normal(200 * lit, 30, (n, 28, 28)), 0, 255)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            head = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
            (raw / f"{prefix}-{kind}-ubyte").write_bytes(head + array.astype(np.uint8).tobytes())


def test_named_dataset_and_push(tmp_path, capsys):
    _fake_mnist(tmp_path / "data")
    registry = tmp_path / "reg"
    registry.mkdir()  # a registry setting names an existing folder
    code, err = _main("find", "--arch", "lenet_300_100", "--width", "0.1", "--data", "mnist",
                    "--data-root", str(tmp_path / "data"), "--rounds", "1", "--epochs", "2", "--rewind", "1ep",
                    "--device", "cpu", "--run-dir", str(tmp_path / "runs"), "-q", "--push",
                    "--registry", f"file://{registry}", capsys=capsys)
    assert code == 0, err
    t = Ticket.load(next((registry / "tickets" / "mnist-lenet-300-100-s20").glob("*/ticket.safetensors")))
    assert (t.card.source.dataset, t.card.arch.in_channels, t.card.arch.input_size) == ("mnist", 1, 28)
    assert t.card.arch.mean == (0.1307,) and "original IDX files" in t.card.source.description


def test_starter_zoo_in_catalog_pulls_offline(capsys):
    from ticketzoo.card import seed_table
    from ticketzoo.registry.api import verify
    from ticketzoo.registry.catalog import load_catalog

    catalog = load_catalog()
    for name, entry in catalog.items():  # real data only in the catalog
        source = entry.entry.card.source
        assert "synthetic" not in source.description.lower() and source.dataset not in ("shapes", "textures")
    starters = [n for n in catalog if n.startswith("fashionmnist-lenet-300-100-")]
    assert len(starters) >= 3
    for name in starters:
        code, _ = _main("pull", name, capsys=capsys)
        assert code == 0
        ticket, entry = verify(name)
        card = ticket.card
        assert "original IDX files" in card.source.description and "Fashion-MNIST" in card.source.description
        assert (card.arch.in_channels, card.arch.input_size, card.arch.num_classes) == (1, 28, 10)
        assert ticket.weight_sets == ("rewind", "trained") and card.extra["seeds"] == [0, 1, 2]
        assert [m.round for m in card.metrics] == list(range(card.recipe.rounds + 1))
        header, rows = seed_table(card)  # every round, ticket and reinit control over seeds
        assert len(rows) == card.recipe.find.rounds + 1
        assert all(len(r["ticket"]["per_seed"]) == 3 == len(r["reinit"]["per_seed"])
                   for r in card.extra["source_results"])
        from ticketzoo.cli.main import main

        with pytest.raises(SystemExit) as exc:
            main(["info", name])
        out = capsys.readouterr().out
        assert exc.value.code == 0 and "source test accuracy over seeds" in out and "reinit" in out


def test_unreadable_files_are_counted_or_refused(tmp_path, capsys):
    data = colour_folder(tmp_path / "bad", corrupt=2)
    args = ["find", "--arch", "conv2", "--width", "0.125", "--data", str(data), "--input-size", "16",
            "--rounds", "1", "--epochs", "2", "--lr", "0.03", "--batch-size", "8", "--rewind", "0",
            "--device", "cpu", "-q"]
    code, err = _main(*args, "--run-dir", str(tmp_path / "r1"), capsys=capsys)
    assert code == 0 and "skipped 2 unreadable file(s)" in err
    code, err = _main(*args, "--run-dir", str(tmp_path / "r2"), "--strict", capsys=capsys)
    assert code == 1 and "cannot use" in err and "--strict" in err

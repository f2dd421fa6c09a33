"""CPU recipe features of ``find`` (issue 17): sparsity schedules, controls at chosen rounds,
label smoothing, the linear (one-cycle) schedule, bf16 autocast and channels_last on CPU."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from ticketzoo.config.data import DataConfig
from ticketzoo.errors import ConfigError
from conftest import colour_folder
from ticketzoo.find import FindRecipe, find_tickets, resolve_data
from ticketzoo.ticket import Ticket
from ticketzoo.train import Runtime, TrainConfig


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return colour_folder(tmp_path_factory.mktemp("data") / "tiny-colours")


def _recipe(folder: Path, train: dict | None = None, **kw) -> FindRecipe:
    spec = resolve_data(str(folder))
    cfg = TrainConfig(**{"max_epochs": 3, "lr": 0.03, "batch_size": 8, "milestones": (), "patience": None,
                         "device": "cpu", **(train or {})})
    base = dict(arch="conv2", source=spec.source, data_kind=spec.kind, rounds=3, rewind="1ep",
                data=DataConfig(input_size=16, channels=3), arch_kwargs={"width": 0.125}, train=cfg)
    return FindRecipe(**{**base, **kw})


def test_sparsity_schedule_and_controls_at_chosen_rounds(folder, tmp_path):
    recipe = _recipe(folder, rounds=3, sparsities=(0.5, 0.8, 0.9), control="reinit", control_at=(0.8,))
    result = find_tickets(recipe, str(folder), run_dir=tmp_path / "runs")
    imp = [r for r in result.rounds if r.line == "imp" and r.round > 0]
    total = sum(m.numel() for m in Ticket.load(result.run_dir / imp[0].file).masks.values())
    for row, target in zip(imp, (0.5, 0.8, 0.9)):
        assert abs(row.sparsity - target) <= 2.0 / total, (row.sparsity, target)
    assert [r.ticket for r in imp] == [f"tiny-colours-conv2-s{n}" for n in (50, 80, 90)]
    controls = [(r.round, r.line) for r in result.rounds if r.line != "imp"]
    assert controls == [(2, "reinit")]  # only the round of target 0.8
    card = Ticket.load(result.run_dir / imp[1].file).card
    assert tuple(card.recipe.find.sparsities) == (0.5, 0.8, 0.9)
    assert tuple(card.recipe.find.control_at) == (0.8,)


def test_schedule_fields_enter_the_hash_only_when_set(folder):
    plain = _recipe(folder)
    assert "sparsities" not in plain.to_dict() and "control_at" not in plain.to_dict()
    assert "label_smoothing" not in plain.train.to_dict() and "cpu_amp" not in plain.train.to_dict()
    assert _recipe(folder, sparsities=(0.2, 0.36, 0.488)).hash() != plain.hash()
    # CPU precision is a runtime choice: recorded, not hashed (the same run folder on every CPU)
    assert _recipe(folder, train={"cpu_amp": True}).hash() == plain.hash()
    assert _recipe(folder, train={"cpu_amp": True}).train.to_dict()["cpu_amp"] is True
    assert _recipe(folder, train={"label_smoothing": 0.1}).hash() != plain.hash()


@pytest.mark.parametrize("kw, message", [
    ({"sparsities": (0.5, 0.8)}, "sparsities has 2 entries but rounds is 3"),
    ({"sparsities": (0.5, 0.4, 0.9)}, "strictly increasing"),
    ({"sparsities": (0.5, 0.8, 1.0)}, "strictly increasing"),
    ({"control_at": (0.2,)}, "control_at needs a control"),
    ({"control": "reinit", "control_at": (0.5,)}, "control_at 0.5 is no round's target sparsity"),
])
def test_bad_schedules_are_refused(folder, kw, message):
    with pytest.raises(ConfigError, match=message):
        _recipe(folder, **kw)


def test_rates_of_a_schedule():
    r = FindRecipe(arch="conv2", source="x", rounds=3, sparsities=(0.5, 0.75, 0.9))
    assert [round(r.rate_at(i), 9) for i in (1, 2, 3)] == [0.5, 0.5, 0.6]
    assert [r.target_sparsity(i) for i in (1, 2, 3)] == [0.5, 0.75, 0.9]
    plain = FindRecipe(arch="conv2", source="x", rounds=2, rate=0.2)
    assert plain.rate_at(2) == 0.2 and math.isclose(plain.target_sparsity(2), 0.36)


def test_linear_schedule_is_a_one_cycle_with_warmup():
    cfg = TrainConfig(lr=1.0, max_epochs=4, schedule="linear", warmup_epochs=1, milestones=())
    lrs = [cfg.lr_at_step(s, 10) for s in range(40)]
    assert lrs[9] == 1.0 and lrs[0] == pytest.approx(0.1)  # linear warm-up to the peak
    assert lrs[10] == 1.0 and lrs[25] == pytest.approx(0.5) and lrs[39] == pytest.approx(1 / 30)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    with pytest.raises(ConfigError, match="milestones apply to the step schedule only"):
        TrainConfig(schedule="linear", milestones=(2,))


def test_label_smoothing_changes_training_and_is_checked(folder, tmp_path):
    with pytest.raises(ConfigError, match="label_smoothing must be in"):
        TrainConfig(label_smoothing=1.0)
    a = find_tickets(_recipe(folder, rounds=1), str(folder), run_dir=tmp_path / "a")
    b = find_tickets(_recipe(folder, rounds=1, train={"label_smoothing": 0.2}), str(folder),
                     run_dir=tmp_path / "b")
    wa = Ticket.load(a.tickets[0]).state_dict("trained")
    wb = Ticket.load(b.tickets[0]).state_dict("trained")
    assert not torch.equal(wa["fc.weight"], wb["fc.weight"])


def test_cpu_bf16_and_channels_last_runtime():
    off = Runtime.for_config(TrainConfig(device="cpu"))
    assert off.amp_dtype is None and not off.channels_last  # amp/channels_last defaults: CUDA only
    on = Runtime.for_config(TrainConfig(device="cpu", cpu_amp=True, cpu_channels_last=True))
    assert on.amp_dtype == torch.bfloat16 and on.channels_last
    model = on.prepare_model(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten()))
    x, _ = on.to_device(torch.randn(2, 3, 8, 8), torch.zeros(2, dtype=torch.long))
    assert x.is_contiguous(memory_format=torch.channels_last)
    with on.autocast():
        assert model(x).dtype == torch.bfloat16


def test_cpu_bf16_find_is_reproducible_and_recorded(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # the cards' `created`
    train = {"cpu_amp": True, "cpu_channels_last": True}
    runs = [find_tickets(_recipe(folder, rounds=1, train=train), str(folder), run_dir=tmp_path / n,
                         threads=1) for n in ("a", "b")]
    blobs = [Path(r.tickets[0]).read_bytes() for r in runs]
    assert blobs[0] == blobs[1]  # a fixed thread count gives the same bytes
    card = Ticket.load(runs[0].tickets[0]).card
    assert card.recipe.train.cpu_amp and card.recipe.train.cpu_channels_last


def test_cli_flags(folder, tmp_path, capsys):
    from ticketzoo.cli.main import main

    args = ["find", "--arch", "conv2", "--data", str(folder), "--input-size", "16", "--width", "0.125",
            "--epochs", "2", "--lr", "0.03", "--rewind", "0", "--batch-size", "8", "--patience", "0",
            "--sparsities", "0.5,0.8", "--control", "reinit", "--control-at", "0.8",
            "--schedule", "linear", "--warmup-epochs", "1", "--label-smoothing", "0.1", "--amp",
            "--device", "cpu", "--run-dir", str(tmp_path / "runs"), "--quiet", "--json"]
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert [(r["round"], r["line"]) for r in out["rounds"]] == [(0, "imp"), (1, "imp"), (2, "imp"),
                                                                (2, "reinit")]
    card = Ticket.load(Path(out["run_dir"]) / out["rounds"][2]["file"]).card
    t = card.recipe.train
    assert (t.schedule, t.warmup_epochs, t.label_smoothing, t.cpu_amp, t.milestones) == \
        ("linear", 1, 0.1, True, ())


def test_cpu_defaults_follow_the_architecture_and_the_cpu(monkeypatch):
    from ticketzoo.cli.options import runtime_values
    from ticketzoo.train import device

    from ticketzoo.train import TrainConfig

    monkeypatch.setattr(device, "cpu_bf16_native", lambda: False)
    assert device.cpu_defaults("torchvision", "find") == {"cpu_amp": False, "cpu_channels_last": True}
    assert device.cpu_defaults("lth", "find") == {"cpu_amp": False, "cpu_channels_last": False}
    monkeypatch.setattr(device, "cpu_bf16_native", lambda: True)
    assert device.cpu_defaults("torchvision", "find") == {"cpu_amp": True, "cpu_channels_last": True}
    # fine-tuning stays fp32 on every CPU (measured: docs/FINETUNE.md)
    assert device.cpu_defaults("torchvision", "finetune") == {"cpu_amp": False, "cpu_channels_last": True}
    given = runtime_values({"amp": False, "channels_last": None})
    assert given == {"amp": False, "cpu_amp": False, "channels_last": True}  # NHWC on CPU: auto
    resolved = device.resolve_cpu_runtime(TrainConfig(**given), "torchvision", "find")
    assert (resolved.cpu_amp, resolved.cpu_channels_last) == (False, True)
    assert resolved.hash() == TrainConfig(amp=False).hash()  # resolving changes no hash


def test_carry_with_controls_at_chosen_rounds_ends_at_the_last_round(folder, tmp_path):
    from ticketzoo.find.carry import export_carry

    recipe = _recipe(folder, rounds=3, sparsities=(0.5, 0.8, 0.9), control="reinit", control_at=(0.8,))
    result = find_tickets(recipe, str(folder), run_dir=tmp_path / "runs")
    carried = export_carry(result.run_dir, tmp_path / "carry")
    assert carried.name == "tiny-colours-conv2-s90"  # round 3 trains no control: it is the last
    # Continued from the carry on a "fresh machine", the run has nothing left to train.
    again = find_tickets(recipe, str(folder), run_dir=tmp_path / "elsewhere",
                         carry_in=tmp_path / "carry")
    assert [(r.round, r.line) for r in again.rounds] == [(r.round, r.line) for r in result.rounds]

"""Tests of ticketzoo.finetune and `ticketzoo finetune`: tiny tickets on generated 16 px folders.

Runs are judged (ok / chance / diverged) and only an ``ok`` run is saved, so the tests that
need a saved ticket train on :func:`quick`, a two-class folder that the tiny ticket learns
in a few Adam epochs, with a test split large enough to show it (16 images per class).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_ticket
from ticketzoo.config.data import DATA_FIELDS, DataConfig
from ticketzoo.cli.main import main
from ticketzoo.cli.render import finetune_summary
from synthetic import make_image_folder
from ticketzoo.errors import CheckpointError, ConfigError, MaskViolationError
from ticketzoo.finetune import FinetuneConfig, check_saved, default_name, finetune, start_model
from ticketzoo.finetune import training as runs_mod
from ticketzoo.finetune.report import summarize
from ticketzoo.ticket import Ticket
from ticketzoo.train import Callback, TrainConfig

FAST = dict(device="cpu", batch_size=16, milestones=(), patience=None)


def cfg(epochs: int = 2, **kw) -> FinetuneConfig:
    train = TrainConfig(max_epochs=epochs, lr=kw.pop("lr", 0.02), **FAST)
    data = {k: kw.pop(k) for k in [k for k in kw if k in DATA_FIELDS]}
    return FinetuneConfig(train=train, data=DataConfig(**data), **kw)


def folder(path, *, kind="textures", classes=3, per_class=8, **kw):
    return make_image_folder(path, kind=kind, classes=classes, per_class=per_class, size=16, **kw)


QUICK_SPLIT = (0.5, 0.1, 0.4)
QUICK_ARGS = ["--split", "0.5,0.1,0.4", "--optimizer", "adam", "--lr", 0.01, "--batch-size", 8,
              "--device", "cpu"]


def quick(path, **kw):
    """Two stripe classes, 40 images each: learnt in a few epochs by the tiny ticket."""
    return folder(path, classes=2, per_class=40, **kw)


def qcfg(epochs: int = 8, **kw) -> FinetuneConfig:
    """The recipe that trains on :func:`quick` (Adam 1e-2, batch 8), split 0.5/0.1/0.4."""
    train = TrainConfig(max_epochs=epochs, lr=kw.pop("lr", 0.01), optimizer="adam", batch_size=8,
                        device="cpu", milestones=(), patience=None, seed=kw.pop("seed", 0))
    data = {k: kw.pop(k) for k in [k for k in kw if k in DATA_FIELDS]}
    return FinetuneConfig(train=train, data=DataConfig(**{"split": QUICK_SPLIT, **data}), **kw)


def cli(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main(["finetune", *map(str, args)])
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


@pytest.fixture(scope="module")
def easy(tmp_path_factory):
    """One real fine-tuning run on an easy folder (3 texture classes), shared by several tests."""
    root = tmp_path_factory.mktemp("easy")
    data = folder(root / "stripes", per_class=40)
    base = tiny_ticket(sparsity=0.5, name="tiny-base")
    base_path = root / "base.safetensors"
    base.save(base_path)
    result = finetune(base, data, cfg(25, split=(0.6, 0.2, 0.2)), out_dir=root / "out",
                      base_ref="tiny-base@abc", base_sha256="ab" * 32)
    return base, result


def test_finetuned_ticket_keeps_the_mask_and_learns(easy):
    base, result = easy
    saved = Ticket.load(result.path)
    body = base.head_masks_dropped()
    assert set(saved.masks) == set(body) and "fc.weight" not in saved.masks
    assert all(torch.equal(saved.masks[k], body[k]) for k in body)
    for weights in ("rewind", "trained"):
        state = saved.state_dict(weights)
        assert all(int((state[k][~m] != 0).sum()) == 0 for k, m in body.items())
        assert state["fc.weight"].shape[0] == 3 and state["fc.bias"].shape == (3,)
    # the rewind set is what training started from: the base's θk outside the head
    start = base.state_dict("rewind")
    assert torch.equal(saved.state_dict("rewind")["features.0.weight"], start["features.0.weight"])
    assert not torch.equal(saved.state_dict("trained")["features.0.weight"], start["features.0.weight"])
    assert result.test_accuracy >= 0.6  # chance is 1/3 on 24 test images (seeds 0-3: 0.83-0.96)
    model = saved.to_model("trained")
    assert model(torch.zeros(2, 3, 16, 16)).shape == (2, 3)


def test_card_lineage_and_name(easy):
    base, result = easy
    card = Ticket.load(result.path).card
    assert card.name == "tiny-base-ft-stripes"
    assert card.arch.num_classes == 3 and card.arch.classifier == base.card.arch.classifier
    assert card.source.dataset == "stripes" and len(card.source.classes) == 3
    assert card.lineage.parent == "tiny-base@abc" and card.lineage.parent_sha256 == "ab" * 32
    assert card.lineage.relation == "finetune" and card.lineage.control is None
    assert card.recipe.method == "finetune" and card.recipe.finetune.init == "rewind"
    assert card.recipe.train.lr == 0.02 and card.recipe.finetune.train == card.recipe.train
    assert card.extra["test_accuracy"] == result.test_accuracy and card.extra["metrics"] == "metrics.json"
    assert card.sparsity == pytest.approx(1 - sum(int(m.sum()) for m in base.head_masks_dropped().values())
                                          / sum(m.numel() for m in base.head_masks_dropped().values()))


def test_metrics_json_is_complete(easy):
    _, result = easy
    m = json.loads(result.metrics_path.read_text())
    for key in ("epochs", "best_epoch", "test_accuracy", "per_class_accuracy", "confusion", "runs",
                "summary", "data", "base", "ticket", "config", "notes"):
        assert key in m, key
    assert len(m["epochs"]) == 25 and 1 <= m["best_epoch"] <= 25
    row = m["epochs"][0]
    assert {"train_loss", "train_acc", "val_loss", "val_acc"} <= set(row)
    assert sorted(m["per_class_accuracy"]) == sorted(m["data"]["classes"])
    assert np.array(m["confusion"]).shape == (3, 3) and np.array(m["confusion"]).sum() == 24
    assert m["data"]["skipped"] == [] and m["data"]["num_skipped"] == 0
    assert m["base"]["sha256"] == "ab" * 32 and m["ticket"]["sha256"] == result.sha256
    assert "baselines not measured" in m["notes"][0]
    out = result.path.parent
    assert (out / "logs" / "rewind-seed0.csv").read_text().startswith("epoch,lr,train_loss")
    assert (out / "README.md").read_text().startswith("---")


def test_default_name_is_sanitised():
    assert default_name("tiny-conv2-s80", "Bone Marrow!") == "tiny-conv2-s80-ft-bone-marrow"
    assert default_name("a", "...") == "a-ft-data"


@pytest.mark.parametrize("init", ["rewind", "trained", "reinit", "dense"])
def test_start_model_per_init(init):
    base = tiny_ticket(sparsity=0.8)
    model, masks = start_model(base, init, num_classes=5, seed=3)
    state = model.state_dict()
    assert state["fc.weight"].shape == (5, state["fc.weight"].shape[1])
    conv = state["features.0.weight"]
    mask = base.masks["features.0.weight"]
    if init == "dense":
        assert masks is None and int((conv[~mask] != 0).sum()) > 0
        return
    assert set(masks) == set(base.head_masks_dropped())
    assert int((conv[~mask] != 0).sum()) == 0
    same = {w: torch.equal(conv, base.state_dict(w)["features.0.weight"]) for w in ("rewind", "trained")}
    assert same == {"rewind": init == "rewind", "trained": init == "trained"}
    again, _ = start_model(base, init, num_classes=5, seed=3)
    assert torch.equal(again.state_dict()["fc.weight"], state["fc.weight"])  # seeded head


def test_trained_init_needs_a_trained_set():
    with pytest.raises(ConfigError, match="no 'trained' weight set"):
        finetune(tiny_ticket(trained=False), "unused", cfg(init="trained"), out_dir="unused")


def test_dense_and_reinit_runs_are_labelled(tmp_path):
    data = quick(tmp_path / "f")
    base = tiny_ticket()
    dense = finetune(base, data, qcfg(init="dense"), out_dir=tmp_path / "d")
    assert dense.ticket.masks == {} and dense.ticket.sparsity == 0
    assert dense.ticket.card.lineage.control == "dense-baseline"
    reinit = finetune(base, data, qcfg(init="reinit"), out_dir=tmp_path / "r")
    assert reinit.ticket.card.lineage.control == "reinit"
    assert all(torch.equal(reinit.ticket.masks[k], v) for k, v in base.head_masks_dropped().items())


def test_seeds_and_compare_give_mean_and_std(tmp_path):
    data = quick(tmp_path / "f")
    result = finetune(tiny_ticket(), data, qcfg(seeds=2, compare="dense"), out_dir=tmp_path / "o")
    assert [(r.init, r.seed) for r in result.runs] == [("rewind", 0), ("rewind", 1), ("dense", 0), ("dense", 1)]
    assert [r.status for r in result.runs] == ["ok"] * 4
    rows = summarize(result.runs)
    assert [(r.init, r.n) for r in rows] == [("rewind", 2), ("dense", 2)]
    assert all(r.std is not None for r in rows) and "±" in rows[0].accuracy_text()
    assert rows[1].sparsity == 0 and rows[0].sparsity > 0.5
    m = json.loads(result.metrics_path.read_text())
    assert len(m["runs"]) == 4 and m["summary"][0]["test_accuracy_std"] is not None
    assert "rewind − dense" in m["notes"][0] and "wins" not in " ".join(m["notes"])
    one = summarize(result.runs[:1])
    assert one[0].std is None and "±" not in one[0].accuracy_text()
    assert finetune_summary(rows, "rewind").caption.startswith("rewind − dense")


# --- the CLI: bad folders give exit 1 and one line on stderr --------------------------


def _bad_folder(tmp_path, case):
    root = tmp_path / "data"
    if case == "missing":
        return root, "does not exist"
    if case == "empty":
        root.mkdir()
        return root, "has no class folders"
    if case == "no images":
        (root / "a").mkdir(parents=True)
        (root / "b").mkdir()
        return root, "no files found"
    if case == "empty class":
        folder(root, classes=2)
        (root / "zzz").mkdir()
        return root, "class 'zzz' has no usable images"
    if case == "single class":
        folder(root, classes=2)
        for f in (root / "stripes-vertical").iterdir():
            f.unlink()
        (root / "stripes-vertical").rmdir()
        return root, "need at least 2 classes"
    if case == "class mismatch":
        folder(root, classes=3, per_class=10, layout="presplit")
        for f in (root / "test" / "stripes-diagonal").iterdir():
            f.unlink()
        (root / "test" / "stripes-diagonal").rmdir()
        return root, "class folders differ between splits"
    if case == "strict":
        folder(root, corrupt=2)
        return root, "cannot use"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing", "empty", "no images", "empty class", "single class",
                                  "class mismatch", "strict"])
def test_cli_bad_folders(tmp_path, capsys, case):
    base = tmp_path / "base.safetensors"
    tiny_ticket().save(base)
    root, message = _bad_folder(tmp_path, case)
    strict = ["--strict"] if case == "strict" else []
    code, out, err = cli(capsys, base, "--data", root, "--out", tmp_path / "o", "--max-epochs", 1, *strict)
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err


def test_cli_skips_and_counts_corrupt_files_and_reads_any_mode(tmp_path, capsys):
    base = tmp_path / "base.safetensors"
    tiny_ticket().save(base)
    root = quick(tmp_path / "data", corrupt=3)
    rgb = np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    cls = root / "stripes-horizontal"
    Image.fromarray(rgb[..., 0]).save(cls / "gray.png")
    Image.fromarray(rgb).convert("RGBA").save(cls / "rgba.png")
    Image.fromarray(rgb).convert("P").save(cls / "palette.png")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(cls / "sixteen.png")
    code, out, err = cli(capsys, base, "--data", root, "--out", tmp_path / "o", "--max-epochs", 8,
                         *QUICK_ARGS)
    assert code == 0, err
    assert "skipped 3 unreadable file(s)" in out and "skipped 3 unreadable" in err
    assert "baselines not measured" in out
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["data"]["num_skipped"] == 3 and len(m["data"]["skipped"]) == 3
    assert sum(m["data"]["counts"]["train"].values()) + sum(m["data"]["counts"]["val"].values()) \
        + sum(m["data"]["counts"]["test"].values()) == 2 * 40 + 4
    assert m["images"]["modes"] == {"L": 1, "RGB": 80, "RGBA": 1, "P": 1, "I;16": 1}
    # a second run into the same folder is refused without --resume/--force
    code, _, err = cli(capsys, base, "--data", root, "--out", tmp_path / "o", "--max-epochs", 1)
    assert code == 1 and "--resume" in err


def test_cli_ref_omitted_uses_last_pulled_and_push(tmp_path, capsys):
    from ticketzoo.registry.api import pull, push

    code, _, err = cli(capsys, "--data", tmp_path)
    assert code == 1 and "none pulled yet" in err and "ticketzoo pull" in err
    src = tmp_path / "t.safetensors"
    tiny_ticket(name="starter").save(src)
    push(str(src))
    entry = pull("starter")
    root = quick(tmp_path / "My Data")
    remote = tmp_path / "remote"
    remote.mkdir()  # a registry setting names an existing folder
    code, out, err = cli(capsys, "--data", root, "--max-epochs", 8, *QUICK_ARGS, "--out",
                         tmp_path / "o", "--push", "--registry", f"file://{remote}")
    assert code == 0, err
    assert f"using the most recently pulled ticket: starter@{entry.revision}" in err
    card = Ticket.load(tmp_path / "o" / "ticket.safetensors").card
    assert card.name == "starter-ft-my-data" and card.lineage.parent == f"starter@{entry.revision}"
    assert card.lineage.parent_sha256 == entry.sha256
    assert "pushed starter-ft-my-data@" in out and (remote / "tickets" / "starter-ft-my-data").is_dir()


# --- resume and the mask check ---------------------------------------------------------


class _Crash(Callback):
    def on_epoch_end(self, state, metrics):
        if metrics["epoch"] == 2:
            raise KeyboardInterrupt


def test_resume_continues_bitwise(tmp_path, monkeypatch):
    data = quick(tmp_path / "f")
    base = tiny_ticket()
    whole = finetune(base, data, qcfg(4), out_dir=tmp_path / "whole")
    real = runs_mod.train
    monkeypatch.setattr(runs_mod, "train", lambda *a, callbacks=(), **k: real(*a, callbacks=[*callbacks, _Crash()], **k))
    with pytest.raises(KeyboardInterrupt):
        finetune(base, data, qcfg(4), out_dir=tmp_path / "cut")
    monkeypatch.setattr(runs_mod, "train", real)
    resumed = finetune(base, data, qcfg(4), out_dir=tmp_path / "cut", resume=True)
    assert resumed.runs[0].train.resumed and resumed.runs[0].train.epochs_run == 4
    a, b = whole.ticket.state_dict("trained"), resumed.ticket.state_dict("trained")
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(CheckpointError, match="other data, ticket or settings"):
        finetune(base, data, qcfg(4, lr=0.05), out_dir=tmp_path / "cut", resume=True)
    # a different thread count is where, not what: it resumes
    assert finetune(base, data, qcfg(4, threads=1), out_dir=tmp_path / "cut", resume=True).ticket


def test_broken_mask_raises_and_saves_nothing(tmp_path, monkeypatch):
    from ticketzoo.train.device import MaskSet

    monkeypatch.setattr(MaskSet, "apply", lambda self: None)  # the loop stops enforcing masks
    with pytest.raises(MaskViolationError, match="not exactly zero"):
        finetune(tiny_ticket(), folder(tmp_path / "f"), cfg(1), out_dir=tmp_path / "o")
    assert not (tmp_path / "o" / "ticket.safetensors").exists()


def test_check_saved_compares_masks_with_the_base(tmp_path):
    base = tiny_ticket(sparsity=0.8)
    other = tiny_ticket(sparsity=0.5)
    path = tmp_path / "t.safetensors"
    other.save(path)
    with pytest.raises(MaskViolationError, match="masks differ"):
        check_saved(path, base)


def test_tickets_that_cannot_be_fine_tuned_say_why():
    import dataclasses

    base = tiny_ticket()
    headless = base.with_card(arch=dataclasses.replace(base.card.arch, classifier=()))
    with pytest.raises(ConfigError, match="does not name its classifier"):
        finetune(headless, "unused", cfg(), out_dir="unused")
    four = base.with_card(arch=dataclasses.replace(base.card.arch, in_channels=4))
    with pytest.raises(ConfigError, match="4-channel images"):
        finetune(four, "unused", cfg(), out_dir="unused")


def test_identical_fine_tunes_are_identical_bytes(tmp_path, monkeypatch):
    """Two identical runs from a *loaded* base (safetensors hands tensors back in hash order,
    different at every load) save byte-identical tickets and READMEs (FORMAT.md's promise)."""
    from ticketzoo.models import prunable_names

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    data = quick(tmp_path / "f")
    tiny_ticket(name="tiny-base").save(tmp_path / "base.safetensors")
    outs = []
    for i in range(2):
        base = Ticket.load(tmp_path / "base.safetensors")
        result = finetune(base, data, qcfg(6), out_dir=tmp_path / f"o{i}")
        assert result.path is not None
        outs.append(((tmp_path / f"o{i}" / "ticket.safetensors").read_bytes(),
                     (tmp_path / f"o{i}" / "README.md").read_bytes()))
    assert outs[0] == outs[1]
    card = Ticket.load(tmp_path / "o0").card
    module_order = [n for n in prunable_names(base.to_model()) if n not in base.card.arch.classifier]
    assert [layer.name for layer in card.layers] == module_order

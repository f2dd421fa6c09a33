"""What a fine-tuning run is set up with: protocol, image conversion, threads, named datasets."""

from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_ticket
from test_finetune import QUICK_ARGS, cli, qcfg, quick
from ticketzoo.finetune import finetune, resolve
from ticketzoo.finetune import images as image_info
from ticketzoo.finetune import protocol
from ticketzoo.ticket import Ticket
from ticketzoo.train import TrainConfig

# --- the protocol ------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "batch"), [(40, 8), (120, 8), (240, 16), (720, 32), (2400, 64), (50000, 64)])
def test_auto_scales_the_batch_and_guarantees_steps(n, batch):
    r = resolve("auto", TrainConfig(seed=3, device="cpu"), (), n)
    t = r.train
    assert t.batch_size == batch and (t.optimizer, t.schedule, t.milestones) == ("adamw", "cosine", ())
    steps = -(-n // batch) * t.max_epochs
    assert steps >= protocol.MIN_STEPS or t.max_epochs == protocol.MAX_EPOCHS
    assert protocol.MIN_EPOCHS <= t.max_epochs <= protocol.MAX_EPOCHS
    assert 1 <= t.warmup_epochs < t.max_epochs and t.patience >= protocol.MIN_PATIENCE
    assert (t.seed, t.device) == (3, "cpu")
    assert r.reasons["batch_size"].startswith(f"{n} training images")
    assert f"batch {batch} ({n} training images" in r.summary()


def test_large_networks_get_the_epoch_floor_not_the_step_guarantee():
    small = resolve("auto", TrainConfig(), (), 90, weights=protocol.LARGE_WEIGHTS - 1).train
    large = resolve("auto", TrainConfig(), (), 90, weights=23_500_000)
    assert small.max_epochs == protocol.MAX_EPOCHS  # 12 steps an epoch: 100 epochs for 1200 steps
    assert large.train.max_epochs == protocol.MIN_EPOCHS and large.train.batch_size == small.batch_size
    assert large.reasons["max_epochs"].startswith("23.5M weights: 30 epochs of 12 steps")
    given = resolve("auto", TrainConfig(max_epochs=100), ("max_epochs",), 90, weights=23_500_000)
    assert given.train.max_epochs == 100  # --epochs wins


def test_weights_of_a_ticket_are_its_prunable_layers(ticket):
    assert protocol.weights_of(ticket) == sum(layer.total for layer in ticket.card.layers) > 0


def test_explicit_choices_win_and_derived_values_follow_them():
    given = TrainConfig(batch_size=4, lr=0.05, optimizer="sgd", patience=None, milestones=(3,))
    r = resolve("auto", given, ("batch_size", "lr", "optimizer", "patience", "milestones"), 240)
    t = r.train
    assert (t.batch_size, t.lr, t.optimizer, t.patience, t.milestones) == (4, 0.05, "sgd", None, (3,))
    assert t.schedule == "step" and t.max_epochs == 30  # 60 steps per epoch: 30 epochs is enough
    assert "batch_size" not in r.reasons and "no early stopping" in r.summary()
    sgd = resolve("auto", TrainConfig(optimizer="sgd"), ("optimizer",), 240).train
    assert (sgd.lr, sgd.nesterov) == (protocol.LR["sgd"], True)
    epochs = resolve("auto", TrainConfig(max_epochs=3), ("max_epochs",), 240).train
    assert (epochs.max_epochs, epochs.warmup_epochs) == (3, 1)


def test_paper_and_given_are_used_as_is():
    paper = resolve("paper", TrainConfig(), (), 120)
    # the recipe as given; only the "auto" CPU precision is resolved (fp32, NCHW for a small net)
    assert paper.train == TrainConfig(cpu_amp=False, cpu_channels_last=False) and paper.protocol == "paper"
    given = TrainConfig(lr=0.3, cpu_amp=False, cpu_channels_last=False)
    assert resolve(None, given, (), 120).train is given


def test_cli_records_the_resolved_recipe_and_why(tmp_path, capsys):
    base = tmp_path / "base.safetensors"
    tiny_ticket().save(base)
    data = quick(tmp_path / "f")
    code, _, err = cli(capsys, base, "--data", data, "--out", tmp_path / "o", "--split", "0.5,0.1,0.4",
                       "--epochs", 8, "--lr", 0.01, "--device", "cpu")
    assert code == 0, err
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    p, t = m["protocol"], m["config"]["train"]  # the config as it ran: only the optimizer that ran
    assert (p["protocol"], t["optimizer"], t["batch_size"], t["max_epochs"]) == ("auto", "adamw", 8, 8)
    assert p["reasons"]["batch_size"] == "40 training images: 5 steps per epoch (at least 15 from 120 images on)"
    assert "max_epochs" not in p["reasons"] and "lr" not in p["reasons"] and t["warmup_epochs"] == 1
    assert t["precise_bn"] is True and "sgd" not in json.dumps(m["config"])
    assert m["runtime"] == {"device": "cpu", "precision": "fp32", "channels_last": False}
    assert "setup: protocol auto: adamw lr 0.01, batch 8 (40 training images" in err
    assert m["config"]["protocol"] == "auto" and m["config"]["overrides"] == ["lr", "max_epochs"]
    card = Ticket.load(tmp_path / "o" / "ticket.safetensors").card
    # the fine-tune's own recipe, typed: its training, not its parent's pruning
    r = card.recipe
    assert (r.method, r.rounds, r.find) == ("finetune", 0, None) and r.finetune.protocol == "auto"
    assert r.train.batch_size == 8 and r.train.schedule == "cosine" and r.record.reasons["batch_size"]
    assert r.finetune.train == r.train and r.finetune.to_dict()["train"] == m["config"]["train"]
    assert "protocol auto" in card.description and "adamw lr 0.01" in r.summary()
    from ticketzoo.registry.api import last_finetuned

    assert last_finetuned() == (tmp_path / "o" / "ticket.safetensors").absolute()  # `push` with no argument


def test_cli_patience_zero_turns_early_stopping_off(tmp_path, capsys):
    base = tmp_path / "base.safetensors"
    tiny_ticket().save(base)
    data = quick(tmp_path / "f")
    code, _, err = cli(capsys, base, "--data", data, "--out", tmp_path / "o", "--protocol", "paper",
                       "--epochs", 8, "--patience", 0, *QUICK_ARGS)
    assert code == 0, err
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["config"]["train"]["patience"] is None
    assert m["epochs_run"] == 8 and not m["stopped_early"]
    assert "no early stopping" in err and "protocol paper" in err


# --- images: what they are and what they become --------------------------------------------


def test_image_sizes_and_modes_are_reported(tmp_path, capsys):
    base = tmp_path / "base.safetensors"
    tiny_ticket().save(base)
    root = quick(tmp_path / "f")
    rgb = np.random.default_rng(0).integers(0, 256, (250, 200, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(root / "stripes-vertical" / "big.png")
    Image.fromarray(rgb[..., 0]).save(root / "stripes-vertical" / "grey.png")
    Image.fromarray(rgb).convert("RGBA").save(root / "stripes-horizontal" / "alpha.png")
    code, _, err = cli(capsys, base, "--data", root, "--out", tmp_path / "o", "--epochs", 8, *QUICK_ARGS)
    assert code == 0, err
    line = next(x for x in err.splitlines() if x.startswith("images: "))
    assert "16x16 (80)" in line and "200x250 (3)" in line and "modes L 1, RGB 81, RGBA 1" in line
    assert "shorter side to 18 px, center square" in line and "cropped to 16 px" in line
    assert "L -> RGB (3 channels) (repeated)" in line and "RGBA -> RGB (3 channels) (alpha on black)" in line
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())["images"]
    assert m["count"] == 83 and m["working_size"] == 18 and m["input_size"] == 16
    assert m["sizes"] == [[[16, 16], 80], [[200, 250], 3]]


def test_image_transform_to_grey_and_large_downscale():
    info = {"count": 9, "read": 9, "sizes": [[[250, 250], 9]], "modes": {"RGB": 8, "P": 1}}
    how = image_info.transform(info, channels=1, working=37, input_size=32)
    assert how["channels"] == ["P -> grey (1 channel)", "RGB -> grey (1 channel)"]
    assert how["resize"] == "to 37 px" and how["downscale"] == pytest.approx(7.81)
    text = image_info.describe(info, how)
    assert text.startswith("images: 250x250 (all 9); modes P 1, RGB 8 -> resized to 37 px")
    assert "7.81x smaller than the median image: the ticket sees 32 px" in text


def test_image_sizes_are_read_from_headers_only(tmp_path, monkeypatch):
    root = quick(tmp_path / "f")
    from ticketzoo.data import discover_folder

    data = discover_folder(root, split=(0.5, 0.1, 0.4))
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("pixels were decoded"))
    info = image_info.source_images(data)
    assert info["count"] == info["read"] == 80 and info["modes"] == {"RGB": 80}


# --- threads --------------------------------------------------------------------------------


def test_threads_are_chosen_recorded_and_restored(tmp_path, capsys):
    base = tmp_path / "base.safetensors"
    tiny_ticket().save(base)
    data = quick(tmp_path / "f")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        code, _, err = cli(capsys, base, "--data", data, "--out", tmp_path / "o", "--epochs", 8, *QUICK_ARGS)
        assert code == 0, err
        assert torch.get_num_threads() == 2  # restored after the runs
        assert "threads: 1 (small model; --threads to change)" in err
        m = json.loads((tmp_path / "o" / "metrics.json").read_text())
        assert m["threads"] == {"count": 1, "why": "small model; --threads to change"}
        code, _, err = cli(capsys, base, "--data", data, "--out", tmp_path / "o", "--epochs", 8,
                           *QUICK_ARGS, "--threads", 2, "--resume")  # threads are not in the fingerprint
        assert code == 0, err
        assert "threads: 2 (--threads)" in err and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_threads_must_be_positive():
    from ticketzoo.errors import ConfigError

    with pytest.raises(ConfigError, match="threads must be a positive integer"):
        qcfg(threads=0)


# --- named datasets ---------------------------------------------------------------------------


def _fake_fashionmnist(root, n_train=200, n_test=100):
    """IDX files where class k is a bright horizontal band at row 2k+3: learnable in a few epochs."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 60, (n, 28, 28))
        for i, k in enumerate(labels):
            images[i, 2 * k + 3: 2 * k + 6] = 255
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            head = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
            (raw / f"{prefix}-{kind}-ubyte").write_bytes(head + array.astype(np.uint8).tobytes())
            with gzip.open(raw / f"{prefix}-{kind}-ubyte.gz", "wb") as f:
                f.write(head + array.astype(np.uint8).tobytes())


def test_named_dataset(tmp_path, capsys):
    base = tmp_path / "base.safetensors"
    tiny_ticket().save(base)
    _fake_fashionmnist(tmp_path / "data")
    code, out, err = cli(capsys, base, "--data", "fashionmnist", "--data-root", tmp_path / "data",
                         "--out", tmp_path / "o", "--epochs", 10, "--optimizer", "adam",
                         "--lr", 0.01, "--batch-size", 16, "--device", "cpu")
    assert code == 0, err
    assert "data: fashionmnist from" in err and "train 180 / val 20 / test 100 images" in err
    assert "28x28 (all 300); modes L 300" in err and "L -> RGB (3 channels) (repeated)" in err
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["data"]["layout"] == "named" and m["data"]["folder"] == "fashionmnist"
    assert len(m["data"]["classes"]) == 10 and m["runs"][0]["status"] == "ok"
    assert "saved tiny-conv2-s80-ft-fashionmnist" in out
    code, _, err = cli(capsys, base, "--data", "cifar10", "--data-root", tmp_path / "nothing",
                       "--out", tmp_path / "o2")
    assert code == 1 and "dataset root" in err and "does not exist" in err

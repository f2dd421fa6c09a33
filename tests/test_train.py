"""Tests of ticketzoo.train: tiny conv nets on random 16 px images, CPU only."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from pathlib import Path

import pytest
import torch
from rich.console import Console
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ticketzoo.cli.progress import RichProgress
from ticketzoo.errors import CheckpointError, ConfigError, DataError
from ticketzoo.train import (
    Callback,
    CSVLogger,
    EarlyStopping,
    ProgressCallback,
    Runtime,
    SnapshotAt,
    Step,
    TrainConfig,
    cpu_state_dict,
    evaluate,
    resolve_device,
    train,
)
from ticketzoo.train.callbacks import TrainState
from ticketzoo.train.checkpoint import load_checkpoint

CPU = dict(device="cpu", patience=None, milestones=())


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    )


def dataset(n: int = 48, *, seed: int = 0, separable: bool = False, shift: int = 0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    images = torch.randn(n, 3, 16, 16, generator=g)
    if separable:  # class c lights up channel c
        images[torch.arange(n), labels] += 3.0
    return TensorDataset(images, (labels + shift) % 3)


def loader(ds: TensorDataset, *, shuffle: bool = True, seed: int = 0, batch: int = 8) -> DataLoader:
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(ds, batch_size=batch, shuffle=shuffle, generator=gen)


def random_masks(model: nn.Module, density: float = 0.5, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        name: torch.rand(p.shape, generator=g) < density
        for name, p in model.named_parameters()
        if name.endswith("weight")
    }


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


class Raise(Callback):
    """Simulates a crash at a given (0-based epoch, iteration)."""

    def __init__(self, epoch: int, iteration: int):
        self.at = (epoch, iteration)

    def on_step_end(self, state: TrainState) -> None:
        if (state.epoch, state.iteration) == self.at:
            raise KeyboardInterrupt("simulated interruption")


# --- Step ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "step"),
    [("2ep", Step(2, "ep")), ("500it", Step(500, "it")), ("0", Step(0, "it")),
     ("0ep", Step(0, "ep")), ("0it", Step(0, "it")), (" 3EP ", Step(3, "ep"))],
)  # fmt: skip
def test_step_parse(text, step):
    assert Step.parse(text) == step
    assert Step.parse(str(step)) == step


@pytest.mark.parametrize("text", ["", "2", "ep", "-1ep", "2.5ep", "2 epochs", "1e3it", "it5"])
def test_step_parse_rejects(text):
    with pytest.raises(ConfigError, match="ep"):
        Step.parse(text)


def test_step_iterations_and_coerce():
    assert str(Step(2, "ep")) == "2ep"
    assert Step(2, "ep").iterations(10) == 20
    assert Step(7, "it").iterations(10) == 7
    assert Step.coerce(5) == Step(5, "it") and Step.coerce("1ep") == Step.epochs(1)
    with pytest.raises(ConfigError):
        Step(1, "ep").iterations(0)
    with pytest.raises(ConfigError):
        Step(-1, "it")


# --- TrainConfig -----------------------------------------------------------------------


def test_config_defaults_follow_protocol():
    c = TrainConfig()
    assert (c.optimizer, c.lr, c.momentum, c.nesterov) == ("sgd", 0.1, 0.9, True)
    assert (c.weight_decay, c.batch_size, c.max_epochs) == (1e-5, 64, 100)
    assert (c.milestones, c.gamma, c.patience) == ((50, 60, 75), 0.1, 5)
    assert c.lr_at(0) == 0.1 and math.isclose(c.lr_at(50), 0.01) and math.isclose(c.lr_at(99), 1e-4)


@pytest.mark.parametrize(
    "bad",
    [dict(lr=0), dict(lr=float("nan")), dict(momentum=1.0), dict(weight_decay=-1),
     dict(batch_size=0), dict(max_epochs=0), dict(milestones=(5, 3)), dict(milestones=(0,)),
     dict(gamma=0), dict(patience=0), dict(seed=-1), dict(device="tpu"), dict(optimizer="rmsprop"),
     dict(momentum=0.0, nesterov=True), dict(lr="0.1"), dict(batch_size=True), dict(amp="yes")],
)  # fmt: skip
def test_config_validation(bad):
    with pytest.raises(ConfigError):
        TrainConfig(**bad)


def test_config_hash_stable():
    c = TrainConfig()
    assert c.hash() == "b2ff1cd4466555f454271c1c2be4955e967bbbf11a7aa183d2c72761cfedce54"
    assert c.hashname() == "b2ff1cd44665"
    assert TrainConfig(lr=1).hash() == TrainConfig(lr=1.0).hash()
    assert TrainConfig(milestones=[50, 60, 75]).hash() == c.hash()
    assert TrainConfig(device="cpu").hash() == c.hash()  # where, not what
    assert TrainConfig(lr=0.05).hash() != c.hash()
    assert TrainConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="unknown training option"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    # schedule and warm-up came later: at their defaults they stay out of the dict and hash
    assert "schedule" not in c.to_dict() and "warmup_epochs" not in c.to_dict()
    cosine = TrainConfig(schedule="cosine", milestones=(), warmup_epochs=2)
    assert cosine.to_dict()["schedule"] == "cosine" and cosine.to_dict()["warmup_epochs"] == 2
    assert TrainConfig.from_dict(cosine.to_dict()) == cosine
    assert len({c.hash(), TrainConfig(warmup_epochs=1).hash(), cosine.hash()}) == 3


@pytest.mark.parametrize(
    "bad",
    [dict(schedule="linear"), dict(schedule="cosine"), dict(warmup_epochs=-1),
     dict(warmup_epochs=5, max_epochs=5), dict(warmup_epochs=1.5)],
)  # fmt: skip
def test_schedule_validation(bad):
    with pytest.raises(ConfigError):
        TrainConfig(**bad)


def test_lr_at_step_warmup_cosine_and_step():
    step = TrainConfig(lr=0.1, milestones=(2,), gamma=0.5)
    assert [step.lr_at_step(s, 4) for s in (0, 7, 8, 20)] == [step.lr_at(0), 0.1, 0.05, 0.05]
    warm = TrainConfig(lr=0.1, milestones=(2,), gamma=0.5, warmup_epochs=1)
    assert [warm.lr_at_step(s, 4) for s in range(5)] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1])
    cos = TrainConfig(lr=1.0, schedule="cosine", milestones=(), warmup_epochs=1, max_epochs=3)
    lrs = [cos.lr_at_step(s, 2) for s in range(6)]
    assert lrs[:2] == [0.5, 1.0] and lrs[2] == 1.0 and math.isclose(lrs[4], 0.5)
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:])) and lrs[5] > 0
    assert math.isclose(cos.lr_at_step(6, 2), 0.0, abs_tol=1e-12)


def test_the_loop_sets_the_lr_every_step():
    config = TrainConfig(max_epochs=3, lr=0.1, schedule="cosine", milestones=(), warmup_epochs=1,
                         device="cpu", patience=None)
    seen = []

    class Record(Callback):
        def on_step_end(self, state):
            seen.append(state.lr)

    result = train(tiny_model(), None, loader(dataset(48)), None, config, callbacks=[Record()])
    assert seen == [config.lr_at_step(s, 6) for s in range(18)]
    assert [row["lr"] for row in result.history] == [seen[0], seen[6], seen[12]]


# --- device ------------------------------------------------------------------------------


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ConfigError):
        resolve_device("tpu")
    rt = Runtime.create("cpu")  # AMP and channels_last are CUDA-only
    assert rt.amp_dtype is None and rt.grad_scaler() is None and not rt.channels_last


# --- masked training -------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_pruned_weights_stay_exactly_zero(optimizer):
    model = tiny_model()
    masks = random_masks(model)
    before = cpu_state_dict(model)
    assert all((before[n][~m] != 0).any() for n, m in masks.items())
    config = TrainConfig(max_epochs=2, weight_decay=1e-2, momentum=0.9, optimizer=optimizer, **CPU)
    train(model, masks, loader(dataset()), None, config)
    after = cpu_state_dict(model)
    for name, mask in masks.items():
        assert torch.count_nonzero(after[name][~mask]) == 0, name
        assert not torch.equal(after[name][mask], before[name][mask]), name


def test_mask_validation():
    model = tiny_model()
    config = TrainConfig(max_epochs=1, **CPU)
    data = loader(dataset())
    for masks, message in [
        ({"nope.weight": torch.ones(3, dtype=torch.bool)}, "names no parameter"),
        ({"0.weight": torch.ones(4, dtype=torch.bool)}, "shape"),
        ({"0.weight": torch.ones(4, 3, 3, 3)}, "bool"),
    ]:
        with pytest.raises(ConfigError, match=message):
            train(model, masks, data, None, config)


def test_training_reduces_loss_on_separable_task():
    ds = dataset(96, separable=True)
    config = TrainConfig(max_epochs=8, lr=0.05, **CPU)
    result = train(tiny_model(), None, loader(ds), loader(ds, shuffle=False), config)
    assert result.history[-1]["train_loss"] < 0.5 * result.history[0]["train_loss"]
    assert result.history[-1]["val_acc"] >= 0.9
    assert result.epochs_run == 8 and not result.stopped_early


def test_early_stopping_stops_and_restores_best():
    train_ds = dataset(48, separable=True)
    val_ds = dataset(48, separable=True, shift=1)  # fitting the train labels hurts these
    per_epoch: dict[int, dict] = {}

    class Keep(Callback):
        def on_epoch_end(self, state, metrics):
            per_epoch[metrics["epoch"]] = cpu_state_dict(state.model)

    config = TrainConfig(max_epochs=30, lr=0.05, patience=2, device="cpu", milestones=())
    model = tiny_model()
    val = loader(val_ds, shuffle=False)
    result = train(model, None, loader(train_ds), val, config, callbacks=[Keep()])
    assert result.stopped_early and result.epochs_run < 30
    assert result.epochs_run == result.best_epoch + 2
    assert "did not improve" in result.stop_reason
    val_losses = [row["val_loss"] for row in result.history]
    assert result.best_val_loss == min(val_losses)
    assert_same_state(cpu_state_dict(model), per_epoch[result.best_epoch])


def test_early_stopping_counts():
    stopper = EarlyStopping(2)
    state = TrainState(None, None, TrainConfig(), torch.device("cpu"), 1)  # type: ignore[arg-type]
    for loss in (1.0, 0.9, 0.95):
        stopper.on_epoch_end(state, {"val_loss": loss})
        assert not state.stop_requested
    stopper.on_epoch_end(state, {"val_loss": 0.91})
    assert state.stop_requested and stopper.state_dict() == {"best": 0.9, "bad_epochs": 2}


def test_milestones_change_lr():
    config = TrainConfig(max_epochs=4, lr=0.1, milestones=(1, 3), gamma=0.1, device="cpu")
    result = train(tiny_model(), None, loader(dataset(16)), None, config)
    lrs = [row["lr"] for row in result.history]
    assert [round(lr, 10) for lr in lrs] == [0.1, 0.01, 0.01, 0.001]


def test_snapshot_at_steps():
    data = dataset()  # 6 iterations per epoch
    masks = random_masks(tiny_model())
    config = TrainConfig(max_epochs=2, **CPU)
    got: dict[str, list] = {"0": [], "2it": [], "1ep": []}
    snaps = [SnapshotAt(step, got[step].append) for step in got]
    model = tiny_model()
    expected_zero = {k: v * masks[k] if k in masks else v for k, v in cpu_state_dict(model).items()}
    train(model, masks, loader(data), None, config, callbacks=snaps)
    assert [len(v) for v in got.values()] == [1, 1, 1]
    assert_same_state(got["0"][0], expected_zero)

    class StopAt2(Callback):
        def on_step_end(self, state):
            if state.step == 2:
                state.request_stop("test")

    short = tiny_model()
    result = train(short, masks, loader(data), None, config, callbacks=[StopAt2()])
    assert result.final_step == 2 and result.stopped_early
    assert_same_state(got["2it"][0], cpu_state_dict(short))
    one_epoch = tiny_model()
    train(one_epoch, masks, loader(data), None, dataclasses.replace(config, max_epochs=1))
    assert_same_state(got["1ep"][0], cpu_state_dict(one_epoch))


def test_start_mid_schedule():
    config = TrainConfig(max_epochs=2, lr=0.1, milestones=(1,), device="cpu", patience=None)
    result = train(tiny_model(), None, loader(dataset()), None, config, start="3it")
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert [row["iterations"] for row in result.history] == [3, 6]
    assert result.final_step == 12 and math.isclose(result.history[1]["lr"], 0.01)
    with pytest.raises(ConfigError, match="past the end"):
        train(tiny_model(), None, loader(dataset()), None, config, start="2ep")


def test_cpu_determinism():
    config = TrainConfig(max_epochs=2, seed=3, device="cpu")
    states = []
    for _ in range(2):
        model = tiny_model()
        train(model, random_masks(model), loader(dataset()), loader(dataset(24, seed=5)), config)
        states.append(cpu_state_dict(model))
    assert_same_state(*states)


# --- checkpoints -----------------------------------------------------------------------


class SeesCheckpoint(Callback):
    """Records at each epoch's end whether a checkpoint file exists yet."""

    def __init__(self, path: Path):
        self.path, self.seen = path, []

    def on_epoch_end(self, state: TrainState, metrics) -> None:
        self.seen.append(self.path.exists())


@pytest.mark.parametrize("every_s", [0.0, 3600.0], ids=["every-epoch", "interval"])
def test_resume_is_bitwise_identical(tmp_path, every_s):
    """Per-epoch checkpoints and interval ones (kept in memory, written when the run is
    interrupted) resume to the same weights as a run that was never stopped."""
    config = TrainConfig(max_epochs=3, patience=2, device="cpu", milestones=(2,), weight_decay=1e-3)
    val = loader(dataset(24, seed=7), shuffle=False)
    masks = random_masks(tiny_model())

    straight = tiny_model()
    data = loader(dataset(), seed=11)
    expected = train(straight, masks, data, val, config, checkpoint_dir=tmp_path / "a")

    run_dir = tmp_path / "b"
    sees = SeesCheckpoint(run_dir / "checkpoint.pt")
    with pytest.raises(KeyboardInterrupt):  # crash in the middle of epoch 3
        train(tiny_model(), masks, loader(dataset(), seed=11), val, config, checkpoint_dir=run_dir,
              callbacks=[sees, Raise(epoch=2, iteration=3)], checkpoint_every_s=every_s)  # fmt: skip
    # epoch 1's checkpoint is written after epoch 1's callbacks; the interval writes none
    assert sees.seen == ([False, True] if every_s == 0 else [False, False])
    assert load_checkpoint(run_dir / "checkpoint.pt")["epoch"] == 2  # the last finished epoch
    resumed = tiny_model(seed=99)  # different init: the checkpoint must win
    log = tmp_path / "log.csv"
    result = train(resumed, masks, loader(dataset(), seed=123), val, config, checkpoint_dir=run_dir,
                   resume=True, callbacks=[CSVLogger(log)])  # fmt: skip
    assert result.resumed and result.epochs_run == 3
    assert_same_state(cpu_state_dict(straight), cpu_state_dict(resumed))
    strip = lambda rows: [{k: v for k, v in r.items() if k != "time_s"} for r in rows]  # noqa: E731
    assert strip(result.history) == strip(expected.history)
    rows = list(csv.DictReader(log.open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]

    done = load_checkpoint(run_dir / "checkpoint.pt")  # finished: the weights it ends with, only
    assert done["finished"] and done["optimizer"] is None and done["best"]["state"] is None
    again = tiny_model(seed=5)  # a finished run returns at once with the same weights
    data = loader(dataset(), seed=0)
    done = train(again, masks, data, val, config, checkpoint_dir=run_dir, resume=True)
    assert done.epochs_run == 3 and done.best_epoch == result.best_epoch
    assert_same_state(cpu_state_dict(again), cpu_state_dict(resumed))


def test_resume_refuses_other_config_or_masks(tmp_path):
    config = TrainConfig(max_epochs=2, **CPU)
    model = tiny_model()
    masks = random_masks(model)
    with pytest.raises(KeyboardInterrupt):
        train(model, masks, loader(dataset()), None, config, checkpoint_dir=tmp_path,
              callbacks=[Raise(epoch=1, iteration=1)])  # fmt: skip
    other = dataclasses.replace(config, lr=0.05)
    with pytest.raises(CheckpointError, match="different training config") as info:
        train(tiny_model(), masks, loader(dataset()), None, other, checkpoint_dir=tmp_path,
              resume=True)  # fmt: skip
    assert "new run directory" in str(info.value)
    with pytest.raises(CheckpointError, match="different masks"):
        train(tiny_model(), random_masks(model, seed=2), loader(dataset()), None, config,
              checkpoint_dir=tmp_path, resume=True)  # fmt: skip


def test_corrupt_checkpoint(tmp_path):
    config = TrainConfig(max_epochs=1, **CPU)
    train(tiny_model(), None, loader(dataset()), None, config, checkpoint_dir=tmp_path)
    path = tmp_path / "checkpoint.pt"
    resume = dict(checkpoint_dir=tmp_path, resume=True)
    data = path.read_bytes()
    for garbage in (b"not a checkpoint", data[: len(data) // 2]):
        path.write_bytes(garbage)
        with pytest.raises(CheckpointError, match="unreadable"):
            train(tiny_model(), None, loader(dataset()), None, config, **resume)
    torch.save({"format": "something else"}, path)
    with pytest.raises(CheckpointError, match="not a ticketzoo"):
        train(tiny_model(), None, loader(dataset()), None, config, **resume)
    assert not list(tmp_path.glob("*.tmp"))


# --- evaluation and logging ------------------------------------------------------------


class Oracle(nn.Module):
    """Predicts the class written in the image's first pixel."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(5.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(x[:, 0, 0, 0].long(), 4).float() * self.scale


def test_evaluate_confusion_and_per_class():
    preds = torch.tensor([0, 0, 1, 2, 2, 2, 1])
    labels = torch.tensor([0, 1, 1, 2, 2, 0, 1])  # class 3 never occurs
    images = preds.float().view(-1, 1, 1, 1).expand(-1, 1, 2, 2).contiguous()
    batches = loader(TensorDataset(images, labels), shuffle=False, batch=3)
    result = evaluate(Oracle(), batches, "cpu")
    assert result.confusion == [[1, 0, 1, 0], [1, 2, 0, 0], [0, 0, 2, 0], [0, 0, 0, 0]]
    assert result.per_class_accuracy == [0.5, 2 / 3, 1.0, None]
    assert math.isclose(result.accuracy, 5 / 7) and result.num_samples == 7
    wrong = math.log(3 + math.exp(5))
    assert math.isclose(result.loss, (5 * (wrong - 5) + 2 * wrong) / 7, rel_tol=1e-5)
    with pytest.raises(ConfigError, match="num_classes"):
        evaluate(Oracle(), [(images, labels)], "cpu", num_classes=3)
    with pytest.raises(DataError, match="outside"):
        evaluate(Oracle(), [(images, labels + 3)], "cpu")


def test_progress_and_csv(tmp_path):
    out = io.StringIO()
    console = Console(file=out, width=120, highlight=False)
    config = TrainConfig(max_epochs=2, device="cpu")
    log = tmp_path / "logs" / "train.csv"
    callbacks = [ProgressCallback(RichProgress(console)), CSVLogger(log)]
    val = loader(dataset(24, seed=2))
    train(tiny_model(), None, loader(dataset()), val, config, callbacks=callbacks)
    lines = out.getvalue().splitlines()
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert "val loss" in lines[0]
    rows = list(csv.reader(log.open()))
    assert rows[0] == ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "time_s"]
    assert len(rows) == 3 and rows[2][0] == "2"
    events = []

    class Recorder:
        def start(self, key, description, **kw):
            events.append(("start", key, description, kw["total"], kw["unit"]))

        def advance(self, key, completed, **kw):
            events.append(("advance", key, completed))

        def end(self, key, summary=None):
            events.append(("end", key, summary.split("  ")[0]))

    train(tiny_model(), None, loader(dataset(), batch=8), None, config, callbacks=[ProgressCallback(Recorder())])
    assert events[0] == ("start", "epoch", "epoch 1/2", 6, "batches")
    assert [e for e in events if e[0] == "end"] == [("end", "epoch", "epoch 1/2"), ("end", "epoch", "epoch 2/2")]


def test_progress_lines_with_eta_in_logs():
    """Without a terminal, long epochs print their progress and ETA (here: at every step)."""
    out = io.StringIO()
    console = Console(file=out, width=120, highlight=False)
    config = TrainConfig(max_epochs=1, device="cpu", batch_size=4)
    train(tiny_model(), None, loader(dataset(), batch=4), None, config,
          callbacks=[ProgressCallback(RichProgress(console, log_every_s=0))])
    lines = [line for line in out.getvalue().splitlines() if "batches" in line]
    assert lines and all("epoch ETA" in line and "it/s" in line for line in lines)
    assert lines[-1].startswith("epoch 1/1: ")


def test_divergence_is_reported_as_such():
    from ticketzoo.errors import TrainingDivergedError

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 2))
    data = torch.utils.data.TensorDataset(torch.randn(16, 3, 4, 4) * 1e3, torch.randint(0, 2, (16,)))
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    with pytest.raises(TrainingDivergedError, match=r"diverged in epoch \d.*lower the learning rate") as info:
        train(model, None, loader, None, TrainConfig(lr=1e30, max_epochs=3, patience=None, device="cpu"))
    assert info.value.epoch >= 1 and info.value.lr == 1e30 and not math.isfinite(info.value.loss)


def test_non_finite_validation_loss_is_divergence():
    from ticketzoo.train import DivergedError

    class Poison(Callback):  # the weights turn NaN after the last step: only validation sees it
        def on_step_end(self, state):
            if state.iteration == state.iters_per_epoch:
                with torch.no_grad():
                    state.model[-1].bias.fill_(float("nan"))

    with pytest.raises(DivergedError, match="the validation loss is nan") as info:
        train(tiny_model(), None, loader(dataset()), loader(dataset(), shuffle=False),
              TrainConfig(max_epochs=2, **CPU), callbacks=[Poison()])
    assert info.value.epoch == 1


def test_precise_bn_recomputes_running_stats_as_an_equal_average():
    """Precise BN: the running statistics become the plain average of the batches' statistics;
    weights, mode and momentum are left as they were."""
    from ticketzoo.train import Runtime
    from ticketzoo.train.precise_bn import batches_for, recompute_bn_stats

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(2, 1, 6, 6))
    model.eval()
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    batches = [(torch.randn(4, 1, 6, 6) * (i + 1) + i, torch.zeros(4, dtype=torch.long)) for i in range(3)]
    used = recompute_bn_stats(model, batches, Runtime(torch.device("cpu")), batches=2)
    assert used == 2 and not model.training and model[1].momentum == 0.1
    with torch.no_grad():
        feats = [model[0](x) for x, _ in batches[:2]]
    mean = torch.stack([f.mean((0, 2, 3)) for f in feats]).mean(0)
    var = torch.stack([f.var((0, 2, 3), unbiased=True) for f in feats]).mean(0)
    assert torch.allclose(model[1].running_mean, mean, atol=1e-5)
    assert torch.allclose(model[1].running_var, var, atol=1e-4)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())
    assert recompute_bn_stats(nn.Linear(2, 2), batches, Runtime(torch.device("cpu")), batches=2) == 0
    assert (batches_for(8, 50), batches_for(8, 10), batches_for(4096, 10)) == (50, 10, 1)


def test_precise_bn_is_a_recipe_choice_and_keeps_runs_reproducible():
    """precise_bn enters the hash only when on; two runs with it end bitwise equal."""
    assert "precise_bn" not in TrainConfig().to_dict()
    assert TrainConfig(precise_bn=True).hash() != TrainConfig().hash()

    def run():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 2))
        g = torch.Generator().manual_seed(1)
        x, y = torch.randn(32, 1, 6, 6, generator=g), torch.randint(0, 2, (32,), generator=g)
        loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(2))
        val = DataLoader(TensorDataset(x[:8], y[:8]), batch_size=8)
        train(model, None, loader, val, TrainConfig(max_epochs=2, lr=0.01, precise_bn=True, device="cpu"))
        return model.state_dict()

    a, b = run(), run()
    assert all(torch.equal(a[k], b[k]) for k in a)

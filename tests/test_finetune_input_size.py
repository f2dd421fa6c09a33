"""``finetune --input-size``: convolutional tickets at another image size; LeNet-like refused."""

from __future__ import annotations

import pytest

from conftest import tiny_ticket
from test_finetune import qcfg, quick
from ticketzoo.config.data import DataConfig
from ticketzoo.errors import ConfigError
from ticketzoo.finetune import NoTrainedRunError, finetune
from ticketzoo.ticket import Ticket


def test_a_global_pool_ticket_trains_at_another_size(tmp_path):
    from PIL import Image

    from ticketzoo.finetune.run import _at_input_size

    ticket = tiny_ticket("cifar_resnet20", 0.5, name="tiny-resnet20-s50", input_size=16, width=0.25)
    resized = _at_input_size(ticket, 24)
    assert resized.card.arch.input_size == 24 and ticket.card.arch.input_size == 16
    assert resized.transforms(train=False)(Image.new("RGB", (40, 40))).shape[-1] == 24
    try:  # whether 1 epoch learns anything does not matter here: what it trained at does
        result = finetune(ticket, quick(tmp_path / "data"), qcfg(epochs=1, input_size=24),
                          out_dir=tmp_path / "out")
        metrics, saved = result.metrics, Ticket.load(result.path).card.arch.input_size
    except NoTrainedRunError as err:
        metrics, saved = err.result.metrics, 24
    assert metrics["images"]["input_size"] == 24 and saved == 24


def test_a_size_dependent_ticket_is_refused(tmp_path):
    ticket = tiny_ticket("conv2", 0.5, name="tiny-conv2-s50", input_size=16)
    with pytest.raises(ConfigError, match="cannot take 24x24 images") as err:
        finetune(ticket, quick(tmp_path / "data"), qcfg(epochs=1, input_size=24), out_dir=tmp_path / "out")
    assert err.value.field == "input_size"
    assert not (tmp_path / "out").exists()


def test_input_size_is_recorded_only_when_set():
    assert "input_size" not in qcfg().to_dict()
    assert qcfg(input_size=64).hash() != qcfg().hash()


def test_finetune_data_can_live_on_the_device(tmp_path):
    """The device-resident path (CUDA by default) gives the DataLoader path's eval batches and
    train batches of the same shapes and label multiset."""
    import torch

    from test_finetune import QUICK_SPLIT
    from ticketzoo.data import loading as source
    from ticketzoo.finetune import FinetuneConfig
    from ticketzoo.finetune.training import make_run_loaders
    from ticketzoo.train import TrainConfig

    ticket = tiny_ticket("conv2", 0.5, name="tiny-conv2-s50", input_size=16)
    config = FinetuneConfig(data=DataConfig(split=QUICK_SPLIT, flip=True))
    _, sets = source.load(quick(tmp_path / "data"), config, ticket.card.arch)
    cfg = TrainConfig(batch_size=8, device="cpu")
    cpu = torch.device("cpu")
    host = make_run_loaders(sets, cfg, seed=0, device=cpu)
    dev = make_run_loaders(sets, cfg, seed=0, device=cpu, on_device=True)
    assert type(dev.train).__name__ == "DeviceLoader" and type(host.train).__name__ != "DeviceLoader"
    for a, b in zip(host.test, dev.test):
        assert torch.allclose(a[0], b[0], atol=1e-5) and torch.equal(a[1], b[1])
    labels = lambda loader: sorted(int(y) for _, ys in loader for y in ys)  # noqa: E731
    assert labels(host.train) == labels(dev.train)
    assert {tuple(x.shape[1:]) for x, _ in dev.train} == {(3, 16, 16)}

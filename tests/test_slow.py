"""ResNet-50-sized checks, opt-in: ``bash scripts/test.sh --runslow``."""

from __future__ import annotations

import pytest
import torch

from ticketzoo.card import ArchConfig, SourceData
from ticketzoo.models import build_model, classifier_names
from ticketzoo.pruning import prune_to_sparsity
from ticketzoo.ticket import Ticket


@pytest.mark.slow
@pytest.mark.parametrize("sparsity", [0.8, 0.97])
def test_resnet50_round_trip_and_ready_model(tmp_path, sparsity):
    model = build_model("resnet50", num_classes=1000, seed=0)
    masks = prune_to_sparsity(model, sparsity)
    arch = ArchConfig("resnet50", 1000, 3, 224, classifier=classifier_names(model))
    ticket = Ticket.from_model(model, masks, name="r50", arch=arch, source=SourceData("none"), trained=model)
    path = tmp_path / "r50.safetensors"
    ticket.save(path)
    dense_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert path.stat().st_size < dense_bytes * (1 - sparsity) * 2 * 1.6  # two weight sets
    back = Ticket.load(path).to_model("trained", num_classes=10)
    ref = model.state_dict()
    for name, tensor in back.state_dict().items():
        if name in arch.classifier:
            continue
        expect = ref[name] * masks[name] if name in masks else ref[name]
        assert torch.equal(tensor, expect), name
    assert back(torch.zeros(1, 3, 64, 64)).shape == (1, 10)

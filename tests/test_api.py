"""Tests of the public face: ``import ticketzoo`` and ticketzoo.api (load, pull, push, list_tickets),
``Ticket.from_model`` by arch name, ``prune``, ``Ticket.transforms`` and writing what reading accepts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ticketzoo
from conftest import tiny_ticket
from ticketzoo.errors import ConfigError, InvalidRefError, TicketNotFoundError, UnknownArchitectureError
from ticketzoo.masks import Mask
from ticketzoo.models import build_model
from ticketzoo.ticket import Ticket

ROOT = Path(__file__).resolve().parents[1]


# --- import ticketzoo ---------------------------------------------------------------------------


def test_import_ticketzoo_does_not_import_torch():
    code = ("import sys, time; t = time.perf_counter(); import ticketzoo; dt = time.perf_counter() - t; "
            "assert 'torch' not in sys.modules and 'ticketzoo.ticket' not in sys.modules, sorted(sys.modules); "
            "print(dt)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert float(out.stdout) < 0.5  # measured: about 7 ms


def test_public_names_resolve_lazily():
    for name in ticketzoo.__all__:
        assert getattr(ticketzoo, name) is not None
        assert name in dir(ticketzoo)
    assert ticketzoo.Ticket is Ticket and ticketzoo.Mask is Mask
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ticketzoo.nope  # noqa: B018


# --- load / pull / push / list_tickets -----------------------------------------------------------


@pytest.fixture
def zoo(tmp_path):
    """A file:// registry holding tiny-conv2-s80 (pushed as a Ticket object)."""
    ticket = tiny_ticket()
    root = tmp_path / "zoo"
    root.mkdir()  # a registry setting names an existing folder
    done = ticketzoo.push(ticket, root.as_uri())
    return ticket, root, done


def same(a: Ticket, b: Ticket) -> bool:
    return a.to_bytes() == b.to_bytes()


def test_load_every_ref_form(zoo, tmp_path):
    ticket, root, done = zoo
    url = f"{root.as_uri()}/{ticket.name}"
    assert done.name == ticket.name and len(done.sha256) == 64
    assert same(ticketzoo.load(url), ticket)  # file:// (pulls into the local registry)
    assert same(ticketzoo.load(f"{url}@{done.revision}"), ticket)  # file://...@rev
    assert same(ticketzoo.load(ticket.name), ticket)  # a name: now local
    assert same(ticketzoo.load(f"{ticket.name}@{done.revision}"), ticket)  # name@rev
    assert same(ticketzoo.load(ticket.name, registry=root.as_uri()), ticket)  # a name in a registry
    path = ticketzoo.pull(ticket.name).file
    assert same(ticketzoo.load(path), ticket) and same(ticketzoo.load(str(path.parent)), ticket)  # file, folder
    with pytest.raises(TicketNotFoundError):
        ticketzoo.load("no-such-ticket")
    with pytest.raises(InvalidRefError):
        ticketzoo.load("ftp://x/y")


def test_load_the_bundled_catalog_by_name():
    ticket = ticketzoo.load("fashionmnist-lenet-300-100-s79")
    assert ticket.card.arch.name == "lenet_300_100" and 0.78 < ticket.sparsity < 0.80


def test_load_from_the_hub(hub_server, hub_env, monkeypatch, zoo):
    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    ticket = zoo[0]
    org, repo = hub_server.new_repo_id("api").split("/")
    ticketzoo.push(ticket, f"hf://{org}", name=repo)
    assert same(ticketzoo.load(f"hf://{org}/{repo}"), ticket.with_card(name=repo))


def test_pull_returns_the_local_entry(zoo, isolated_home):
    ticket, root, done = zoo
    entry = ticketzoo.pull(f"{root.as_uri()}/{ticket.name}")
    assert (entry.name, entry.revision, entry.sha256) == (ticket.name, done.revision, done.sha256)
    path = entry.file
    assert path.name == "ticket.safetensors" and isolated_home in path.parents
    assert path.read_bytes() == ticket.to_bytes()
    with pytest.raises(InvalidRefError, match="file path"):
        ticketzoo.pull(str(path))


def test_push_a_ticket_a_path_or_a_name(tmp_path, isolated_home):
    ticket = tiny_ticket(name="pushed")
    local = ticketzoo.push(ticket)  # default: the local registry
    assert local.location and ticketzoo.load("pushed").to_bytes() == ticket.to_bytes()
    ticket.save(tmp_path / "t.safetensors")
    (tmp_path / "z").mkdir()
    renamed = ticketzoo.push(tmp_path / "t.safetensors", (tmp_path / "z").as_uri(), name="other")
    assert renamed.name == "other" and ticketzoo.load(f"{(tmp_path / 'z').as_uri()}/other").name == "other"
    (tmp_path / "z2").mkdir()
    assert ticketzoo.push("pushed", str(tmp_path / "z2")).name == "pushed"  # a local name, a folder registry


def test_list_tickets_filters(isolated_home):
    ticketzoo.push(tiny_ticket(name="dense-ish", sparsity=0.2))
    ticketzoo.push(tiny_ticket(name="sparse", sparsity=0.9))
    rows = ticketzoo.list_tickets()
    names = {r.name for r in rows}
    assert {"dense-ish", "sparse", "fashionmnist-lenet-300-100-s79"} <= names
    assert [r.name for r in ticketzoo.list_tickets(arch="conv2", min_sparsity=0.5)] == ["sparse"]
    assert [r.name for r in ticketzoo.list_tickets(arch="conv2", max_sparsity=0.5)] == ["dense-ish"]
    row = next(r for r in rows if r.name == "sparse")
    assert row.where == "local" and row.ref.startswith("sparse@") and ticketzoo.load(row.ref).name == "sparse"


def test_list_tickets_of_a_registry(zoo):
    ticket, root, _ = zoo
    rows = ticketzoo.list_tickets(registry=root.as_uri())
    assert [r.name for r in rows] == [ticket.name] and rows[0].card.arch.name == "conv2"
    assert ticketzoo.list_tickets(registry=str(root), min_sparsity=0.9) == []


# --- Ticket.from_model by arch name; writing validates what reading validates --------------------


def test_from_model_infers_the_arch_config():
    model = build_model("conv2", num_classes=7, in_channels=1, input_size=16, width=0.125, seed=0)
    masks = ticketzoo.prune(model, 0.5)
    ticket = Ticket.from_model(model, masks, name="gray", arch="conv2", input_size=16, arch_kwargs={"width": 0.125})
    a = ticket.card.arch
    assert (a.num_classes, a.in_channels, a.input_size, a.classifier) == (7, 1, 16, ("fc.weight", "fc.bias"))
    assert a.mean == (0.5,) and ticket.card.source.classes == tuple(f"class_{i}" for i in range(7))
    assert Ticket.from_bytes(ticket.to_bytes()).to_model().state_dict().keys() == model.state_dict().keys()


def test_from_model_a_torchvision_model():
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet18(num_classes=4)
    ticket = Ticket.from_model(model, ticketzoo.prune(model, 0.9), name="r18", arch="resnet18")
    a = ticket.card.arch
    assert (a.num_classes, a.in_channels, a.input_size, a.mean) == (4, 3, 224, (0.485, 0.456, 0.406))
    assert ticket.sparsity == pytest.approx(0.9, abs=1e-6)


def test_from_model_refuses_the_wrong_arch_and_bad_names():
    model = build_model("conv2", num_classes=3, input_size=16, width=0.125, seed=0)
    masks = ticketzoo.prune(model, 0.5)
    with pytest.raises(ConfigError, match="not a conv4|does not match 'conv4'"):
        Ticket.from_model(model, masks, name="x", arch="conv4", input_size=16)
    with pytest.raises(ConfigError, match="does not match 'conv2'"):  # width left out: other shapes
        Ticket.from_model(model, masks, name="x", arch="conv2", input_size=16)
    with pytest.raises(UnknownArchitectureError):
        Ticket.from_model(model, masks, name="x", arch="nope")
    for bad in ("My Ticket", "", "a/b", "..x", "x" * 200):
        with pytest.raises(InvalidRefError, match="invalid ticket name"):
            Ticket.from_model(model, masks, name=bad, arch="conv2", input_size=16, arch_kwargs={"width": 0.125})


def test_a_card_load_would_refuse_is_refused_on_write(tmp_path):
    ticket = tiny_ticket()
    with pytest.raises(InvalidRefError):
        ticket.with_card(name="My Ticket")
    with pytest.raises(ConfigError, match="could not be read back"):
        ticket.with_card(sparsity=0.1)  # disagrees with the masks
    broken = Ticket(ticket.card.replace(name="My Ticket"), ticket._csr, ticket._sets)  # bypassing the checks
    with pytest.raises(InvalidRefError):
        broken.save(tmp_path / "t.safetensors")
    assert not (tmp_path / "t.safetensors").exists()


def test_identical_tickets_are_identical_bytes_whatever_the_mask_order():
    model = build_model("conv2", num_classes=3, input_size=16, width=0.125, seed=0)
    masks = ticketzoo.prune(model, 0.5)
    reverse = Mask(dict(reversed(list(masks.items()))))
    os.environ["SOURCE_DATE_EPOCH"] = "1700000000"
    try:
        kw = dict(name="t", arch="conv2", input_size=16, arch_kwargs={"width": 0.125})
        a, b = Ticket.from_model(model, masks, **kw), Ticket.from_model(model, reverse, **kw)
    finally:
        del os.environ["SOURCE_DATE_EPOCH"]
    assert a.to_bytes() == b.to_bytes()
    loaded = Ticket.from_bytes(a.to_bytes())
    assert list(loaded.masks) == list(masks) and loaded.to_bytes() == a.to_bytes()


# --- prune -----------------------------------------------------------------------------------------


def test_prune_global_and_layerwise():
    model = build_model("conv2", num_classes=3, input_size=16, width=0.125, seed=0)
    masks = ticketzoo.prune(model, 0.8)
    assert isinstance(masks, Mask) and masks.sparsity == pytest.approx(0.8, abs=1e-3)
    layers = ticketzoo.prune(model, 0.8, scope="layerwise").layer_sparsity()
    assert all(s == pytest.approx(0.8, abs=0.01) for s in layers.values())
    assert ticketzoo.prune(model, 0.0).sparsity == 0.0 and ticketzoo.prune(model, 1.0).sparsity == 1.0
    assert all(p.count_nonzero() for p in model.parameters())  # the model itself is not changed
    for bad, field in ((1.5, "sparsity"), ("0.5", "sparsity")):
        with pytest.raises(ConfigError) as e:
            ticketzoo.prune(model, bad)
        assert e.value.field == field
    with pytest.raises(ConfigError) as e:
        ticketzoo.prune(model, 0.5, scope="everywhere")
    assert e.value.field == "scope"


def test_prune_keeps_the_largest_weights_ties_by_position():
    from ticketzoo.pruning import _top_k_mask

    scores = torch.tensor([1.0, 3.0, 2.0, 2.0, 2.0, 0.0])
    assert _top_k_mask(scores, 3).tolist() == [False, True, True, True, False, False]
    assert _top_k_mask(scores, 0).tolist() == [False] * 6 and _top_k_mask(scores, 6).all()
    g = torch.Generator().manual_seed(0)
    for _ in range(50):  # against a stable sort, ties included
        x = torch.randint(0, 4, (37,), generator=g).float()
        k = int(torch.randint(0, 38, (1,), generator=g))
        want = torch.zeros(37, dtype=torch.bool)
        want[torch.sort(x, descending=True, stable=True).indices[:k]] = True
        assert torch.equal(_top_k_mask(x, k), want)


# --- transforms --------------------------------------------------------------------------------------


def test_transforms_match_what_finetune_feeds(tmp_path):
    from ticketzoo.data.images import try_decode

    ticket = tiny_ticket(input_size=16)  # RGB, mean 0.5, std 0.25
    rng = np.random.default_rng(0)
    path = tmp_path / "img.png"
    Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8), mode="L").save(path)  # gray, square
    x = ticket.transforms()(Image.open(path))
    assert x.shape == (3, 16, 16)
    array, _ = try_decode(path, channels=3, resize=18)  # finetune's reader at working size 16*256/224
    want = (torch.from_numpy(array).permute(2, 0, 1)[:, 1:17, 1:17].float() / 255 - 0.5) / 0.25
    assert torch.allclose(x, want, atol=1e-5)
    train = ticket.transforms(train=True)
    assert train(Image.open(path)).shape == (3, 16, 16)


# --- to_model: one head swap --------------------------------------------------------------------------


def test_to_model_fresh_head_is_seeded_and_xavier():
    ticket = tiny_ticket()
    a = ticket.to_model(num_classes=5, head_init="xavier", seed=3)
    b = ticket.to_model(num_classes=5, head_init="xavier", seed=3)
    c = ticket.to_model(fresh_head=True, head_init="xavier", seed=4)
    assert torch.equal(a.fc.weight, b.fc.weight) and a.fc.weight.shape[0] == 5
    assert not a.fc.bias.any() and c.fc.weight.shape[0] == ticket.card.arch.num_classes
    assert not torch.equal(c.fc.weight, ticket.state_dict()["fc.weight"])
    same_head = ticket.to_model()
    assert torch.equal(same_head.fc.weight, ticket.state_dict()["fc.weight"])
    assert not ticket.head_masks_dropped().violations(a)
    with pytest.raises(ConfigError, match="fresh_head=True"):
        ticket.to_model(seed=1)


def test_from_model_of_a_linear_first_layer_infers_the_channels():
    """LeNet's first layer is Linear: its inputs are channels x size x size, not channels."""
    import ticketzoo
    from ticketzoo.models import build_model

    model = build_model("lenet_300_100", num_classes=10, in_channels=1, input_size=28)
    ticket = ticketzoo.Ticket.from_model(model, ticketzoo.prune(model, 0.5), name="lenet-s50", arch="lenet_300_100")
    assert (ticket.card.arch.in_channels, ticket.card.arch.input_size) == (1, 28)
    with pytest.raises(ticketzoo.TicketzooError) as e:  # 784 inputs are not 3 x 20 x 20 pixels
        ticketzoo.Ticket.from_model(model, ticketzoo.prune(model, 0.5), name="lenet-s50", arch="lenet_300_100",
                                    input_size=20)
    assert e.value.field == "input_size"


def test_round_trip_with_torch_prune_compile_and_ddp_names():
    """Issue 32: a model pruned with torch.nn.utils.prune (weight_orig/weight_mask), compiled
    (_orig_mod.) or wrapped (module.) gives the same ticket as the plain model."""
    import torch.nn.utils.prune as tprune
    from torch import nn

    from ticketzoo.interop import plain_state_dict, unwrap

    torch.manual_seed(0)
    plain = ticketzoo.create_model("fashionmnist-lenet-300-100-s79")
    pruned = ticketzoo.create_model("fashionmnist-lenet-300-100-s79")
    params = [(m, "weight") for m in pruned.modules() if isinstance(m, nn.Linear)]
    tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=0.9)
    assert "fc1.weight" not in dict(pruned.state_dict()) and any(k.endswith("weight_orig") for k in pruned.state_dict())
    t = Ticket.from_model(pruned, None, name="from-torch-prune", arch="lenet_300_100")  # its own masks
    assert t.sparsity == pytest.approx(0.9, abs=1e-3)
    state = t.state_dict("rewind")
    for name, m in t.masks.items():
        assert torch.equal(state[name][~m], torch.zeros_like(state[name][~m]))
    again = ticketzoo.prune(pruned, 0.5)  # ticketzoo's pruning of a torch-pruned model: plain names
    assert set(again) == set(t.masks)
    wrapped = nn.DataParallel(plain)
    assert unwrap(wrapped) is plain and set(plain_state_dict(wrapped)) == set(plain.state_dict())
    prefixed = {f"_orig_mod.{k}": v for k, v in plain.state_dict().items()}
    assert set(plain_state_dict(prefixed)) == set(plain.state_dict())
    ticket = Ticket.from_model(wrapped, ticketzoo.prune(wrapped, 0.8), name="from-dp", arch="lenet_300_100")
    assert ticket.sparsity == pytest.approx(0.8, abs=1e-3)
    with pytest.raises(ConfigError, match="torch.nn.utils.prune"):
        Ticket.from_model(plain, None, name="no-masks", arch="lenet_300_100")

"""Issue 19, what a new user tripped over: whole names in `list`, Hub-ready cards of every
kind (validated with huggingface_hub's own parser), honest answers to bad input, no silent
side effects, and the conventions of timm / huggingface_hub / click."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

import ticketzoo
from conftest import tiny_ticket
from ticketzoo.config.data import DataConfig
from ticketzoo.card import Lineage, RoundMetrics, SourceData
from ticketzoo.errors import ConfigError, TicketzooError
from ticketzoo.modelcard import render_readme
from ticketzoo.ticket import Ticket

CARDS = Path(__file__).resolve().parent.parent / "cards"
BUNDLED = "fashionmnist-lenet-300-100-s49"


def saved(tmp_path, name="tiny-conv2-s80", **kw) -> Path:
    path = tmp_path / f"{name}.safetensors"
    tiny_ticket(name=name, **kw).save(path)
    return path


def hub_card(text: str) -> dict:
    """The card as the Hub reads it; the model-index must convert to EvalResults."""
    data = ModelCard(text).data.to_dict()
    if "model-index" in data:
        name, results = model_index_to_eval_results(data["model-index"])
        assert name and results and all(r.metric_type == "accuracy" for r in results)
    return data


def prose(text: str) -> str:
    """The README without the front matter and the hidden card JSON."""
    body = text.split("---", 2)[2]
    return body[: body.find("<!-- The card as stored")]


# --- 19.1 list: whole names ---------------------------------------------------------------


def test_list_shows_whole_names_revisions_and_paths_when_piped(cli, tmp_path):
    long = "a-ticket-name-long-enough-to-be-cut-by-an-eighty-column-table-s80"
    cli("push", saved(tmp_path, long))
    code, out, _ = cli("list")
    header, *rows = out.splitlines()
    assert code == 0 and header.split()[:2] == ["name", "revision"] and "path" in header.split()
    row = next(r for r in rows if r.startswith(long))
    entry = next(r for r in json.loads(cli("list", "--json")[1]) if r["name"] == long)
    assert entry["revision"] in row and entry["path"] in row and "…" not in out
    assert entry["location"] == entry["where"] == "local" and len(entry["sha256"]) == 64
    assert Path(entry["path"]).is_file()
    listed = next(x for x in ticketzoo.list_tickets() if x.name == long)
    assert listed.path == Path(entry["path"]) and listed.sha256 == entry["sha256"]


# --- 19.3 Hub-ready cards of every kind ---------------------------------------------------------


@pytest.mark.parametrize("folder", sorted(p.name for p in CARDS.glob("fashionmnist-lenet-*")))
def test_bundled_cards_are_hub_ready_and_report_the_mean_over_seeds(folder):
    text = (CARDS / folder / "README.md").read_text()
    data = hub_card(text)
    card = Ticket.load(CARDS / folder / "ticket.safetensors").card
    assert data["license"] == "apache-2.0" and data["datasets"] == ["fashion_mnist"]
    metric = data["model-index"][0]["results"][0]["metrics"][0]
    row = next(r for r in card.extra["source_results"] if r["round"] == card.extra["round"])
    assert metric["value"] == round(row["ticket"]["mean"], 6)  # the mean over seeds, not seed 0's
    assert "3 seeds" in metric["name"] and "10000 test images" in metric["name"]
    assert f"Test accuracy {100 * row['ticket']['mean']:.2f}% ± {100 * row['ticket']['std']:.2f}" in text
    body = prose(text)
    assert "/usr/share" not in body and not re.search(r"\s/[a-z]+/", body)  # no local paths
    assert "```python" in body and "ticketzoo.load(" in body and "## Citation" in body and "@inproceedings" in body


def test_found_ticket_card_names_its_test_set(tmp_path):
    t = tiny_ticket(name="mnist-conv2-s80")
    card = t.card.replace(source=SourceData("mnist", t.card.source.classes),
                          metrics=(RoundMetrics(0, 0.0, 0.9, 0.91), RoundMetrics(1, 0.8, 0.88, 0.875)))
    data = hub_card(render_readme(card, sha256="a" * 64, size=1))
    result = data["model-index"][0]["results"][0]
    assert result["dataset"]["type"] == "mnist" and result["metrics"][0]["value"] == 0.875
    assert "1 seed" in result["metrics"][0]["name"] and "10000 test images" in result["metrics"][0]["name"]
    assert data["license"] == "apache-2.0" and data["datasets"] == ["mnist"] and "base_model" not in data


def test_card_of_a_found_ticket_is_hub_ready(tmp_path):
    from conftest import colour_folder
    from ticketzoo.find import FindRecipe, find_tickets, resolve_data
    from ticketzoo.train import TrainConfig

    folder = colour_folder(tmp_path / "tiny-colours")
    spec = resolve_data(str(folder))
    recipe = FindRecipe(arch="conv2", source=spec.source, data_kind=spec.kind, rounds=1, rewind="1ep",
                        data=DataConfig(input_size=16, channels=3), arch_kwargs={"width": 0.125}, train=TrainConfig(max_epochs=2, lr=0.03, batch_size=8, milestones=(),
                                                                        patience=None, device="cpu"))
    result = find_tickets(recipe, str(folder), run_dir=tmp_path / "runs")
    ticket = Ticket.load(result.tickets[-1])
    text = (Path(result.tickets[-1]).parent / "README.md").read_text()
    data = hub_card(text)
    metric = data["model-index"][0]["results"][0]["metrics"][0]
    n = ticket.card.extra["test_images"]
    assert n == 3 and f"{n} test images" in metric["name"] and metric["value"] == round(
        ticket.card.metrics[-1].test_accuracy, 6)
    assert data["model-index"][0]["results"][0]["dataset"]["type"] == "imagefolder"
    assert data["license"] == "apache-2.0" and str(tmp_path) not in prose(text)


def test_card_of_an_api_made_ticket_claims_no_recipe(tmp_path):
    from ticketzoo.models import build_model

    model = build_model("conv2", num_classes=4, input_size=16, width=0.125)
    ticket = ticketzoo.Ticket.from_model(model, ticketzoo.prune(model, 0.9), name="mine", arch="conv2",
                                         arch_kwargs={"width": 0.125}, input_size=16)
    assert "rate 0.2" not in ticket.card.recipe.summary() and "not recorded" in ticket.card.recipe.summary()
    (tmp_path / "zoo").mkdir()  # folder registries must exist (issue 22)
    pushed = ticketzoo.push(ticket, str(tmp_path / "zoo"))
    text = next((tmp_path / "zoo" / "tickets" / "mine").glob("*/README.md")).read_text()
    data = hub_card(text)
    assert pushed.name == "mine" and data["license"] == "apache-2.0"
    assert "round(s)" not in text and "rewind 0it" not in text and "model-index" not in data


def test_fine_tune_card_has_base_model_relation_datasets_and_n(tmp_path):
    t = tiny_ticket(name="base-ft-digits")
    card = t.card.replace(
        source=SourceData("digits", t.card.source.classes, "a folder at /home/me/digits"),
        lineage=Lineage(parent="hf://org/base@v1", parent_sha256="0" * 64, relation="finetune"),
        metrics=(RoundMetrics(0, 0.8, val_accuracy=0.9, test_accuracy=0.875),),
        extra={"parent_source": "cifar10", "test_images": 24,
               "distributed": {"world_size": 2, "per_rank_batch": 32, "global_batch": 64, "backend": "gloo"}})
    text = render_readme(card, sha256="a" * 64, size=10)
    data = hub_card(text)
    assert data["base_model"] == "org/base" and data["base_model_relation"] == "finetune"
    assert data["datasets"] == ["cifar10"]  # the folder has no Hub id; the parent's data does
    result = data["model-index"][0]["results"][0]
    assert result["dataset"]["type"] == "imagefolder" and result["metrics"][0]["value"] == 0.875
    assert "24 test images" in result["metrics"][0]["name"] and "on 24 test images" in text
    assert "/home/me" not in prose(text) and "Sabatelli" in text
    assert "batch 32 per rank, 64 in all" in text


def test_push_license_to_a_folder_registry(cli, tmp_path):
    (tmp_path / "zoo").mkdir()
    path = saved(tmp_path, "lic")
    code, out, _ = cli("push", path, "--registry", tmp_path / "zoo", "--license", "mit", "--json")
    assert code == 0, out
    readme = next((tmp_path / "zoo" / "tickets" / "lic").glob("*/README.md")).read_text()
    assert hub_card(readme)["license"] == "mit" and "| license | mit |" in readme
    assert ticketzoo.load("file://%s/lic" % (tmp_path / "zoo")).card.license == "mit"
    code, _, err = cli("push", path, "--registry", tmp_path / "zoo", "--license", "Not A License!")
    assert code == 2 and "--license" in err


# --- 19.4 bad input -------------------------------------------------------------------------------


def test_verify_json_reports_a_damaged_ticket_on_stdout(cli, tmp_path):
    cli("push", saved(tmp_path, "dmg"))
    file = ticketzoo.load("dmg").path
    data = bytearray(Path(file).read_bytes())
    data[-3] ^= 0xFF
    os.chmod(file, 0o644)
    Path(file).write_bytes(bytes(data))
    code, out, err = cli("verify", "dmg", "--json")
    result = json.loads(out)
    assert code == 1 and result["ok"] is False and result["kind"] == "IntegrityError" and "sha256" in err


def test_milestones_error_names_the_flag(cli, tmp_path):
    code, _, err = cli("finetune", saved(tmp_path), "--data", tmp_path, "--milestones", "a,b")
    assert code == 2 and "--milestones" in err


def test_prune_of_no_model_is_a_type_error():
    with pytest.raises(TypeError, match="torch.nn.Module") as e:
        ticketzoo.prune(None, 0.9)
    assert isinstance(e.value, TicketzooError) and e.value.field == "model"


# --- 19.5 side effects and consistency ---------------------------------------------------------------


def test_verify_does_not_pull_without_asking(cli):
    code, out, err = cli("verify", BUNDLED)
    assert code == 1 and "not in the local registry" in err and "--pull" in err
    assert cli("cache", "--json")[1] and json.loads(cli("cache", "--json")[1])["revisions"] == []
    code, out, _ = cli("verify", BUNDLED, "--pull", "--json")
    assert code == 0 and json.loads(out)["ok"] is True and json.loads(out)["location"]


def test_push_name_refuses_to_move_a_name_without_force(cli, tmp_path):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    assert cli("push", saved(tmp_path, "one", seed=1), "--registry", zoo, "--name", "shared")[0] == 0
    assert cli("push", saved(tmp_path, "one", seed=1), "--registry", zoo, "--name", "shared")[0] == 0  # same model
    code, _, err = cli("push", saved(tmp_path, "two", seed=2), "--registry", zoo, "--name", "shared")
    assert code == 2 and "already names another model" in err and "--force" in err
    code, out, _ = cli("push", saved(tmp_path, "two", seed=2), "--registry", zoo, "--name", "shared", "--force",
                       "--json")
    assert code == 0 and json.loads(out)["url"] is None


def test_export_writes_the_format_its_name_says(cli, tmp_path):
    cli("push", saved(tmp_path, "exp"))
    code, out, err = cli("export", "exp", "--out", tmp_path / "dense.pt", "--json")  # trained by default
    result = json.loads(out)
    state = torch.load(tmp_path / "dense.pt", weights_only=True)
    assert code == 0 and result["format"] == "torch" and result["tensors"] == len(state) and err == ""
    assert result["weights"] == "trained"
    assert torch.equal(state["fc.weight"], ticketzoo.load("exp").state_dict("trained")["fc.weight"])
    code, out, _ = cli("export", "exp", "--out", tmp_path / "k.pt", "--weights", "rewind", "--json")
    assert code == 0 and json.loads(out)["weights"] == "rewind"
    assert torch.equal(torch.load(tmp_path / "k.pt", weights_only=True)["fc.weight"],
                       ticketzoo.load("exp").state_dict("rewind")["fc.weight"])
    only = saved(tmp_path, "theta-k", trained=False)  # θk alone: exported, with a note
    code, out, err = cli("export", only, "--out", tmp_path / "only.safetensors")
    assert code == 0 and "rewind weights" in out
    assert err == "note: theta-k has no trained weights; exporting its rewind weights (θk)"
    code, _, err = cli("export", only, "--out", tmp_path / "none.pt", "--weights", "trained")
    assert code == 2 and "has no 'trained' weights (it has: rewind)" in err and not (tmp_path / "none.pt").exists()
    code, _, err = cli("export", "exp", "--out", tmp_path / "dense.npz")
    assert code == 2 and ".safetensors" in err and not (tmp_path / "dense.npz").exists()


def test_info_and_verify_take_a_registry_and_name_the_file(cli, tmp_path):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    pushed = json.loads(cli("push", saved(tmp_path, "far"), "--registry", zoo, "--json")[1])
    code, out, _ = cli("info", "far", "--registry", zoo, "--json")
    info = json.loads(out)
    assert code == 0 and info["sha256"] == pushed["sha256"] and info["revision"] == pushed["revision"]
    assert Path(info["path"]).is_file() and info["location"]
    code, out, _ = cli("verify", "far", "--registry", zoo, "--pull", "--json")
    assert code == 0 and json.loads(out)["sha256"] == pushed["sha256"]
    info = json.loads(cli("info", BUNDLED, "--json")[1])  # a catalog ticket not pulled yet
    assert info["location"] == "catalog" and len(info["sha256"]) == 64 and info["revision"]


def test_control_and_condition_spellings_and_out_alias(cli, tmp_path):
    code, _, err = cli("find", "--arch", "conv2", "--data", "cifar10", "--control", "random_prune", "--rounds", 0)
    assert code == 2 and "--rounds" in err  # the spelling passed; the next check spoke
    assert "--run-dir, --out" in cli("find", "--help")[1]
    from ticketzoo.cli import compare as compare_cli

    assert "random-prune" in compare_cli.command.params[-1].help or any(
        "random-prune" in (p.help or "") for p in compare_cli.command.params)


def test_reprs_are_short():
    t = tiny_ticket()
    assert repr(t).startswith("Ticket(name='tiny-conv2-s80', arch='conv2'") and "tensor(" not in repr(t)
    assert re.fullmatch(r"Mask\(\d+ tensors, [\d,]+/[\d,]+ kept, sparsity [\d.]+%\)", repr(t.masks))


def test_package_is_typed_and_every_command_has_an_example(cli):
    assert (Path(ticketzoo.__file__).parent / "py.typed").is_file()
    from ticketzoo.cli.main import LazyGroup, cli as group

    for name in LazyGroup._commands:
        code, out, _ = cli(name, "--help")
        assert code == 0 and "Examples:" in out and "ticketzoo " + name in out, name
    assert "cache" in group.list_commands(None)


# --- 19.6 conventions ----------------------------------------------------------------------------


def test_create_model_like_timm(tmp_path, caplog):
    path = saved(tmp_path, "cm")
    model = ticketzoo.create_model(str(path), num_classes=5, weights="trained")
    assert isinstance(model, torch.nn.Module) and model(torch.zeros(1, 3, 16, 16)).shape == (1, 5)
    ticket = Ticket.load(path)
    ready = ticketzoo.create_model(str(path))  # a ready model: the trained weights, as bench and predict
    assert torch.equal(ready.state_dict()["fc.weight"], ticket.state_dict("trained")["fc.weight"])
    rewind = ticketzoo.create_model(str(path), weights="rewind")  # asked for, θk
    assert torch.equal(rewind.state_dict()["fc.weight"], ticket.state_dict("rewind")["fc.weight"])
    assert "no trained weights" not in caplog.text
    with pytest.raises(ConfigError, match="no weight set 'final'"):
        ticketzoo.create_model(str(path), weights="final")
    only = saved(tmp_path, "theta-k", trained=False)  # θk alone: that, and a warning saying so
    fallback = ticketzoo.create_model(str(only))
    assert torch.equal(fallback.state_dict()["fc.weight"], Ticket.load(only).state_dict("rewind")["fc.weight"])
    assert "ticket 'theta-k' has no trained weights: the model holds its rewind weights" in caplog.text
    with pytest.raises(ConfigError, match="no weight set 'trained'"):
        ticketzoo.create_model(str(only), weights="trained")


def _completed(words: str) -> list[str]:
    env = {**os.environ, "_TICKETZOO_COMPLETE": "bash_complete", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split(" ")) - 1)}  # a trailing space: a new, empty word
    p = subprocess.run([sys.executable, "-m", "ticketzoo"], capture_output=True, text=True, env=env)
    assert p.returncode == 0 and not p.stderr, p.stderr
    return [line.split(",", 1)[1] for line in p.stdout.splitlines() if "," in line]


def test_shell_completion_of_ticket_names(cli, tmp_path):
    names = _completed("ticketzoo info fashionmnist-lenet")
    assert BUNDLED in names and all(n.startswith("fashionmnist-lenet") for n in names), names
    # rm offers what it can remove: the local registry's tickets, never the catalog's
    assert _completed("ticketzoo rm fashionmnist-lenet") == []
    cli("push", saved(tmp_path, "mine-s50"))
    cli("push", saved(tmp_path, "mine-s90", seed=3))
    assert _completed("ticketzoo rm ") == ["mine-s50", "mine-s90"]
    # compare also takes a family: NAME runs every NAME-sNN
    swept = _completed("ticketzoo compare ")
    assert {"mine", "mine-s50", "mine-s90", "fashionmnist-lenet-300-100", BUNDLED} <= set(swept), swept
    assert "mine" not in _completed("ticketzoo info mi")


def test_cache_view_and_rm_say_sizes(cli, tmp_path):
    cli("push", saved(tmp_path, "c1"))
    cli("push", saved(tmp_path, "c1", seed=3))
    view = json.loads(cli("cache", "--json")[1])
    rows = [r for r in view["revisions"] if r["name"] == "c1"]
    assert len(rows) == 2 and sum(r["head"] for r in rows) == 1 and view["tickets"] == 1
    on_disk = sum(p.stat().st_size for r in rows for p in Path(r["path"]).iterdir())
    assert view["total_size"] == on_disk and all(r["last_used"] for r in rows)
    code, out, _ = cli("cache")
    assert code == 0 and "2 revision(s)" in out and rows[0]["path"] in out
    code, out, _ = cli("rm", "c1", "--json")
    assert json.loads(out)["freed"] == on_disk


def test_ticketzoo_offline_keeps_every_remote_off_the_network(cli, monkeypatch):
    monkeypatch.setenv("TICKETZOO_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: a try would say "cannot reach"
    code, _, err = cli("pull", "hf://org/none")
    assert code == 1 and "not in the Hugging Face cache" in err
    from ticketzoo.data.datasets import load_named_dataset
    from ticketzoo.errors import DataError

    with pytest.raises(DataError, match="TICKETZOO_OFFLINE is set"):
        load_named_dataset("mnist", Path(os.environ["TICKETZOO_HOME"]) / "no-data", download=True)


# --- 19.7 a fine-tune records its process layout ------------------------------------------------


def test_finetune_records_process_layout_and_test_images(tmp_path):
    from synthetic import make_image_folder
    from ticketzoo.finetune import FinetuneConfig, finetune
    from ticketzoo.train import TrainConfig

    data = make_image_folder(tmp_path / "stripes", kind="textures", classes=2, per_class=40, size=16)
    train = TrainConfig(max_epochs=8, lr=0.01, optimizer="adam", batch_size=8, device="cpu", milestones=(),
                        patience=None)
    result = finetune(tiny_ticket(sparsity=0.5, name="tiny-base"), data,
                      FinetuneConfig(train=train, data=DataConfig(split=(0.5, 0.1, 0.4))), out_dir=tmp_path / "out",
                      base_ref="tiny-base@abc", base_sha256="ab" * 32)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["processes"] == {"world_size": 1, "per_rank_batch": 8, "global_batch": 8, "backend": "none"}
    card = Ticket.load(result.path).card
    assert card.extra["test_images"] == 32 and card.extra["parent_source"] == "synthetic"
    data = hub_card((tmp_path / "out" / "README.md").read_text())
    assert "32 test images" in data["model-index"][0]["results"][0]["metrics"][0]["name"]
    assert data["license"] == "apache-2.0" and data["ticketzoo"]["parent"] == "tiny-base@abc"

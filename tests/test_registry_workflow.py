"""Backends table, list --registry, rm, gc, TICKETZOO_REGISTRY, push without a source,
hub card fields (the hf:// listing is in test_hub.py, against the test hub server)."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest

from conftest import tiny_ticket
from ticketzoo.errors import ConfigError, InvalidRefError, TicketNotFoundError
from ticketzoo.registry import api, base
from ticketzoo.registry.local import LocalRegistry

REGISTRY = Path(api.__file__).parent


@pytest.fixture(autouse=True)
def no_default_remote(monkeypatch):
    monkeypatch.delenv("TICKETZOO_REGISTRY", raising=False)


def saved(tmp_path: Path, name: str, seed: int = 0) -> Path:
    path = tmp_path / f"{name}-{seed}.safetensors"
    tiny_ticket(name=name, seed=seed).save(path)
    return path


# --- shape: one table, no circle, no kind branching ------------------------------------------


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_no_backend_imports_the_dispatcher_and_no_circle():
    graph = {p.stem: {m.rsplit(".", 1)[-1] for m in _imports(p) if m.startswith("ticketzoo.registry.")}
             for p in REGISTRY.glob("*.py")}
    for module, deps in graph.items():
        if module != "api":
            assert "api" not in deps, module

    def reach(start, seen):
        for d in graph.get(start, ()):
            if d not in seen:
                seen.add(d)
                reach(d, seen)
        return seen

    circles = [m for m in graph if m in reach(m, set())]
    assert circles == [], circles


def test_the_cli_runs_registry_verbs_through_the_public_api():
    """cli/ imports ticketzoo.api, never the dispatcher: one front door, one set of types."""
    cli = REGISTRY.parent / "cli"

    def names(path):  # "from ticketzoo.registry import api" names ticketzoo.registry.api too
        tree = ast.parse(path.read_text())
        return _imports(path) | {f"{n.module}.{a.name}" for n in ast.walk(tree)
                                 if isinstance(n, ast.ImportFrom) and n.module for a in n.names}

    through_dispatcher = sorted(p.name for p in cli.glob("*.py") if "ticketzoo.registry.api" in names(p))
    assert through_dispatcher == []
    assert any("ticketzoo.api" in _imports(p) for p in cli.glob("*.py"))


def test_dispatcher_never_branches_on_a_kind():
    tree = ast.parse((REGISTRY / "api.py").read_text())
    compares = [n for n in ast.walk(tree) if isinstance(n, ast.Compare)
                and any(isinstance(x, ast.Attribute) and x.attr == "kind" for x in [n.left, *n.comparators])]
    assert compares == []


def test_backend_table(tmp_path):
    for kind in ("name", "path", "local", "file", "hf"):
        assert isinstance(base.backend_for(kind), base.Backend)
    with pytest.raises(InvalidRefError, match="no registry backend for 's3'; known: file, hf, local, name, path"):
        base.backend_for("s3")
    with pytest.raises(ValueError, match="already registered"):
        base.register("file", base.Backend)

    class Refusing(base.Backend):
        def fetch(self, ref):
            raise TicketNotFoundError(f"nothing at {ref.text}")

    base.register("test-kind", Refusing)
    try:
        assert isinstance(base.backend_for("test-kind"), Refusing)
    finally:
        base._KNOWN.pop("test-kind"), base._LOADED.pop("test-kind")


# --- list --registry -------------------------------------------------------------------------


def test_list_registry_file_url_and_plain_folder(cli, tmp_path, monkeypatch):
    zoo = tmp_path / "zoo"
    zoo.mkdir()  # a registry setting must name an existing folder
    api.push(str(saved(tmp_path, "alpha")), str(zoo))  # a plain folder is a registry
    api.push(str(saved(tmp_path, "beta", 1)), zoo.as_uri())
    for registry in (zoo.as_uri(), str(zoo)):
        code, out, err = cli("list", "--registry", registry, "--json")
        assert code == 0, err
        rows = json.loads(out)
        assert [(r["name"], r["where"], r["problem"]) for r in rows] == [
            ("alpha", zoo.as_uri(), None), ("beta", zoo.as_uri(), None)]
    monkeypatch.chdir(tmp_path)
    assert [r["name"] for r in json.loads(cli("list", "--registry", "zoo", "--json")[1])] == ["alpha", "beta"]
    assert LocalRegistry().names() == []  # the local registry was never touched
    code, out, err = cli("list", "--registry", "s3://bucket")
    assert code == 2 and "unsupported scheme in registry URL" in err  # a flag value typed wrong


# --- rm ----------------------------------------------------------------------------------------


def test_rm_a_ticket_and_a_revision(cli, tmp_path):
    reg = LocalRegistry()
    old = reg.publish(tiny_ticket(name="gone", seed=0))
    new = reg.publish(tiny_ticket(name="gone", seed=1))
    reg.publish(tiny_ticket(name="stays", seed=2))
    code, out, err = cli("rm", f"gone@{new.revision}")
    assert code == 1 and "is the current revision (HEAD)" in err and "ticketzoo rm gone" in err
    code, out, _ = cli("rm", f"gone@{old.revision}", "--json")
    removed = json.loads(out)
    assert code == 0 and removed["name"] == "gone" and removed["removed"] == [old.revision] and removed["freed"] > 0
    assert reg.revisions("gone") == [new.revision] and reg.resolve("gone").revision == new.revision
    code, out, _ = cli("rm", "gone")
    assert code == 0 and f"removed gone (1 revision(s): {new.revision}; freed " in out
    assert reg.names() == ["stays"]
    assert sorted(p.name for p in reg.tickets.iterdir()) == ["stays"]  # no hidden leftovers
    code, _, err = cli("rm", "gone")
    assert code == 1 and "no ticket 'gone'" in err
    assert cli("rm", "./some/file.safetensors")[0] == 2  # not a name: a usage error


def test_rm_of_the_only_revision_removes_the_ticket(tmp_path):
    reg = LocalRegistry()
    only = reg.publish(tiny_ticket(name="solo"))
    assert api.remove_ticket(f"solo@{only.revision}") == ("solo", [only.revision])
    assert reg.names() == [] and not (reg.tickets / "solo").exists()
    # the same with a damaged HEAD: nothing is left behind
    only = reg.publish(tiny_ticket(name="solo"))
    (reg.tickets / "solo" / "HEAD").write_text("garbage")
    assert api.remove_ticket(f"solo@{only.revision}") == ("solo", [only.revision])
    assert not (reg.tickets / "solo").exists()


def test_interrupted_rm_leaves_no_partial_ticket(tmp_path, monkeypatch):
    """Killed after the atomic rename, before the delete: the ticket is gone for every
    reader, and what is left is hidden and swept by the next writer."""
    from ticketzoo.registry import cleanup

    reg = LocalRegistry()
    reg.publish(tiny_ticket(name="half"))
    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(cleanup, "delete", lambda p: (_ for _ in ()).throw(KeyboardInterrupt()))
        api.remove_ticket("half")
    assert reg.names() == [] and not reg.has("half")
    hidden = [p.name for p in reg.tickets.iterdir()]
    assert len(hidden) == 1 and hidden[0].startswith(".rm-half-")
    reg.publish(tiny_ticket(name="next"))  # a writer sweeps it
    assert sorted(p.name for p in reg.tickets.iterdir()) == ["next"]


# --- gc ----------------------------------------------------------------------------------------


def _damage(entry) -> None:
    data = bytearray(entry.file.read_bytes())
    data[len(data) // 2] ^= 1
    entry.file.chmod(0o644)
    entry.file.write_bytes(bytes(data))


def test_gc_removes_leftovers_unfinished_and_damaged_and_keeps_damaged_heads(cli, tmp_path):
    reg = LocalRegistry()
    old = reg.publish(tiny_ticket(name="mixed", seed=0))
    mid = reg.publish(tiny_ticket(name="mixed", seed=1))
    head = reg.publish(tiny_ticket(name="mixed", seed=2))
    broken = reg.publish(tiny_ticket(name="broken", seed=3))
    _damage(mid)  # a damaged old revision: removed
    _damage(broken)  # a damaged HEAD: reported, kept
    (reg.tickets / "mixed" / ".tmp-killed").mkdir()
    (reg.tickets / "mixed" / ".tmp-killed" / "ticket.safetensors").write_bytes(b"partial")
    unfinished = reg.tickets / "never"  # a first push killed before HEAD
    shutil.copytree(old.folder, unfinished / old.revision)
    (reg.root / "notes.txt").write_text("the user's own file")

    code, out, err = cli("gc", "--dry-run", "--json")
    assert code == 0, err
    report = json.loads(out)
    removed = {Path(i["path"]).name: i["reason"] for i in report["removed"]}
    assert set(removed) == {".tmp-killed", "never", mid.revision}, removed
    assert removed["never"] == "unfinished push (no HEAD)" and removed[mid.revision].startswith("damaged revision")
    assert report["dry_run"] and report["freed"] > 0
    assert [Path(i["path"]).name for i in report["kept"]] == [broken.revision]
    assert (reg.tickets / "mixed" / ".tmp-killed").exists() and unfinished.exists()  # dry run: nothing removed

    code, out, err = cli("gc")
    assert code == 0 and "removed 3 item(s)" in out and f"damaged HEAD revision" in err
    assert sorted(reg.revisions("mixed")) == sorted([old.revision, head.revision])
    assert not unfinished.exists() and (reg.root / "notes.txt").exists()
    assert reg.names() == ["broken", "mixed"]
    assert sorted(p.name for p in (reg.tickets / "mixed").iterdir()) == sorted(["HEAD", old.revision, head.revision])


def test_gc_old_revisions_only_when_asked_and_spares_the_last_pulled(cli, tmp_path):
    reg = LocalRegistry()
    a = reg.publish(tiny_ticket(name="many", seed=0))
    b = reg.publish(tiny_ticket(name="many", seed=1))
    c = reg.publish(tiny_ticket(name="many", seed=2))
    api.pull(f"many@{a.revision}")  # the last pulled revision is kept
    assert json.loads(cli("gc", "--json")[1])["removed"] == []
    code, out, _ = cli("gc", "--old-revisions")
    assert code == 0 and f"{b.revision} (old revision (not HEAD)" in out
    assert sorted(reg.revisions("many")) == sorted([a.revision, c.revision])
    assert api.last_pulled().revision == a.revision


def test_interrupted_gc_leaves_every_ticket_whole(tmp_path, monkeypatch):
    from ticketzoo.registry import cleanup

    reg = LocalRegistry()
    old = reg.publish(tiny_ticket(name="kept-whole", seed=0))
    head = reg.publish(tiny_ticket(name="kept-whole", seed=1))
    _damage(old)
    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(cleanup, "delete", lambda p: (_ for _ in ()).throw(KeyboardInterrupt()))
        api.collect_garbage()
    assert reg.revisions("kept-whole") == [head.revision] and reg.pull("kept-whole").sha256 == head.sha256
    assert [i.reason for i in api.collect_garbage().removed] == ["leftover of an interrupted write"]
    assert sorted(p.name for p in (reg.tickets / "kept-whole").iterdir()) == sorted(["HEAD", head.revision])


# --- TICKETZOO_REGISTRY and push without a source ----------------------------------------------


def test_default_remote(cli, tmp_path, monkeypatch):
    remote = tmp_path / "team-zoo"
    remote.mkdir()
    monkeypatch.setenv("TICKETZOO_REGISTRY", str(remote))
    code, out, err = cli("push", saved(tmp_path, "shared"))
    assert code == 0 and f"to {remote.as_uri()}" in out, err
    assert LocalRegistry().names() == [] and LocalRegistry(remote).names() == ["shared"]
    code, out, err = cli("pull", "shared")  # not local, not in the catalog: the default remote
    assert code == 0, err
    assert LocalRegistry().names() == ["shared"]
    code, _, err = cli("pull", "missing")
    assert code == 1 and f"or TICKETZOO_REGISTRY ({remote.as_uri()})" in err
    monkeypatch.setenv("TICKETZOO_REGISTRY", "s3://nope")
    code, _, err = cli("push", saved(tmp_path, "other"))
    assert code == 1 and err.startswith("error: TICKETZOO_REGISTRY: unsupported scheme")


def test_push_without_a_source_takes_the_last_fine_tuned_or_pulled(cli, tmp_path):
    zoo = tmp_path / "zoo"
    zoo.mkdir()  # a registry setting must name an existing folder
    code, _, err = cli("push", "--registry", zoo)
    assert code == 1 and "none fine-tuned or pulled yet" in err
    LocalRegistry().publish(tiny_ticket(name="pulled-one", seed=0))
    api.pull("pulled-one")
    code, out, err = cli("push", "--registry", zoo)
    assert code == 0 and "pushing the ticket pulled last: pulled-one" in err
    tuned = saved(tmp_path, "tuned-one", 1)
    api.remember_finetuned(tuned)
    code, out, err = cli("push", "--registry", zoo, "--json")
    assert code == 0 and f"pushing the ticket fine-tuned last: tuned-one ({tuned})" in err
    assert json.loads(out)["name"] == "tuned-one"
    assert LocalRegistry(zoo).names() == ["pulled-one", "tuned-one"]
    api.pull("pulled-one")  # a later pull wins again
    assert api.last_ticket().what == "pulled"
    tuned.unlink()
    assert api.last_finetuned() is None


def test_hub_options_are_refused_by_folder_registries(cli, tmp_path):
    path = saved(tmp_path, "opts")
    (tmp_path / "zoo").mkdir()
    with pytest.raises(ConfigError, match="tag applies only to hf:// registries") as e:
        api.push(str(path), str(tmp_path / "zoo"), tag="v1")
    assert e.value.field == "tag"
    with pytest.raises(TypeError, match="unexpected option"):
        api.push(str(path), str(tmp_path / "zoo"), colour="red")
    assert api.push(str(path), str(tmp_path / "zoo"), private=False, message=None).name == "opts"
    code, _, err = cli("push", path, "--tag", "v1")  # a flag that does not apply: a usage error
    assert code == 2 and "--tag applies only to hf:// registries, not local" in err


def test_registry_write_errors_leave_nothing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="is not a folder") as e:  # a setting naming no folder
        api.push(str(saved(tmp_path, "nowhere")), str(blocker))
    assert e.value.field == "registry"


# --- the Hub card --------------------------------------------------------------------------------


def test_hub_card_fields_of_a_fine_tune():
    from huggingface_hub import ModelCard

    from ticketzoo.card import Lineage, RoundMetrics
    from ticketzoo.modelcard import parse_readme, render_readme

    t = tiny_ticket(name="base-ft-digits")
    card = t.card.__class__(**{**t.card.__dict__,
                               "lineage": Lineage(parent="hf://org/base@v1", parent_sha256="0" * 64,
                                                  relation="finetune"),
                               "metrics": (RoundMetrics(0, 0.8, val_accuracy=0.9, test_accuracy=0.875),)})
    text = render_readme(card, sha256="a" * 64, size=10, front={"license": "mit"})
    data = ModelCard(text).data.to_dict()
    assert data["license"] == "mit" and data["base_model"] == "org/base"
    assert data["library_name"] == "ticketzoo" and data["model-index"][0]["name"] == "base-ft-digits"
    result = data["model-index"][0]["results"][0]
    assert result["metrics"][0]["type"] == "accuracy" and result["metrics"][0]["value"] == 0.875
    assert result["dataset"]["split"] == "test"
    assert parse_readme(text)[0] == card  # the card itself round-trips
    local_parent = card.__class__(**{**card.__dict__, "lineage": Lineage(parent="base@abcd1234", relation="finetune")})
    local = ModelCard(render_readme(local_parent, sha256="a" * 64, size=1)).data.to_dict()
    assert "base_model" not in local and local["ticketzoo"]["parent"] == "base@abcd1234"  # no Hub id to name
    found = card.__class__(**{**card.__dict__, "lineage": Lineage(parent="x", relation="imp-round")})
    fm = ModelCard(render_readme(found, sha256="a" * 64, size=1)).data.to_dict()
    assert "base_model" not in fm and fm["license"] == "apache-2.0"  # every card states one (issue 19)


def test_hub_card_names_a_known_dataset():
    from huggingface_hub import ModelCard

    from ticketzoo.card import SourceData
    from ticketzoo.modelcard import render_readme

    t = tiny_ticket(name="fm")
    card = t.card.__class__(**{**t.card.__dict__, "source": SourceData("fashionmnist", t.card.source.classes)})
    assert ModelCard(render_readme(card, sha256="a" * 64, size=1)).data.to_dict()["datasets"] == ["fashion_mnist"]


def test_open_base_reads_a_ref_a_file_or_the_last_pulled(tmp_path):
    from ticketzoo.fileio import sha256_file

    with pytest.raises(TicketNotFoundError, match="none pulled yet"):
        api.open_base(None)
    stored = LocalRegistry().publish(tiny_ticket(name="basis"))
    api.pull("basis")
    got = api.open_base(None)
    assert (got.ref, got.sha256, got.last_pulled, got.ticket.name) == (
        f"basis@{stored.revision}", stored.sha256, True, "basis")
    assert api.open_base("basis")[1:] == (f"basis@{stored.revision}", stored.sha256, False)
    path = saved(tmp_path, "loose")
    assert api.open_base(str(path))[1:] == ("loose", sha256_file(path), False)


def test_list_filters_apply_to_a_registry(cli, tmp_path):
    zoo = tmp_path / "zoo"
    zoo.mkdir()  # a registry setting must name an existing folder
    for name, sparsity in (("thin", 0.5), ("sparse", 0.9)):
        path = tmp_path / f"{name}.safetensors"
        tiny_ticket(name=name, sparsity=sparsity).save(path)
        api.push(str(path), str(zoo))
    rows = json.loads(cli("list", "--registry", zoo, "--min-sparsity", "0.8", "--json")[1])
    assert [r["name"] for r in rows] == ["sparse"]
    rows = api.filter_entries(api.scan_entries(registry=str(zoo))[0], max_sparsity=0.8, arch="conv2")
    assert [e.name for e, _, _ in rows] == ["thin"]
    assert api.filter_entries(api.scan_entries(registry=str(zoo))[0], source="cifar10") == []

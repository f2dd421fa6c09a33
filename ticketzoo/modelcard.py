"""The Hugging Face model card (``README.md``) of a ticket folder: render and parse.

The card travels twice: as JSON in the ticket's safetensors header and, embedded in an
HTML comment, in this README beside the file, whose front matter's ``ticketzoo`` block
also records the ticket file's sha256 and size. The README copy is what listings read
(``list --registry hf://...`` and the catalog download READMEs only), so it stays.
"""

from __future__ import annotations

import re
from typing import Any

from ticketzoo.card import DEFAULT_LICENSE, Card, family_caption, family_table, read_card, seed_table
from ticketzoo.errors import TicketFormatError

_HUB_DATASETS = {"cifar10", "cifar100", "mnist", "fashion_mnist", "svhn"}


def _superseded(name: str, sha256: str, newer: object) -> list[str]:
    """The README's first lines for an earlier revision kept in the catalog (``superseded_by``)."""
    if not isinstance(newer, str):
        return []
    return [f"> **A newer revision of this ticket exists**: `{name}@{newer}`, what `ticketzoo pull {name}` "
            f"takes. This earlier revision stays pullable as `{name}@{sha256[:12]}`.", ""]


def render_readme(
    card: Card, *, sha256: str, size: int, filename: str = "ticket.safetensors", extra_meta: dict | None = None,
    front: dict | None = None,
) -> str:
    """A Hub-ready model card: YAML front matter plus a human summary.

    The front matter's ``ticketzoo`` block records the ticket file's sha256 and size,
    which pulls check before a ticket is used. The Hub's own keys come from the card:
    ``license`` (``front``'s, else the card's, else :data:`DEFAULT_LICENSE`), ``datasets``
    (Hub dataset ids of the data the weights saw), ``base_model`` with
    ``base_model_relation: finetune`` (a fine-tune whose parent is a Hub repo), and
    ``model-index`` (test accuracy: the mean over seeds when the card has seeds, with the
    number of test images). The prose never shows a local path.
    """
    from huggingface_hub import ModelCardData

    front = dict(front or {})
    license_ = front.pop("license", None) or card.license or DEFAULT_LICENSE
    evaluation = evaluation_of(card)
    parent_repo = base_model(card)
    data = ModelCardData(
        library_name="ticketzoo",
        pipeline_tag="image-classification",
        license=license_,
        tags=["lottery-ticket", "sparse", "pruning", "ticketzoo", card.arch.name],
        datasets=hub_datasets(card) or None,
        base_model=parent_repo,
        base_model_relation="finetune" if parent_repo else None,
        model_name=card.name if evaluation else None,  # names the model-index entry
        eval_results=_eval_results(card, evaluation),
        ticketzoo={
            "name": card.name,
            "format": "ticketzoo-csr/1",
            "file": filename,
            "sha256": sha256,
            "size": size,
            "arch": card.arch.name,
            "source": card.source.dataset,
            "sparsity": round(card.sparsity, 6),
            "weight_sets": list(card.weight_sets),
            **({"parent": public_ref(card.lineage.parent)} if card.lineage.parent else {}),
            **({"evaluation": evaluation} if evaluation else {}),
            **(extra_meta or {}),
        },
        **front,
    )
    a = card.arch
    lines = [
        "---",
        data.to_yaml(),
        "---",
        "",
        f"# {card.name}",
        "",
        *_superseded(card.name, sha256, (extra_meta or {}).get("superseded_by")),
        public_text(card.description) or f"A sparse lottery ticket for `{a.name}` found on `{card.source.dataset}`.",
        "",
        "| field | value |",
        "|---|---|",
        f"| architecture | `{a.name}` ({a.in_channels}x{a.input_size}x{a.input_size}, {a.num_classes} classes) |",
        f"| source data | {card.source.dataset}"
        f"{(' — ' + public_text(card.source.description)) if card.source.description else ''} |",
        f"| sparsity | {card.sparsity:.2%} of prunable weights removed |",
        f"| recipe | {card.recipe.summary()} |",
        f"| weight sets | {', '.join(card.weight_sets)} |",
        f"| license | {license_} |",
        f"| file | `{filename}`, {size} bytes, sha256 `{sha256}` |",
    ]
    if card.lineage.control:
        lines.append(f"| control | **{card.lineage.control}** (a baseline, not a winning ticket) |")
    if card.lineage.parent:
        lines.append(f"| parent | `{public_ref(card.lineage.parent)}` (sha256 `{card.lineage.parent_sha256}`) |")
    layout = card.extra.get("distributed")
    if isinstance(layout, dict) and layout.get("world_size"):
        lines.append(f"| processes | {layout['world_size']} (torchrun, {layout.get('backend', '?')}): batch "
                     f"{layout.get('per_rank_batch', '?')} per rank, {layout.get('global_batch', '?')} in all |")
    if evaluation:
        lines += ["", "## Evaluation", "", _evaluation_sentence(evaluation) + " This is the value in the "
                  "card's `model-index`."]
    if card.metrics:
        lines += ["", "| round | sparsity | val acc | test acc |", "|---|---|---|---|"]
        for m in card.metrics:
            lines.append(f"| {m.round} | {m.sparsity:.4f} | {_pct(m.val_accuracy)} | {_pct(m.test_accuracy)} |")
    seeds = seed_table(card)
    if seeds is not None:
        header, rows = seeds
        lines += ["", f"Source test accuracy over seeds {', '.join(map(str, card.extra['seeds']))} "
                  "(mean ± std; differences with a Welch t-test; dense = round 0):", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    family = family_table(card)
    if family is not None:
        header, rows = family
        lines += ["", family_caption(card) + ":", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    weights = "trained" if "trained" in card.weight_sets else "rewind"
    lines += [
        "",
        "## Usage",
        "",
        "With ticketzoo (not on PyPI yet: `pip install .` in a checkout of its source), from the command line:",
        "",
        "```bash",
        f"ticketzoo info {card.name}",
        f"ticketzoo finetune {card.name} --data ./my_images",
        "```",
        "",
        "or from Python (a name, `hf://ORG/REPO`, `file:///DIR/NAME` or a path):",
        "",
        "```python",
        "import ticketzoo",
        "",
        f'ticket = ticketzoo.load("{card.name}")  # sha256-checked, then cached locally',
        f'model = ticket.to_model(weights="{weights}")  # a plain torch.nn.Module; pruned weights are 0',
        f'model = ticketzoo.create_model("{card.name}", num_classes=5)  # new head for 5 classes',
        "```",
        "",
        "## Citation",
        "",
        "Lottery tickets, and the iterative magnitude pruning that finds them:",
        "",
        "```bibtex",
        _FRANKLE,
        "```",
    ]
    if card.lineage.relation == "finetune":
        lines += ["", "Transferring tickets to new datasets by fine-tuning:", "", "```bibtex", _SABATELLI, "```"]
    lines += [
        "",
        "<!-- The card as stored in the ticket file's header, for `ticketzoo list` and `info` to read "
        "without downloading the ticket. -->",
        "<!-- ticketzoo-card",
        card.to_json(),
        "-->",
        "",
    ]
    return "\n".join(lines)


_FRANKLE = """@inproceedings{frankle2019lottery,
  title     = {The Lottery Ticket Hypothesis: Finding Sparse, Trainable Neural Networks},
  author    = {Frankle, Jonathan and Carbin, Michael},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2019},
  url       = {https://arxiv.org/abs/1803.03635}
}"""

_SABATELLI = """@article{sabatelli2020transferability,
  title   = {On the Transferability of Winning Tickets in Non-Natural Image Datasets},
  author  = {Sabatelli, Matthia and Kestemont, Mike and Geurts, Pierre},
  journal = {arXiv preprint arXiv:2005.05232},
  year    = {2020}
}"""

#: Test-set sizes of the datasets ticketzoo reads by name (their official test splits,
#: which ``find`` and ``finetune`` test on for named datasets).
_OFFICIAL_TEST_IMAGES = {"cifar10": 10000, "cifar100": 10000, "mnist": 10000, "fashion_mnist": 10000,
                         "svhn": 26032}

# An absolute path (or a file:// URL) in prose: shown by its last part only.
_LOCAL_PATH = re.compile(r"(?:file://)?(?<![\w.:/~-])~?/(?:[^\s/`'\"(),;|]+/)*([^\s/`'\"(),;|]+)/?")


def public_text(text: str) -> str:
    """``text`` without local paths: ``/usr/share/datasets/fashion-mnist`` reads ``fashion-mnist``
    (a published card should not show the folders of the machine that made it)."""
    return _LOCAL_PATH.sub(lambda m: m.group(1), text or "")


def public_ref(ref: str | None) -> str:
    """A lineage reference as published: Hub refs as they are, a ``file://`` or path reference
    by its ticket name (with its ``@rev``)."""
    if not ref or ref.startswith("hf://"):
        return ref or ""
    if ref.startswith("file://") or ref.startswith("/") or "/" in ref.split("@")[0]:
        path, _, rev = ref.partition("@")
        name = path.rstrip("/").rsplit("/", 1)[-1]
        return f"{name}@{rev}" if rev else name
    return ref


def _hub_dataset(name: str) -> str | None:
    """The Hub dataset id of a source dataset ticketzoo reads by name, else None."""
    dataset = name.lower().replace("fashionmnist", "fashion_mnist")
    return dataset if dataset in _HUB_DATASETS else None


def hub_datasets(card: Card) -> list[str]:
    """Hub ids of the datasets the ticket's weights were trained on: its source and, for a
    fine-tune, the dataset its parent (the mask and the starting weights) was found on."""
    names = [card.source.dataset]
    if card.lineage.relation == "finetune":
        names.append(str(card.extra.get("parent_source") or ""))
    return list(dict.fromkeys(d for d in map(_hub_dataset, names) if d))


def base_model(card: Card) -> str | None:
    """The Hub ``base_model`` of a fine-tune: the Hub repo id of its parent (``org/repo`` of an
    ``hf://`` parent). None otherwise: a parent known only by its ticketzoo name or a local
    path has no Hub id (the ``ticketzoo.parent`` front-matter key and the text name it)."""
    parent = card.lineage.parent
    if card.lineage.relation != "finetune" or not parent or not parent.startswith("hf://"):
        return None
    return "/".join(parent[len("hf://"):].split("@")[0].split("/")[:2]) or None


def evaluation_of(card: Card) -> dict[str, Any] | None:
    """The test accuracy a card reports (its ``model-index``), or None without one.

    With seeds (``extra["source_results"]`` of the ticket's round) it is the mean over them,
    with their std and count; otherwise the one trained ticket's. ``test_images`` is the
    number of images it rests on when known (``extra["test_images"]``, else a named
    dataset's official test set)."""
    tested = [m for m in card.metrics if m.test_accuracy is not None]
    if not tested:
        return None
    dataset = _hub_dataset(card.source.dataset)
    n = card.extra.get("test_images")
    if not isinstance(n, int) or isinstance(n, bool):
        n = _OFFICIAL_TEST_IMAGES.get(dataset or "")
    out: dict[str, Any] = {"metric": "accuracy", "split": "test", "value": round(float(tested[-1].test_accuracy), 6),
                           "seeds": 1, "test_images": n}
    own = card.extra.get("round", tested[-1].round)
    rows = card.extra.get("source_results") if isinstance(card.extra.get("source_results"), list) else []
    row = next((r for r in rows if isinstance(r, dict) and r.get("round") == own), None)
    stats = row.get("ticket") if row else None
    if own == 0 and isinstance(card.extra.get("source_dense"), dict):
        stats = card.extra["source_dense"]
    if isinstance(stats, dict) and isinstance(stats.get("mean"), (int, float)):
        seeds = stats.get("per_seed") or card.extra.get("seeds") or []
        out.update(value=round(float(stats["mean"]), 6), seeds=len(seeds) or 1,
                   std=round(float(stats["std"]), 6) if isinstance(stats.get("std"), (int, float)) else None)
    return out


def _evaluation_sentence(e: dict[str, Any]) -> str:
    n = f"{e['test_images']:,} test images" if e.get("test_images") else "a test set of unrecorded size"
    if e["seeds"] > 1:
        spread = f" ± {100 * e['std']:.2f}" if e.get("std") is not None else ""
        return f"Test accuracy {100 * e['value']:.2f}%{spread} (mean ± std over {e['seeds']} seeds, each on {n})."
    return f"Test accuracy {100 * e['value']:.2f}% (one trained ticket, one seed, on {n})."


def _eval_results(card: Card, evaluation: dict[str, Any] | None):
    """``model-index``: the reported test accuracy, the dataset a Hub id when it is one
    (``imagefolder``, the Hub's generic image-folder type, for a local folder)."""
    from huggingface_hub import EvalResult

    if evaluation is None:
        return None
    dataset = _hub_dataset(card.source.dataset) or "imagefolder"
    what = f"mean of {evaluation['seeds']} seeds" if evaluation["seeds"] > 1 else "1 seed"
    if evaluation.get("test_images"):
        what += f", {evaluation['test_images']} test images"
    return [EvalResult(task_type="image-classification", dataset_type=dataset, dataset_name=card.source.dataset,
                       dataset_split="test", metric_type="accuracy", metric_name=f"test accuracy ({what})",
                       metric_value=evaluation["value"])]


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.2%}"


def parse_readme(text: str, path: str | None = None) -> tuple[Card, dict[str, Any]]:
    """The card embedded in a README.md and its front matter's ``ticketzoo`` block."""
    from huggingface_hub import ModelCard

    try:
        meta = ModelCard(text, ignore_metadata_errors=True).data.to_dict().get("ticketzoo")
    except Exception as e:  # malformed YAML from a foreign README
        raise TicketFormatError(f"README front matter is not valid YAML: {e}", path=path) from None
    start = text.find("<!-- ticketzoo-card")
    end = text.find("-->", start)
    if not isinstance(meta, dict) or start < 0 or end < 0:
        raise TicketFormatError("README.md is not a ticketzoo card (no ticketzoo metadata)", path=path)
    body = text[start + len("<!-- ticketzoo-card") : end].strip()
    return read_card(body, path=path), meta

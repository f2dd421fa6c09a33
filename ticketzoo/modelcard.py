"""The Hugging Face model card (``README.md``) of a ticket folder: render and parse.

The card travels twice: as JSON in the ticket's safetensors header and, embedded in an
HTML comment, in this README beside the file, whose front matter's ``ticketzoo`` block
also records the ticket file's sha256 and size.
"""

from __future__ import annotations

from typing import Any

from ticketzoo.card import Card, seed_table
from ticketzoo.errors import TicketFormatError

_HUB_DATASETS = {"cifar10", "cifar100", "mnist", "fashion_mnist", "svhn"}


def render_readme(
    card: Card, *, sha256: str, size: int, filename: str = "ticket.safetensors", extra_meta: dict | None = None,
    front: dict | None = None,
) -> str:
    """A Hub-compatible model card: YAML front matter plus a human summary.

    The front matter's ``ticketzoo`` block records the ticket file's sha256 and size,
    which pulls check before a ticket is used. The Hub's own keys are filled from the
    card: ``datasets`` (a Hub dataset id when the source is one), ``base_model`` (the
    parent of a fine-tune), ``model-index`` (the ticket's test accuracy) and ``license``
    (from ``front``, e.g. ``push``'s license option, or the card's ``license``).
    """
    from huggingface_hub import ModelCardData

    front = dict(front or {})
    license_ = front.pop("license", None) or getattr(card, "license", None) or None
    data = ModelCardData(
        library_name="ticketzoo",
        pipeline_tag="image-classification",
        license=license_,
        tags=["lottery-ticket", "sparse", "pruning", "ticketzoo", card.arch.name],
        datasets=[_hub_dataset(card.source.dataset)] if _hub_dataset(card.source.dataset) else None,
        base_model=base_model(card),
        model_name=card.name if card.metrics else None,  # names the model-index entry
        eval_results=_eval_results(card),
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
            **(extra_meta or {}),
        },
        **front,
    )
    lines = [
        "---",
        data.to_yaml(),
        "---",
        "",
        f"# {card.name}",
        "",
        card.description or f"A sparse lottery ticket for `{card.arch.name}` found on `{card.source.dataset}`.",
        "",
        "| field | value |",
        "|---|---|",
        f"| architecture | `{card.arch.name}` ({card.arch.in_channels}x{card.arch.input_size}x{card.arch.input_size}, {card.arch.num_classes} classes) |",
        f"| source data | {card.source.dataset} {('— ' + card.source.description) if card.source.description else ''} |",
        f"| sparsity | {card.sparsity:.2%} of prunable weights removed |",
        f"| recipe | {card.recipe.summary()} |",
        f"| weight sets | {', '.join(card.weight_sets)} |",
        f"| file | `{filename}`, {size} bytes, sha256 `{sha256}` |",
    ]
    if card.lineage.control:
        lines.append(f"| control | **{card.lineage.control}** (a baseline, not a winning ticket) |")
    if card.lineage.parent:
        lines.append(f"| parent | `{card.lineage.parent}` (sha256 `{card.lineage.parent_sha256}`) |")
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
    lines += [
        "",
        "Use it with [ticketzoo](https://pypi.org/project/ticketzoo/):",
        "",
        "```bash",
        f"ticketzoo info {card.name}",
        f"ticketzoo finetune {card.name} --data ./my_images",
        "```",
        "",
        "<!-- ticketzoo-card",
        card.to_json(),
        "-->",
        "",
    ]
    return "\n".join(lines)


def _hub_dataset(name: str) -> str | None:
    """The Hub dataset id of a source dataset ticketzoo reads by name, else None."""
    dataset = name.lower().replace("fashionmnist", "fashion_mnist")
    return dataset if dataset in _HUB_DATASETS else None


def base_model(card: Card) -> str | None:
    """The Hub ``base_model`` of a fine-tune: its parent ticket (a Hub repo id when the parent
    was pulled from the Hub, else the parent's name), without a revision; None otherwise."""
    parent = card.lineage.parent
    if card.lineage.relation != "finetune" or not parent:
        return None
    if parent.startswith("hf://"):
        return "/".join(parent[len("hf://"):].split("@")[0].split("/")[:2])
    return parent.split("@")[0].rstrip("/").rsplit("/", 1)[-1] or None


def _eval_results(card: Card):
    """``model-index``: the test accuracy of the ticket's own round (the last with one)."""
    from huggingface_hub import EvalResult

    tested = [m for m in card.metrics if m.test_accuracy is not None]
    if not tested:
        return None
    m = tested[-1]
    dataset = _hub_dataset(card.source.dataset) or card.source.dataset
    return [EvalResult(task_type="image-classification", dataset_type=dataset, dataset_name=card.source.dataset,
                       dataset_split="test", metric_type="accuracy", metric_name="test accuracy",
                       metric_value=round(float(m.test_accuracy), 6))]


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
    return Card.from_json(body, path=path), meta

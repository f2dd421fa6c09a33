"""The :class:`Ticket`: a mask, one or more weight sets aligned with it, and a card."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from ticketzoo import codec
from ticketzoo.card import (ArchConfig, Card, LayerSparsity, Lineage, Preprocess, Recipe, RoundMetrics, SourceData,
                            now_iso, preprocess_of, read_card, validate_card)
from ticketzoo.errors import ConfigError, TicketFormatError
from ticketzoo.fileformat import TICKET_FILE  # torch-free readers import it from there
from ticketzoo.fileio import atomic_write_bytes, sha256_bytes
from ticketzoo.interop import apply_torch_prune, plain_state_dict, torch_prune_masks
from ticketzoo.masks import Mask
from ticketzoo.names import check_name, valid_name
from ticketzoo.ticket_arch import check_tensors, materialize_fresh, meta_model


def _state_dict_of(obj: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # compiled / DDP wrappers and torch.nn.utils.prune's weight_orig/weight_mask: the plain names
    return plain_state_dict(obj)


class Ticket:
    """A lottery ticket: masks, weight sets (``rewind`` = θk, optional ``trained``) and a card.

    Build one with :meth:`from_model`, persist with :meth:`save`, read with
    :meth:`load`, and get a ready network with :meth:`to_model`.
    """

    def __init__(
        self,
        card: Card,
        masks: dict[str, codec.CSRMask],
        sets: dict[str, dict[str, torch.Tensor]],
        path: str | None = None,
    ):
        self.card = card
        self.path = path  # the file it was read from, for messages
        self._csr = masks
        self._sets = sets
        self._dense_masks: dict[str, torch.Tensor] | None = None
        self._arch_checked = False

    # --- construction -----------------------------------------------------------------

    @classmethod
    def from_model(
        cls,
        model: nn.Module | Mapping[str, torch.Tensor],
        masks: Mapping[str, torch.Tensor] | None = None,
        *,
        name: str,
        arch: str | ArchConfig,
        source: SourceData | None = None,
        trained: nn.Module | Mapping[str, torch.Tensor] | None = None,
        recipe: Recipe | None = None,
        metrics: tuple[RoundMetrics, ...] = (),
        lineage: Lineage | None = None,
        description: str = "",
        extra: dict | None = None,
        input_size: int | None = None,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        arch_kwargs: dict | None = None,
        preprocess: Preprocess | None = None,
    ) -> "Ticket":
        """A ticket whose ``rewind`` weights are ``model``'s state (θk) under ``masks``.

        ``arch`` is a registered architecture's name (``"resnet18"``; classes, channels
        and head names are read from the model, ``input_size``/``mean``/``std`` default
        to the arch's) or a full :class:`ArchConfig`. ``trained`` optionally adds the
        ``trained`` weight set. ``preprocess`` records how the training fed it images (None:
        :func:`~ticketzoo.card.preprocess_of`'s rule for cards without it). Weights at pruned
        positions are stored as absent, so they come back exactly zero. A name or card that
        :meth:`load` would refuse is refused here. ``model`` may be wrapped (``torch.compile``,
        DDP) or pruned with ``torch.nn.utils.prune``; ``masks`` None takes the masks that
        pruning left on it (:mod:`ticketzoo.interop`).
        """
        check_name(name)
        if masks is None:
            masks = torch_prune_masks(model)
            if not masks:
                raise ConfigError("no masks given, and the model carries none from torch.nn.utils.prune",
                                  field="masks", hint="pass masks, e.g. ticketzoo.prune(model, 0.9)")
        sets = {"rewind": _state_dict_of(model)}
        if trained is not None:
            sets["trained"] = _state_dict_of(trained)
        masks = Mask(masks)
        for k in masks:
            if k not in sets["rewind"]:
                raise ConfigError(f"mask {k!r} names no tensor of the model")
        from ticketzoo.models.infer import arch_config, layer_order

        inferred = isinstance(arch, str)
        if inferred:
            arch = arch_config(arch, sets["rewind"], input_size=input_size, mean=mean, std=std,
                               kwargs=arch_kwargs or {})
        elif any(v is not None for v in (input_size, mean, std, arch_kwargs)):
            raise ConfigError("input_size, mean, std and arch_kwargs go with an arch name, not an ArchConfig",
                              field="arch")
        if not arch.classifier:
            raise ConfigError("ArchConfig.classifier must name the head's tensors")
        # One order whatever order the caller's dict (or a safetensors load) had: the card's
        # per-layer table follows it, and identical tickets must be identical bytes.
        masks = Mask({k: masks[k] for k in layer_order(arch.name, masks)})
        if source is None:
            source = SourceData("unspecified", tuple(f"class_{i}" for i in range(arch.num_classes)))
        from ticketzoo import __version__

        card = Card(
            name=name,
            arch=arch,
            source=source,
            recipe=recipe or Recipe.unrecorded(),  # claim no pruning that did not happen
            metrics=tuple(metrics),
            weight_sets=tuple(sets),
            lineage=lineage or Lineage(),
            versions={"ticketzoo": __version__, "torch": torch.__version__.split("+")[0]},
            created=now_iso(),
            description=description,
            extra=dict(extra or {}),
            preprocess=preprocess,
        )
        tensors = codec.encode(masks, sets)  # validates shapes and sets
        decoded = codec.validate(tensors, {"weight_sets": _json_list(sets), "card": ""})
        ticket = cls(card, decoded.masks, decoded.sets)._with_sparsity()
        ticket._check_writable()
        if inferred:  # the model must be the architecture it was said to be
            try:
                ticket.check_arch()
            except TicketFormatError as e:
                raise ConfigError(f"the model does not match {arch.name!r}: {e.problem}", field="arch",
                                  value=arch.name) from None
        return ticket

    def _with_sparsity(self) -> "Ticket":
        layers = tuple(
            LayerSparsity(name=n, shape=c.shape, kept=c.nnz, total=c.numel) for n, c in self._csr.items()
        )
        self.card = self.card.replace(sparsity=_overall(layers), layers=layers, weight_sets=tuple(self._sets))
        return self

    def with_card(self, **changes) -> "Ticket":
        """A ticket sharing this one's tensors with card fields replaced (checked as load would)."""
        ticket = Ticket(self.card.replace(**changes), self._csr, self._sets, self.path)
        ticket._check_writable()
        return ticket

    def _check_writable(self) -> None:
        """Refuse what :meth:`load` would refuse: writing validates what reading validates."""
        check_name(self.card.name)
        try:
            validate_card(self.card, self.path)
            _check_card(self, self.path)
        except TicketFormatError as e:
            raise ConfigError(f"this ticket could not be read back: {e.problem}", hint=e.hint) from None

    # --- persistence ------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The ticket file's bytes; identical tickets give identical bytes."""
        self._check_writable()
        tensors: dict[str, torch.Tensor] = {}
        for name, c in self._csr.items():
            tensors[codec._key(codec.MASK, name, "shape")] = torch.tensor(c.shape, dtype=torch.int64)
            tensors[codec._key(codec.MASK, name, "indptr")] = c.indptr
            tensors[codec._key(codec.MASK, name, "indices")] = c.indices
        for s, state in self._sets.items():
            for name, t in state.items():
                key = codec._key(s, name, "values") if name in self._csr else codec._key(s, name)
                tensors[key] = t
        return codec.pack(tensors, list(self._sets), self.card.to_json())

    def save(self, path: str | Path) -> str:
        """Write the ticket atomically; returns the file's sha256."""
        data = self.to_bytes()
        atomic_write_bytes(path, data)
        return sha256_bytes(data)

    @classmethod
    def from_bytes(cls, data: bytes, path: str | Path | None = None) -> "Ticket":
        p = str(path) if path is not None else None
        decoded = codec.unpack(data, p)
        card = read_card(decoded.card_json, path=p)
        ticket = cls(card, decoded.masks, decoded.sets, p)
        _check_card(ticket, p)
        # Masks in the card's per-layer order (the writer's module order), not the file's
        # tensor order: a ticket derived from this one lists its layers the same way.
        ticket._csr = {layer.name: ticket._csr[layer.name] for layer in card.layers}
        return ticket

    @classmethod
    def load(cls, path: str | Path) -> "Ticket":
        """Read and fully validate a ticket file; any violation is a TicketFormatError.

        ``ticketzoo.load(ref)`` also takes names, ``name@rev``, ``hf://`` and ``file://`` refs.
        """
        try:
            data = Path(path).read_bytes()
        except IsADirectoryError:
            return cls.load(Path(path) / TICKET_FILE)
        except OSError as e:
            raise TicketFormatError(f"cannot read: {e.strerror}", path=path) from None
        return cls.from_bytes(data, path)

    def __repr__(self) -> str:
        c = self.card
        where = f", path={self.path!r}" if self.path else ""
        return (f"Ticket(name={c.name!r}, arch={c.arch.name!r}, classes={c.arch.num_classes}, "
                f"sparsity={c.sparsity:.2%}, weight_sets={list(self._sets)}{where})")

    # --- views ------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def weight_sets(self) -> tuple[str, ...]:
        return tuple(self._sets)

    @property
    def ready_weights(self) -> str:
        """The weight set a ready model uses unless told otherwise (``create_model``, ``export``,
        ``predict``, ``bench``): ``trained`` where the ticket has it, as timm's pretrained
        weights, else ``rewind`` (θk, the only set some tickets carry)."""
        return "trained" if "trained" in self._sets else "rewind"

    @property
    def csr_masks(self) -> dict[str, codec.CSRMask]:
        return dict(self._csr)

    @property
    def masks(self) -> Mask:
        """Boolean masks keyed by state-dict name (True = kept), head included."""
        if self._dense_masks is None:
            self.check_arch()  # the shapes a file claims are checked before they are allocated
            self._dense_masks = Mask({n: c.to_dense() for n, c in self._csr.items()})
        return self._dense_masks.copy()

    @property
    def sparsity(self) -> float:
        """Fraction of prunable weights removed, over all masked tensors."""
        return self.card.sparsity

    def layer_sparsity(self) -> dict[str, float]:
        return {layer.name: layer.sparsity for layer in self.card.layers}

    def state_dict(self, weights: str = "rewind") -> dict[str, torch.Tensor]:
        """A dense state dict of one weight set; pruned weights are exactly zero."""
        if weights not in self._sets:
            raise ConfigError(
                f"ticket {self.name!r} has no weight set {weights!r} (it has: {', '.join(self._sets)})"
            )
        self.check_arch()  # the shapes a file claims are checked before they are allocated
        out = {}
        for name, t in self._sets[weights].items():
            out[name] = self._csr[name].scatter(t) if name in self._csr else t.clone()
        return out

    def check_arch(self) -> None:
        """Check every stored tensor against the architecture the card names: names, shapes
        (a mask by the shape it claims) and dtypes, on the meta device, so nothing is allocated.

        Raises TicketFormatError on a mismatch or a card whose arch cannot be built, and
        UnknownArchitectureError when this ticketzoo does not know the arch.
        """
        if not self._arch_checked:
            self._check_against(self._meta_model())

    def _meta_model(self) -> nn.Module:
        return meta_model(self.card.arch, self.path)

    def _check_against(self, model: nn.Module) -> None:
        check_tensors(model, self.card.arch, self._sets["rewind"], self._csr, self.path)
        self._arch_checked = True

    def nonfinite(self) -> dict[str, int]:
        """``{"set::name": count}`` of NaN or infinite stored values (a damaged or diverged ticket)."""
        out = {}
        for s, state in self._sets.items():
            for name, t in state.items():
                if t.is_floating_point() and t.numel():
                    bad = int(t.numel() - torch.isfinite(t).sum())
                    if bad:
                        out[f"{s}::{name}"] = bad
        return out

    def to_model(self, weights: str = "rewind", num_classes: int | None = None, *, fresh_head: bool = False,
                 head_init: str = "default", seed: int | None = None, runtime: str = "dense",
                 torch_prune: bool = False) -> nn.Module:
        """The ticket's network with one weight set loaded and pruned weights exactly zero.

        With ``num_classes`` other than the card's, or ``fresh_head``, the head is replaced
        by a fresh dense layer (its weights and mask are dropped; :func:`~ticketzoo.models.new_head`
        with ``head_init`` and ``seed``). Train it under :meth:`head_masks_dropped` then.
        ``runtime="sparse"`` returns an eval-mode inference network instead, its pruned layers
        on sparse CPU kernels, kernels chosen for the card's input size (:mod:`ticketzoo.sparse`).
        ``torch_prune=True`` registers the masks (without the head's, when it is new) as
        ``torch.nn.utils.prune`` does (``weight_orig`` and ``weight_mask``;
        :func:`~ticketzoo.interop.apply_torch_prune`), for training code written for torch's pruning.
        """
        from ticketzoo.models import new_head

        if runtime not in ("dense", "sparse"):
            raise ConfigError(f"runtime must be 'dense' or 'sparse', got {runtime!r}", field="runtime", value=runtime)
        if torch_prune and runtime == "sparse":  # the sparse runtime is for inference: no masks to keep
            raise ConfigError("torch_prune goes with the dense runtime", field="torch_prune", value=torch_prune)

        arch = self.card.arch
        model = self._meta_model()
        if not self._arch_checked:
            self._check_against(model)
        state = self.state_dict(weights)
        classes = arch.num_classes if num_classes is None else num_classes
        if not fresh_head and classes == arch.num_classes and (head_init != "default" or seed is not None):
            raise ConfigError("head_init and seed shape a new head: pass fresh_head=True (or another num_classes)",
                              field="fresh_head")
        new = fresh_head or classes != arch.num_classes
        if new:
            for k in arch.classifier:
                state.pop(k, None)
            new_head(model, classes, init=head_init, seed=seed, device="cpu")
        model.load_state_dict(state, strict=False, assign=True)  # names checked above; a new head stays
        materialize_fresh(model)
        if runtime == "sparse":
            from ticketzoo.sparse import sparsify

            return sparsify(model, example=(1, arch.in_channels, arch.input_size, arch.input_size))
        if torch_prune:
            apply_torch_prune(model, self.head_masks_dropped() if new else self.masks)
        return model

    def head_masks_dropped(self) -> Mask:
        """Masks without the classifier's (what a head swap keeps)."""
        return self.masks.without(self.card.arch.classifier)

    @property
    def preprocess(self) -> Preprocess:
        """How its training fed it images: the card's declaration, or for older cards the rule
        its recipe implies (:func:`~ticketzoo.card.preprocess_of`), ``resize`` in pixels."""
        return preprocess_of(self.card)

    def transforms(self, train: bool = False):
        """:attr:`preprocess` as a transform of a PIL image (opened, not yet loaded) to the
        network's input: the tensor training saw for that image (``train``: a random crop
        and flip as in training)."""
        from ticketzoo.models.transforms import image_transform

        return image_transform(self.card.arch, self.preprocess, train=train)


def _json_list(items) -> str:
    import json

    return json.dumps(list(items))


def _overall(layers: tuple[LayerSparsity, ...]) -> float:
    total = sum(layer.total for layer in layers)
    kept = sum(layer.kept for layer in layers)
    return 1.0 - kept / total if total else 0.0


def _check_card(ticket: Ticket, path: str | None) -> None:
    """The card must agree with the tensors it describes."""
    card = ticket.card
    if not valid_name(card.name):
        raise TicketFormatError(f"card name {card.name!r} is not a valid ticket name", path=path)
    if tuple(card.weight_sets) != tuple(ticket._sets):
        raise TicketFormatError(
            f"card lists weight sets {list(card.weight_sets)}, file holds {list(ticket._sets)}", path=path
        )
    layers = {layer.name: layer for layer in card.layers}
    if set(layers) != set(ticket._csr):
        raise TicketFormatError("card's per-layer table does not match the masks", path=path)
    for name, c in ticket._csr.items():
        layer = layers[name]
        if tuple(layer.shape) != c.shape or layer.kept != c.nnz or layer.total != c.numel:
            raise TicketFormatError("card's per-layer sparsity does not match the mask", path=path, tensor=name)
    if abs(card.sparsity - _overall(card.layers)) > 1e-9:
        raise TicketFormatError("card's overall sparsity does not match the masks", path=path)
    for name in card.arch.classifier:
        if name not in ticket._sets["rewind"]:
            raise TicketFormatError("card names a classifier tensor the file lacks", path=path, tensor=name)

"""Which training recipe a fine-tuning run uses, and why: ``auto``, ``paper`` or as given.

``paper`` is Sabatelli et al.'s Table 4 (SGD Nesterov, lr 0.1, batch 64, up to 100 epochs,
LR x0.1 at 50/60/75, patience 5), made for ResNet-50 on thousands of images. On a few
hundred images it leaves small convnets near chance and makes ResNet-18 predict one
class (docs/FINETUNE.md has the measurements), so ``auto`` is the default:

* AdamW, lr 1e-3 (1e-2 if SGD is asked for), weight decay 5e-4;
* batch: the largest power of two <= train images / 15, within [8, 64], so even 120
  images give 15 optimizer steps per epoch;
* epochs: enough for :data:`MIN_STEPS` optimizer steps, within [30, 100]; a network of
  :data:`LARGE_WEIGHTS` prunable weights or more (ResNet-18/-50, VGG-16) gets 30: measured
  on the 2-core CPU, a ResNet-50 step at batch 8 costs 0.17 s whatever the batch, so the
  step guarantee made one run on 90 images take 4.7 minutes (cifar10-resnet50-s97 on
  examples/digits: 80.0% after 100 epochs, 67.8% after 30; ``--epochs 100`` restores it);
* linear warm-up over the first 5% of epochs (at least 1), then cosine decay to 0;
* early stopping on val loss with patience max(10, epochs // 4): a val split of 15
  images is noisy, so a few bad epochs say little; the best val-loss epoch is restored;
* precise BatchNorm: running statistics recomputed on training batches before each
  validation. Statistics averaged over batches of 8-16 made validation loss jump 10-100x
  between epochs, so early stopping picked arbitrary epochs (measurements: docs/FINETUNE.md).

Explicit choices (``FinetuneConfig.overrides``) always win, and the values derived after
them follow them (epochs follow an explicit batch size, warm-up explicit epochs).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ticketzoo.config import unhashed_fields
from ticketzoo.train import TrainConfig
from ticketzoo.train.device import resolve_cpu_runtime

MIN_STEPS = 1500  # optimizer steps auto guarantees, so tiny folders are not under-trained
LARGE_WEIGHTS = 10_000_000  # prunable weights from which auto trains MIN_EPOCHS, not MIN_STEPS
MIN_EPOCHS, MAX_EPOCHS = 30, 100
STEPS_PER_EPOCH = 15  # batch = largest power of two <= n_train / this
MIN_BATCH, MAX_BATCH = 8, 64
LR = {"adamw": 1e-3, "adam": 1e-3, "sgd": 1e-2}
WEIGHT_DECAY = 5e-4
WARMUP_SHARE = 0.05
MIN_PATIENCE = 10

# Fields that say how and where to run, not what the recipe is: always taken from ``train``.
_RUNTIME = (*unhashed_fields(TrainConfig), "seed", "amp", "channels_last", "restore_best")
# (precise_bn is a recipe choice: auto turns it on unless the caller set it)


@dataclass(frozen=True)
class Resolved:
    """The training recipe a run uses, the protocol it came from and why each value."""

    protocol: str  # "auto", "paper" or "given"
    train: TrainConfig
    reasons: dict[str, str]  # field -> why it has its value (auto: every derived field)

    def to_dict(self) -> dict[str, Any]:
        """Where the recipe came from and why; the values themselves are the run's ``train``
        config (``metrics.json``'s ``config.train``), recorded once."""
        return {"protocol": self.protocol, "reasons": dict(self.reasons)}

    def summary(self) -> str:
        """One line: ``protocol auto: adamw lr 0.001, batch 16 (...), ...``."""
        t, why = self.train, self.reasons

        def part(text: str, key: str) -> str:
            return f"{text} ({why[key]})" if key in why else text

        sched = (f"cosine after {t.warmup_epochs} warm-up epoch(s)" if t.schedule == "cosine" else
                 "step " + ("/".join(map(str, t.milestones)) or "none")
                 + (f" after {t.warmup_epochs} warm-up epoch(s)" if t.warmup_epochs else ""))
        stop = "no early stopping" if t.patience is None else f"patience {t.patience}"
        return (f"protocol {self.protocol}: " + ", ".join([
            part(f"{t.optimizer} lr {t.lr:g}", "lr"), part(f"batch {t.batch_size}", "batch_size"),
            part(f"up to {t.max_epochs} epochs", "max_epochs"), part(sched, "warmup_epochs"),
            part(stop, "patience"), *(["precise BN"] if t.precise_bn else [])]))


def resolve(protocol: str | None, train: TrainConfig, overrides: tuple[str, ...],
            n_train: int, *, weights: int = 0, family: str | None = None) -> Resolved:
    """The recipe for ``n_train`` training images and a network of ``weights`` prunable
    weights (see the module docstring), its "auto" CPU precision resolved for ``family``
    (:func:`~ticketzoo.train.device.resolve_cpu_runtime`): ``finetune`` and ``compare`` both
    come here, so the same run trains the same way through either."""
    train = resolve_cpu_runtime(train, family, "finetune")
    if protocol is None:
        return Resolved("given", train, {})
    if protocol == "paper":
        return Resolved("paper", train, {"protocol": "Sabatelli et al. Table 4"})
    fixed = {k: getattr(train, k) for k in (*_RUNTIME, *overrides)}
    values, why = dict(fixed), {}

    def pick(key: str, value: Any, reason: str) -> Any:
        if key not in fixed:
            values[key], why[key] = value, reason
        return values[key]

    auto = _auto_batch(n_train)
    batch = pick("batch_size", auto, f"{n_train} training images: {math.ceil(n_train / auto)} steps per epoch"
                 + (f" (at least {STEPS_PER_EPOCH} from {STEPS_PER_EPOCH * MIN_BATCH} images on)"
                    if math.ceil(n_train / auto) < STEPS_PER_EPOCH else ""))
    steps = math.ceil(n_train / batch)
    if weights >= LARGE_WEIGHTS:
        epochs = pick("max_epochs", MIN_EPOCHS, f"{weights / 1e6:.1f}M weights: {MIN_EPOCHS} epochs of {steps} steps "
                                                "(--epochs for more)")
    else:
        epochs = pick("max_epochs", min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(MIN_STEPS / steps))),
                      f"{steps} steps per epoch: at least {min(MIN_STEPS, MAX_EPOCHS * steps)} steps")
    step_schedule = "milestones" in fixed and values["milestones"]
    pick("schedule", "step" if step_schedule else "cosine", "milestones given" if step_schedule else "")
    pick("milestones", (), "")
    pick("warmup_epochs", min(epochs - 1, max(1, round(WARMUP_SHARE * epochs))),
         f"{round(100 * WARMUP_SHARE)}% of {epochs} epochs")
    optimizer = pick("optimizer", "adamw", "")
    pick("nesterov", optimizer == "sgd" and values.get("momentum", 0.9) > 0, "")
    pick("lr", LR[optimizer], f"{optimizer}" + (" as given" if "optimizer" in fixed else ""))
    pick("weight_decay", WEIGHT_DECAY, "")
    pick("patience", max(MIN_PATIENCE, epochs // 4), "noisy small val split" if epochs // 4 <= MIN_PATIENCE
         else f"a quarter of {epochs} epochs")
    pick("precise_bn", True, "")
    return Resolved("auto", TrainConfig(**values), {k: v for k, v in why.items() if v})


def weights_of(ticket) -> int:
    """The prunable weights of a ticket's network, from its card (no tensor is read)."""
    return sum(layer.total for layer in ticket.card.layers)


def family_of(ticket) -> str | None:
    """The architecture family of a ticket's network (``torchvision``, ``lth``), from its card."""
    from ticketzoo.models import get_arch

    return get_arch(ticket.card.arch.name).family


def _auto_batch(n_train: int) -> int:
    target = max(1, n_train // STEPS_PER_EPOCH)
    return min(MAX_BATCH, max(MIN_BATCH, 2 ** int(math.log2(target))))


def with_seed(resolved: Resolved, seed: int) -> TrainConfig:
    return dataclasses.replace(resolved.train, seed=seed)

"""What ``compare`` runs: one frozen config around the fine-tuning recipe (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ticketzoo.config import Config, option
from ticketzoo.config.finetune import FinetuneConfig
from ticketzoo.errors import ConfigError

#: What a comparison can train: the ticket from θk (rewind) and from its source-trained
#: weights (trained), a reinit and a random pruning of its mask, and the dense network.
CONDITIONS = ("rewind", "trained", "reinit", "random_prune", "dense")
DEFAULT_CONDITIONS = CONDITIONS


def _default_finetune() -> FinetuneConfig:
    return FinetuneConfig(protocol="auto", seeds=3)


@dataclass(frozen=True)
class CompareConfig(Config):
    """What a comparison runs. ``finetune`` holds the recipe, split, seeds and data options
    (its ``init`` and ``compare`` are not used); ``jobs`` is the number of processes."""

    config_label = "comparison option"

    finetune: FinetuneConfig = field(default_factory=_default_finetune)
    conditions: tuple[str, ...] = option(
        DEFAULT_CONDITIONS, metavar="C[,C]",
        help="What to train: rewind (the ticket's θk), trained (its source-trained θ, where it has them), reinit "
             "(fresh weights, same mask), random_prune (random mask, same per-layer counts; also spelled "
             "random-prune, as in find --control), dense (no mask, from scratch; once).")
    jobs: int = option(1, help="Jobs run in parallel processes (one torch thread each on CPU; one GPU each when "
                               "there are several).")
    # also find a ticket on the target itself, this many IMP rounds
    target_rounds: int | None = option(None, flag="--target-ticket", metavar="ROUNDS",
                                       help="Also find a ticket on the target's own training images (IMP, ROUNDS "
                                            "rounds of 20%; Sabatelli et al.'s Target-Ticket) and compare each of "
                                            "its rounds too.")

    def __post_init__(self) -> None:
        if not isinstance(self.finetune, FinetuneConfig):
            raise ConfigError("finetune must be a FinetuneConfig", field="finetune")
        if isinstance(self.conditions, str):
            object.__setattr__(self, "conditions", tuple(c.strip() for c in self.conditions.split(",") if c.strip()))
        for name in ("jobs", "target_rounds"):
            value = getattr(self, name)
            if value is None and name == "target_rounds":
                continue  # no Target-Ticket
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}", field=name, value=value)
        self.check_types()

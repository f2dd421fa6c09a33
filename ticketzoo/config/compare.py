"""What ``compare`` runs: one frozen config around the fine-tuning recipe (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ticketzoo.config import Config
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
    conditions: tuple[str, ...] = DEFAULT_CONDITIONS
    jobs: int = 1  # parallel worker processes (1: in this process)
    target_rounds: int | None = None  # also find a ticket on the target itself, this many IMP rounds

    def __post_init__(self) -> None:
        if not isinstance(self.finetune, FinetuneConfig):
            raise ConfigError("finetune must be a FinetuneConfig", field="finetune")
        if isinstance(self.conditions, str):
            object.__setattr__(self, "conditions", tuple(c.strip() for c in self.conditions.split(",") if c.strip()))
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int) or self.jobs < 1:
            raise ConfigError(f"jobs must be an integer >= 1, got {self.jobs!r}", field="jobs", value=self.jobs)
        self.check_types()

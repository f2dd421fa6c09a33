"""Fine-tune a lottery ticket on an image folder or a named dataset, its mask kept exactly.

    from ticketzoo.finetune import FinetuneConfig, finetune
    config = FinetuneConfig(protocol="auto", compare=("dense",), seeds=3)
    result = finetune(ticket, "bone_marrow", config, out_dir="out")

``config`` picks the starting weights (``init``: rewind θk, trained θ, reinit, dense),
the baselines run beside it (``compare``), the number of seeds and the training recipe:
``protocol="auto"`` (derived from the number of training images), ``"paper"``
(Sabatelli et al.'s Table 4) or ``None`` (``config.train`` exactly as given). Every run
ends ``ok``, ``diverged`` or ``chance``; the first ``ok`` run of ``init`` is saved.
"""

from ticketzoo.config.finetune import INITS, PROTOCOLS, FinetuneConfig, default_name
from ticketzoo.finetune.metrics import METRICS_SCHEMA
from ticketzoo.finetune.protocol import Resolved, resolve
from ticketzoo.finetune.report import SummaryRow, comparison_notes, summarize
from ticketzoo.finetune.run import (METRICS_FILE, FinetuneResult, NoTrainedRunError, RunResult,
                                    check_masks, check_saved, finetune, start_model)

__all__ = [
    "INITS",
    "METRICS_FILE",
    "METRICS_SCHEMA",
    "PROTOCOLS",
    "FinetuneConfig",
    "FinetuneResult",
    "NoTrainedRunError",
    "Resolved",
    "RunResult",
    "SummaryRow",
    "check_masks",
    "check_saved",
    "comparison_notes",
    "default_name",
    "finetune",
    "resolve",
    "start_model",
    "summarize",
]

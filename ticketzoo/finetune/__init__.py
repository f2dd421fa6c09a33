"""Fine-tune a lottery ticket on a local image folder, its mask kept exactly.

    from ticketzoo.finetune import FinetuneConfig, finetune
    result = finetune(ticket, "bone_marrow", FinetuneConfig(compare=("dense",)), out_dir="out")

``config`` picks the starting weights (``init``: rewind θk, trained θ, reinit, dense),
the baselines run beside it (``compare``), the number of seeds and the training recipe
(:class:`~ticketzoo.train.TrainConfig`, Sabatelli et al.'s protocol by default).
"""

from ticketzoo.finetune.config import INITS, FinetuneConfig, default_name
from ticketzoo.finetune.report import SummaryRow, summarize, table
from ticketzoo.finetune.run import (METRICS_FILE, FinetuneResult, RunResult, check_masks,
                                    check_saved, finetune, start_model)

__all__ = [
    "INITS",
    "METRICS_FILE",
    "FinetuneConfig",
    "FinetuneResult",
    "RunResult",
    "SummaryRow",
    "check_masks",
    "check_saved",
    "default_name",
    "finetune",
    "start_model",
    "summarize",
    "table",
]

"""Data settings shared by every command (torch-free, like every config module)."""

DEFAULT_MEMORY_BUDGET = 2 * 1024**3  # bytes of decoded uint8 pixels kept in memory


def default_working_size(input_size: int) -> int:
    """``finetune``'s working size when ``--resize`` is not given: 256/224 of the input size
    (as for ImageNet); read by ``FinetuneConfig.working_size`` and by cards that predate a
    declared preprocessing (``ticketzoo.card.preprocess_of``)."""
    return round(input_size * 256 / 224)

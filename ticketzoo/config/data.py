"""Data settings shared by every command (torch-free, like every config module)."""

DEFAULT_MEMORY_BUDGET = 2 * 1024**3  # bytes of decoded uint8 pixels kept in memory

"""Architecture registry: torchvision and LTH-paper models by name, and their tensor names.

Importing this package registers every built-in architecture.
"""

from ticketzoo.models import small, torchvision_archs  # noqa: F401  (registers the archs)
from ticketzoo.models.registry import (
    ArchInfo,
    build_model,
    check_input,
    classifier_names,
    get_arch,
    list_archs,
    new_head,
    prunable_names,
    register_arch,
    swap_head,
    xavier_init_,
)

__all__ = [
    "ArchInfo",
    "build_model",
    "check_input",
    "classifier_names",
    "get_arch",
    "list_archs",
    "new_head",
    "prunable_names",
    "register_arch",
    "swap_head",
    "xavier_init_",
]

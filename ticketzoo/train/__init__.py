"""Masked training: ``train`` a model under ticket masks, with callbacks and checkpoints."""

from ticketzoo.train.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    History,
    ProgressCallback,
    SnapshotAt,
    TrainState,
)
from ticketzoo.train.checkpoint import load_checkpoint, save_atomic
from ticketzoo.config.train import TrainConfig
from ticketzoo.train.device import Runtime, cpu_state_dict, resolve_device
from ticketzoo.train.loop import DivergedError, EvalResult, MaskSet, TrainResult, evaluate, train
from ticketzoo.config.step import Step

__all__ = [
    "CSVLogger",
    "Callback",
    "DivergedError",
    "EarlyStopping",
    "EvalResult",
    "History",
    "MaskSet",
    "ProgressCallback",
    "Runtime",
    "SnapshotAt",
    "Step",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "cpu_state_dict",
    "evaluate",
    "load_checkpoint",
    "resolve_device",
    "save_atomic",
    "train",
]

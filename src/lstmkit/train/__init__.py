"""Training: the trainer and its callbacks, checkpoints, lr schedules, configs, distributed.

``lstmkit.train.run.train(cfg, out)`` runs a whole training; ``Trainer`` is the
model-agnostic loop underneath.
"""
from .config import ModelConfig, RunConfig, TrainConfig, DataConfig, PRESETS, from_preset
from .trainer import Callback, StepOutput, Trainer, TrainState

__all__ = ["Callback", "StepOutput", "Trainer", "TrainState", "RunConfig", "ModelConfig", "TrainConfig",
           "DataConfig", "PRESETS", "from_preset"]

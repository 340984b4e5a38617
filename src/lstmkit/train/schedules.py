"""Learning-rate schedules, stepped after each validation or epoch. Their state is plain JSON."""
from __future__ import annotations

import math


class Schedule:
    """No change. Subclasses return the new lr from ``epoch_end`` / ``validated``."""

    def __init__(self, lr: float):
        self.lr = lr

    def epoch_end(self, epoch: int) -> float:
        """Called after ``epoch`` (1-based) epochs are complete."""
        return self.lr

    def validated(self, loss: float) -> float:
        return self.lr

    def state_dict(self) -> dict:
        return dict(vars(self))

    def load_state_dict(self, d: dict) -> None:
        vars(self).update(d)


class StepDecay(Schedule):
    """lr *= decay at the end of every epoch >= start: Zaremba et al.'s "halve after epoch 4"."""

    def __init__(self, lr: float, decay: float, start: int):
        super().__init__(lr)
        self.decay, self.start = decay, start

    def epoch_end(self, epoch: int) -> float:
        if epoch >= self.start:
            self.lr *= self.decay
        return self.lr


class ReduceOnPlateau(Schedule):
    """lr *= decay after more than ``patience`` validations in a row without a new best."""

    def __init__(self, lr: float, decay: float, patience: int, threshold: float = 1e-4):
        super().__init__(lr)
        self.decay, self.patience, self.threshold = decay, patience, threshold
        self.best, self.bad = math.inf, 0

    def validated(self, loss: float) -> float:
        if loss < self.best * (1 - self.threshold):
            self.best, self.bad = loss, 0
        else:
            self.bad += 1
            if self.bad > self.patience:
                self.lr *= self.decay
                self.bad = 0
        return self.lr

    def state_dict(self) -> dict:
        d = super().state_dict()
        d["best"] = None if math.isinf(self.best) else self.best  # JSON has no infinity
        return d

    def load_state_dict(self, d: dict) -> None:
        super().load_state_dict(d)
        if self.best is None:
            self.best = math.inf


def make_schedule(name: str, lr: float, decay: float, decay_start: int, patience: int) -> Schedule:
    if name == "step":
        return StepDecay(lr, decay, decay_start)
    if name == "plateau":
        return ReduceOnPlateau(lr, decay, patience)
    return Schedule(lr)

"""The task registry: what ``lstmkit train TASK`` can train.

A task (:class:`~lstmkit.tasks.base.Task`) turns a config into data, a model, batches,
a loss and an evaluation; the trainer does the rest. Each task module registers its
task (and its presets) on import, and is then in the CLI and ``lstmkit info``.
"""
from __future__ import annotations

from ..errors import UsageError
from .base import Task, option  # noqa: F401  (re-exported: what task modules build on)

_TASKS: dict = {}


def register_task(task):
    if task.name in _TASKS:
        raise ValueError(f"task {task.name!r} is already registered")
    _TASKS[task.name] = task
    return task


def option_fields(task) -> list:
    """The dataclass fields of a task's Options ([] when it has none)."""
    import dataclasses
    return list(dataclasses.fields(task.Options)) if task.Options is not None else []


def tasks() -> list[str]:
    return list(_TASKS)


def get_task(name: str):
    if name not in _TASKS:
        raise UsageError(f"unknown task {name!r}; expected one of: {', '.join(_TASKS)}")
    return _TASKS[name]


from . import lm  # noqa: E402,F401  (registers charlm and wordlm)
from . import music  # noqa: E402,F401  (registers music)
from . import translate  # noqa: E402,F401  (registers translate and the dates preset)
from . import forecast, classify  # noqa: E402,F401  (registers forecast and classify)
from . import longterm  # noqa: E402,F401  (registers the long-time-lag suite of Hochreiter & Schmidhuber 1997)

"""Task-specific options: the Options dataclass -> [options] in TOML -> --flags on `lstmkit train`."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from lstmkit import tasks as task_registry
from lstmkit.cli import build_parser
from lstmkit.cli.train import resolve_config
from lstmkit.errors import UsageError
from lstmkit.tasks.base import option
from lstmkit.train.config import RunConfig, from_preset, to_toml


class _Toy:
    name = "toy-opts"
    default_preset = "char-small"  # any preset; resolve_config checks its task, so tests use their own

    @dataclass
    class Options:
        horizon: int = option(1, "steps ahead", ())
        fill: str = option("none", "what to do with gaps", ("none", "ffill"))
        direct: bool = option(True, "direct multi-step forecasts")


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(task_registry._TASKS, _Toy.name, _Toy())
    return _Toy


def test_options_roundtrip_through_dict_and_toml(toy, tmp_path):
    cfg = RunConfig.from_dict({"task": toy.name, "options": {"horizon": 6}})
    assert cfg.options == toy.Options(horizon=6)
    again = RunConfig.from_dict(cfg.to_dict())
    assert again.options == cfg.options
    text = to_toml(cfg)
    assert "[options]\nhorizon = 6\nfill = \"none\"\ndirect = true" in text


def test_tasks_without_options_have_no_options_table():
    cfg = from_preset("char-small")
    assert cfg.options is None and "options" not in cfg.to_dict() and "[options]" not in to_toml(cfg)
    with pytest.raises(UsageError, match="has no \\[options\\]"):
        RunConfig.from_dict({"task": "charlm", "options": {"horizon": 3}})


def test_unknown_option_and_wrong_type_are_named(toy):
    with pytest.raises(UsageError, match="unknown key options.horizn"):
        RunConfig.from_dict({"task": toy.name, "options": {"horizn": 3}})
    with pytest.raises(UsageError, match="options.horizon must be an integer"):
        RunConfig.from_dict({"task": toy.name, "options": {"horizon": "3"}})


def test_flags_come_from_options_and_belong_to_their_task(toy, monkeypatch):
    from lstmkit.train import config
    monkeypatch.setitem(config.PRESETS, "toy-default", (toy.name, "toy", {}))
    monkeypatch.setattr(toy, "default_preset", "toy-default")
    args = build_parser().parse_args(["train", toy.name, "--horizon", "4", "--no-direct", "--fill", "ffill"])
    cfg = resolve_config(args)
    assert (cfg.options.horizon, cfg.options.direct, cfg.options.fill) == (4, False, "ffill")
    args = build_parser().parse_args(["train", "charlm", "--horizon", "4"])
    with pytest.raises(UsageError, match="--horizon is an option of (.*, )?toy-opts(, .*)?, not of charlm"):
        resolve_config(args)


def test_choices_are_checked(toy):
    from lstmkit.train.config import validate
    cfg = RunConfig.from_dict({"task": toy.name, "options": {"fill": "backfill"}})
    with pytest.raises(UsageError, match="unknown fill 'backfill'; expected one of: none, ffill"):
        validate(cfg)

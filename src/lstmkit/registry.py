"""One registry of cell variants. It drives the modules, the CLI, the tests and the benchmarks.

Each variant is a name bound to a family (``lstm``, ``gru`` or ``rnn``) and a
default *spec*: a frozen dataclass of options understood by that family's step
function (see ``lstmkit.cells``). Adding a variant means registering one spec.

Two more families are whole architectures rather than options of a step function:
``clockwork`` (Koutník et al. 2014) and ``grid`` (Kalchbrenner et al. 2015). They are
registered here too, so ``make_layer``, ``--cell`` and ``lstmkit info`` reach them; their
modules (``lstmkit.ClockworkRNN``, ``lstmkit.GridLSTM``) own their time loops.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CELL_FAMILIES = ("lstm", "gru", "rnn")  # a spec + step function run by the shared time loop
ARCHITECTURES = ("clockwork", "grid")  # modules with their own loops (lstmkit.layers.clockwork, .grid)
FAMILIES = CELL_FAMILIES + ARCHITECTURES


@dataclass(frozen=True)
class Variant:
    name: str
    family: str  # one of FAMILIES: which module class (and step function) runs it
    spec: Any  # the family's spec dataclass with this variant's default options
    summary: str  # one line for `lstmkit info` and docs/variants.md
    reference: str  # paper (and section) the equations come from
    torch_equivalent: str | None = None  # torch.nn module it matches exactly, if any


_VARIANTS: dict[str, Variant] = {}


def register(variant: Variant) -> Variant:
    if variant.family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {variant.family!r}")
    if variant.name in _VARIANTS:
        raise ValueError(f"variant {variant.name!r} is already registered")
    _VARIANTS[variant.name] = variant
    return variant


def variants(family: str | None = None) -> list[str]:
    """Names of the registered variants, optionally only those of one family."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}; got {family!r}")
    return [n for n, v in _VARIANTS.items() if family is None or v.family == family]


def get_variant(name: str, family: str | None = None) -> Variant:
    """Look a variant up by name; the error lists the known names."""
    known = variants(family)
    if not isinstance(name, str) or name not in known:
        where = f" for {family.upper()}" if family else ""
        raise ValueError(f"unknown variant {name!r}{where}; expected one of: {', '.join(known)}")
    return _VARIANTS[name]

"""``lstmkit info``: the registered variants, one line each."""
from __future__ import annotations

from ..registry import get_variant, variants


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="list the registered cell variants")
    p.set_defaults(run=run)


def run(args) -> int:
    print("variants (--cell / variant=):")
    for name in variants():
        v = get_variant(name)
        torch = f"  [= {v.torch_equivalent}]" if v.torch_equivalent else ""
        print(f"  {name:<9} {v.family:<4}  {v.summary}{torch}")
    return 0

"""``lstmkit info``: the registered variants, tasks and presets, one line each."""
from __future__ import annotations

from ..registry import get_variant, variants


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="list the cell variants, tasks and presets")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..tasks import get_task, tasks
    from ..train.config import PRESETS

    print("variants (--cell / variant=):")
    for name in variants():
        v = get_variant(name)
        torch = f"  [= {v.torch_equivalent}]" if v.torch_equivalent else ""
        print(f"  {name:<9} {v.family:<9}  {v.summary}{torch}")
    print("tasks (lstmkit train TASK):")
    for name in tasks():
        t = get_task(name)
        print(f"  {name:<15} {t.summary}  [default preset {t.default_preset}]")
    print("presets (--preset):")
    for name, (task, summary, _) in PRESETS.items():
        print(f"  {name:<20} {task:<15} {summary}")
    return 0

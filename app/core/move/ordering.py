"""The order tables are read in: every parent before its children, by the target's foreign keys.

Preflight needs it, not the copy: the copy adds the foreign keys back once every row is in, so
the server never sees a child before its parent. Reading parents first is what lets preflight
know, when it reads a child, whether its parent is in the source and whether it was rejected.
Tables that refer to each other in a cycle have no such order: the references that point forward
in the order are left to the server, which checks them when the keys are added back, before
COMMIT (an orphan there fails the move as a whole, with the server's words, and leaves nothing).
"""
from __future__ import annotations


def order_tables(plans: dict) -> tuple[list, list[str]]:
    """(plans parents first, the tables that refer to each other in cycles): Kahn's algorithm, ties by name."""
    parents = {name: {fk.parent for fk in plan.target.foreign_keys if fk.parent in plans and fk.parent != name}
               for name, plan in plans.items()}
    ordered, done = [], set()
    while True:
        ready = sorted(name for name in plans if name not in done and parents[name] <= done)
        if not ready:
            break
        ordered.extend(plans[name] for name in ready)
        done.update(ready)
    left = sorted(set(plans) - done)
    ordered.extend(plans[name] for name in left)
    return ordered, left

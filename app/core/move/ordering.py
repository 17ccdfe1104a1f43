"""The order tables are written in: every parent before its children, by the target's foreign keys.

A table that refers to itself needs no order: its one COPY is checked at its end. Tables that refer to each other
in a cycle can be written in any order only when every foreign key in the cycle is DEFERRABLE
(checked at COMMIT); otherwise the move is refused, naming them: Cutover never turns a key off.
"""
from __future__ import annotations


def order_tables(plans: dict) -> tuple[list, list[str]]:
    """(plans parents first, problems): Kahn's algorithm, ties broken by name."""
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
    if not left:
        return ordered, []
    strict = sorted({f"{name}.{fk.name}" for name in left for fk in plans[name].target.foreign_keys
                     if fk.parent in left and fk.parent != name and not fk.deferrable})
    ordered.extend(plans[name] for name in left)
    if not strict:
        return ordered, []
    return ordered, [f"tables {', '.join(left)} refer to each other in a cycle and these foreign keys are not "
                     f"DEFERRABLE: {', '.join(strict)}; no order writes every parent first. Declare them "
                     "DEFERRABLE INITIALLY DEFERRED in the target's schema (checked at COMMIT), then move again."]

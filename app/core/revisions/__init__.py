"""The application's own Alembic revisions as Cutover plans (see docs/ARCHITECTURE.md).

runner: asks app/alembic_runner.py, in the application's interpreter, about the revisions;
graph: the revision graph, the environment's stamp, what is pending and where a target lies;
compiling: the pending revisions rendered into one PlanSet, which the existing machinery
(rehearsal, apply in one transaction, checks) runs unchanged.
"""

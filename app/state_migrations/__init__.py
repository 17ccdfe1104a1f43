"""The dashboard's own schema as Alembic revisions (versions/), applied at every start by
app/state_schema.py; `flask --app run db revision --autogenerate -m "..."` writes the next one.

How every Alembic context of the state database is configured lives here, beside the revisions,
so env.py (run by Alembic) and the start-up (app/state_schema.py) read the same options."""
from __future__ import annotations

# Not Alembic's default alembic_version: a PostgreSQL state database may share its schema with
# an application that keeps its own revisions there.
VERSION_TABLE = "cutover_state_version"


def migration_options() -> dict:
    """At start and for a developer's `flask db` alike: the models to compare with, the version
    table, SQLite's table rebuilds."""
    from app.extensions import db

    return {"target_metadata": db.metadata, "version_table": VERSION_TABLE, "render_as_batch": True,
            "compare_type": True}

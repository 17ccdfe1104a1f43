"""Alembic's entry into the dashboard's schema.

At start Cutover hands it a connection already inside the migration's transaction (and lock):
config.attributes["connection"]. A developer's `flask --app run db ...` (Flask-Migrate) has none:
the app's engine is used, with the same options."""
from alembic import context

from app.state_migrations import migration_options

config = context.config


def run_migrations(connection) -> None:
    context.configure(connection=connection, **migration_options(), **config.attributes.get("options", {}))
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("The dashboard's schema has no offline (--sql) mode: Cutover applies its revisions at start.")
if config.attributes.get("connection") is not None:
    run_migrations(config.attributes["connection"])
else:
    from flask import current_app

    def no_empty_revision(_context, _revision, directives):
        if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
            directives[:] = []
            print("The models and the revisions agree: no revision written.")

    config.attributes.setdefault("options", {})["process_revision_directives"] = no_empty_revision
    with current_app.extensions["migrate"].db.engine.connect() as developer_connection:
        run_migrations(developer_connection)

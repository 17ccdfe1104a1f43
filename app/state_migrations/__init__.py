"""The dashboard's own schema as Alembic revisions (versions/), applied at every start by
app/state_schema.py; `flask --app run db revision --autogenerate -m "..."` writes the next one."""

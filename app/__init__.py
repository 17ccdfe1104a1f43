"""Cutover: the dashboard's factory (app.factory), its services, and a pure core (app.core).

`create_app` is loaded on first use, so importing the core, or any module that does not need
the dashboard, never loads Flask.
"""


def __getattr__(name: str):
    if name == "create_app":
        from app.factory import create_app

        return create_app
    raise AttributeError(f"module 'app' has no attribute {name!r}")

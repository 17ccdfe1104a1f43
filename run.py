"""Create the app and serve it: `python run.py` (the one command a newcomer runs).

`flask --app run cutover ...` imports this module too, for the headless CLI.
"""
import sys

from app import create_app
from app.core.errors import CutoverError

try:
    app = create_app()
except CutoverError as error:
    # A bad cutover.toml stops start-up with one clear line, not a traceback.
    print(f"cutover: {error.message}", file=sys.stderr)
    sys.exit(error.exit_code)


def serve() -> None:
    from app.server import serve_forever

    serve_forever(app)


if __name__ == "__main__":
    serve()

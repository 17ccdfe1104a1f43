"""The real server (`python run.py`, gunicorn gthread) under abuse: what one instance or one
client does never takes the dashboard away from the others."""
from __future__ import annotations

from pathlib import Path

from tests.faults.server import RunPy, get


def control_sockets(*folders: Path) -> list[Path]:
    return sorted(path for folder in folders for path in folder.rglob("*") if path.is_socket())


def test_two_servers_share_no_control_socket_and_one_stopping_leaves_the_other_whole(tmp_path, demo_config):
    """gunicorn's default control socket is one path per user ($XDG_RUNTIME_DIR/gunicorn.ctl or
    ~/.gunicorn/gunicorn.ctl): a second instance took it over and the first one's exit deleted it."""
    home, runtime = tmp_path / "home", tmp_path / "runtime"
    home.mkdir(), runtime.mkdir()
    shared = {"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    first = RunPy(tmp_path / "first", demo_config, shared)
    try:
        second = RunPy(tmp_path / "second", demo_config, shared)
        try:
            assert control_sockets(home, runtime, first.folder, second.folder) == []
            first.stop()
            assert first.process.returncode is not None
            assert get(second.port, "/login")[0] == 200
            assert control_sockets(home, runtime, second.folder) == []
        finally:
            second.stop()
    finally:
        first.stop()

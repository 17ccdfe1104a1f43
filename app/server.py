"""Serve the app with gunicorn: one process (the run registry and scheduler live in memory),
many threads (each live log viewer holds one)."""
from __future__ import annotations

import gc

from flask import Flask
from gunicorn.app.base import BaseApplication


class CutoverServer(BaseApplication):
    def __init__(self, app: Flask, options: dict):
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self.application


def server_options(app: Flask) -> dict:
    host, port = app.config["CUTOVER_HOST"], app.config["CUTOVER_PORT"]
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return {
        "bind": bind,
        "workers": 1,
        "worker_class": "gthread",
        "threads": app.config["CUTOVER_THREADS"],
        # Log streams stay open for a whole cutover; gthread's timeout is only a heartbeat.
        "timeout": 120,
        "graceful_timeout": 10,
        "accesslog": "-",
        "loglevel": "info",
        # gunicorn's control socket (for gunicornc, which Cutover does not use) is one path per
        # user: a second dashboard took it over and the first one's exit deleted it.
        "control_socket_disable": True,
        # The monitoring scheduler runs in the worker (where the app lives), exactly once.
        "post_worker_init": lambda worker: worker_ready(app),
    }


def worker_ready(app: Flask) -> None:
    start_scheduler(app)
    # Everything loaded so far lives as long as the process: keep it out of the garbage
    # collector's full passes, which otherwise stopped every thread (pages, live logs) for
    # 50-90 ms each (bench/bench_sse.py).
    gc.freeze()


def start_scheduler(app: Flask) -> None:
    from app.monitor import MonitorScheduler

    app.extensions["cutover.scheduler"] = MonitorScheduler(app, app.config["CUTOVER_MONITOR_POLL_SECONDS"]).start()


def serve_forever(app: Flask) -> None:
    options = server_options(app)
    print(f"Cutover is serving on http://{options['bind']}/  (Ctrl+C to stop)", flush=True)
    CutoverServer(app, options).run()

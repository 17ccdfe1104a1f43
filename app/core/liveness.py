"""Is the application alive after a migration? Process, port, health URL and log probes.

Each probe returns a CheckResult and never raises: an unreachable port, a refused or
timed-out health URL, a missing log file are failed checks carrying the reason. Used by
the post-migration watch, where we want the application UP (the opposite of the
pre-restore "is anything still running?" question in processes.py).

The log is read incrementally: the caller keeps the byte offset returned by one scan and
passes it to the next, so no line is reported twice. Only complete lines are read (a
partial last line waits for its newline), and a file shorter than the offset is taken as
rotated or truncated and read again from the start.
"""
from __future__ import annotations

import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path

from app.core.checks import CheckResult
from app.core.engines import engine_for
from app.core.processes import application_running
from app.core.workspace import AppHooks

CMDLINE_WIDTH = 120  # characters of a command line shown in evidence
LOG_LINE_WIDTH = 300  # characters of one log line kept
LOG_LINES_KEPT = 20  # error lines kept per scan (the count gives the total)
DEFAULT_MAX_BYTES = 8 * 1024 * 1024


def _elapsed_ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def _truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# --- processes -------------------------------------------------------------------------


def process_check(target, patterns) -> CheckResult:
    """Passes when a process matches one of `patterns` or holds the database open."""
    started = time.monotonic()
    target = engine_for(target)
    patterns = [p for p in (patterns or ()) if p]
    try:
        running = application_running(target, patterns)
    except OSError as error:  # /proc unreadable: report it rather than guess
        return CheckResult(name="application_process", passed=False,
                           summary=f"could not list processes: {error}",
                           duration_ms=_elapsed_ms(started))
    # A pid both holding the file and matching a pattern is reported with "holds ...".
    holders = sum(1 for info in running if info.reason.startswith("holds "))
    evidence = tuple(f"pid {info.pid} ({info.reason}): {_truncate(info.cmdline, CMDLINE_WIDTH)}"
                     for info in running)
    if running:
        summary = (f"{len(running)} application process{'es' if len(running) != 1 else ''}"
                   f" running ({holders} holding the database open)")
    else:
        looked_for = ", ".join(f'"{p}"' for p in patterns) or "no patterns"
        summary = (f"no application process running (looked for {looked_for} "
                   f"and for processes holding {target.label} open)")
    return CheckResult(name="application_process", passed=bool(running), summary=summary,
                       evidence=evidence, duration_ms=_elapsed_ms(started))


# --- port ------------------------------------------------------------------------------


def port_check(port, host: str = "127.0.0.1", timeout: float = 1.0) -> CheckResult:
    """Passes when a TCP connection to host:port succeeds within `timeout` seconds."""
    started = time.monotonic()
    where = f"{host}:{port}"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except socket.timeout:
        reason = f"no answer within {timeout:g} s"
    except ConnectionRefusedError:
        reason = "connection refused (nothing listening)"
    except (OSError, OverflowError, ValueError, TypeError) as error:
        reason = str(error) or type(error).__name__
    else:
        ms = _elapsed_ms(started)
        return CheckResult(name="application_port", passed=True,
                           summary=f"{where} accepts connections",
                           evidence=(f"connected in {ms} ms",), duration_ms=ms)
    return CheckResult(name="application_port", passed=False,
                       summary=f"cannot connect to {where}: {reason}",
                       duration_ms=_elapsed_ms(started))


# --- health URL ------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeResult:
    check: CheckResult
    latency_ms: float | None  # time to the response headers; None when nothing answered
    status: int | None  # HTTP status; None when nothing answered


# Health checks go straight to the application: no proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def probe_health_url(url: str, timeout: float = 5.0) -> ProbeResult:
    """GET `url`; passes on a 2xx status. Never raises."""
    started = time.monotonic()

    def failed(reason: str, status: int | None = None, latency: float | None = None):
        evidence = () if status is None else (f"status {status}", f"latency {latency} ms")
        check = CheckResult(name="health_url", passed=False, summary=f"{url}: {reason}",
                            evidence=evidence, duration_ms=_elapsed_ms(started))
        return ProbeResult(check=check, latency_ms=latency, status=status)

    try:
        parts = urllib.parse.urlsplit(str(url))
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        return failed("not a valid http(s) URL")
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            latency = _elapsed_ms(started)
            status = response.status
    except urllib.error.HTTPError as error:  # 4xx/5xx (and unfollowed 3xx)
        latency = _elapsed_ms(started)
        error.close()
        return failed(f"HTTP {error.code} {error.reason}", error.code, latency)
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return failed(f"no response within {timeout:g} s")
        if isinstance(reason, ConnectionRefusedError):
            return failed("connection refused (nothing listening)")
        if isinstance(reason, socket.gaierror):
            return failed(f"host not found ({reason.strerror or reason})")
        return failed(f"unreachable ({reason})")
    except (socket.timeout, TimeoutError):
        return failed(f"no response within {timeout:g} s")
    except (HTTPException, OSError, ValueError) as error:
        return failed(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)
    evidence = (f"status {status}", f"latency {latency} ms")
    if 200 <= status < 300:
        check = CheckResult(name="health_url", passed=True,
                            summary=f"{url} answered {status} in {latency} ms",
                            evidence=evidence, duration_ms=_elapsed_ms(started))
        return ProbeResult(check=check, latency_ms=latency, status=status)
    return failed(f"HTTP {status}", status, latency)


def health_url_check(url: str, timeout: float = 5.0) -> CheckResult:
    return probe_health_url(url, timeout).check


# --- log -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogScan:
    offset_after: int  # where the next scan starts (after the last complete line read)
    error_lines: tuple[str, ...] = ()  # the first LOG_LINES_KEPT matching lines
    matched: int = 0  # every matching line, kept or not
    rotated: bool = False  # the file was shorter than the offset: read again from 0
    error: str | None = None  # the log could not be read (offset_after is unchanged)


def scan_log(path, patterns, *, offset: int = 0,
             max_bytes: int = DEFAULT_MAX_BYTES) -> LogScan:
    """New complete lines of `path` from `offset` containing one of `patterns`."""
    offset = max(0, int(offset))
    wanted = [p for p in (patterns or ()) if p]
    try:
        with open(path, "rb") as log:
            size = os.fstat(log.fileno()).st_size
            rotated = size < offset
            if rotated:
                offset = 0
            log.seek(offset)
            data = log.read(max(1, int(max_bytes)))
    except FileNotFoundError:
        return LogScan(offset_after=offset, error=f"log file {path} does not exist")
    except IsADirectoryError:
        return LogScan(offset_after=offset, error=f"{path} is a directory, not a log file")
    except PermissionError:
        return LogScan(offset_after=offset, error=f"no permission to read {path}")
    except OSError as error:
        return LogScan(offset_after=offset, error=f"cannot read {path}: {error}")
    end = data.rfind(b"\n")
    if end >= 0:
        complete = data[: end + 1]
    elif len(data) >= max_bytes:
        complete = data  # one line longer than max_bytes: take it rather than stall
    else:
        complete = b""  # a partial line: wait for its newline
    kept, matched = [], 0
    for raw in complete.splitlines():
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if any(p in line for p in wanted):
            matched += 1
            if len(kept) < LOG_LINES_KEPT:
                kept.append(_truncate(line, LOG_LINE_WIDTH))
    return LogScan(offset_after=offset + len(complete), error_lines=tuple(kept),
                   matched=matched, rotated=rotated)


def log_check(path, patterns, offset: int = 0) -> tuple[CheckResult, int]:
    """Fails on any new error line since `offset`; returns the check and the new offset."""
    started = time.monotonic()
    scan = scan_log(path, patterns, offset=offset)
    if scan.error is not None:
        return CheckResult(name="application_log", passed=False, summary=scan.error,
                           duration_ms=_elapsed_ms(started)), scan.offset_after
    note = " (the log was rotated or truncated: read from the start)" if scan.rotated else ""
    if scan.matched:
        evidence = list(scan.error_lines)
        if scan.matched > len(evidence):
            evidence.append(f"… and {scan.matched - len(evidence)} more")
        summary = (f"{scan.matched} new error line{'s' if scan.matched != 1 else ''} "
                   f"in {path}{note}")
        return CheckResult(name="application_log", passed=False, summary=summary,
                           evidence=tuple(evidence),
                           duration_ms=_elapsed_ms(started)), scan.offset_after
    return CheckResult(name="application_log", passed=True,
                       summary=f"no new error lines in {path}{note}",
                       duration_ms=_elapsed_ms(started)), scan.offset_after


# --- all of them -----------------------------------------------------------------------


def liveness_checks(hooks: AppHooks, target, *,
                    log_offset: int = 0) -> tuple[list[CheckResult], dict]:
    """The configured probes (an unconfigured one gives no entry) and measurements."""
    checks: list[CheckResult] = []
    measurements = {"health_latency_ms": None, "log_offset": log_offset}
    if hooks.process_patterns:
        checks.append(process_check(target, hooks.process_patterns))
    if hooks.port is not None:
        checks.append(port_check(hooks.port))
    if hooks.health_url:
        probe = probe_health_url(hooks.health_url)
        checks.append(probe.check)
        measurements["health_latency_ms"] = probe.latency_ms
    if hooks.log_file is not None:
        check, new_offset = log_check(Path(hooks.log_file), hooks.log_error_patterns,
                                      log_offset)
        checks.append(check)
        measurements["log_offset"] = new_offset
    return checks, measurements

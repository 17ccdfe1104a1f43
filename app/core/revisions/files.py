"""The application's Alembic project as files: what a sign-off pins without running anything."""
from __future__ import annotations

import configparser
import hashlib
from pathlib import Path

from app.core.errors import AlembicError
from app.core.workspace import AlembicSettings


def script_folder(settings: AlembicSettings) -> Path:
    parser = configparser.ConfigParser(defaults={"here": str(settings.ini.parent)})
    try:
        parser.read(settings.ini, encoding="utf-8")
        location = parser.get("alembic", "script_location")
    except (configparser.Error, OSError) as exc:
        raise AlembicError(f"{settings.ini} names no usable script_location ({exc}).") from None
    folder = Path(location)
    return folder if folder.is_absolute() else settings.ini.parent / folder


def project_digest(settings: AlembicSettings) -> str:
    """SHA-256 over alembic.ini and every .py file of its script folder (names and contents)."""
    digest = hashlib.sha256()
    try:
        files = [settings.ini] + sorted(script_folder(settings).rglob("*.py"))
        for path in files:
            digest.update(str(path.relative_to(settings.ini.parent) if path.is_relative_to(settings.ini.parent)
                              else path).encode() + b"\0" + path.read_bytes() + b"\0")
    except OSError as exc:
        raise AlembicError(f"The Alembic project at {settings.ini} cannot be read ({exc.strerror}).") from None
    return digest.hexdigest()

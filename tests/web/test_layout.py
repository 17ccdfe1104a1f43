"""The layering rule of the code base (kept from the former tests/web/test_security.py)."""
from pathlib import Path


def test_core_never_imports_flask_or_models():
    for path in Path("app/core").rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import ", "from ")):
                assert "flask" not in stripped and "app.models" not in stripped, (path, line)

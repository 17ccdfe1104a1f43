"""The layering rule of the code base (kept from the former tests/web/test_security.py)."""
from pathlib import Path


def test_core_never_imports_flask_or_models():
    for path in Path("app/core").rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import ", "from ")):
                assert "flask" not in stripped and "app.models" not in stripped, (path, line)


def test_every_template_is_compiled_before_the_first_request(app):
    from app.server import compile_templates
    app.jinja_env.cache.clear()
    compile_templates(app)
    names = app.jinja_env.list_templates(extensions=("html",))
    assert len(names) > 20 and len(app.jinja_env.cache) >= len(names)

"""The rules of ARCHITECTURE.md, read off the source: imports go one way, the domain is free of
frameworks, and each outside library is used in one place."""

from __future__ import annotations

import ast
import re
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"

# Lowest first. A module may import from its own layer and the ones below it, never above.
LAYERS: list[tuple[str, ...]] = [
    ("app.domain", "app.secrets_and_origins", "app.settings", "app.logs", "app.processes"),
    ("app.events",),
    ("app.protocols",),
    ("app.metrics",),
    ("app.db", "app.agent"),
    ("app.runs.live", "app.runs"),
    ("app.runs.ending",),
    ("app.runs.log.base", "app.runs.record.base"),
    ("app.runs.log", "app.runs.record"),
    ("app.runs.reading",),
    ("app.runs.registry",),
    ("app.runs.recovery",),
    ("app.chat", "app.answer", "app.tasks"),
    (
        "app.web.errors",
        "app.web.schemas",
        "app.web.jwks",
        "app.web.auth",
        "app.web.access_log",
        "app.web.streaming",
        "app.web.state",
        "app.web.requests",
    ),
    ("app.web.openapi.operation",),
    ("app.web.routes",),
    ("app.web.route_table", "app.web.openapi"),
    ("app.main", "app.http_protocol", "app.__main__"),
]

# Each outside library, and the only modules that may import it.
CONFINED = {
    "jose": ("app.web.auth",),
    "sse_starlette": ("app.web.streaming",),
    "prometheus_client": ("app.metrics",),
    "redis": ("app.runs.log.redis_streams",),
    "agents": ("app.agent",),
    "openai": ("app.agent",),
    "starlette": ("app.web", "app.main"),
    "uvicorn": ("app.http_protocol", "app.__main__"),
}

FRAMEWORK_FREE = ("app.domain", "app.events")

# What a wire protocol may not use: it translates, and does no I/O (app/protocols/base.py).
NOT_IN_PROTOCOLS = (
    "starlette",
    "sse_starlette",
    "uvicorn",
    "httpx",
    "sqlalchemy",
    "asyncpg",
    "redis",
    "app.db",
    "app.web",
    "app.runs",
)
# What reaches a database (a client library, or our own PostgreSQL package).
DATABASE_CLIENTS = ("app.db", "sqlalchemy", "asyncpg", "redis")
# The run engine's modules that work in this process alone: the interfaces, the writer, the
# in-memory backends. Every other module of app.runs.log and app.runs.record is a backend.
IN_PROCESS = (
    "app.runs.log",
    "app.runs.log.base",
    "app.runs.log.writer",
    "app.runs.log.memory",
    "app.runs.record",
    "app.runs.record.base",
    "app.runs.record.memory",
)


def _modules() -> dict[str, set[str]]:
    """Every module of the app, with what it imports (absolute names). A package whose
    `__init__` imports nothing is no module of its own here: it has no import to check."""
    return {name: {module for module, _ in imported} for name, imported in _imports().items()}


def _imports() -> dict[str, set[tuple[str, str]]]:
    """Every module of the app, with each (module, name) it imports; the name is "" for a
    whole module."""
    found: dict[str, set[tuple[str, str]]] = {}
    for path in APP.rglob("*.py"):
        parts = path.relative_to(APP.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        imported: set[tuple[str, str]] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update((alias.name, "") for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.update((node.module, alias.name) for alias in node.names)
        imported.discard(("__future__", "annotations"))
        if imported or parts[-1] != "__init__":
            found[name] = imported
    return found


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def _layer(module: str) -> int:
    """The layer of the longest prefix that holds the module (`app.runs.registry` is not in
    the layer of `app.runs`, the package's own module)."""
    held = [
        (len(prefix), index)
        for index, prefixes in enumerate(LAYERS)
        for prefix in prefixes
        if _within(module, (prefix,))
    ]
    if not held:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")
    return max(held)[1]


def _is_engine_backend(module: str) -> bool:
    return _within(module, ("app.runs.log", "app.runs.record")) and module not in IN_PROCESS


def test_imports_go_one_way() -> None:
    upward = [
        f"{module} imports {target}"
        for module, imported in _modules().items()
        for target in imported
        if target.startswith("app.") and _layer(target) > _layer(module)
    ]
    assert upward == []


def test_each_outside_library_is_used_in_one_place() -> None:
    strays = [
        f"{module} imports {target}"
        for module, imported in _modules().items()
        for target in imported
        for library, allowed in CONFINED.items()
        if _within(target, (library,)) and not _within(module, allowed)
    ]
    assert strays == []


def test_the_domain_and_the_events_use_nothing_but_the_standard_library() -> None:
    modules = _modules()
    for module in FRAMEWORK_FREE:
        outside = {
            target.split(".")[0]
            for target in modules[module]
            if not target.startswith("app.") and target != "__future__"
        }
        assert outside <= {
            "dataclasses",
            "datetime",
            "enum",
            "typing",
            "json",
            "collections",
            "re",
            "hashlib",
        }, (
            module,
            outside,
        )


def test_every_module_has_a_layer() -> None:
    for module in _modules():
        _layer(module)


def test_the_protocols_import_no_web_framework_and_no_database() -> None:
    strays = [
        f"{module} imports {target}"
        for module, imported in _modules().items()
        if _within(module, ("app.protocols",))
        for target in imported
        if _within(target, NOT_IN_PROTOCOLS)
    ]
    assert strays == []


def test_no_module_imports_another_modules_private_names() -> None:
    strays = [
        f"{module} imports {name} from {target}"
        for module, imported in _imports().items()
        for target, name in imported
        if target.startswith("app.") and name.startswith("_")
    ]
    assert strays == []


def test_the_run_engine_reaches_a_database_only_through_its_log_backends_and_the_record() -> None:
    """app/runs/ reaches a database only through its log backends (`app.runs.log.postgres`…)
    and the record's implementation (`app.runs.record.postgres`); the registry, recovery, the
    writer and the in-memory backends import no database client, so they run without one."""
    strays = [
        f"{module} imports {target}"
        for module, imported in _modules().items()
        if _within(module, ("app.runs",)) and not _is_engine_backend(module)
        for target in imported
        if _within(target, DATABASE_CLIENTS)
    ]
    assert strays == []
    assert "app.runs.log.postgres" in _modules() and _is_engine_backend("app.runs.log.postgres")


def test_only_the_postgres_event_log_reaches_the_run_events_table() -> None:
    users = sorted(
        module
        for module, imported in _modules().items()
        if "app.db.repositories.run_events" in imported
    )
    assert users == ["app.runs.log.postgres"]


MODULE_LINES_AT_MOST = 400
ROOT = APP.parent
# Where the project's code is: its own comments must read without the tracker at hand.
CODE = ("app", "tools", "tests")


def _code_files() -> list[Path]:
    return [
        path
        for folder in CODE
        for path in sorted((ROOT / folder).rglob("*.py"))
        if "node_modules" not in path.parts
    ]


def test_the_code_names_no_issue_numbers() -> None:
    """Comments say why; which issue asked for a change is the history's (git log, docs/)."""
    mentions = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _code_files()
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"\bissues? \d+", line, re.IGNORECASE)
    ]
    assert mentions == []


def test_no_module_of_the_app_or_its_tools_is_over_400_lines() -> None:
    """A room a newcomer reads top to bottom; past this it holds two things."""
    long = {
        str(path.relative_to(ROOT)): lines
        for folder in (APP, ROOT / "tools")
        for path in sorted(folder.rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > MODULE_LINES_AT_MOST
    }
    assert long == {}

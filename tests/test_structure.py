"""The test suite's own structure: a test module never imports another test module. What several test modules
share lives in support modules (not named test_*.py) and fixtures in a conftest.py."""
from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _is_test_module(dotted: str) -> bool:
    return any(part.startswith("test_") for part in dotted.split("."))


def imported_test_modules(path: Path) -> list[str]:
    """The test modules `path` imports (absolute, `from tests import test_x`, or relative), at any depth."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if _is_test_module(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if _is_test_module(module):
                found.append(("." * node.level) + module)
            elif module == "tests" or module.startswith("tests.") or node.level:
                found += [f"{'.' * node.level}{module + '.' if module else ''}{alias.name}" for alias in node.names
                          if alias.name.startswith("test_")]
    return found


def test_no_test_module_imports_another() -> None:
    offenders = {str(path.relative_to(TESTS.parent)): imports
                 for path in sorted(TESTS.rglob("*.py")) if (imports := imported_test_modules(path))}
    assert offenders == {}


def test_support_modules_do_not_import_the_conftest() -> None:
    """tests/conftest.py imports the support modules (its fixtures are built with them), never the reverse."""
    importers = []
    for path in sorted(TESTS.rglob("*.py")):
        if path.name.startswith("test_") or path.name == "conftest.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            if "tests.conftest" in names:
                importers.append(str(path.relative_to(TESTS.parent)))
    assert importers == []


# --- the project's own imports: no circle, counting the imports inside functions --------------------------------

PROJECT = TESTS.parent
PACKAGES = ("backend", "mobile", "migration", "bench")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((PROJECT / package).rglob("*.py")):
            dotted = ".".join(path.relative_to(PROJECT).with_suffix("").parts)
            found[dotted.removesuffix(".__init__")] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module → the project's modules it imports, at module level or inside a function (a late import is an
    edge like any other: it only hides the order from the reader). ``from a.b import c`` names ``a.b.c`` if
    it is a module, and ``a.b`` (running a package's ``__init__``); a module importing its own package is not
    an edge (Python has already run it)."""
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            else:
                continue
            for target in targets:
                resolved = resolve(target)
                own_package = module.startswith(f"{resolved}.") and modules.get(resolved, Path()).name == "__init__.py"
                if resolved and resolved != module and not own_package:
                    graph[module].add(resolved)
    return graph


def test_no_import_circle() -> None:
    """Which room is below which must be sayable: a circle of imports, even through a function, is a design
    error (tools → features → core; the app's screens → one transport)."""
    import graphlib

    try:
        order = list(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError as circle:
        raise AssertionError(f"an import circle: {' -> '.join(circle.args[1])}") from None
    assert "backend.web" in order and "mobile.api.client" in order


def test_the_import_graph_sees_late_imports() -> None:
    graph = import_graph()
    assert "backend.notifications.tasks" in graph["backend.notifications"]   # imported inside init_app


def _calls(path: Path) -> set[str]:
    """The names of the functions ``path`` calls (``decide(…)``, ``policy.decide(…)`` both count as ``decide``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            names.add(func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else "")
    return names


def test_single_document_reads_go_through_authorize_document() -> None:
    """The routes that serve one document (the app's, a professional's, a connected service's) ask
    ``access.authorize_document``; none assembles the decision, the scope check and the trace by hand."""
    backend = TESTS.parent / "backend"
    routes = [backend / "records" / "documents" / "api.py", backend / "fhir" / "api.py",
              backend / "catalog" / "service_api.py"]
    named = {str(path.relative_to(backend)): path for path in routes}
    assert {name: "authorize_document" in _calls(path) for name, path in named.items()} == dict.fromkeys(named, True)
    assert {name: sorted(_calls(path) & {"decide", "permits", "get_document"}) for name, path in named.items()} == {
        name: [] for name in named}


def test_the_owner_scope_is_written_once() -> None:
    """What the holder sees of their own record is ``policy.owner_scope``: no other module spells it."""
    spelled = [str(path.relative_to(TESTS.parent)) for path in sorted((TESTS.parent / "backend").rglob("*.py"))
               if "see_masked=True)" in path.read_text(encoding="utf-8") and path.name != "policy.py"]
    assert spelled == []


def test_a_page_of_a_listing_is_made_by_page_of() -> None:
    """A listing's page (``items`` then ``next_cursor``) is ``web.page_of(item, name, **extra)``, not a schema
    written out by hand; and a page keeps its OpenAPI name (the class name it had)."""
    from backend.records.documents.schemas import DocumentPageOut

    backend = TESTS.parent / "backend"
    by_hand = []
    for path in sorted(backend.rglob("schemas.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef):
                fields = [t.id for a in node.body if isinstance(a, ast.Assign) for t in a.targets
                          if isinstance(t, ast.Name)]
                if fields[:2] == ["items", "next_cursor"]:
                    by_hand.append(f"{path.relative_to(backend)}:{node.name}")
    assert by_hand == []
    assert DocumentPageOut.__name__ == "DocumentPageOut"
    assert list(DocumentPageOut().fields)[:4] == ["items", "next_cursor", "total", "categories"]

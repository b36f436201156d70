"""The package's rooms keep their order: no upward import, no cycle, no private name shared.

Layers, lowest first; a module may import from its own layer and the ones below, never above.
Imports inside functions count too. Private names (a leading underscore) stay in their module,
except a package's own private kernel modules, which only its sibling modules import.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gapfit"
LAYERS = ["structures", "descriptors", "gp", "fit", "predict", "uncertainty", "md", "evaluate",
          "model", "active", "cli"]


def modules():
    """{dotted name: path} of every module of gapfit."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(name, path):
    """(imported module, imported names) of every ``from ... import`` in a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


def layer(module):
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def internal_edges():
    """(importer, imported module, names) for imports inside gapfit."""
    known = modules()
    for name, path in known.items():
        for target, names in imports(name, path):
            if not target.startswith("gapfit"):
                continue
            for imported in names or [None]:
                # "from package import module" names a module
                if imported and f"{target}.{imported}" in known:
                    yield name, f"{target}.{imported}", None
                else:
                    yield name, target, imported


def test_every_subpackage_is_a_listed_layer():
    found = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert found == set(LAYERS)


def test_no_module_imports_from_a_higher_layer():
    upward = [(a, b) for a, b, _ in internal_edges()
              if layer(a) is not None and layer(b) is not None and layer(b) > layer(a)]
    assert upward == []


def private(part):
    return part.startswith("_") and not part.startswith("__")


def test_no_private_name_is_imported_across_modules():
    known = modules()
    offences = []
    for importer, target, name in internal_edges():
        package = importer if known[importer].name == "__init__.py" else importer.rpartition(".")[0]
        if any(private(part) for part in target.split(".")) and target.rpartition(".")[0] != package:
            offences.append(f"{importer} imports the private module {target}")
        if name and private(name) and f"{target}.{name}" not in known:
            offences.append(f"{importer} imports {target}.{name}")
    assert sorted(set(offences)) == []


def test_modules_import_each_other_without_cycles():
    graph = {}
    known = modules()
    for importer, target, _ in internal_edges():
        if target in known and target != importer and not target.count(".") == 1 and \
                not known[target].name == "__init__.py":
            graph.setdefault(importer, set()).add(target)
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in graph.get(node, ()):
            if state.get(nxt) == "open":
                pytest.fail("import cycle: " + " -> ".join(trail + [node, nxt]))
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = "done"

    for node in list(graph):
        if node not in state:
            visit(node, [])

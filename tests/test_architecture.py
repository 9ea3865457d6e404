"""The import graph of src/valuescope (every import, those inside functions and ``TYPE_CHECKING`` blocks too):
no cycle, no import that runs back up the declared layer order, no import of another module's private name.

The layers, lowest first (docs/architecture.md); packages of one rank are siblings and do not import
each other. ``valuescope/__init__.py`` (lazy re-exports), ``__main__`` and ``cli`` sit on top.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "valuescope"

LAYERS: list[set[str]] = [
    {"core"},
    {"study"},
    {"design"},
    {"study.presets"},  # shipped studies, scaled down by the sizes of design's persona lists
    {"backends"},
    {"store"},
    {"execution", "analysis"},
    {"known_truth"},
    {"output"},
    {"cli", "__main__", "__init__"},
]
_TOP = {"cli", "__main__", "__init__"}  # one unit: the package's entry points


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1] if len(parts) > 1 else parts
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _imports(modules: dict[str, Path]) -> list[tuple[str, str, str | None, int]]:
    """(importer, imported module, imported name or None, line) for every import of valuescope code."""
    out = []
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                out += [(name, a.name, None, node.lineno) for a in node.names if a.name.split(".")[0] == PACKAGE]
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(name, is_package, node)
                if target.split(".")[0] != PACKAGE:
                    continue
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    if sub in modules:  # ``from package import module``
                        out.append((name, sub, None, node.lineno))
                    else:
                        out.append((name, target, a.name, node.lineno))
    return out


def _owner(modules: dict[str, Path], target: str) -> str:
    """The module an import resolves to (a dotted name may name an attribute of a module)."""
    while target not in modules and "." in target:
        target = target.rsplit(".", 1)[0]
    return target


def _layer(module: str) -> tuple[int, str]:
    """(rank, unit) of a module: the longest declared name that contains it."""
    parts = module.split(".")[1:] or ["__init__"]
    if parts[0] in _TOP:
        return len(LAYERS) - 1, "top"
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        for rank, names in enumerate(LAYERS):
            if name in names:
                return rank, name
    raise AssertionError(f"{module}: in no declared layer (add its package to LAYERS and docs/architecture.md)")


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for src, target, _, _ in _imports(modules):
        dst = _owner(modules, target)
        if dst != src and dst in modules:
            graph[src].add(dst)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _is_package_init(module: str, modules: dict[str, Path]) -> bool:
    return modules[module].name == "__init__.py"


def test_no_import_cycles():
    graph = _graph()
    modules = _modules()
    # a package's __init__ importing its own submodules, and a submodule importing its package, are one unit
    for m in list(graph):
        if _is_package_init(m, modules):
            graph[m] = {d for d in graph[m] if not d.startswith(m + ".")}
    assert _cycles(graph) == []


def test_no_upward_imports():
    modules = _modules()
    bad = []
    for src, target, _, line in _imports(modules):
        dst = _owner(modules, target)
        if src == PACKAGE:  # the lazy top-level exports
            continue
        (r_src, p_src), (r_dst, p_dst) = _layer(src), _layer(dst)
        if r_dst > r_src or (r_dst == r_src and p_src != p_dst):
            bad.append(f"{src}:{line} -> {dst}")
    assert bad == []


def test_no_private_names_of_other_modules():
    modules = _modules()
    bad = []
    for src, target, name, line in _imports(modules):
        owner = _owner(modules, target)
        # a private module (``metrics/_common.py``) is shared within its own package, not beyond it
        parts = owner.split(".")
        private_module = any(p.startswith("_") and not p.startswith("__") for p in parts[1:]) and not (
            src == ".".join(parts[:-1]) or src.startswith(".".join(parts[:-1]) + "."))
        private_name = name is not None and name.startswith("_") and not name.startswith("__")
        if (private_name or private_module) and owner != src:
            bad.append(f"{src}:{line} imports {target}{'.' + name if name else ''}")
    assert bad == []


# the command line is a thin layer over the Python API: besides its own modules it imports the API (``output``),
# the plain helpers of ``core`` (progress bar, failure lines), the version and the default results folder
CLI_MAY_IMPORT = ("valuescope.cli", "valuescope.output", "valuescope.core")
CLI_MAY_IMPORT_NAMES = {("valuescope", "__version__"), ("valuescope.study", "DEFAULT_DIR")}


def test_cli_calls_the_api_only():
    modules = _modules()
    bad = []
    for src, target, name, line in _imports(modules):
        if not (src == "valuescope.cli" or src.startswith("valuescope.cli.")):
            continue
        owner = _owner(modules, target)
        if owner.startswith(CLI_MAY_IMPORT) or (owner, name) in CLI_MAY_IMPORT_NAMES:
            continue
        bad.append(f"{src}:{line} -> {target}{'.' + name if name else ''}")
    assert bad == []


def test_every_package_is_in_a_layer():
    for module in _modules():
        _layer(module)


def test_no_private_attributes_of_other_modules():
    """``module._name`` through an imported module (``import valuescope.x as m``, ``from valuescope import x``)
    is an import of a private name too."""
    modules = _modules()
    bad = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == PACKAGE:
                        aliases[a.asname or a.name.split(".")[0]] = a.name
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(name, path.name == "__init__.py", node)
                for a in node.names:
                    if f"{target}.{a.name}" in modules:
                        aliases[a.asname or a.name] = f"{target}.{a.name}"
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name) and aliases.get(node.value.id, name) != name):
                bad.append(f"{name}:{node.lineno} {node.value.id}.{node.attr}")
    assert bad == []

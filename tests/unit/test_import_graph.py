"""The one-way import rules of the package layout, checked on the source with ast."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "servesim"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every servesim module a file imports (absolute or relative, at any depth of the code)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    mod = _module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.add(target)
            out.update(f"{target}.{a.name}" for a in node.names)
    return {m for m in out if m == "servesim" or m.startswith("servesim.")}


@functools.lru_cache(maxsize=1)
def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(PKG.rglob("*.py"))}


def _under(name: str, pkg: str) -> bool:
    return name == pkg or name.startswith(pkg + ".")


def _violations(rule) -> list[str]:
    return sorted(
        f"{mod} -> {imp}" for mod, imps in _graph().items() for imp in imps if rule(mod, imp)
    )


def test_import_graph_walks_every_module():
    graph = _graph()
    assert "servesim.cost.step" in graph and "servesim.specs" in graph
    assert "servesim.cost.ops" in graph["servesim.cost.step"]


def test_import_graph_cost_never_imports_sim():
    bad = _violations(lambda m, i: _under(m, "servesim.cost") and _under(i, "servesim.sim"))
    assert bad == []


# The spec loaders resolve catalog ids (name or alias -> file) with servesim.catalog.resolve,
# imported inside the loader functions. Tolerated until that resolver lives under specs/; nothing
# else outside specs is.
_SPECS_MAY_IMPORT = {"servesim.catalog", "servesim.catalog.resolve"}


def test_import_graph_specs_imports_only_specs():
    bad = _violations(
        lambda m, i: (
            _under(m, "servesim.specs")
            and not _under(i, "servesim.specs")
            and i not in _SPECS_MAY_IMPORT
        )
    )
    assert bad == []


def test_import_graph_cli_never_imports_sim_or_cost():
    bad = _violations(
        lambda m, i: (
            _under(m, "servesim.cli") and (_under(i, "servesim.sim") or _under(i, "servesim.cost"))
        )
    )
    assert bad == []


def _cost_face() -> set[str]:
    """The names servesim/cost/__init__.py exports (read from its source: the test imports nothing)."""
    tree = ast.parse((PKG / "cost" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(getattr(t, "id", "") == "_FACE" for t in targets):
            return {k.value for k in node.value.keys}
    raise AssertionError("servesim/cost/__init__.py defines no _FACE")


def test_import_graph_sim_reaches_cost_only_through_its_face():
    face = {"servesim.cost", *(f"servesim.cost.{n}" for n in _cost_face())}
    bad = _violations(
        lambda m, i: _under(m, "servesim.sim") and _under(i, "servesim.cost") and i not in face
    )
    assert bad == []


# DESIGN.md's layers, lowest first: a module imports only its own layer or lower ones.
LAYERS = (
    (
        "servesim.specs",
        "servesim._files",
        "servesim._callable",
        "servesim._progress",
        "servesim._face",
    ),
    ("servesim.cost", "servesim.workload"),
    ("servesim.sim",),
    ("servesim.accounting",),
    ("servesim.result", "servesim.analysis", "servesim.catalog"),
    ("servesim.studies", "servesim.training", "servesim.ui"),
    ("servesim.cli", "servesim.__main__"),
)
# Tolerated upward imports, each with its reason (anything new here needs one):
_UPWARD = {
    # the spec loaders resolve catalog ids with servesim.catalog.resolve (inside functions)
    ("servesim.specs", "servesim.catalog"),
    # `servesim list schedulers` reads the scheduler registry's docstrings
    ("servesim.catalog", "servesim.sim"),
}


def _layer(name: str) -> int | None:
    for rank, parts in enumerate(LAYERS):
        if any(_under(name, p) for p in parts):
            return rank
    return None  # the package face (servesim/__init__.py) sits above every layer


def _tolerated(mod: str, imp: str) -> bool:
    return any(_under(mod, a) and _under(imp, b) for a, b in _UPWARD)


def test_import_graph_every_module_has_a_layer():
    assert [m for m in _graph() if m != "servesim" and _layer(m) is None] == []


def test_import_graph_imports_go_down_the_layers():
    def upward(m: str, i: str) -> bool:
        lm, li = _layer(m), _layer(i)
        return lm is not None and li is not None and li > lm and not _tolerated(m, i)

    assert _violations(upward) == []


def _module_of(name: str) -> str | None:
    """The module a dotted import names (``servesim.cost.step_cost`` -> ``servesim.cost``)."""
    graph = _graph()
    while name and name not in graph:
        name = name.rpartition(".")[0]
    return name or None


def test_import_graph_has_no_cycle_between_modules():
    edges = {m: {_module_of(i) for i in imps} - {m, None} for m, imps in _graph().items()}
    # a package's __init__ that only documents or re-exports lazily is not a dependency
    edges = {m: {i for i in imps if not m.startswith(i + ".")} for m, imps in edges.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(edges.get(m, ())):
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n) :] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert cycles == []


def test_import_graph_studies_do_not_import_the_engine():
    """Studies run simulations through the public API (servesim.result), never sim/ directly."""
    bad = _violations(lambda m, i: _under(m, "servesim.studies") and _under(i, "servesim.sim"))
    assert bad == []


def test_moved_modules_keep_their_documented_paths():
    """servesim.bench, import servesim.plan, from servesim import metrics, ...: the moved module
    itself (one object under two names), with its own spec."""
    import importlib

    import servesim

    for old, new in servesim.MOVED.items():
        mod = importlib.import_module(old)
        assert mod is importlib.import_module(new)
        assert mod.__spec__.name == new and mod.__name__ == new
    from servesim.bench import bench_matrix  # a documented path

    assert bench_matrix.__module__ == "servesim.studies.bench"
    assert callable(servesim.bench) and callable(servesim.plan)


# The public faces the CLI may import from: the package (servesim/__init__.py's lazy API) and these
# packages' __init__ (each exports its public names in __all__); catalog.py is the catalogs' module.
_CLI_FACES = ("servesim", "servesim.specs", "servesim.studies", "servesim.training", "servesim.ui",
              "servesim.accounting", "servesim.catalog")  # fmt: skip
# Shared plumbing, not a layer's internals: atomic file writes and out-path checks, the progress bar.
_CLI_PLUMBING = ("servesim._files", "servesim._progress")


def _face_names(module: str) -> set[str]:
    """The public names of a face, read from its source: ``__all__`` (plus, for servesim itself,
    the lazy ``_EXPORTS``), else its top-level public functions."""
    path = PKG.parent / (module.replace(".", "/") + ".py")
    if not path.is_file():
        path = path.with_suffix("") / "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        else:
            targets = []
        for t in targets:
            if getattr(t, "id", "") == "__all__" and isinstance(node.value, ast.List):
                names |= {e.value for e in node.value.elts if isinstance(e, ast.Constant)}
            if getattr(t, "id", "") == "_EXPORTS" and isinstance(node.value, ast.Dict):
                names |= {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
    if not names:
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    return {n for n in names if not n.startswith("_") or n == "__version__"}


def test_cli_imports_only_public_names():
    """servesim/cli/* imports the package's faces and their exported names, its own modules and
    the shared plumbing; never a module behind a face (``servesim.studies.plan``)."""
    faces = {f: _face_names(f) for f in _CLI_FACES}

    def private(mod: str, imp: str) -> bool:
        if not _under(mod, "servesim.cli") or _under(imp, "servesim.cli"):
            return False
        if imp in faces or any(_under(imp, p) for p in _CLI_PLUMBING):
            return False
        face, _, name = imp.rpartition(".")
        return not (face in faces and name in faces[face])

    assert _violations(private) == []
    assert "format_plan" in faces["servesim.studies"] and "simulate" in faces["servesim"]

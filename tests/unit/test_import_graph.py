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


def test_import_graph_sim_reaches_cost_only_through_step_and_memory():
    allowed = ("servesim.cost", "servesim.cost.step", "servesim.cost.memory")
    bad = _violations(
        lambda m, i: _under(m, "servesim.sim") and _under(i, "servesim.cost") and not any(
            i == a or i.startswith("servesim.cost.step.") or i.startswith("servesim.cost.memory.") for a in allowed
        )
    )  # fmt: skip
    assert bad == []

"""The module arrows of DESIGN.md, checked by parsing imports (docs/internals.md has the table)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "instructkit"

LAYERS = {
    "errors": 0,
    "records": 1, "resources": 1, "images": 1.2,  # images uses records' reasons
    "formats": 2, "templates": 2, "llm": 2,
    "quality": 3, "testing": 3,
    "adapt": 4, "self_instruct": 4, "mix": 4, "train": 4,
    "pipeline": 5,
    "cli": 6,
    "__init__": 1.5, "__main__": 7,
}
HEAVY = {"torch", "transformers", "datasets", "peft", "accelerate", "tiktoken", "openai", "pyarrow", "numpy"}
ONLY_IN = {"openai": "llm", "typer": "cli", "click": "cli"}


def _component(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path):
    """(module name, is module level) for each import; relative imports resolved against the package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    rel = path.relative_to(PKG).with_suffix("")
    pkg_parts = ["instructkit", *rel.parts[:-1]] if rel.name != "__init__" else ["instructkit", *rel.parts[:-1]]

    def walk(node, top: bool):
        for child in ast.iter_child_nodes(node):
            is_func = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            is_tc = isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)
            if isinstance(child, ast.Import):
                for a in child.names:
                    yield a.name, top
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = pkg_parts[: len(pkg_parts) - child.level + 1]
                    mod = ".".join(base + ([child.module] if child.module else []))
                    if child.module is None:
                        for a in child.names:
                            yield f"{mod}.{a.name}", top
                        continue
                    yield mod, top
                else:
                    yield child.module or "", top
            if not is_tc:
                yield from walk(child, top and not is_func)

    yield from walk(tree, True)


def _files():
    return sorted(p for p in PKG.rglob("*.py"))


def test_every_module_has_a_layer():
    unknown = {_component(p) for p in _files()} - set(LAYERS)
    assert not unknown, f"add these modules to the layer table in docs/internals.md and this test: {unknown}"


def test_arrows():
    bad = []
    for path in _files():
        src = _component(path)
        for mod, _top in _imports(path):
            parts = mod.split(".")
            if parts[0] != "instructkit" or len(parts) < 2:
                continue
            dst = parts[1]
            if dst == src or dst not in LAYERS:
                continue
            if not LAYERS[dst] < LAYERS[src]:
                bad.append(f"{path.relative_to(PKG.parent)}: {src} (layer {LAYERS[src]}) imports {dst} "
                           f"(layer {LAYERS[dst]})")
    assert not bad, "\n".join(bad)


def test_heavy_imports_are_lazy_and_confined():
    bad = []
    for path in _files():
        src = _component(path)
        for mod, top in _imports(path):
            root = mod.split(".")[0]
            if root in ONLY_IN and ONLY_IN[root] != src:
                bad.append(f"{path.relative_to(PKG.parent)}: imports {root}, allowed only in {ONLY_IN[root]}")
            if root in HEAVY and top:
                bad.append(f"{path.relative_to(PKG.parent)}: imports {root} at module level (import it lazily)")
    assert not bad, "\n".join(bad)


def test_the_checker_sees_violations(tmp_path, monkeypatch):
    # The checker itself must be able to fail: a fake module importing upward and a heavy library at top.
    fake = PKG / "records_probe_tmp.py"
    try:
        fake.write_text("import torch\nfrom .cli import app\n")
        found = list(_imports(fake))
        assert ("torch", True) in found
        assert ("instructkit.cli", True) in found
    finally:
        fake.unlink()

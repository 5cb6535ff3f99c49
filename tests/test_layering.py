"""The layers import only downwards: streaming < models < thinking < server < benchmarks < tingshuo
(the console script). Checked on the source with ``ast``, so an import inside a function counts too.
Every import counts, a module's ``if __name__ == "__main__":`` block included."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAYERS = ["streaming", "models", "thinking", "server", "benchmarks", "tingshuo"]
RANK = {name: i for i, name in enumerate(LAYERS)}


def _imported_packages(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import, including ``importlib.import_module("x.y")``
    and ``__import__("x")`` with a literal name."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__"):
                found.append((node.lineno, node.args[0].value.split(".")[0]))
    return sorted(found)


def layering_violations(root: Path = REPO) -> list[str]:
    problems = []
    for layer in LAYERS:
        for path in sorted((root / layer).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for line, package in _imported_packages(tree):
                if RANK.get(package, -1) > RANK[layer]:
                    problems.append(f"{path.relative_to(root)}:{line}: {layer} imports {package}")
    return problems


def test_no_layer_imports_a_layer_above_it():
    assert layering_violations() == []


def test_the_check_sees_imports_inside_functions_and_dynamic_ones(tmp_path):
    (tmp_path / "server").mkdir()
    (tmp_path / "server" / "cli.py").write_text(
        "import importlib\n"
        "from models import x\n"  # downwards: fine
        "def main():\n"
        "    from benchmarks.harness import main\n"
        "    importlib.import_module('tingshuo.cli')\n"
        "if __name__ == '__main__':\n"
        "    from tingshuo.cli import main\n", encoding="utf-8")
    for layer in LAYERS:
        (tmp_path / layer).mkdir(exist_ok=True)
    assert layering_violations(tmp_path) == ["server/cli.py:4: server imports benchmarks",
                                             "server/cli.py:5: server imports tingshuo",
                                             "server/cli.py:7: server imports tingshuo"]


def test_every_layer_is_a_package_that_exists():
    for layer in LAYERS:
        assert (REPO / layer / "__init__.py").is_file(), layer

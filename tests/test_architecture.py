"""The import graph of armor/ — every import, including those inside functions — has no cycle and follows
the layer order documented in docs/architecture.md (the ```layers block)."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Set, Tuple

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "armor"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> Dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, name: str, known: Set[str]) -> Set[str]:
    """armor modules imported anywhere in ``path`` (module level, functions, TYPE_CHECKING blocks alike)."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rsplit(".", 1)[0]
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # `from X import y`: y may be a submodule of X, or a name defined in X
            targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in known else stem for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import armor.attacks.pgd` → the deepest known module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> Dict[str, Set[str]]:
    mods = modules()
    return {name: imports(path, name, set(mods)) for name, path in mods.items()}


def layers() -> Dict[str, int]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"```layers\n(.*?)```", text, re.S)
    assert block, "docs/architecture.md has no ```layers block"
    table: Dict[str, int] = {}
    for line in block.group(1).splitlines():
        line = line.split("#")[0].strip()
        if line:
            level, names = line.split(":", 1)
            for n in names.split():
                assert n not in table, f"{n} is listed twice in the layer table"
                table[n] = int(level)
    return table


def component(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def find_cycle(g: Dict[str, Set[str]]) -> List[str]:
    state: Dict[str, int] = {}
    stack: List[str] = []

    def visit(node: str) -> List[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(g.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = 2
        stack.pop()
        return []

    for node in sorted(g):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return []


def test_the_import_graph_finds_function_level_imports():
    """The graph really counts imports inside functions (config imports the registries only there)."""
    g = graph()
    assert "armor.methods" in g["armor.config"] and "armor.attacks" in g["armor.config"]
    assert "armor.results" in g["armor.eval.robust"] and "armor.io" in g["armor.results"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_counting_imports_inside_functions():
    cycle = find_cycle(graph())
    assert not cycle, " → ".join(cycle)


def test_imports_point_down_the_documented_layers():
    table = layers()
    g = graph()
    missing = sorted({component(m) for m in g} - set(table))
    assert not missing, f"add these to the layer table of docs/architecture.md: {missing}"
    wrong: List[Tuple[str, str]] = []
    for src, targets in g.items():
        for dst in targets:
            a, b = component(src), component(dst)
            if a != b and not table[a] > table[b]:
                wrong.append((f"{src} (layer {table[a]})", f"{dst} (layer {table[b]})"))
    assert not wrong, "imports against the layer order: " + "; ".join(f"{s} → {d}" for s, d in sorted(wrong))


def test_the_command_line_and_config_load_no_torch_until_a_command_runs():
    """`armor --version`, `--help` and argument errors stay fast: importing the CLI and config loads no torch."""
    code = ("import sys, armor, armor.cli, armor.config; from armor.cli import build_parser; "
            "build_parser('train'); build_parser('eval'); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr

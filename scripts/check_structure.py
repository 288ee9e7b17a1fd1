"""Structure of the package: import cycles, private names imported across modules, long
functions and long files. Prints each violation with file:line and a count per kind, and
exits 1 when a violation is not in ALLOWLIST or an ALLOWLIST entry no longer occurs.

    python scripts/check_structure.py

The package is the repository root: its top-level ``.py`` files and every folder with an
``__init__.py`` below it (tests/, benchmarks/, examples/ and scripts/ are not packages).

- cycle: modules that import each other, directly or through others; imports inside
  functions count. Each shortest cycle through an import is reported once.
- private: ``from m import _name`` of a name defined in another module, ``m._name`` read
  through an imported module, and an import of a ``_private`` module from outside the
  package that holds it.
- function: a function or method longer than MAX_FUNCTION lines (decorators aside).
- file: a ``.py`` file longer than MAX_FILE lines (templates are not ``.py``).
- opset: a literal set, tuple or list of strings holding two or more IR op names outside
  ``ir/ops`` (where every op-name set is derived: ``ops_with``, ``ops_defining``) and the
  frontend (whose names are ONNX ones). Derive it from the op registry or from a target's
  lowering table instead. A rewrite rule's pattern names the ops it matches (``Mul`` then
  ``Add``, ``Reshape`` or ``Quant`` after a Softmax): such a literal is not debt and is
  marked with a ``# structure: pattern`` comment (PATTERN_MARK) on its line or alone on
  the line above it, with the reason after it; a marked literal is not reported, so
  ALLOWLIST only holds what is to be derived.
"""

from __future__ import annotations

import ast
import sys
from collections import deque
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "nnforge"
MAX_FUNCTION = 100
MAX_FILE = 700
KINDS = ("cycle", "private", "function", "file", "opset")
OPSET_EXEMPT = ("ir/ops/", "frontend/")  # folders whose op-name literals are the registry / ONNX facts
PATTERN_MARK = "# structure: pattern"  # on an op-name literal's line (or alone above it): a rule's pattern

# to remove: the violations that exist today, each "kind: key" with the key as printed.
# The check fails when an entry no longer occurs, so this list only shrinks.
ALLOWLIST: frozenset[str] = frozenset()


class Violation(NamedTuple):
    kind: str
    key: str  # stable across edits (no line numbers): what ALLOWLIST holds
    where: str  # file:line
    detail: str = ""

    @property
    def entry(self) -> str:
        return f"{self.kind}: {self.key}"


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Module name -> file, for the package rooted at ``root`` (packages by their __init__)."""
    found = {PACKAGE: root / "__init__.py"}
    for f in sorted(root.glob("*.py")):
        if f.name != "__init__.py":
            found[f"{PACKAGE}.{f.stem}"] = f
    todo = [d for d in sorted(root.iterdir()) if d.is_dir() and (d / "__init__.py").is_file()]
    while todo:
        d = todo.pop(0)
        name = ".".join([PACKAGE, *d.relative_to(root).parts])
        for f in sorted(d.glob("*.py")):
            found[name if f.name == "__init__.py" else f"{name}.{f.stem}"] = f
        todo += [s for s in sorted(d.iterdir()) if s.is_dir() and (s / "__init__.py").is_file()]
    return found


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _within(importer: str, package: str) -> bool:
    return importer == package or importer.startswith(package + ".")


class _Module:
    """One parsed module: its imports of the package as (target, line, name or None)."""

    def __init__(self, name: str, path: Path, names: dict[str, Path], root: Path):
        self.name, self.path, self.names = name, path, names
        self.rel = path.relative_to(root).as_posix()
        self.is_package = path.name == "__init__.py"
        self.tree = ast.parse(path.read_text(), filename=str(path))
        self.imports: list[tuple[str, int, str | None]] = []  # (module, line, imported name)
        self.aliases: dict[str, str] = {}  # local name bound to one of our modules
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                self._plain(node)
            elif isinstance(node, ast.ImportFrom):
                self._from(node)

    def _base(self, node: ast.ImportFrom) -> str | None:
        if not node.level:
            return node.module
        parts = self.name.split(".") if self.is_package else self.name.split(".")[:-1]
        if node.level - 1 > len(parts) - 1:
            return None
        parts = parts[:len(parts) - (node.level - 1)]
        return ".".join(parts + ([node.module] if node.module else []))

    def _plain(self, node: ast.Import) -> None:
        for a in node.names:
            if a.name.split(".")[0] != PACKAGE:
                continue
            target = a.name
            while target not in self.names and "." in target:
                target = target.rsplit(".", 1)[0]
            self.imports.append((target, node.lineno, None))
            if a.asname:
                self.aliases[a.asname] = a.name

    def _from(self, node: ast.ImportFrom) -> None:
        base = self._base(node)
        if base is None or base.split(".")[0] != PACKAGE:
            return
        for a in node.names:
            sub = f"{base}.{a.name}"
            if sub in self.names:
                self.imports.append((sub, node.lineno, None))
                self.aliases[a.asname or a.name] = sub
            elif base in self.names:
                self.imports.append((base, node.lineno, a.name))

    def where(self, line: int) -> str:
        return f"{self.rel}:{line}"


def _parse(root: Path) -> dict[str, _Module]:
    names = modules(root)
    return {m: _Module(m, p, names, root) for m, p in names.items()}


def _shortest_path(graph: dict[str, set[str]], start: str, goal: str, inside: set[str]) -> list[str] | None:
    prev = {start: None}
    todo = deque([start])
    while todo:
        m = todo.popleft()
        if m == goal:
            path = []
            while m is not None:
                path.append(m)
                m = prev[m]
            return path[::-1]
        for n in sorted(graph.get(m, ())):
            if n in inside and n not in prev:
                prev[n] = m
                todo.append(n)
    return None


def _components(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components (Tarjan, iterative)."""
    index, low, stack, on, out, count = {}, {}, [], set(), [], [0]
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = count[0]
        count[0] += 1
        stack.append(root), on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = count[0]
                    count[0] += 1
                    stack.append(w), on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = set()
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.add(w)
                        if w == v:
                            break
                    out.append(comp)
    return out


def cycles(mods: dict[str, _Module]) -> list[Violation]:
    """For every import inside a strongly connected component, the shortest cycle through it
    (each cycle once, written from its smallest module)."""
    graph = {m: {t for t, _, _ in mod.imports if t != m} for m, mod in mods.items()}
    line = {}
    for m, mod in mods.items():
        for t, ln, _ in mod.imports:
            line.setdefault((m, t), ln)
    seen, out = set(), []
    for comp in _components(graph):
        if len(comp) < 2:
            continue
        for a in sorted(comp):
            for b in sorted(graph[a] & comp):
                path = [a] + _shortest_path(graph, b, a, comp)[:-1]
                i = path.index(min(path))
                path = path[i:] + path[:i]
                if tuple(path) in seen:
                    continue
                seen.add(tuple(path))
                ring = path + [path[0]]
                steps = ", ".join(f"{mods[x].where(line[x, y])} imports {y}" for x, y in zip(ring, ring[1:]))
                out.append(Violation("cycle", " -> ".join(ring), mods[path[0]].where(line[path[0], path[1]]), steps))
    return out


def private(mods: dict[str, _Module]) -> list[Violation]:
    out = []
    for m, mod in mods.items():
        for target, ln, name in mod.imports:
            if name is not None and _is_private(name) and target != m:
                out.append(Violation("private", f"{m} imports {target}.{name}", mod.where(ln)))
            parts = target.split(".")
            for i, part in enumerate(parts):
                if _is_private(part) and not _within(m, ".".join(parts[:i])):
                    out.append(Violation("private", f"{m} imports module {'.'.join(parts[:i + 1])}",
                                         mod.where(ln)))
                    break
        for node in ast.walk(mod.tree):
            if (isinstance(node, ast.Attribute) and _is_private(node.attr) and isinstance(node.value, ast.Name)
                    and node.value.id in mod.aliases and mod.aliases[node.value.id] != m):
                target = mod.aliases[node.value.id]
                if f"{target}.{node.attr}" in mod.names and _within(m, target):
                    continue  # a private submodule of a package, used inside it
                out.append(Violation("private", f"{m} reads {target}.{node.attr}", mod.where(node.lineno)))
    return sorted(set(out), key=lambda v: (v.key, v.where))


def long_functions(mods: dict[str, _Module]) -> list[Violation]:
    out = []

    def visit(node: ast.AST, prefix: str, mod: _Module) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                qual = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    n = child.end_lineno - child.lineno + 1
                    if n > MAX_FUNCTION:
                        out.append(Violation("function", f"{mod.rel}:{qual}",
                                             mod.where(child.lineno), f"{n} lines"))
                visit(child, qual + ".", mod)
            else:
                visit(child, prefix, mod)

    for mod in mods.values():
        visit(mod.tree, "", mod)
    return out


def long_files(mods: dict[str, _Module]) -> list[Violation]:
    out = []
    for mod in mods.values():
        n = len(mod.path.read_text().splitlines())
        if n > MAX_FILE:
            out.append(Violation("file", mod.rel, mod.where(1), f"{n} lines"))
    return out


def ir_op_names() -> frozenset[str]:
    """The IR's op names, from its registry (``nnforge.ir.ops.OPS``)."""
    from nnforge.ir.ops import OPS

    return frozenset(OPS)


def _marked_pattern(lines: list[str], line: int) -> bool:
    """True when 1-based ``line`` carries PATTERN_MARK, or the line above is that comment alone."""
    here = lines[line - 1] if 0 < line <= len(lines) else ""
    above = lines[line - 2].strip() if 1 < line <= len(lines) + 1 else ""
    return PATTERN_MARK in here or above.startswith(PATTERN_MARK)


def op_name_sets(mods: dict[str, _Module], ops: frozenset[str]) -> list[Violation]:
    out = []
    for mod in mods.values():
        if mod.rel.startswith(OPSET_EXEMPT):
            continue
        lines = mod.path.read_text().splitlines()
        for node in ast.walk(mod.tree):
            if not isinstance(node, (ast.Set, ast.Tuple, ast.List)) or not node.elts:
                continue
            if not all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
                continue
            names = sorted({e.value for e in node.elts} & ops)
            if len(names) >= 2 and not _marked_pattern(lines, node.lineno):
                out.append(Violation("opset", f"{mod.rel}: {', '.join(names)}", mod.where(node.lineno)))
    return out


def violations(root: Path = ROOT, ops: frozenset[str] | None = None) -> list[Violation]:
    """Every violation in the package at ``root``; ``ops``: the IR op names (default: the
    installed registry's)."""
    mods = _parse(root)
    ops = ir_op_names() if ops is None else ops
    return cycles(mods) + private(mods) + long_functions(mods) + long_files(mods) + op_name_sets(mods, ops)


def check(found: list[Violation], allow: frozenset[str] = ALLOWLIST) -> tuple[list[Violation], list[str]]:
    """The violations not allowed, and the allowlist entries that no longer occur."""
    entries = {v.entry for v in found}
    return [v for v in found if v.entry not in allow], sorted(allow - entries)


def main(argv: list[str] | None = None) -> int:
    found = violations()
    new, stale = check(found)
    for v in found:
        mark = "" if v in new else "  (allowlisted)"
        print(f"{v.where}: {v.kind}: {v.key}{' (' + v.detail + ')' if v.detail else ''}{mark}")
    for e in stale:
        print(f"scripts/check_structure.py: allowlisted but gone, remove it from ALLOWLIST: {e}")
    counts = {k: len({v.entry for v in found if v.kind == k}) for k in KINDS}
    fresh = {k: len({v.entry for v in new if v.kind == k}) for k in KINDS}
    print("summary: " + ", ".join(f"{k} {counts[k]} ({fresh[k]} new)" for k in KINDS)
          + f"; allowlist {len(ALLOWLIST)} entries, {len(stale)} gone")
    return 1 if new or stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

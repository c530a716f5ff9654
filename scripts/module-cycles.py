#!/usr/bin/env python3
"""Fails when a crate's modules import each other in a cycle.

Each file under <crate>/src is a module (mod.rs and lib.rs name their folder). Two checks:

- Top level: a module depends on another when its code names `crate::<path>` or `use super::...`
  reaching a sibling; submodules of one folder count as their top-level module, so
  `runners::docker::stack` importing `runners::ladder` is inside `runners` and fine, while
  `sweep` -> `tag_mode` -> `sweep` is a cycle.
- Inside each folder: the folder's children (its files and subfolders, each with everything
  below it) are the nodes, and a child depends on a sibling when code anywhere inside it names a
  path into that sibling (`super::x`, `crate::a::x::...`, `use super::{x, ...}`, or an item the
  folder re-exports from it with `pub use`). So `runners::docker::probe` -> `stack` -> `probe` is
  a cycle. The folder's own file (mod.rs) is its interface: its children may use it and it names
  its children, so edges to and from it are not counted.

Usage: scripts/module-cycles.py shared listener plugin
"""
import re
import sys
from pathlib import Path


def modules(src: Path):
    for f in sorted(src.rglob("*.rs")):
        rel = f.relative_to(src).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] in ("mod", "lib", "main"):
            parts = parts[:-1]
        yield parts, f


def strip_tests(text: str) -> str:
    # In-file tests may reach anywhere; only the module's own code counts.
    i = text.find("#[cfg(test)]\nmod tests")
    code = text if i < 0 else text[:i]
    # Doc links and comments name modules without importing them.
    return "\n".join(l for l in code.splitlines() if not l.lstrip().startswith("//"))


def deps_of(parts, text):
    found = set()
    for m in re.finditer(r"\bcrate::([a-z_][a-z0-9_]*)", text):
        found.add(m.group(1))
    # `use crate::{a, b::c}` groups
    for m in re.finditer(r"use crate::\{([^}]*)\}", text, re.S):
        for item in m.group(1).split(","):
            name = item.strip().split("::")[0].strip()
            if name:
                found.add(name)
    if len(parts) == 1:
        for m in re.finditer(r"\bsuper::([a-z_][a-z0-9_]*)", text):
            found.add(m.group(1))
    return found


def cycles(crate: str):
    src = Path(crate) / "src"
    graph = {}
    for parts, f in modules(src):
        if not parts:
            continue
        top = parts[0]
        text = strip_tests(f.read_text())
        graph.setdefault(top, set()).update(d for d in deps_of(parts, text) if d != top)
    tops = set(graph)
    for k in graph:
        graph[k] &= tops
    found = []
    state = {}

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for d in sorted(graph[node]):
            if state.get(d) == 1:
                found.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack)
        stack.pop()
        state[node] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [])
    return found


IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def split_top(text: str):
    """Splits a use-tree list at its top-level commas."""
    depth, cur, out = 0, "", []
    for ch in text:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [x.strip() for x in out if x.strip()]


def expand_tree(tree: str):
    """Returns every path of a use tree (`a::{b, c::d as e}` -> [a, b], [a, c, d]), with the
    name each one is bound to."""
    tree = re.sub(r"\s+", " ", tree).strip()
    i = tree.find("{")
    if i < 0:
        name = tree.split(" as ")
        path = [p.strip() for p in name[0].split("::") if p.strip()]
        if path and path[-1] == "self":
            path = path[:-1]
        bound = name[1].strip() if len(name) > 1 else (path[-1] if path else "")
        return [(path, bound)]
    prefix = [p.strip() for p in tree[:i].split("::") if p.strip()]
    inner = tree[i + 1 : tree.rfind("}")]
    out = []
    for item in split_top(inner):
        for path, bound in expand_tree(item):
            full = prefix + path
            out.append((full, bound if path else (full[-1] if full else "")))
    return out


def use_paths(text: str):
    """Returns (path, bound name, is `pub`) for every `use` statement of `text`."""
    found = []
    for m in re.finditer(r"(\bpub(?:\([^)]*\))?\s+)?\buse\s+([^;]+);", text):
        for path, bound in expand_tree(m.group(2)):
            found.append((path, bound, m.group(1) is not None))
    return found


def inline_paths(text: str):
    """Returns the `crate::...`, `super::...` and `self::...` paths written inline in code."""
    pat = rf"\b(?:crate|super|self)(?:::{IDENT})+"
    return [m.group(0).split("::") for m in re.finditer(pat, text)]


def absolute(module, path):
    """Resolves a path written in `module` to a path from the crate root, or None."""
    if not path:
        return None
    if path[0] == "crate":
        return path[1:]
    if path[0] in ("super", "self"):
        base = list(module)
        rest = list(path)
        if rest[0] == "self":
            rest = rest[1:]
        while rest and rest[0] == "super":
            if not base:
                return None
            base = base[:-1]
            rest = rest[1:]
        return base + rest
    return None


def folder_cycles(crate: str):
    src = Path(crate) / "src"
    texts = {}
    for parts, f in modules(src):
        texts.setdefault(tuple(parts), []).append(strip_tests(f.read_text()))
    mods = set(texts)
    # What each module re-exports with `pub use`: name -> absolute path.
    reexports = {}
    for m, ts in texts.items():
        for t in ts:
            for path, bound, public in use_paths(t):
                target = absolute(m, path)
                if public and target is not None and bound:
                    reexports.setdefault(m, {})[bound] = target

    def resolve(path, depth=0):
        """Returns the module a crate-root path lands in (following re-exports)."""
        for n in range(len(path), -1, -1):
            head = tuple(path[:n])
            if head in mods:
                rest = path[n:]
                if rest and depth < 8 and rest[0] in reexports.get(head, {}):
                    return resolve(reexports[head][rest[0]] + rest[1:], depth + 1)
                return head
        return None

    edges = {}
    for m, ts in texts.items():
        for t in ts:
            paths = [p for p, _, _ in use_paths(t)] + inline_paths(t)
            for path in paths:
                target = absolute(m, path)
                if target is None:
                    continue
                n = resolve(target)
                if n is None or n == m:
                    continue
                k = 0
                while k < min(len(m), len(n)) and m[k] == n[k]:
                    k += 1
                if k < len(m) and k < len(n):
                    folder = m[:k]
                    edges.setdefault(folder, {}).setdefault(m[k], set()).add(n[k])
    found = []
    for folder in sorted(edges):
        if not folder:
            continue  # the top level is the first check's
        graph = edges[folder]
        state = {}

        def visit(node, stack):
            state[node] = 1
            stack.append(node)
            for d in sorted(graph.get(node, ())):
                if state.get(d) == 1:
                    found.append((folder, stack[stack.index(d):] + [d]))
                elif d not in state:
                    visit(d, stack)
            stack.pop()
            state[node] = 2

        for node in sorted(graph):
            if node not in state:
                visit(node, [])
    return found


def main(crates):
    bad = False
    for crate in crates:
        for c in cycles(crate):
            bad = True
            print(f"{crate}: import cycle: {' -> '.join(c)}")
        for folder, c in folder_cycles(crate):
            bad = True
            inside = "::".join(folder)
            print(f"{crate}: import cycle inside {inside}: {' -> '.join(c)}")
    if not bad:
        print(f"no import cycles in {', '.join(crates)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["shared", "listener", "plugin"]))

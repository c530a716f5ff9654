#!/usr/bin/env python3
"""Fails when a crate's modules import each other in a cycle.

Each file under <crate>/src is a module (mod.rs and lib.rs name their folder). A module depends on
another when its code names `crate::<path>` or `use super::...` reaching a sibling; submodules of
one folder count as their top-level module, so `runners::docker::stack` importing
`runners::ladder` is inside `runners` and fine, while `sweep` -> `tag_mode` -> `sweep` is a cycle.
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


def main(crates):
    bad = False
    for crate in crates:
        for c in cycles(crate):
            bad = True
            print(f"{crate}: import cycle: {' -> '.join(c)}")
    if not bad:
        print(f"no import cycles in {', '.join(crates)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["shared", "listener", "plugin"]))

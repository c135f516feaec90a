#!/usr/bin/env python3
"""The layering check: every `crate::` path in a crate's non-test code points down.

    python3 .ci/layers.py              # check the workspace; exit 1 on a violation
    python3 .ci/layers.py --graph      # print each crate's module graph (module -> modules)
    python3 .ci/layers.py --self-test  # plant a forbidden import in a copy; it must be caught

Each crate's top-level modules are put in layers, bottom first (LAYERS below, the same list
as ARCHITECTURE.md). A module may name modules of its own layer or of a layer below it; naming
one above is an error. Besides, no file may take part in an import cycle with other files
(modules of one layer that import each other both ways are caught here). Test code (files
named *tests*.rs or fuzz_*.rs, `#[cfg(test)]` items) and comments are not read: tests may
reach anywhere.
"""

import os
import re
import shutil
import sys
import tempfile

# Bottom first. Modules named in one inner list share a layer.
LAYERS = {
    "issuer/src": [
        ["clock", "env", "secrets"],
        ["domain"],
        ["store"],
        ["telemetry", "signing"],
        ["upstream", "kube"],
        ["config"],
        ["service"],
        ["http"],
        ["serve"],
        # The impersonating proxy serves requests like `http` but is started by its own
        # command, and reuses `serve`'s TLS material and replica loops (the revocation feed):
        # so it sits above `serve`, and only `cli` starts it.
        ["proxy"],
        ["cli"],
        ["main"],
    ],
    "plugin/src": None,  # filled in below
    "shared/src": [["text", "oauth", "exec_credential", "api", "token_review"], ["lib"]],
}

LAYERS["plugin/src"] = [
    ["base"],
    ["kubeconfig", "cache", "issuer", "cli"],
    ["error"],
    ["flow", "exit"],
    ["commands"],
    ["main"],
]

TEST_FILE = re.compile(r"(^|/|_)tests?\.rs$|(^|/)fuzz_|_tests?/")


def strip(src):
    """Non-test code without comments or string contents that could look like paths."""
    # `#[cfg(test)]` items: an inline test module runs to the end of the file by convention
    # here; a single `#[cfg(test)]` item (a helper fn, a `mod x_tests;`) is one item.
    out, skip_depth, pending_test = [], None, False
    for line in src.splitlines():
        s = line.strip()
        if s.startswith("//"):
            continue
        if skip_depth is not None:
            skip_depth += line.count("{") - line.count("}")
            if skip_depth <= 0 and ("}" in line or line.rstrip().endswith(";")):
                skip_depth = None
            continue
        if s.startswith("#[cfg(test)]") or s.startswith("#[cfg(all(test"):
            pending_test = True
            continue
        if pending_test:
            pending_test = False
            if s.startswith("#["):
                pending_test = True
                continue
            depth = line.count("{") - line.count("}")
            if depth > 0:
                skip_depth = depth
            continue
        out.append(re.sub(r'"([^"\\]|\\.)*"', '""', line))
    return "\n".join(out)


def imports(root):
    """{file: set(crate paths' first two segments)} for a crate's non-test files."""
    found = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, root)
            if TEST_FILE.search(rel) or "testdata" in rel:
                continue
            src = strip(open(path, encoding="utf-8").read())
            names = set()
            # `super::x` from a/b.rs (or a/b/mod.rs) is `crate::a::x`.
            parent = rel.removesuffix(".rs").removesuffix("/mod").split("/")[:-1]
            prefixes = {"crate": []}
            if parent:
                prefixes["super"] = parent
            for word, base in prefixes.items():
                # `use crate::{a::b, c::{d, e}};`
                for m in re.finditer(rf"\b{word}::\{{", src):
                    depth, i = 1, m.end()
                    start = i
                    while depth and i < len(src):
                        depth += {"{": 1, "}": -1}.get(src[i], 0)
                        i += 1
                    body = src[start : i - 1]
                    top = re.sub(r"\{[^{}]*\}", "", body)
                    for part in top.split(","):
                        part = part.strip()
                        if part:
                            names.add(tuple((base + part.split("::"))[:4]))
                    for inner in re.finditer(r"(\w+)::\{([^{}]*)\}", body):
                        for part in inner.group(2).split(","):
                            part = part.strip().split("::")[0]
                            if part:
                                names.add(tuple((base + [inner.group(1), part])[:4]))
                # `crate::a::b` anywhere.
                for m in re.finditer(rf"\b{word}((?:::\w+)+)", src):
                    names.add(tuple((base + m.group(1).split("::")[1:])[:4]))
            found[rel] = names
    return found


def module_of(rel):
    return rel.split("/")[0].removesuffix(".rs")


def file_for(root, parts, files):
    """The file a `crate::a::b::c` path lands in: the longest of a/b/c.rs, a/b/c/mod.rs,
    a/b.rs, a/b/mod.rs, a.rs, a/mod.rs that exists."""
    parts = [p for p in parts if p]
    for n in range(len(parts), 0, -1):
        stem = "/".join(parts[:n])
        for cand in (f"{stem}.rs", f"{stem}/mod.rs"):
            if cand in files:
                return cand
    return None


def cycles(graph):
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def check(base, show_graph=False):
    problems = []
    for root, layers in LAYERS.items():
        croot = os.path.join(base, root)
        if not os.path.isdir(croot):
            problems.append(f"{root}: no such directory")
            continue
        rank = {m: i for i, layer in enumerate(layers) for m in layer}
        found = imports(croot)
        all_files = set(found)
        for dirpath, _, fs in os.walk(croot):
            for f in fs:
                all_files.add(os.path.relpath(os.path.join(dirpath, f), croot))
        graph, modgraph = {}, {}
        for rel, names in sorted(found.items()):
            me = module_of(rel)
            if me in ("lib",):
                continue
            if me not in rank:
                problems.append(
                    f"{root}/{rel}: module `{me}` is in no layer: add it to LAYERS in "
                    ".ci/layers.py and to ARCHITECTURE.md"
                )
                continue
            for parts in sorted(names, key=str):
                other = parts[0]
                if other in ("self", "super") or other == me:
                    target = file_for(croot, parts, all_files) if other == me else None
                    if target and target != rel:
                        graph.setdefault(rel, set()).add(target)
                    continue
                modgraph.setdefault(me, set()).add(other)
                if other not in rank:
                    continue
                if rank[other] > rank[me]:
                    problems.append(
                        f"{root}/{rel}: `{me}` must not import `crate::{'::'.join(p for p in parts if p)}`: "
                        f"`{other}` is a layer above it (see ARCHITECTURE.md, \"Layers\")"
                    )
                target = file_for(croot, parts, all_files)
                if target and target != rel:
                    graph.setdefault(rel, set()).add(target)
        for comp in cycles(graph):
            problems.append(f"{root}: import cycle between files: {' -> '.join(comp)}")
        if show_graph:
            print(f"# {root}")
            for m in sorted(modgraph, key=lambda m: (rank.get(m, 99), m)):
                print(f"{m} -> {', '.join(sorted(modgraph[m]))}")
    return problems


def self_test():
    """A planted upward import and a planted cycle must both be reported."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as tmp:
        for root in LAYERS:
            shutil.copytree(os.path.join(here, root), os.path.join(tmp, root))
        if check(tmp):
            print("self-test: the tree must pass before anything is planted", file=sys.stderr)
            return 1
        planted = os.path.join(tmp, "issuer/src/domain/names.rs")
        with open(planted, "a", encoding="utf-8") as f:
            f.write("\n#[allow(unused_imports)]\nuse crate::http::router;\n")
        found = check(tmp)
        if not any("domain/names.rs" in p and "crate::http::router" in p for p in found):
            print(f"self-test: the planted upward import was not reported: {found}", file=sys.stderr)
            return 1
        with open(planted, encoding="utf-8") as f:
            src = f.read().replace("use crate::http::router;", "")
        with open(planted, "w", encoding="utf-8") as f:
            f.write(src + "\nuse crate::domain::grants::Grant;\n")
        grants = os.path.join(tmp, "issuer/src/domain/grants.rs")
        with open(grants, encoding="utf-8") as f:
            src = f.read()
        with open(grants, "w", encoding="utf-8") as f:
            f.write("use crate::domain::names::validate_group as _planted;\n" + src)
        found = check(tmp)
        if not any("import cycle" in p and "domain/names.rs" in p for p in found):
            print(f"self-test: the planted cycle was not reported: {found}", file=sys.stderr)
            return 1
    print("layers self-test: a planted upward import and a planted cycle are both reported")
    return 0


def main():
    args = sys.argv[1:]
    if args == ["--self-test"]:
        return self_test()
    base = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    problems = check(base, show_graph=args == ["--graph"])
    for p in problems:
        print(f"layers: {p}", file=sys.stderr)
    if problems:
        print(
            f"layers: {len(problems)} problem(s); the rule is in ARCHITECTURE.md (\"Layers\")",
            file=sys.stderr,
        )
        return 1
    if args != ["--graph"]:
        print("layers: every import points down, no import cycles")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Checks the layering rule of docs/ARCHITECTURE.md: which module may include which.

The rule is the table between the markers <!-- layering:begin --> and <!-- layering:end -->
in docs/ARCHITECTURE.md, so the document and the check cannot drift apart. Every quoted
#include of every source file outside tests/ must name a header its module may use: one of
its own (same directory or below), or one the table lists for it. Includes in angle
brackets and third-party headers (absl/, rocksdb/, ...) are free; the public headers may
use abseil only. It also checks that nothing in the repository points outside it.

    tools/check-layering.py [SOURCE_ROOT]     # exit 0 and "layering: N files, N includes, ok"
"""

import os
import re
import subprocess
import sys

THIRD_PARTY = ("absl/", "rocksdb/", "hiredis/", "yaml-cpp/", "nlohmann/", "fuse3/", "liburing", "gtest/", "gmock/",
               "benchmark/")

# Where each include root of the project lives.
ROOTS = {
    "zerohop/": "client/include/zerohop/",
    "wire/": "client/wire/",
    "base/": "base/",
    "shmring/": "shmring/include/shmring/",
}
DAEMON_MODULES = ("backend/", "config/", "embedded/", "expr/", "redis/", "registry/", "server/")
# Headers the build generates, and the module whose source makes them.
GENERATED = {"csi.pb.h": "csi/proto/csi.pb.h", "csi.grpc.pb.h": "csi/proto/csi.grpc.pb.h",
             "bench_echo.grpc.pb.h": "tools/proto/bench_echo.grpc.pb.h"}


def read_table(root):
    """module path -> list of allowed include prefixes (or exact headers)."""
    text = open(os.path.join(root, "docs/ARCHITECTURE.md"), encoding="utf-8").read()
    m = re.search(r"<!-- layering:begin -->(.*?)<!-- layering:end -->", text, re.S)
    if not m:
        sys.exit("layering: no <!-- layering:begin --> table in docs/ARCHITECTURE.md")
    table = {}
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        modules = re.findall(r"`([^`]+)`", cells[0])
        allowed = re.findall(r"`([^`]+)`", cells[1])
        for mod in modules:
            table[mod] = allowed
    return table


def module_of(path, table):
    """The table's module a file belongs to: the longest matching path."""
    best = None
    for mod in table:
        if path == mod or (mod.endswith("/") and path.startswith(mod)):
            if best is None or len(mod) > len(best):
                best = mod
    return best


def resolve(include, path, root):
    """The repository path an include names, or None when it is third-party."""
    if include.startswith(THIRD_PARTY):
        return None
    for prefix, where in ROOTS.items():
        if include.startswith(prefix):
            return where + include[len(prefix):]
    if include.startswith(DAEMON_MODULES):
        return "daemon/" + include
    if include in GENERATED:
        return GENERATED[include]
    # A header of the including file's directory, or of one above it (a module's own).
    d = os.path.dirname(path)
    while True:
        local = os.path.normpath(os.path.join(d, include))
        if os.path.exists(os.path.join(root, local)):
            return local
        if not d:
            return "?" + include
        d = os.path.dirname(d)


def allowed(target, include, path, mod, rules):
    if target.startswith(os.path.dirname(path) + "/") or (mod.endswith("/") and target.startswith(mod)):
        return True  # the module's own headers
    for rule in rules:
        if include == rule or (rule.endswith("/") and include.startswith(rule)):
            return True
    return False


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
    table = read_table(root)
    files = subprocess.run(["git", "-C", root, "ls-files"], capture_output=True, text=True, check=True).stdout.split()
    if not files:  # not a git checkout: every file below the root
        files = [os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs]
    problems = []
    checked = includes = 0
    for path in files:
        if not path.endswith((".h", ".cc", ".c", ".go")) or path.startswith(("tests/", "build")):
            continue
        mod = module_of(path, table)
        if mod is None:
            problems.append(f"{path}: in no module of the layering table")
            continue
        checked += 1
        for n, line in enumerate(open(os.path.join(root, path), encoding="utf-8", errors="replace"), 1):
            m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
            if not m and path.endswith(".go"):
                # cgo's preamble names installed headers <zerohop/...>: the project's are checked.
                m = re.match(r'\s*#\s*include\s+<([^>]+)>', line)
                if m and not m.group(1).startswith(tuple(ROOTS)):
                    continue
            if not m:
                continue
            includes += 1
            include = m.group(1)
            target = resolve(include, path, root)
            if target is None:
                if mod == "client/include/zerohop/" and not include.startswith("absl/"):
                    problems.append(f"{path}:{n}: a public header includes {include} (abseil only)")
                continue
            if target.startswith("?"):
                problems.append(f"{path}:{n}: {include} is not a header of this repository")
                continue
            if not allowed(target, include, path, mod, table[mod]):
                problems.append(f"{path}:{n}: {mod} may not include {include} (docs/ARCHITECTURE.md, layering)")
    # Nothing points outside the repository.
    outside = ["../" + "shared", "DESIGN" + ".md"]
    for path in files:
        if path.startswith("build") or path.endswith((".png", ".svg", ".json")) or "/corpus/" in path:
            continue
        try:
            text = open(os.path.join(root, path), encoding="utf-8").read()
        except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
            continue
        for word in outside:
            if word in text:
                problems.append(f"{path}: refers to {word}, outside the repository")
    for p in problems:
        print(p)
    print(f"layering: {checked} files, {includes} includes, {'ok' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

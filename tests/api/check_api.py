#!/usr/bin/env python3
"""kiln's public surface is kiln.h, and only kiln.h.

1. Every function kiln.h declares carries KILN_API.
2. libkiln.so exports exactly the KILN_API functions: each exported symbol
   starts with kiln_ and is declared in kiln.h, and each declaration is
   exported (a missing one means its definition never saw the declaration).
3. The CLI (tools/kiln) and the Python extension include no header but
   kiln.h, system headers and their own files.

usage: check_api.py --header include/kiln.h --lib build/libkiln.so
                    --src src --sources tools/kiln/*.c tools/kiln/*.h python/src/kiln_module.c
Exits 1 listing every problem, 0 when there is none.
"""
import argparse
import os
import re
import subprocess
import sys


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def header_declarations(path):
    """(names with KILN_API, names without) of the functions kiln.h declares."""
    text = strip_comments(open(path, encoding="utf-8").read())
    # preprocessor lines are not declarations (KILN_API's own definition among them)
    text = "\n".join(l for l in text.split("\n") if not l.lstrip().startswith("#"))
    text = text.replace('extern "C" {', " ")
    # top-level statements: drop brace blocks (struct and enum bodies) first
    while True:
        flat = re.sub(r"\{[^{}]*\}", " ", text)
        if flat == text:
            break
        text = flat
    marked, unmarked = set(), set()
    for stmt in text.split(";"):
        stmt = " ".join(stmt.split())
        if not stmt or stmt.startswith("typedef") or "(" not in stmt:
            continue
        m = re.match(r"(.*?)\b([A-Za-z_]\w*)\s*\(", stmt)
        if not m:
            continue
        (marked if re.match(r"KILN_API\b", stmt) else unmarked).add(m.group(2))
    return marked, unmarked


# Symbols the linker itself defines in every shared object.
LINKER_SYMBOLS = {"_init", "_fini", "_edata", "_end", "__bss_start"}


def exported(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True, capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            names.add(parts[2].split("@")[0])
    return names - LINKER_SYMBOLS


def internal_dirs(src):
    return {d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d))}


def include_problems(path, internal):
    problems = []
    own = os.path.dirname(os.path.abspath(path))
    text = strip_comments(open(path, encoding="utf-8").read())
    for m in re.finditer(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', text, flags=re.M):
        kind, name = m.groups()
        first = name.split("/")[0]
        if name == "kiln.h":
            continue
        if kind == '"' and os.path.exists(os.path.join(own, name)) and "/" not in name:
            continue  # the program's own header (tools/kiln/cli.h)
        if kind == "<" and first not in internal and not name.startswith("onnx") and "pb-c" not in name:
            continue  # a system header
        problems.append(f"{path}: includes {kind}{name}{'>' if kind == '<' else kind}: only kiln.h, system "
                        f"headers and its own headers are allowed")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--header", required=True)
    ap.add_argument("--lib", required=True)
    ap.add_argument("--src", required=True, help="the library's source folder (its subfolders are internal)")
    ap.add_argument("--sources", nargs="+", required=True, help="files that may use only kiln.h")
    a = ap.parse_args()

    problems = []
    marked, unmarked = header_declarations(a.header)
    if len(marked) < 50:
        problems.append(f"{a.header}: found only {len(marked)} KILN_API declarations; the parser is off")
    for name in sorted(unmarked):
        problems.append(f"{a.header}: {name} is declared without KILN_API")
    exp = exported(a.lib)
    for name in sorted(exp - marked):
        why = "does not start with kiln_" if not name.startswith("kiln_") else "is not declared KILN_API in kiln.h"
        problems.append(f"{a.lib} exports {name}, which {why}")
    for name in sorted(marked - exp):
        problems.append(f"{a.lib} does not export {name} (declared KILN_API in kiln.h)")
    internal = internal_dirs(a.src)
    for path in a.sources:
        problems += include_problems(path, internal)

    for p in problems:
        print(p)
    print(f"{len(marked)} KILN_API functions, {len(exp)} exported symbols, {len(a.sources)} files checked: "
          f"{'ok' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

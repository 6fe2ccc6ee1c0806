#!/usr/bin/env python3
"""Checks kiln's operator table against ONNX's schema history: no descriptor
may cover an opset whose schema of the operator differs from the version the
descriptor implements.

The version a descriptor implements is the latest schema version at or below
max(since, 17): kiln's first operators were written against ONNX 1.12
(opset 17), each covering every version from its `since` up to 17 (reading
the node's opset where versions differ), and its conformance suite checks
them there.

"Differs" means the signature: inputs and outputs (name, optional/variadic),
attributes (name, type, required, default). A version that only widens the
type constraints keeps the meaning for the types both versions share; kiln's
kernels refuse element types they do not handle, by name, at run time.

Usage: check_opsets.py KILN_OPTABLE [--suggest]
  KILN_OPTABLE: the kiln-optable tool (prints "DOMAIN NAME SINCE UNTIL RULE").
  Every descriptor must also carry a shape rule (RULE 1).
  --suggest: print the widest valid `until` for every descriptor instead.
Run with a python whose onnx knows the newest opsets (onnx >= 1.23).
"""
import subprocess
import sys
from collections import defaultdict

import onnx
from onnx import defs

# kiln's newest ai.onnx opset: an `until` of 0 means "through this one".
KILN_MAX_OPSET = 28
# The opset kiln's first operators were written against (ONNX 1.12).
KILN_BASE_OPSET = 17


def signature(s):
    def formal(f):
        return (f.name, int(f.option))
    attrs = []
    for name, a in sorted(s.attributes.items()):
        d = a.default_value.SerializeToString() if a.default_value is not None else b""
        attrs.append((name, int(a.type), bool(a.required), d))
    return (tuple(formal(f) for f in s.inputs), tuple(formal(f) for f in s.outputs), tuple(attrs))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    suggest = "--suggest" in sys.argv
    hist = defaultdict(dict)  # (domain, name) -> {version: schema}
    for s in defs.get_all_schemas_with_history():
        hist[(s.domain, s.name)][s.since_version] = s
    rows = subprocess.run([sys.argv[1]], check=True, capture_output=True, text=True).stdout.split("\n")
    problems = []
    for row in rows:
        if not row.strip():
            continue
        domain, name, since, until, rule = row.split()
        domain = "" if domain == "-" else domain
        if rule != "1":
            problems.append(f"{domain or 'ai.onnx'}.{name} [{since},{until}]: no shape rule beside its exec")
        since, until = int(since), int(until)
        versions = hist.get((domain, name))
        if not versions:
            problems.append(f"{domain or 'ai.onnx'}.{name}: not an ONNX {onnx.__version__} operator")
            continue
        vs = sorted(versions)
        base = max((v for v in vs if v <= max(since, KILN_BASE_OPSET)), default=None)
        if base is None:
            problems.append(f"{name} [{since},{until}]: registered before its first version {vs[0]}")
            continue
        if until and until < base:
            base = max(v for v in vs if v <= until)
        ref = signature(versions[base])
        widest = KILN_MAX_OPSET
        for v in vs:
            if v > base and signature(versions[v]) != ref:
                widest = v - 1
                break
        end = until if until else KILN_MAX_OPSET
        if suggest:
            print(f"{domain or '-'} {name} {since} {until} -> {0 if widest == KILN_MAX_OPSET else widest}")
        elif end > widest:
            nxt = widest + 1
            problems.append(f"{name} [{since},{until or 'open'}] implements version {base} but covers "
                            f"version {nxt}, whose signature differs")
    if suggest:
        return
    for p in problems:
        print("kiln opset ranges:", p)
    print(f"{len(rows) - 1} descriptors checked against onnx {onnx.__version__}: {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()

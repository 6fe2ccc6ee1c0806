#!/bin/sh
# The package's pytest suite against the extension and CLI of a sanitizer
# build (BUILD_DIR configured with -DKILN_SANITIZE=ON -DKILN_BUILD_PYTHON=ON),
# the ASan and UBSan runtimes preloaded into the venv's Python (CPython's own
# allocations are not leak-checked).
# usage: run_sanitized.sh BUILD_DIR VENV_PYTHON
set -eu
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
BUILD=$(cd "$1" && pwd)
case $2 in /*) PY=$2 ;; *) PY=$PWD/$2 ;; esac
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/kiln/_bin"
cp "$ROOT"/python/kiln/*.py "$ROOT"/python/kiln/*.pyi "$ROOT"/python/kiln/py.typed "$T/kiln/"
cp "$BUILD"/python/_kiln*.so "$T/kiln/"
cp "$BUILD/kiln" "$T/kiln/_bin/"
CC=${CC:-cc}
PRELOAD="$($CC -print-file-name=libasan.so):$($CC -print-file-name=libubsan.so)"
cd "$T"
PYTHONPATH="$T" LD_PRELOAD="$PRELOAD" ASAN_OPTIONS=detect_leaks=0 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  "$PY" -c "import kiln, sys; sys.exit(0 if kiln.__file__.startswith('$T') else 'not the sanitizer build')"
PYTHONPATH="$T" LD_PRELOAD="$PRELOAD" ASAN_OPTIONS=detect_leaks=0 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  "$PY" -m pytest -q -p no:cacheprovider -c "$ROOT/pyproject.toml" "$ROOT/tests/python/pkg"

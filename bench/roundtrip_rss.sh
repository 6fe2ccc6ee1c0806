#!/bin/sh
# Peak memory of a kiln load + save round trip on a ~500 MB model.
#
# Generates a stack of large nn.Linear layers exported from PyTorch (weights
# as raw_data), round trips it with tests/tools/roundtrip.c under
# /usr/bin/time -v, and prints file size, wall time, peak RSS and the ratio
# peak RSS / file size. The loader keeps large raw_data in the mapped file
# and the saver streams it out, so the ratio should stay below 1.3 (pages of
# the mapping count towards RSS once read). Records, does not assert.
#
# usage: bench/roundtrip_rss.sh [BUILD_DIR] [LAYERS]   (default: build, 8)
set -eu
BUILD=${1:-build}
LAYERS=${2:-8}
TOOL="$BUILD/tests/kiln-roundtrip"
[ -x "$TOOL" ] || { echo "roundtrip_rss: $TOOL not built" >&2; exit 2; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/kiln-rss-XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM

/usr/bin/python3 - "$TMP/big.onnx" "$LAYERS" <<'PY'
import sys
import torch
path, layers = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
net = torch.nn.Sequential(*[torch.nn.Linear(4096, 4096) for _ in range(layers)]).eval()
with torch.no_grad():
    torch.onnx.export(net, torch.randn(1, 4096), path, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}}, opset_version=13)
PY

run() { # label, args...
    label=$1
    shift
    sync
    /usr/bin/time -v "$TOOL" "$@" 2> "$TMP/time.log" || { cat "$TMP/time.log" >&2; exit 1; }
    size=$(stat -c %s "$TMP/big.onnx")
    rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$TMP/time.log")
    wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$TMP/time.log")
    awk -v l="$label" -v s="$size" -v r="$rss_kb" -v w="$wall" 'BEGIN {
        printf "%-28s file %.1f MB  wall %s  peak RSS %.1f MB  RSS/file %.3f\n",
               l, s / 1e6, w, r * 1024 / 1e6, r * 1024 / s }'
}

run "round trip (inline)" "$TMP/big.onnx" "$TMP/out.onnx"
cmp -s "$TMP/big.onnx" "$TMP/out.onnx" && echo "  output is byte-identical to the input" ||
    echo "  output size $(stat -c %s "$TMP/out.onnx") bytes"
rm -f "$TMP/out.onnx"
run "round trip (external data)" "$TMP/big.onnx" "$TMP/out.onnx" --external-threshold 1024
rm -f "$TMP/out.onnx" "$TMP/out.onnx.data"

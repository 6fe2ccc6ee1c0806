#!/bin/sh
# Long fuzz runs of kiln's parsers and engine (libFuzzer, ASan + UBSan).
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# Targets: model npy pb value run (default: all). Builds build-fuzz with clang
# if needed, seeds the corpora from the ONNX test data, runs each target on
# all cores but one, and copies every crash into tests/fuzz/regressions/<target>/
# (replayed by the fuzz-regressions test in every build). Keep what it finds:
# fix the bug, then commit the input.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-600}
[ $# -gt 0 ] && shift
targets=${*:-model npy pb value run}
build=${KILN_FUZZ_BUILD:-$here/build-fuzz}
jobs=$(( $(nproc) > 1 ? $(nproc) - 1 : 1 ))

if [ ! -x "$build/kiln-fuzz-model" ]; then
    CC=clang cmake -S "$here" -B "$build" -DKILN_FUZZ=ON -DKILN_SANITIZE=ON -DCMAKE_BUILD_TYPE=Release
fi
make -C "$build" -j"$jobs" kiln-fuzz-model kiln-fuzz-npy kiln-fuzz-pb kiln-fuzz-value kiln-fuzz-run
sh "$here/tests/fuzz/seed_corpus.sh" "$build/fuzz-corpus"
mkdir -p "$build/fuzz-artifacts"

export ASAN_OPTIONS=${ASAN_OPTIONS:-allocator_may_return_null=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
status=0
for t in $targets; do
    echo "== fuzzing $t for ${secs}s with $jobs jobs"
    # -fork keeps going after a crash, so one run can find several bugs.
    "$build/kiln-fuzz-$t" -fork="$jobs" -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="$build/fuzz-artifacts/$t-" "$build/fuzz-corpus/$t" \
        > "$build/fuzz-$t.log" 2>&1 || true
    tail -n 3 "$build/fuzz-$t.log"
    for f in "$build"/fuzz-artifacts/"$t"-*; do
        [ -f "$f" ] || continue
        mkdir -p "$here/tests/fuzz/regressions/$t"
        cp "$f" "$here/tests/fuzz/regressions/$t/"
        echo "NEW: $f -> tests/fuzz/regressions/$t/"
        status=1
    done
done
[ $status -eq 0 ] && echo "no crashes found" || echo "crashes found: see tests/fuzz/regressions/ and $build/fuzz-*.log"
exit $status

#!/bin/sh
# Installs kiln from BUILD_DIR into a temporary prefix, then builds and runs a
# small downstream C program against it: with pkg-config (shared and static
# libkiln) and with CMake's find_package(kiln) (kiln::kiln, kiln::kiln_static).
# usage: run.sh BUILD_DIR MODEL
set -eu
BUILD=$1
MODEL=$2
HERE=$(cd "$(dirname "$0")" && pwd)
CC=${CC:-cc}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
P=$T/prefix
cmake --install "$BUILD" --prefix "$P" >/dev/null
LIBDIR=$(dirname "$(find "$P" -name kiln.pc)")/..
LIBDIR=$(cd "$LIBDIR" && pwd)
export PKG_CONFIG_PATH=$LIBDIR/pkgconfig

echo "== installed files"
(cd "$P" && find . -type f -o -type l | sort)
soname=$(objdump -p "$LIBDIR/libkiln.so" | awk '/SONAME/ {print $2}')
echo "SONAME $soname"
case "$soname" in libkiln.so.[0-9]*) ;; *) echo "libkiln.so has no versioned SONAME" >&2; exit 1 ;; esac
[ -e "$LIBDIR/$soname" ] || { echo "$soname is not installed" >&2; exit 1; }

echo "== pkg-config, shared"
pkg-config --modversion kiln
# shellcheck disable=SC2046
$CC -std=c11 -o "$T/pc_shared" "$HERE/downstream.c" $(pkg-config --cflags --libs kiln)
LD_LIBRARY_PATH=$LIBDIR "$T/pc_shared" "$MODEL"
ldd "$T/pc_shared" | grep -q "libkiln.so" || { echo "pc_shared does not use libkiln.so" >&2; exit 1; }

echo "== pkg-config --static (libkiln.a and the private libraries)"
# shellcheck disable=SC2046
$CC -std=c11 -o "$T/pc_static" "$HERE/downstream.c" $(pkg-config --cflags kiln) \
    -Wl,-Bstatic -lkiln -Wl,-Bdynamic $(pkg-config --static --libs kiln | sed 's/-lkiln //')
"$T/pc_static" "$MODEL"
if ldd "$T/pc_static" | grep -q "libkiln.so"; then echo "pc_static uses libkiln.so" >&2; exit 1; fi

echo "== CMake find_package(kiln)"
cmake -S "$HERE" -B "$T/cmake-build" -DCMAKE_PREFIX_PATH="$P" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$T/cmake-build" >/dev/null
LD_LIBRARY_PATH=$LIBDIR "$T/cmake-build/downstream_shared" "$MODEL"
"$T/cmake-build/downstream_static" "$MODEL"
echo "downstream builds: ok"

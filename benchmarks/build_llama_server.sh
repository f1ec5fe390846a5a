#!/usr/bin/env bash
# Build llama-server from the llama.cpp source that llama-cpp-python vendors (same commit as
# the in-process engine), with the CMake flags plancode builds llama-cpp-python with, so the
# typing benchmark compares the two on the same kernels.
#
#   benchmarks/build_llama_server.sh [SDIST_OR_SOURCE_DIR]
#
# SDIST_OR_SOURCE_DIR: an unpacked llama_cpp_python-X.Y.Z directory or its .tar.gz; default:
# `pip download`s the sdist of the llama-cpp-python version plancode pins. The binary lands in
# ${PLANCODE_LLAMA_SERVER_DIR:-~/.cache/plancode/llama-server}/<version>/bin/llama-server
# (outside the repository). Takes several minutes on 2 cores; set NICE=0 to build at full
# priority. No network is needed at build time (the web UI is neither built nor downloaded).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"
VERSION="$(cd "$ROOT" && "$PY" -c 'from plancode.doctor.llama_build import LLAMA_VERSION; print(LLAMA_VERSION)')"
OUT="${PLANCODE_LLAMA_SERVER_DIR:-$HOME/.cache/plancode/llama-server}/$VERSION"
SRC_ARG="${1:-}"
mkdir -p "$OUT"

if [[ -z "$SRC_ARG" ]]; then
    "$PY" -m pip download --no-deps --no-binary :all: --dest "$OUT/sdist" \
        "llama-cpp-python==$VERSION" >&2
    SRC_ARG="$(ls "$OUT"/sdist/llama_cpp_python-"$VERSION".tar.gz)"
fi
if [[ -f "$SRC_ARG" ]]; then
    mkdir -p "$OUT/src"
    tar -xzf "$SRC_ARG" -C "$OUT/src"
    SRC_ARG="$OUT/src/llama_cpp_python-$VERSION"
fi
LLAMA_SRC="$SRC_ARG/vendor/llama.cpp"
[[ -f "$LLAMA_SRC/CMakeLists.txt" ]] || {
    echo "no llama.cpp source at $LLAMA_SRC (give an unpacked llama-cpp-python sdist)" >&2
    exit 2
}

read -r -a FLAGS <<<"$(cd "$ROOT" && "$PY" -m plancode.doctor.llama_build cmake-args)"
echo "llama.cpp source: $LLAMA_SRC" >&2
echo "flags: ${FLAGS[*]}" >&2
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
nice -n "${NICE:-10}" cmake -S "$LLAMA_SRC" -B "$OUT/build" "${GEN[@]}" \
    -DCMAKE_BUILD_TYPE=Release "${FLAGS[@]}" \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_COMMON=ON \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF \
    -DBUILD_SHARED_LIBS=OFF >&2
nice -n "${NICE:-10}" cmake --build "$OUT/build" --target llama-server \
    -j "${JOBS:-$(nproc)}" >&2
mkdir -p "$OUT/bin"
cp "$OUT/build/bin/llama-server" "$OUT/bin/llama-server"
echo "$OUT/bin/llama-server"

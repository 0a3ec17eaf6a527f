#!/usr/bin/env bash
# Build llama.cpp's llama-server once, from the llama.cpp sources vendored in PyPI's
# llama-cpp-python sdist, and install it with its GGUF converters for exapt's local engine.
#
#   scripts/build_llama_cpp.sh [PYTHON]     (scripts/setup.sh runs it with .venv/bin/python)
#
# Installs into $EXAPT_LLAMA_CPP (default ~/.cache/exapt/llama.cpp-0.3.36): bin/llama-server
# and its .so files, convert_hf_to_gguf.py, convert_lora_to_gguf.py, conversion/, gguf-py/.
# exapt finds it there at run time (or through EXAPT_LLAMA_SERVER / EXAPT_LLAMA_CPP).
# Idempotent: when the binary runs and the stamp matches (same sources, flags and CPU), it does
# nothing. The first build takes about 3-5 minutes on 2 cores (g++, CMake >= 3.14).
# GGML_NATIVE=ON tunes the binary to this machine's CPU: the stamp names the CPU, so a cache
# copied to another kind of machine is rebuilt rather than crashing with an illegal instruction.
set -euo pipefail

VERSION=0.3.36
SDIST=llama_cpp_python-$VERSION.tar.gz
SDIST_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
PYTHON=${1:-${PYTHON:-python3}}
PREFIX=${EXAPT_LLAMA_CPP:-${XDG_CACHE_HOME:-$HOME/.cache}/exapt/llama.cpp-$VERSION}
FLAGS=(
  -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_NATIVE=ON
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
  -DCMAKE_BUILD_RPATH_USE_ORIGIN=ON   # the binary finds its .so files beside it, wherever it is
)
cpu=$({ grep -m1 -E '^model name' /proc/cpuinfo || true; } | sha256sum | cut -c1-12)
cpu_flags=$({ grep -m1 -E '^(flags|Features)' /proc/cpuinfo || true; } | sha256sum | cut -c1-12)
stamp="llama-cpp-python $VERSION $SDIST_SHA256 ${FLAGS[*]} cpu=$cpu/$cpu_flags"

if [ -x "$PREFIX/bin/llama-server" ] && [ "$(cat "$PREFIX/.stamp" 2>/dev/null)" = "$stamp" ] \
    && "$PREFIX/bin/llama-server" --version >/dev/null 2>&1; then
  echo "exapt setup: llama.cpp already built in $PREFIX"
  exit 0
fi

for tool in cmake g++ make; do
  command -v "$tool" >/dev/null || { echo "exapt setup: $tool is needed to build llama.cpp" >&2; exit 1; }
done
started=$(date +%s)
mkdir -p "$(dirname "$PREFIX")"
work=$(mktemp -d "$(dirname "$PREFIX")/.llama.cpp-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "exapt setup: building llama.cpp's llama-server from llama-cpp-python $VERSION (once; ~3-5 min)"
"$PYTHON" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$work"
echo "$SDIST_SHA256  $work/$SDIST" | sha256sum -c --quiet -
tar -xzf "$work/$SDIST" -C "$work"
src="$work/llama_cpp_python-$VERSION/vendor/llama.cpp"
cmake -S "$src" -B "$src/build" "${FLAGS[@]}" >"$work/cmake.log" 2>&1 \
  || { tail -30 "$work/cmake.log" >&2; exit 1; }
cmake --build "$src/build" --target llama-server -j "$(nproc)" >"$work/build.log" 2>&1 \
  || { tail -30 "$work/build.log" >&2; exit 1; }

stage="$work/install"
mkdir -p "$stage/bin"
cp -a "$src/build/bin/." "$stage/bin/"
cp -a "$src/convert_hf_to_gguf.py" "$src/convert_lora_to_gguf.py" "$src/conversion" \
  "$src/gguf-py" "$src/LICENSE" "$stage/"
"$stage/bin/llama-server" --version >/dev/null 2>&1 \
  || { echo "exapt setup: the built llama-server does not run" >&2; exit 1; }
echo "$stamp" >"$stage/.stamp"
rm -rf "$PREFIX"
mv "$stage" "$PREFIX"
echo "exapt setup: llama.cpp installed in $PREFIX ($(( $(date +%s) - started )) s)"

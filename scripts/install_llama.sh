#!/usr/bin/env bash
# Installs llama-cpp-python into the current Python environment from a wheel
# built once per machine with portable CPU flags, then proves it can decode.
#
# Why not plain `pip install llama-cpp-python`: the default build uses
# -march=native, and on CPUs that report AVX512/AMX the resulting library loads
# the Gemma file and then segfaults at the first decode. pip also caches a
# built wheel under its version alone, whatever CMAKE_ARGS were, so a crashing
# build once cached keeps coming back. We therefore build into our own
# wheelhouse whose folder name encodes the flags, and install from there.
set -euo pipefail

PYTHON=${PYTHON:-python}
LLAMA_VERSION=${LLAMA_VERSION:-0.3.36}
FLAGS_TAG=portable-avx2-v1
WHEELHOUSE=${HEADWATER_WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/headwater/wheels}/$FLAGS_TAG
PORTABLE_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"

installed_version() {
  "$PYTHON" - <<'PY' 2>/dev/null || true
import importlib.metadata as m
print(m.version("llama-cpp-python"))
PY
}

if [ "$(installed_version)" = "$LLAMA_VERSION" ] && [ -f "$("$PYTHON" -c 'import sys;print(sys.prefix)')/.headwater-llama-$FLAGS_TAG" ]; then
  exit 0
fi

mkdir -p "$WHEELHOUSE"
if ! ls "$WHEELHOUSE"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $LLAMA_VERSION with portable CPU flags (one time, several minutes)..." >&2
  CMAKE_ARGS="$PORTABLE_CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$PYTHON" -m pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-python \
      -w "$WHEELHOUSE.partial" "llama-cpp-python==$LLAMA_VERSION"
  mv "$WHEELHOUSE.partial"/llama_cpp_python-*.whl "$WHEELHOUSE"/
  rm -rf "$WHEELHOUSE.partial"
fi
"$PYTHON" -m pip install --no-deps --force-reinstall "$WHEELHOUSE"/llama_cpp_python-"$LLAMA_VERSION"-*.whl
# Runtime deps of llama-cpp-python come from PyPI as usual.
"$PYTHON" -m pip install "numpy>=1.20" "typing-extensions>=4.5" "diskcache>=5.6.1" "jinja2>=2.11.3"
touch "$("$PYTHON" -c 'import sys;print(sys.prefix)')/.headwater-llama-$FLAGS_TAG"

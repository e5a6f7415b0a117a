#!/usr/bin/env bash
# The GPU benchmark: on a machine with an NVIDIA GPU, build sdcpp with the CUDA backend (only
# that GPU's architecture, through ccache), build CUDA sd-cli and sd-server from the same pinned
# source as baselines, and write bench/RESULTS-gpu.md with the library, CLI and server rows.
#
#   scripts/gpu_bench.sh              # on the GPU machine
#   scripts/gpu_bench.sh --dry-run    # anywhere: check the prerequisites, print every step
#   scripts/gpu_bench.sh --quick      # CI-sized rows (fewer rounds, small model only)
#
# Budget: the build is the slow part (ccache makes a rebuild of unchanged sources cheap); the
# rows themselves are sized to finish in under 10 minutes on one GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=0
bench_args=()
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=1 ;;
    --quick) bench_args+=(--quick) ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "gpu_bench.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

step() {  # print a step; run it unless this is a dry run
  echo "+ $*"
  if [ "$dry_run" = 0 ]; then "$@"; fi
}

# The GPU's own architecture ("9.0" -> "90"), so nvcc compiles one target instead of all.
if command -v nvidia-smi >/dev/null && nvidia-smi >/dev/null 2>&1; then
  archs="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.[:space:]')"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
elif [ "$dry_run" = 1 ]; then
  archs="${CUDA_ARCHS:-90}"
  echo "(dry run: no GPU here; assuming CUDA architecture $archs)"
else
  echo "gpu_bench.sh: no NVIDIA GPU found (nvidia-smi failed); use --dry-run to check the script" >&2
  exit 1
fi
echo "building for CUDA architecture $archs"
if ! command -v nvcc >/dev/null; then
  if [ "$dry_run" = 0 ]; then echo "gpu_bench.sh: nvcc not found on PATH" >&2; exit 1; fi
  echo "(dry run: nvcc not found on PATH; the real run needs it)"
fi
command -v ccache >/dev/null || echo "warning: ccache not found, the CUDA build starts cold"

venv="build/gpu-venv"
step python -m venv "$venv"
# The build runs without isolation (build_cuda.sh), so its backend and tools go here; httpx2
# drives the server rows (python -m bench stops at once without it), cmake/ninja also build the
# sd-cli/sd-server baselines.
step "$venv/bin/python" -m pip install -q scikit-build-core pybind11 pip numpy pillow \
  cmake ninja httpx2
export CUDA_ARCHS="$archs"
# build_cuda.sh knows how to find cuBLAS from its wheel; its wheel goes to dist/cuda/.
step env PATH="$PWD/$venv/bin:$PATH" scripts/build_cuda.sh
if [ "$dry_run" = 0 ]; then
  wheel="$(ls -t dist/cuda/sdcpp-*.whl | head -1)"
else
  wheel="dist/cuda/sdcpp-<version>.whl"
fi
step "$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$wheel"
step "$venv/bin/python" -m pip install -q "$wheel"  # its runtime dependencies

# The baselines (sd-cli, sd-server) read CMAKE_ARGS and build into a dir of their own, so the
# same CUDA flags give CUDA builds of upstream from the same pinned source.
cuda_flags="-DSD_CUDA=ON -DGGML_CUDA_NO_VMM=ON -DCMAKE_CUDA_ARCHITECTURES=$archs"
# build_cuda.sh took cuBLAS from its PyPI wheel (no system cuBLAS is assumed): the baselines
# link that same one, and find it at run time through LD_LIBRARY_PATH.
cublas_lib=""
for d in build/cuda-deps/nvidia-cublas/nvidia/cu13 build/cuda-deps/nvidia-cublas/nvidia/cublas; do
  if [ -d "$d/lib" ]; then
    root="$PWD/$d" cublas_lib="$PWD/$d/lib"
    cuda_flags+=" -DCUDA_cublas_LIBRARY=$cublas_lib/libcublas.so"
    cuda_flags+=" -DCUDA_cublasLt_LIBRARY=$cublas_lib/libcublasLt.so"
    cuda_flags+=" -DCMAKE_CUDA_FLAGS=-I$root/include -DCMAKE_CXX_FLAGS=-I$root/include"
    cuda_flags+=" -DCMAKE_SHARED_LINKER_FLAGS=-Wl,-rpath-link,$cublas_lib"
    break
  fi
done
[ -n "$cublas_lib" ] || echo "(cuBLAS wheel not unpacked yet: the baselines' flags name no cuBLAS path)"
export CMAKE_ARGS="$cuda_flags ${CMAKE_ARGS:-}"
echo "baselines' CMAKE_ARGS: $CMAKE_ARGS"
# Run bench/ from outside the checkout, so `import sdcpp` finds the CUDA build installed in the
# venv rather than this checkout's sources (which hold no compiled extension of that build).
path_dir="$PWD/build/gpu-bench-path"
step mkdir -p "$path_dir"
step ln -sfn "$PWD/bench" "$path_dir/bench"
out="$PWD/bench/RESULTS-gpu.md"
if [ "$dry_run" = 1 ]; then
  # The CPU half of the last step, for real: the bench imports from a path dir outside the
  # checkout as the GPU run imports it, its options parse, and it names what it lacks.
  check_dir="$(mktemp -d)"
  trap 'rm -rf "$check_dir"' EXIT
  ln -s "$PWD/bench" "$check_dir/bench"
  env -C /tmp PYTHONPATH="$check_dir" python -m bench --help >/dev/null
  env -C /tmp PYTHONPATH="$check_dir" python -c \
    "import sys; from bench.run import missing_requirements as m; p = m(False); print(p or 'bench requirements: met here'); sys.exit(bool(p))"
  echo "(dry run: python -m bench imports and parses its options from outside the checkout)"
fi
start=$(date +%s)
step env -C /tmp PATH="$PWD/$venv/bin:$PATH" PYTHONPATH="$path_dir" \
  LD_LIBRARY_PATH="$cublas_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$PWD/$venv/bin/python" \
  -m bench "${bench_args[@]}" --sdcpp-python "$PWD/$venv/bin/python" --out "$out"
echo "bench rows took $(( $(date +%s) - start )) s"

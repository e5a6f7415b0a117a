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
command -v nvcc >/dev/null || { echo "gpu_bench.sh: nvcc not found on PATH" >&2; exit 1; }
command -v ccache >/dev/null || echo "warning: ccache not found, the CUDA build starts cold"

venv="build/gpu-venv"
step python -m venv "$venv"
step "$venv/bin/python" -m pip install -q scikit-build-core pybind11 pip numpy pillow
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
export CMAKE_ARGS="-DSD_CUDA=ON -DGGML_CUDA_NO_VMM=ON -DCMAKE_CUDA_ARCHITECTURES=$archs ${CMAKE_ARGS:-}"
# Run bench/ from outside the checkout, so `import sdcpp` finds the CUDA build installed in the
# venv rather than this checkout's sources (which hold no compiled extension of that build).
path_dir="$PWD/build/gpu-bench-path"
step mkdir -p "$path_dir"
step ln -sfn "$PWD/bench" "$path_dir/bench"
out="$PWD/bench/RESULTS-gpu.md"
start=$(date +%s)
step env -C /tmp PYTHONPATH="$path_dir" "$PWD/$venv/bin/python" -m bench "${bench_args[@]}" \
  --sdcpp-python "$PWD/$venv/bin/python" --out "$out"
echo "bench rows took $(( $(date +%s) - start )) s"

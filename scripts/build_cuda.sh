#!/usr/bin/env bash
# Build sdcpp with the CUDA backend on a machine that has nvcc but no GPU driver and no system
# cuBLAS: cuBLAS comes from the PyPI wheel nvidia-cublas. Produces a wheel in dist/cuda/.
#
#   scripts/build_cuda.sh            # sm_90 (Hopper) by default
#   CUDA_ARCHS="86;90" scripts/build_cuda.sh
#
# Why each flag: CMake's FindCUDAToolkit cannot find the wheel's cuBLAS by itself, so its
# libraries and headers are passed explicitly; GGML_CUDA_NO_VMM avoids linking libcuda (the
# driver library, absent without a GPU driver); the architecture list is pinned because
# "native" detection needs a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

archs="${CUDA_ARCHS:-90}"
cublas_version="13.0.2.14"
wheels="build/cuda-deps"
mkdir -p "$wheels" dist/cuda
if ! ls "$wheels"/nvidia_cublas-*.whl >/dev/null 2>&1; then
  python -m pip download --no-deps --only-binary=:all: -d "$wheels" "nvidia-cublas==$cublas_version"
fi
prefix="$wheels/nvidia-cublas"
rm -rf "$prefix" && mkdir -p "$prefix"
python -m zipfile -e "$wheels"/nvidia_cublas-*.whl "$prefix"
root="$(cd "$prefix/nvidia/cu13" 2>/dev/null || cd "$prefix/nvidia/cublas"; pwd)"
lib="$root/lib"
for so in libcublas libcublasLt; do  # the wheel ships only the versioned sonames
  [ -e "$lib/$so.so" ] || ln -s "$(basename "$(ls "$lib/$so.so."* | head -1)")" "$lib/$so.so"
done

export CUDACXX="${CUDACXX:-$(command -v nvcc)}"
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
export CMAKE_ARGS="-DSD_CUDA=ON -DGGML_CUDA_NO_VMM=ON -DCMAKE_CUDA_ARCHITECTURES=$archs \
 -DCUDA_cublas_LIBRARY=$lib/libcublas.so -DCUDA_cublasLt_LIBRARY=$lib/libcublasLt.so \
 -DCMAKE_CUDA_FLAGS=-I$root/include -DCMAKE_CXX_FLAGS=-I$root/include \
 -DCMAKE_SHARED_LINKER_FLAGS=-Wl,-rpath-link,$lib ${CMAKE_ARGS:-}"
start=$(date +%s)
python -m pip wheel --no-build-isolation --no-deps -w dist/cuda \
  -C build-dir=build/cuda .
echo "CUDA build (archs $archs) took $(( $(date +%s) - start )) s"
python - <<'EOF'
import glob, zipfile
wheel = sorted(glob.glob("dist/cuda/sdcpp-*.whl"))[-1]
names = zipfile.ZipFile(wheel).namelist()
print(wheel, [n for n in names if n.endswith(".so")])
EOF

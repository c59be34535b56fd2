#!/usr/bin/env bash
# Everything that needs a GPU, in one command on a lent GPU machine.
#
#   here:   tools/gpu_check.sh --prepare   build build-gpu/ (with cuDNN) and
#                                          pack gpu-pack/: what travels
#           tools/gpu_check.sh --dry-run   --prepare, then the whole check on
#                                          this machine's OpenCL device
#                                          (PoCL), small sizes; cuDNN absent
#   there:  the device tool's run with command "tools/gpu_check.sh --run",
#           carry ["gpu-pack"], timeout_s 480 (the GPU machine has none of
#           our Debian packages and no network: the binaries and every
#           library they need that is not glibc travel in gpu-pack/lib)
#
# The report: $OUT/gpu_check.txt there (also printed), gpu-pack/report.txt
# here. Each step has its own time limit and the check goes on after a
# failing step, so one run gives everything: the op-test table and the
# fixtures on opencl and cudnn, the OpenCL op tests once per conv path
# (UNET3D_CONV_PATH=direct, =igemm), bench (all rows) and bench --train
# paper on both, the OpenCL conv rows once per path (so the report compares
# the direct kernels, the implicit GEMM and cuDNN on one card), and
# `unet3d tune` (75 s of search, less than --quick: see run_checks) with
# bench again. The step limits add up to
# BUDGET (470 s) and no step runs past it (a step that would is cut to what
# is left, or skipped): the whole check fits the device tool's 480 s.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PACK=$ROOT/gpu-pack
BINS="unet3d test_ops test_opencl_ops test_cudnn"

prepare() {
    local cudnn=ON
    [ -x /usr/local/cuda/bin/nvcc ] || command -v nvcc >/dev/null || cudnn=AUTO
    cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DUNET3D_CUDNN=$cudnn \
        >/dev/null || return 1
    cmake --build build-gpu -j"$(nproc)" --target unet3d_cli test_ops \
        test_opencl_ops $( [ $cudnn = ON ] && echo test_cudnn ) >/dev/null ||
        return 1
    rm -rf "$PACK"
    mkdir -p "$PACK/bin" "$PACK/lib" "$PACK/icd"
    cp build-gpu/unet3d "$PACK/bin/"
    for t in test_ops test_opencl_ops test_cudnn; do
        [ -x "build-gpu/tests/$t" ] && cp "build-gpu/tests/$t" "$PACK/bin/"
    done
    # every shared library but glibc's own: the GPU image's glibc is as new
    # or newer; libOpenCL.so.1 is Debian's ICD loader
    ldd "$PACK"/bin/* | awk '/=> \//{print $3}' | sort -u | while read -r l; do
        case $(basename "$l") in
        libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*) ;;
        *) cp -L "$l" "$PACK/lib/" ;;
        esac
    done
    mkdir -p "$PACK/golden"
    if [ -d ../shared/golden ]; then
        cp -r ../shared/golden/. "$PACK/golden/"
    else
        echo "gpu_check: ../shared/golden not found: only data/golden's fixtures will run"
    fi
    cp -r data/golden/. "$PACK/golden/" # the repository's (make_golden_*.py)
    git rev-parse --short HEAD > "$PACK/commit" 2>/dev/null
    echo "gpu_check: packed $(du -sh "$PACK" | cut -f1) into gpu-pack/ (the device" \
         "tool carries up to 64 MiB with the tree):"
    (cd "$PACK" && ls bin lib | tr '\n' ' ')
    echo
}

REPORT=/dev/null
BUDGET=470 # seconds for all steps: the tool's 480 s less the setup
say() { echo "$*" | tee -a "$REPORT"; }

# step NAME SECONDS COMMAND...: runs it with a time limit (cut to what is
# left of BUDGET), logs it, goes on
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET - SECONDS))
    say ""
    if [ "$left" -lt 5 ]; then
        say "=== $name: skipped, the ${BUDGET}-s budget is spent"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    say "=== $name  ($*)"
    local t0=$SECONDS log
    log=$(mktemp)
    timeout --kill-after=5 "$limit" "$@" >"$log" 2>&1
    local rc=$?
    cat "$log" >>"$REPORT"
    tail -n 25 "$log"
    rm -f "$log"
    say "--- $name: exit $rc, $((SECONDS - t0)) s$( [ $rc = 124 ] && echo ' (time limit)')"
}

# The first folder holding a file named like $1 under the given roots.
find_lib_dir() {
    local pat=$1
    shift
    local f
    f=$(find "$@" -name "$pat" 2>/dev/null | head -n 1)
    [ -n "$f" ] && dirname "$f"
}

setup_env() {
    local ld=$PACK/lib
    local py_roots
    py_roots=$(python3 -c 'import site,sys; print(" ".join(site.getsitepackages()+[p for p in sys.path if "site-packages" in p]))' 2>/dev/null)
    local d
    for pat in 'libcudnn.so.9*' 'libcudart.so.1[2-9]*' 'libnvrtc.so.1[2-9]*' \
               'libnvrtc-builtins.so*' 'libcublas.so.1[2-9]*'; do
        d=$(find_lib_dir "$pat" $py_roots /usr/local/cuda/lib64 \
            /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu)
        if [ -n "$d" ]; then
            say "found $pat in $d"
            case ":$ld:" in *":$d:"*) ;; *) ld=$ld:$d ;; esac
        else
            say "NOT FOUND: $pat (cudnn backend steps will say why)"
        fi
    done
    local ocl
    ocl=$(ldconfig -p 2>/dev/null | awk '/libnvidia-opencl.so.1/{print $NF; exit}')
    [ -z "$ocl" ] && ocl=$(find /usr/local/nvidia /usr/lib/x86_64-linux-gnu \
        /usr/lib64 -name 'libnvidia-opencl.so.1' 2>/dev/null | head -n 1)
    if [ -n "$ocl" ]; then
        echo "$ocl" > "$PACK/icd/nvidia.icd"
        export OCL_ICD_VENDORS=$PACK/icd
        say "found NVIDIA's OpenCL driver: $ocl"
    elif [ "$MODE" = run ]; then
        say "NOT FOUND: libnvidia-opencl.so.1 (the opencl steps will see no GPU)"
    fi
    export LD_LIBRARY_PATH=$ld${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    export UNET3D_CACHE_DIR=${TMPDIR:-/tmp}/unet3d-gpu-check-cache
}

# The bench rows of the OpenCL conv passes (bench --only takes names).
conv_rows() {
    "$1" bench --list 2>/dev/null | grep '^conv3d_' | paste -sd, -
}

run_checks() {
    # tune: --quick is a 90-s search, but each of the 15 passes x buckets
    # measures its baseline and confirms its winner past its share, so
    # 75 s of search fit the step's 95 s (on PoCL, whose implicit GEMM
    # takes seconds per run, 30 s do)
    local B=$PACK/bin G=$PACK/golden quick=() train=paper tmin=1.25
    if [ "$MODE" = dry ]; then
        quick=(--quick) train=tiny tmin=0.5
    fi
    local convs
    convs=$(conv_rows "$B/unet3d")
    say "gpu_check $(cat "$PACK/commit" 2>/dev/null) on $(hostname), $(date -u)"
    # limits in s, in order of need; they add up to BUDGET (470)
    step gpu 10 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    step devices 10 "$B/unet3d" devices
    step op_tests 35 "$B/test_ops"
    step opencl_ops_direct 30 env UNET3D_CONV_PATH=direct "$B/test_opencl_ops"
    step opencl_ops_igemm 30 env UNET3D_CONV_PATH=igemm "$B/test_opencl_ops"
    [ -x "$B/test_cudnn" ] && step cudnn_tests 30 "$B/test_cudnn"
    if [ -d "$G" ]; then
        step golden_opencl 20 "$B/unet3d" golden --backend opencl "$G"
        step golden_cudnn 20 "$B/unet3d" golden --backend cudnn "$G"
    fi
    step bench_opencl 35 "$B/unet3d" bench --backend opencl "${quick[@]}"
    if [ -n "$convs" ]; then
        step bench_conv_direct 20 env UNET3D_CONV_PATH=direct "$B/unet3d" \
            bench --backend opencl "${quick[@]}" --only "$convs"
        step bench_conv_igemm 20 env UNET3D_CONV_PATH=igemm "$B/unet3d" \
            bench --backend opencl "${quick[@]}" --only "$convs"
    else
        say ""
        say "=== bench_conv_*: bench --list names no conv3d_ rows: skipped"
    fi
    step bench_cudnn 30 "$B/unet3d" bench --backend cudnn "${quick[@]}"
    step train_opencl 25 "$B/unet3d" bench --backend opencl --train "$train"
    step train_cudnn 25 "$B/unet3d" bench --backend cudnn --train "$train"
    # conv3d, conv3d_igemm (with its per-pass choice of path), batch norm
    step tune 95 "$B/unet3d" tune --minutes "$tmin"
    step bench_tuned 35 "$B/unet3d" bench --backend opencl "${quick[@]}"
    say ""
    say "gpu_check: done in $SECONDS s"
}

case ${1:---dry-run} in
--prepare)
    prepare
    ;;
--dry-run)
    MODE=dry
    prepare || { echo "gpu_check: the build failed"; exit 1; }
    REPORT=$PACK/report.txt
    : >"$REPORT"
    echo "gpu_check: dry run on this machine (what --run does on the GPU" \
         "machine, with small sizes)"
    SECONDS=0 # the budget counts the checks, not the build
    setup_env
    run_checks
    echo "gpu_check: report in gpu-pack/report.txt"
    ;;
--run)
    MODE=run
    [ -x "$PACK/bin/unet3d" ] || {
        echo "gpu_check: gpu-pack/ is missing: run tools/gpu_check.sh" \
             "--prepare here and carry gpu-pack"
        exit 1
    }
    REPORT=${OUT:-$PACK}/gpu_check.txt
    : >"$REPORT"
    SECONDS=0
    setup_env
    run_checks
    ;;
*)
    sed -n '2,20p' "$0"
    exit 2
    ;;
esac

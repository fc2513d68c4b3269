#!/usr/bin/env bash
# Issue 20's GPU checks as one prepared run (at most 10 minutes on an H200 by its timeouts):
#   1. build the CUDA plugins once, in parallel, outside the repository: ours
#      (stylebridge_ops), rosinality's (fused, upfirdn2d) and NVlabs' (bias_act_plugin,
#      upfirdn2d_plugin), after the patches below; build logs and the patch list go to OUT;
#      once ours is built, gpu_smoke.py launches each new kernel (fused epilogue, tiled
#      upfirdn2d) for the first time, alone in its process: a kernel that fails there is left
#      out of steps 2-4's benchmarks (a bad launch would spoil its process's CUDA context and
#      every measurement after it) and its switch stays off;
#   2. bench_gpu_speed.py: every fast path of ours against fp32 eager on the native ops
#      (256 px, fp32 bound 1e-4; bf16/fp16 errors stated), then 1024 px synthesis at batch
#      32/1/8: ours fp32, bf16, fp16, the same with the polyphase up-sampling convolution,
#      compiled (CUDA graphs) bf16 / bf16 polyphase / bf16 on native ops / fp32, rosinality
#      fp32 (its CUDA ops), NVlabs fp32 and fp16 top-4 resolutions (its plugins), side by
#      side; after BENCH_BUDGET seconds nothing more is compiled; the JSON is rewritten after
#      every batch size, so a timeout keeps what was measured;
#   3. the FeatureShift full-size joint training step, fp32 vs AMP (bf16), each as shipped and
#      with all three unmeasured fast paths on (polyphase up-sampling convolution, fused
#      epilogue, tiled upfirdn2d), with the GPU kernel time per step (torch.profiler), as
#      benchmarks/RESULTS.md measured it before;
#   4. the fused styled-conv epilogue kernel vs the three ops it replaces, and the tiled
#      upfirdn2d kernel vs the generic one and the native depthwise convolution (bench_ops.py
#      --ops epilogue / upfirdn2d,blur), then tests/test_ops.py, test_ops_epilogue.py and
#      test_ops_tiled.py -m gpu (CUDA vs native, forward and backward, fp32/fp16/bf16).
# Every step has its own timeout and a failure does not stop the next; JSON (with machine,
# driver and torch versions) goes to OUT.
#
#   benchmarks/gpu_speed.sh [OUT_DIR]           # from the repository root
#   DRY_RUN=1 benchmarks/gpu_speed.sh /tmp/o    # CPU, tiny sizes: checks the script here
#
# Before the device call, put the peers' sources in .peers/ (git-ignored) and carry it:
#   benchmarks/prepare_peers.sh .peers [ROSINALITY_GIT_DIR] [NVLABS_GIT_DIR]
# The device call (one `run`, carry [".peers"], timeout_s 600):
#   set -o pipefail; bash benchmarks/gpu_speed.sh "$OUT" 2>&1 | tee "$OUT/run.log"
# then copy the JSON files to benchmarks/results/ and give the machine back; OUT/summary_<gpu>.md
# (benchmarks/summarize_gpu_speed.py) says what they show and which switches they turn on.
#
# Patches applied to the peers' copies (outside the repository) where torch 2.14 / CUDA 13 break
# them, found by building their plugins with nvcc 13 on a CPU machine: benchmarks/patch_peers.py
# (NVlabs' plugin loader only); each change is listed in OUT/peer_patches.txt.
#
# Environment: DRY_RUN (1: CPU, tiny), WORK (scratch, default /tmp/speed-gpu), PYTHON
# (default python3), timeouts in seconds: BUILD_TIMEOUT (step 1, 120) + SMOKE_TIMEOUT (step 1,
# after our build, 25 per kernel), BENCH_TIMEOUT (step 2, 245), FS_TIMEOUT (step 3, 70),
# EPI_TIMEOUT + TILE_TIMEOUT + TEST_TIMEOUT (step 4, 25 + 40 + 45): 595 s in all at worst
# (the smoke tests overlap the peers' builds);
# BENCH_BUDGET (175, seconds into step 2 after which nothing more is compiled),
# COMPILED ("bf16 bf16-polyphase bf16-native fp32": the compiled variants, in the order they
# are compiled, at batch 1), COMPILED_FOR ("32=bf16,bf16-polyphase 8=": fewer compiles at the
# other batch sizes, each about a minute), BATCHES (default "32 1 8": the headline goal first).
set -uo pipefail
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out_dir=${1:-benchmarks/results}
work=${WORK:-/tmp/speed-gpu}
dry=${DRY_RUN:-0}
mkdir -p "$out_dir" "$work"
out_dir=$(cd "$out_dir" && pwd)
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export STYLEBRIDGE_HOME="$work/home" TORCH_EXTENSIONS_DIR="$work/torch_extensions"
export STYLEBRIDGE_OPS=auto
export MAX_JOBS=${MAX_JOBS:-16}
if [ "$dry" = 1 ]; then
    device=cpu
    tag=cpu_dry
else
    device=cuda
    # "NVIDIA H200" -> h200; the arch list from the device (9.0 on an H100/H200)
    read -r tag arch < <("$py" -c "import re, torch; n = torch.cuda.get_device_name(0); \
m = re.search(r'\b([A-Z]+[0-9]{2,4}[A-Za-z]*)\b', n); c = torch.cuda.get_device_capability(0); \
print((m.group(1) if m else n.split()[-1]).lower(), f'{c[0]}.{c[1]}')")
    export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$arch}
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
        | tee "$out_dir/speed_${tag}_nvidia_smi.txt"
fi
echo "== device $device ($tag), work $work"

# --------------------------------------------------------------------------------------------
# the peers, copied outside the repository and patched where new toolchains break them
peers=""
patch_peers() {  # dir; what it changed goes to $out_dir/peer_patches.txt
    "$py" "$here/patch_peers.py" "$1" | tee "$out_dir/peer_patches.txt"
}
if [ -d "$repo/.peers/rosinality" ] || [ -d "$repo/.peers/nvlabs" ]; then
    rm -rf "$work/peers"
    cp -r "$repo/.peers" "$work/peers"
    patch_peers "$work/peers"
    peers="--peers $work/peers"
else
    echo "!! no .peers/ (benchmarks/prepare_peers.sh): rosinality and NVlabs are left out"
fi

# --------------------------------------------------------------------------------------------
build_rc=0 test_rc=0 bench_rc=0 fs_rc=0
rm -f "$work/excluded"
smoke() {  # first launch of each new kernel, one process each; failures -> $work/excluded
    for kernel in epilogue tiled; do
        CUDA_LAUNCH_BLOCKING=1 timeout "${SMOKE_TIMEOUT:-25}" "$py" "$here/gpu_smoke.py" \
            --path "$kernel" --device "$device" --out "$out_dir/smoke_${kernel}_$tag.json" \
            > "$out_dir/smoke_${kernel}.log" 2>&1 || echo "$kernel" >> "$work/excluded"
    done
}
if [ "$device" = cuda ]; then
    echo "== 1. build the CUDA plugins (in parallel; logs in $out_dir/build_*.log), then the" \
         "first launch of each new kernel (smoke_*.json)"
    start=$(date +%s)
    (timeout "${BUILD_TIMEOUT:-120}" "$py" -c "from stylebridge.core.ops import _cuda; _cuda.build()" \
        > "$out_dir/build_ours.log" 2>&1; rc=$?; smoke; exit $rc) &
    pids=($!)
    if [ -n "$peers" ]; then
        (cd "$work/peers/rosinality" && timeout "${BUILD_TIMEOUT:-120}" "$py" -c "import op" \
            > "$out_dir/build_rosinality.log" 2>&1) &
        pids+=($!)
        (cd "$work/peers/nvlabs" && timeout "${BUILD_TIMEOUT:-120}" "$py" -c "
from torch_utils import custom_ops
custom_ops.verbosity = 'full'
from torch_utils.ops import bias_act, upfirdn2d
print('bias_act plugin:', bias_act._init(), 'upfirdn2d plugin:', upfirdn2d._init())
" > "$out_dir/build_nvlabs.log" 2>&1) &
        pids+=($!)
    fi
    for p in "${pids[@]}"; do wait "$p" || build_rc=$?; done
    echo "built in $(( $(date +%s) - start )) s (status $build_rc)"
    tail -n 3 "$out_dir"/build_*.log
else
    smoke  # on the CPU nothing is launched: this checks the script and the plumbing
fi
excluded=$(sort -u "$work/excluded" 2>/dev/null | tr '\n' ' ' | sed 's/ *$//')
if [ -n "$excluded" ]; then
    echo "!! left out of the benchmarks (first launch failed, see $out_dir/smoke_*): $excluded"
fi
# the FeatureShift step's fast paths: all three, or those that passed their first launch
fast_all=all
if [ -n "$excluded" ]; then
    fast_all=polyphase
    for kernel in epilogue tiled; do
        case " $excluded " in *" $kernel "*) ;; *) fast_all="$fast_all+$kernel" ;; esac
    done
fi

echo "== 2. agreement and 1024 px throughput"
args=(--out "$out_dir/speed_$tag.json" --compiled ${COMPILED:-bf16 bf16-polyphase bf16-native fp32}
      --compiled-for ${COMPILED_FOR:-32=bf16,bf16-polyphase 8=}
      --budget "${BENCH_BUDGET:-175}")
# shellcheck disable=SC2206
[ -n "$excluded" ] && args+=(--exclude $excluded)
if [ "$dry" = 1 ]; then args+=(--dry-run); else args+=(--batches ${BATCHES:-32 1 8}); fi
# shellcheck disable=SC2086
timeout "${BENCH_TIMEOUT:-245}" "$py" "$here/bench_gpu_speed.py" "${args[@]}" $peers || bench_rc=$?

echo "== 3. FeatureShift, full size, fp32 vs AMP (bf16)"
if [ "$dry" = 1 ]; then
    fs=(--preset tiny --device cpu --precisions fp32 --steps 1 --repeats 1 --warmup 0
        --fast-paths "none,$fast_all")
else
    # joint stored step (the full preset's default variant); --profile: GPU kernel time per
    # step, the measure issue 20's FeatureShift goal is stated in; as shipped vs fast paths
    fs=(--preset full --device cuda --precisions fp32,amp --fast-paths "none,$fast_all" --profile)
fi
timeout "${FS_TIMEOUT:-70}" "$py" "$here/bench_featureshift.py" "${fs[@]}" \
    --data "$work/fs" --out "$out_dir/featureshift_full_speed_$tag.json" || fs_rc=$?
if [ "$device" = cuda ]; then
    echo "== 4. the fused epilogue and the tiled upfirdn2d alone, then the GPU op tests"
    case " $excluded " in *" epilogue "*) echo "(epilogue left out)" ;; *)
    timeout "${EPI_TIMEOUT:-25}" "$py" "$here/bench_ops.py" --ops epilogue \
        --dtypes float32,bfloat16 --out "$out_dir/ops_epilogue_$tag.json" 2>&1 | tail -n 12 ;;
    esac
    case " $excluded " in *" tiled "*) echo "(tiled upfirdn2d left out)" ;; *)
    timeout "${TILE_TIMEOUT:-40}" "$py" "$here/bench_ops.py" --ops upfirdn2d,blur \
        --dtypes float32,bfloat16 --out "$out_dir/ops_upfirdn2d_$tag.json" 2>&1 | tail -n 40 ;;
    esac
    timeout "${TEST_TIMEOUT:-45}" "$py" -m pytest -q -p no:cacheprovider "$repo/tests/test_ops.py" \
        "$repo/tests/test_ops_epilogue.py" "$repo/tests/test_ops_tiled.py" -m gpu 2>&1 \
        | tail -n 15 || test_rc=$?
fi
echo "== summary (what the JSON shows, and the switches it decides): $out_dir/summary_$tag.md"
sum_args=("$out_dir/speed_$tag.json" --out "$out_dir/summary_$tag.md")
[ -f "$out_dir/featureshift_full_speed_$tag.json" ] \
    && sum_args+=(--featureshift "$out_dir/featureshift_full_speed_$tag.json")
[ -f "$out_dir/ops_epilogue_$tag.json" ] && sum_args+=(--epilogue "$out_dir/ops_epilogue_$tag.json")
[ -f "$out_dir/ops_upfirdn2d_$tag.json" ] && sum_args+=(--upfirdn2d "$out_dir/ops_upfirdn2d_$tag.json")
[ -f "$out_dir/speed_$tag.json" ] && "$py" "$here/summarize_gpu_speed.py" "${sum_args[@]}" | tail -n 25
echo "== done: build $build_rc, speed $bench_rc, featureshift $fs_rc, op tests $test_rc"
exit $(( build_rc != 0 || test_rc != 0 || bench_rc != 0 || fs_rc != 0 ))

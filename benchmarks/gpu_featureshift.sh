#!/usr/bin/env bash
# FeatureShift on a GPU machine, as one prepared run (issue 8's GPU checks):
#   1. the torchrun/DDP path with NCCL (every GPU of the machine; one GPU still runs
#      DistributedDataParallel over NCCL), checkpoint, then --resume to the end;
#   2. training throughput at the thesis's full size (1024 px config-f generator,
#      512x16x16 features, FeatureShift 1024 -> 768 -> 512, thesis losses MSE + LPIPS + ID)
#      with fp32, AMP (bf16) and fp16 side by side.
#
#   benchmarks/gpu_featureshift.sh [OUT_DIR]        # from the repository root
#
# Environment: DEVICE (default cuda; cpu runs step 1 with gloo, for checking the script),
# FULL (default 1; 0 skips step 2), WORK (scratch folder, default /tmp/fs-gpu; datasets
# there are reused by a second run), FULL_TIMEOUT (seconds for step 2, default 420).
set -euo pipefail
# native ops by default: building the CUDA extension on a fresh machine takes minutes of the
# GPU time (STYLEBRIDGE_OPS=auto to use it; the JSON records which ops ran)
export STYLEBRIDGE_OPS=${STYLEBRIDGE_OPS:-native}
out_dir=${1:-benchmarks/results}
device=${DEVICE:-cuda}
work=${WORK:-/tmp/fs-gpu}
mkdir -p "$out_dir" "$work"
here=$(cd "$(dirname "$0")" && pwd)

if [ "$device" = cuda ]; then
    nproc=$(python -c "import torch; print(torch.cuda.device_count())")
    tag=$(python -c "import torch; print(torch.cuda.get_device_name(0).split()[-1].lower())")
else
    nproc=2
    tag=cpu
fi
echo "== 1. DDP through torchrun: $nproc process(es) on $device"
python "$here/bench_featureshift.py" --preset tiny --device "$device" --precisions fp32 \
    --variants joint-stored --steps 1 --repeats 1 --warmup 0 --data "$work/tiny" > /dev/null
rm -rf "$work/ddp"
train=(-m stylebridge train featureshift --data "$work/tiny/stored"
       --generator "$work/tiny/gen.safetensors" --loss mse:1.0 --batch 2
       --pretrain-inversion-steps 2 --checkpoint-every 2 --log-every 1 --sample-every 3
       --device "$device" --out "$work/ddp")
OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node "$nproc" "${train[@]}" --steps 4
OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node "$nproc" "${train[@]}" --steps 6 --resume
python - "$work/ddp/log.jsonl" "$nproc" "$device" "$out_dir/featureshift_ddp_$tag.json" <<'PY'
import json, math, sys
log = [json.loads(line) for line in open(sys.argv[1])]
world, device, out = int(sys.argv[2]), sys.argv[3], sys.argv[4]
starts = [r for r in log if r.get("event") == "start"]
steps = [r["step"] for r in log if "total" in r]
want = "nccl" if device == "cuda" else "gloo"
ok = (len(starts) == 2 and all(s["backend"] == want and s["world_size"] == world for s in starts)
      and starts[1]["resumed"] and steps == list(range(1, 7))
      and all(math.isfinite(r["total"]) for r in log if "total" in r))
result = {"check": "featureshift-ddp-torchrun", "backend": starts[0]["backend"],
          "world_size": starts[0]["world_size"], "device": starts[0]["device"],
          "steps_logged": steps, "resumed_at": starts[1]["step"] if len(starts) > 1 else None,
          "totals": [r["total"] for r in log if "total" in r], "ok": ok}
print(json.dumps(result, indent=2))
open(out, "w").write(json.dumps(result, indent=2) + "\n")
sys.exit(0 if ok else 1)
PY

if [ "${FULL:-1}" = 1 ] && [ "$device" = cuda ]; then
    echo "== 2. full size, fp32 vs AMP (bf16) vs fp16"
    timeout "${FULL_TIMEOUT:-420}" python "$here/bench_featureshift.py" --preset full \
        --device cuda --precisions fp32,amp,fp16 --losses thesis --data "$work/full" \
        --out "$out_dir/featureshift_full_$tag.json"
fi

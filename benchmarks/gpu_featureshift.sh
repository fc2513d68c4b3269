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
# It needs no installed stylebridge (the repository root goes on PYTHONPATH) and runs with
# the machine's python3.  The device machines have torch, safetensors, pluggy, rich, pillow
# but not `lpips` (step 2's LPIPS loss): put its wheel in .whl/ and carry that folder:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl lpips==0.1.4
# Without it, step 2 times MSE only and its JSON says so ("losses").
#
# The device call (one `run`, kind left out, carry [".whl"], timeout_s 540; 77 s on an H200):
#   set -o pipefail; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader;
#   DDP_TIMEOUT=120 FULL_TIMEOUT=300 bash benchmarks/gpu_featureshift.sh "$OUT" 2>&1 | tee "$OUT/run.log"
# then copy the JSON files from the returned folder to benchmarks/results/ and give the
# machine back.  A failure in step 1 does not stop step 2; the exit status says which failed.
#
# Environment: DEVICE (default cuda; cpu runs step 1 with gloo, for checking the script),
# FULL (default 1; 0 skips step 2), WORK (scratch folder, default /tmp/fs-gpu; datasets
# there are reused by a second run), FULL_TIMEOUT (seconds for step 2, default 420),
# DDP_TIMEOUT (seconds per torchrun launch of step 1, default 120),
# PYTHON (default python3).
set -euo pipefail
# native ops by default: building the CUDA extension on a fresh machine takes minutes of the
# GPU time (STYLEBRIDGE_OPS=auto to use it; the JSON records which ops ran)
export STYLEBRIDGE_OPS=${STYLEBRIDGE_OPS:-native}
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
out_dir=${1:-benchmarks/results}
device=${DEVICE:-cuda}
work=${WORK:-/tmp/fs-gpu}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
mkdir -p "$out_dir" "$work"
site="$work/site"
if compgen -G "$repo/.whl/*.whl" > /dev/null; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" "$repo"/.whl/*.whl
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
if [ -d "$site" ]; then export PYTHONPATH="$PYTHONPATH:$site"; fi
losses=thesis
"$py" -c "import lpips" 2> /dev/null || losses=mse

if [ "$device" = cuda ]; then
    # one CUDA start; "NVIDIA H100 80GB HBM3" -> h100, "NVIDIA H200" -> h200
    read -r nproc tag < <("$py" -c "import re, torch; n = torch.cuda.get_device_name(0); \
m = re.search(r'\b([A-Z]+[0-9]{2,4}[A-Za-z]*)\b', n); \
print(torch.cuda.device_count(), (m.group(1) if m else n.split()[-1]).lower())")
else
    nproc=2
    tag=cpu
fi
echo "== 1. DDP through torchrun: $nproc process(es) on $device ($tag)"
ddp() {  # every command checked: a failure here must not cost step 2
"$py" "$here/bench_featureshift.py" --preset tiny --device "$device" --precisions fp32 \
    --variants joint-stored --steps 1 --repeats 1 --warmup 0 --data "$work/tiny" > /dev/null || return
rm -rf "$work/ddp"
local train=(-m stylebridge train featureshift --data "$work/tiny/stored"
       --generator "$work/tiny/gen.safetensors" --loss mse:1.0 --batch 2 --adversarial 0
       --pretrain-inversion-steps 2 --checkpoint-every 2 --log-every 1 --sample-every 3
       --device "$device" --out "$work/ddp")
local run=(timeout "${DDP_TIMEOUT:-120}" "$py" -m torch.distributed.run --standalone
               --local-addr 127.0.0.1 --nproc_per_node "$nproc")
OMP_NUM_THREADS=1 "${run[@]}" "${train[@]}" --steps 4 || return
OMP_NUM_THREADS=1 "${run[@]}" "${train[@]}" --steps 6 --resume || return
cp "$work/ddp/log.jsonl" "$out_dir/featureshift_ddp_${tag}_log.jsonl" || return
"$py" - "$work/ddp/log.jsonl" "$nproc" "$device" "$out_dir/featureshift_ddp_$tag.json" <<'PY'
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
from stylebridge.core.io import write_json
write_json(out, result)
sys.exit(0 if ok else 1)
PY
}
ddp_rc=0 full_rc=0
ddp || { ddp_rc=$?; echo "!! step 1 failed (status $ddp_rc); step 2 runs anyway"; }

if [ "${FULL:-1}" = 1 ] && [ "$device" = cuda ]; then
    echo "== 2. full size, fp32 vs AMP (bf16) vs fp16 (losses: $losses)"
    timeout "${FULL_TIMEOUT:-420}" "$py" "$here/bench_featureshift.py" --preset full \
        --device cuda --precisions fp32,amp,fp16 --losses "$losses" --data "$work/full" \
        --out "$out_dir/featureshift_full_$tag.json" || full_rc=$?
fi
echo "== done: step 1 status $ddp_rc, step 2 status $full_rc"
exit $(( ddp_rc != 0 || full_rc != 0 ))

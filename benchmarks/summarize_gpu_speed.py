"""Read what ``gpu_speed.sh`` wrote and say what it shows (issue 20), as Markdown.

For the GPU session that ran it, so the decisions are made by one stated rule, not by eye:

* agreement: every fast path's max |diff| against fp32 eager (fp32 paths bound 1e-4);
* throughput per batch size: images/s of every variant, ratios to ours fp32 and the peers;
* the issue's goals: batch 32 bf16 >= 1,000 img/s, batch 8 >= 600, batch 1 >= 200 (any of
  our paths of that batch whose name says bf16 or compiled counts; the fastest is named);
* the switches, each "faster at every batch size where it was measured (at least one), in
  fp32 and bf16, and its fp32 agreement within bound" (else it stays off):
  ``MEASURED_FASTER["cuda"]`` (core/compiled.py: compiled vs eager),
  ``UPCONV_BY_DEVICE["cuda"]`` (core/stylegan2/polyphase.py: polyphase vs transpose, eager),
  ``EPILOGUE_MEASURED_FASTER`` (core/ops/backend.py: fused epilogue vs the three ops),
  ``TILED_UPFIRDN2D_MEASURED_FASTER`` (core/ops/backend.py: tiled upfirdn2d; it must also win
  every row of bench_ops.py alone: vs the generic kernel on up/down, vs native on the blur);
* FeatureShift: GPU kernel time per joint step against the issue's baseline (186 ms fp32,
  155 ms bf16), goal 1.6x lower.

    python benchmarks/summarize_gpu_speed.py OUT/speed_h200.json \\
        [--featureshift OUT/featureshift_full_speed_h200.json] \\
        [--epilogue OUT/ops_epilogue_h200.json] [--upfirdn2d OUT/ops_upfirdn2d_h200.json] \\
        [--out summary.md]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

GOALS = {32: 1000.0, 8: 600.0, 1: 200.0}  # images/s, issue 20
FS_BASELINE_MS = {"fp32": 186.0, "amp": 155.0}  # GPU kernel time per joint step, issue 20
FS_GOAL = 1.6
FP32_BOUND = 1e-4

# switch -> (candidate, reference) variant pairs that must all favour the candidate
SWITCHES: dict[str, list[tuple[str, str]]] = {
    'MEASURED_FASTER["cuda"] = True (core/compiled.py)': [
        ("ours_compiled_fp32", "ours_fp32"), ("ours_compiled_bf16", "ours_bf16")],
    'UPCONV_BY_DEVICE["cuda"] = "polyphase" (core/stylegan2/polyphase.py)': [
        ("ours_polyphase_fp32", "ours_fp32"), ("ours_polyphase_bf16", "ours_bf16")],
    "EPILOGUE_MEASURED_FASTER = True (core/ops/backend.py)": [
        ("ours_epilogue_fp32", "ours_fp32"), ("ours_epilogue_bf16", "ours_bf16")],
    "TILED_UPFIRDN2D_MEASURED_FASTER = True (core/ops/backend.py)": [
        ("ours_tiled_fp32", "ours_fp32"), ("ours_tiled_bf16", "ours_bf16")],
}
TILED_SWITCH = "TILED_UPFIRDN2D_MEASURED_FASTER = True (core/ops/backend.py)"
# the fp32 variant whose agreement each switch also needs
SWITCH_AGREEMENT = {name: pairs[0][0] for name, pairs in SWITCHES.items()}


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def agreement_lines(agreement: Mapping[str, Any]) -> list[str]:
    lines = [f"Agreement at {agreement.get('size')} px, batch {agreement.get('batch')}, TF32 off, "
             f"against {agreement.get('reference')}:", "",
             "| variant | max abs diff | mean abs diff | fp32 bound |", "|---|---:|---:|---|"]
    for name, row in agreement.get("variants", {}).items():
        bound = ("–" if "bound" not in row else
                 f"{row['bound']:g}: {'ok' if row.get('ok') else '**exceeded**'}")
        lines.append(f"| {name} | {row['max_abs_diff']:.2e} | {row['mean_abs_diff']:.2e} | "
                     f"{bound} |")
    return lines


def throughput_lines(rows: list[Mapping[str, Any]]) -> list[str]:
    lines: list[str] = []
    for row in rows:
        ips: Mapping[str, float] = row["images_per_s"]
        base = ips.get("ours_fp32")
        peers = {k: v for k, v in ips.items() if not k.startswith("ours")}
        best_peer = max(peers.items(), key=lambda kv: kv[1]) if peers else None
        lines += ["", f"Batch {row['batch']} ({row['size']} px), images/s:", "",
                  "| variant | images/s | vs ours fp32 | vs "
                  + (best_peer[0] if best_peer else "best peer") + " |",
                  "|---|---:|---:|---:|"]
        for name, value in sorted(ips.items(), key=lambda kv: -kv[1]):
            vs_base = f"{value / base:.2f}×" if base else "–"
            vs_peer = f"{value / best_peer[1]:.2f}×" if best_peer else "–"
            lines.append(f"| {name} | {_fmt(value)} | {vs_base} | {vs_peer} |")
        notes = {k: v for k, v in row.get("failed_or_notes", {}).items()
                 if not k.endswith("_compile_seconds")}
        for name, why in notes.items():
            lines.append(f"\n{name}: {why}")
    return lines


def goal_lines(rows: list[Mapping[str, Any]]) -> list[str]:
    lines = ["", "Goals (issue 20):", ""]
    by_batch = {row["batch"]: row["images_per_s"] for row in rows}
    for batch, goal in GOALS.items():
        ips = by_batch.get(batch)
        if ips is None:
            lines.append(f"- batch {batch} ≥ {goal:,.0f} img/s: not measured")
            continue
        fast = {k: v for k, v in ips.items()
                if k.startswith("ours") and ("bf16" in k or "compiled" in k)}
        if not fast:
            lines.append(f"- batch {batch} ≥ {goal:,.0f} img/s: no bf16 or compiled path measured")
            continue
        name, value = max(fast.items(), key=lambda kv: kv[1])
        verdict = "**met**" if value >= goal else "not met"
        lines.append(f"- batch {batch} ≥ {goal:,.0f} img/s: {verdict} ({name}: {value:,.1f})")
    return lines


def switch_decisions(result: Mapping[str, Any], upfirdn2d_ops: Mapping[str, Any] | None = None
                     ) -> dict[str, tuple[bool, str]]:
    """Each switch -> (turn it on?, why), by the rule in the module docstring (the tiled
    kernel's also by :func:`tiled_ops_check` on ``upfirdn2d_ops``)."""
    rows = result.get("throughput", [])
    agreement = result.get("agreement", {}).get("variants", {})
    decisions: dict[str, tuple[bool, str]] = {}
    for switch, pairs in SWITCHES.items():
        ratios: list[str] = []
        ok, missing = True, []
        for cand, ref in pairs:  # each pair at every batch size where both were measured
            seen = False
            for row in rows:
                ips = row["images_per_s"]
                if cand not in ips or ref not in ips:
                    continue
                seen = True
                ratio = ips[cand] / ips[ref]
                ratios.append(f"{cand} / {ref} at batch {row['batch']}: {ratio:.2f}×")
                ok = ok and ratio > 1.0
            if not seen:
                missing.append(cand)
        check = agreement.get(SWITCH_AGREEMENT[switch])
        if check is None:
            missing.append(f"{SWITCH_AGREEMENT[switch]} agreement")
        elif not check.get("ok", False):
            ok = False
            ratios.append(f"{SWITCH_AGREEMENT[switch]} max abs diff {check['max_abs_diff']:.2e} "
                          f"> {FP32_BOUND:g}")
        if missing or not rows:
            decisions[switch] = (False, "not measured: " + (", ".join(missing) or "no rows"))
            continue
        if switch == TILED_SWITCH:
            ops_ok, why = tiled_ops_check(upfirdn2d_ops)
            ok = ok and ops_ok
            ratios.append(why)
        decisions[switch] = (ok, "; ".join(ratios))
    return decisions


def tiled_ops_check(ops: Mapping[str, Any] | None) -> tuple[bool, str]:
    """The tiled upfirdn2d kernel alone must also win every row of bench_ops.py: against the
    generic kernel on up/down-sampling (``cuda/tiled``) and against the native depthwise
    convolution on the plain blur (``native/tiled``), every dtype and mode."""
    rows = [r for r in (ops or {}).get("results", []) if r.get("tiled_ms")]
    if not rows:
        return False, "bench_ops.py upfirdn2d rows not measured"
    worst: tuple[float, str] | None = None
    for row in rows:
        blur = row["op"].startswith("blur")
        ratio = row["native_over_tiled"] if blur else row["cuda_over_tiled"]
        what = f"{'native' if blur else 'cuda'}/tiled {ratio:.2f}× on {row['op']} " \
               f"{row['dtype']} {row['mode']}"
        if worst is None or ratio < worst[0]:
            worst = (ratio, what)
    assert worst is not None
    return worst[0] > 1.0, f"bench_ops.py's least: {worst[1]}"


def featureshift_lines(fs: Mapping[str, Any]) -> list[str]:
    lines = ["", "FeatureShift joint step, GPU kernel time (torch.profiler), goal "
             f"{FS_GOAL}× below the baseline ({FS_BASELINE_MS['fp32']:.0f} ms fp32, "
             f"{FS_BASELINE_MS['amp']:.0f} ms AMP):", "",
             "| run | kernel ms | baseline / this | goal |", "|---|---:|---:|---|"]
    for key, prof in fs.get("profile", {}).items():
        precision = "amp" if "/amp" in key else "fp32" if "/fp32" in key else None
        busy = prof.get("device_busy_ms")
        if precision is None or busy is None:
            continue
        ratio = FS_BASELINE_MS[precision] / busy
        lines.append(f"| {key} | {busy:.1f} | {ratio:.2f}× | "
                     f"{'**met**' if ratio >= FS_GOAL else 'not met'} |")
    return lines


def epilogue_lines(ops: Mapping[str, Any]) -> list[str]:
    lines = ["", "Fused epilogue alone (bench_ops.py; three ops ms / fused ms):", "",
             "| case | dtype | mode | three ops ms | fused ms | ratio |",
             "|---|---|---|---:|---:|---:|"]
    for row in ops.get("results", []):
        if "epilogue" not in row["op"]:
            continue
        lines.append(f"| {row['op']} | {row['dtype']} | {row['mode']} | "
                     f"{_fmt(row['native_ms'], 3)} | {_fmt(row.get('cuda_ms'), 3)} | "
                     f"{_fmt(row.get('speedup'), 2)} |")
    return lines


def upfirdn2d_lines(ops: Mapping[str, Any]) -> list[str]:
    lines = ["", "upfirdn2d alone (bench_ops.py; ms; > 1: tiled faster):", "",
             "| case | dtype | mode | native | generic | tiled | native/tiled | generic/tiled |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for row in ops.get("results", []):
        if not row.get("tiled_ms"):
            continue
        lines.append(f"| {row['op']} | {row['dtype']} | {row['mode']} | "
                     f"{_fmt(row['native_ms'], 3)} | {_fmt(row.get('cuda_ms'), 3)} | "
                     f"{_fmt(row['tiled_ms'], 3)} | {_fmt(row['native_over_tiled'], 2)} | "
                     f"{_fmt(row['cuda_over_tiled'], 2)} |")
    return lines


def summarize(result: Mapping[str, Any], featureshift: Mapping[str, Any] | None = None,
              epilogue: Mapping[str, Any] | None = None,
              upfirdn2d: Mapping[str, Any] | None = None) -> str:
    machine = result.get("machine", {})
    lines = [f"Machine: {machine.get('gpu', machine.get('cpu', '?'))}, driver "
             f"{machine.get('driver', '?')}, torch {machine.get('torch', '?')}, CUDA "
             f"{machine.get('cuda', '?')}, cuDNN {machine.get('cudnn', '?')}; ops backend "
             f"{result.get('ops_backend', '?')}"
             + ("; **dry run (CPU, tiny): not a measurement**" if result.get("dry_run") else ""),
             ""]
    if result.get("excluded_kernels"):
        lines += [f"**Left out:** {', '.join(result['excluded_kernels'])}: the first launch "
                  "failed in gpu_smoke.py (see smoke_*.json and the GPU op tests); its switch "
                  "stays off.", ""]
    if "agreement" in result:
        lines += agreement_lines(result["agreement"])
    rows = result.get("throughput", [])
    lines += throughput_lines(rows)
    lines += goal_lines(rows)
    lines += ["", "Switches (on only if faster at every batch size where measured, fp32 and "
              "bf16, and the fp32 path agrees):", ""]
    for switch, (on, why) in switch_decisions(result, upfirdn2d).items():
        lines.append(f"- {switch}: {'**yes**' if on else 'no'} ({why})")
    if featureshift is not None:
        lines += featureshift_lines(featureshift)
    if epilogue is not None:
        lines += epilogue_lines(epilogue)
    if upfirdn2d is not None:
        lines += upfirdn2d_lines(upfirdn2d)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("speed", type=Path, help="speed_<gpu>.json from gpu_speed.sh")
    parser.add_argument("--featureshift", type=Path, default=None)
    parser.add_argument("--epilogue", type=Path, default=None)
    parser.add_argument("--upfirdn2d", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown here")

    def load(path: Path | None) -> Any:
        return None if path is None else json.loads(path.read_text())
    args = parser.parse_args()
    text = summarize(load(args.speed), load(args.featureshift), load(args.epilogue),
                     load(args.upfirdn2d))
    print(text, end="")
    if args.out:
        from stylebridge.core.io import atomic_path

        with atomic_path(args.out) as tmp:
            tmp.write_text(text)


if __name__ == "__main__":
    main()

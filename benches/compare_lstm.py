"""Run `recur bench lstm`, the PyTorch reference (benches/torch_lstm_bench.py)
and the same models on ONNX Runtime (benches/ort_lstm_bench.py) side by side,
and print PyTorch, ORT and recur with the recur/PyTorch and recur/ORT ratios.

For every workload, every thread count and every round, each implementation
runs as a separate subprocess (fresh process each, so peak RSS is per run):

    RECUR --threads N bench lstm --workload W --json TMP --min-seconds S
    PYTHON benches/torch_lstm_bench.py --workload W --threads N --json TMP --min-seconds S
    PYTHON benches/ort_lstm_bench.py   --workload W --threads N --json TMP --min-seconds S

The ORT runner builds the PyTorch script's model with the same seed (same
weights, same inputs), exports it with torch.onnx.export (opset 17, dynamic
batch; nn.LSTM / nn.GRU become ONNX LSTM / GRU nodes), runs it on
onnxruntime with intra_op_num_threads = N, inter_op_num_threads = 1 and all
graph optimisations, checks once that its outputs match PyTorch's within
1e-4, and measures inference throughput and batch-1 latency with the same
protocol. ONNX Runtime is inference-only here: its training figures
(train seq/s, peak RSS of training, RSS growth) are "-" in the tables and
null in the JSON.

The order rotates per round: round r starts with implementation r mod 3 of
(recur, PyTorch, ORT), then the next ones in that cycle (recur, PyTorch,
ORT; PyTorch, ORT, recur; ORT, recur, PyTorch; ...), so that slow drift of
the machine (thermal, other load) does not favour one side. With --no-ort
the two remaining alternate as before (recur first in even rounds). Each
metric is reduced to its median over rounds; the derived metric "training
RSS growth" (peak_rss_mb - rss_before_train_mb) is computed per run and
then reduced to its median.

The output starts with the CPU model (lscpu "Model name", else
/proc/cpuinfo) and the thread counts; then one table per thread count and
workload, with columns PyTorch, ORT, recur, recur/PyTorch, recur/ORT.

Ratios are always recur / other. For throughput (seq/s) higher is better;
for latency (ms) and memory (MB) lower is better. Issue 15's f32 targets
(TARGETS below; recur / PyTorch, and recur / ORT where named):

    w1      train seq/s >= 1.5    infer seq/s >= 1.3, ORT >= 1.0    peak RSS <= 1.0
    w2      train seq/s >= 1.3    b1 p50 ms <= 0.5, ORT <= 1.0
    w2-gru  train seq/s >= 1.3    b1 p50 ms <= 0.5, ORT <= 1.0

PyTorch's inference and batch-1 figures are the better of its two CPU paths
(oneDNN, its default, and its own kernels; see torch_lstm_bench.py), and the
table names the path each came from. Its peak RSS includes `import torch`
(some 700 MB with the CUDA wheel): "train RSS growth" compares training
itself.

With --precision bf16, recur runs its bf16 products (`recur --precision bf16
bench lstm`: bf16 operands, f32 sums) against PyTorch and ORT in f32, and
the only target is issue 15's bf16 one: w2 training >= 2.5x PyTorch f32 on
a CPU with AMX, >= 1.5x elsewhere (Zen 4's AVX512-BF16). On a CPU without
bf16 instructions recur computes the same numbers in f32 units, slower than
its f32 path; the header says which ran.

All raw runs (ORT's included), the medians and the ratios are written to
--out as JSON. No network is used.

Usage (from the repo root, after `cargo build --release`; the venv needs
torch, numpy, onnxruntime, onnx and onnxscript, or pass --no-ort)::

    .venv-ref/bin/python benches/compare_lstm.py
    .venv-ref/bin/python benches/compare_lstm.py --workloads w2 --threads 1 --rounds 5
    .venv-ref/bin/python benches/compare_lstm.py --no-ort
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCH_SCRIPT = os.path.join(ROOT, "benches", "torch_lstm_bench.py")
ORT_SCRIPT = os.path.join(ROOT, "benches", "ort_lstm_bench.py")
sys.path.insert(0, os.path.join(ROOT, "benches"))
from bench_env import cpu_model, ort_available  # noqa: E402

# (key, label, higher_is_better)
METRICS = [
    ("train_seq_per_s", "train seq/s", True),
    ("infer_seq_per_s", "infer seq/s", True),
    ("lat_b1_p50_ms", "b1 p50 ms", False),
    ("lat_b1_p95_ms", "b1 p95 ms", False),
    ("peak_rss_mb", "peak RSS MB", False),
    ("rss_growth_mb", "train RSS growth MB", False),
]
# (workload, metric) -> (comparison, threshold) on the recur/PyTorch ratio
# Issue 15's f32 targets: (reference, comparison, threshold) on recur / reference.
TARGETS = {
    ("w1", "train_seq_per_s"): [("pytorch", ">=", 1.5)],
    ("w1", "infer_seq_per_s"): [("pytorch", ">=", 1.3), ("ort", ">=", 1.0)],
    ("w1", "peak_rss_mb"): [("pytorch", "<=", 1.0)],
    ("w2", "train_seq_per_s"): [("pytorch", ">=", 1.3)],
    ("w2", "lat_b1_p50_ms"): [("pytorch", "<=", 0.5), ("ort", "<=", 1.0)],
    ("w2-gru", "train_seq_per_s"): [("pytorch", ">=", 1.3)],
    ("w2-gru", "lat_b1_p50_ms"): [("pytorch", "<=", 0.5), ("ort", "<=", 1.0)],
}


def bf16_targets(cpu_flags):
    """Issue 15's bf16 target: w2 training against PyTorch f32, 2.5x with AMX, 1.5x without."""
    need = 2.5 if "amx_bf16" in cpu_flags else 1.5
    return {("w2", "train_seq_per_s"): [("pytorch", ">=", need)]}


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()
IMPLS = ("recur", "pytorch", "ort")
LABELS = {"recur": "recur", "pytorch": "PyTorch", "ort": "ORT"}


ACTIVE_TARGETS = TARGETS


def rotation(impls, rnd):
    """The order of round `rnd`: `impls` rotated left by rnd mod len(impls)."""
    k = rnd % len(impls)
    return tuple(impls[k:]) + tuple(impls[:k])


def run_one(impl, cmd_prefix, workload, threads, min_seconds, tmpdir, precision="f32"):
    """Run one benchmark subprocess and return its parsed JSON (plus rss_growth_mb)."""
    out = os.path.join(tmpdir, f"{impl}-{workload}-{threads}.json")
    if os.path.exists(out):
        os.unlink(out)
    if impl == "recur":
        cmd = [cmd_prefix, "--threads", str(threads), "--precision", precision,
               "bench", "lstm", "--workload", workload,
               "--json", out, "--min-seconds", str(min_seconds)]
    else:
        script = TORCH_SCRIPT if impl == "pytorch" else ORT_SCRIPT
        cmd = [cmd_prefix, script, "--workload", workload, "--threads", str(threads),
               "--json", out, "--min-seconds", str(min_seconds)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0 or not os.path.exists(out):
        sys.stderr.write(f"error: {impl} run failed (exit {p.returncode}): {' '.join(cmd)}\n")
        sys.stderr.write(p.stdout[-4000:] + p.stderr[-4000:] + "\n")
        sys.exit(1)
    with open(out) as f:
        r = json.load(f)
    for k in ("workload", "threads"):
        if k in r and r[k] != {"workload": workload, "threads": threads}[k]:
            sys.stderr.write(f"warning: {impl} reported {k}={r[k]!r}, asked for "
                             f"{ {'workload': workload, 'threads': threads}[k]!r}\n")
    peak, before = r.get("peak_rss_mb"), r.get("rss_before_train_mb")
    r["rss_growth_mb"] = peak - before if peak is not None and before is not None else None
    r["_wall_s"] = wall
    return r


def median(values):
    vals = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return statistics.median(vals) if vals else None


def check(workload, key, ratios):
    """The targets of one row and whether each is met: ("PyTorch >= 1.3, ...", "yes, NO"),
    or ("", "") for a row without targets. `ratios` maps a reference to recur / it."""
    targets = [t for t in ACTIVE_TARGETS.get((workload, key), []) if t[0] in ratios]
    if not targets:
        return "", "", []
    text, oks, flags = [], [], []
    for ref, op, thr in targets:
        text.append(f"{LABELS[ref]} {op} {thr}")
        r = ratios[ref]
        if r is None:
            oks.append("?")
            flags.append(None)
            continue
        ok = r >= thr if op == ">=" else r <= thr
        oks.append("yes" if ok else "NO")
        flags.append(ok)
    return ", ".join(text), ", ".join(oks), flags


def ratio_of(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def fmt_ratio(r):
    return "-" if r is None else f"{r:.3g}"


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3f}"


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Compare `recur bench lstm` with the PyTorch reference and ONNX Runtime "
                    "and print ratio tables.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Ratios are recur/PyTorch and recur/ORT: higher is better for seq/s, "
               "lower is better for ms and MB.")
    ap.add_argument("--recur", default=os.path.join(ROOT, "target", "release", "recur"),
                    help="recur binary (default target/release/recur)")
    ap.add_argument("--python", default=sys.executable,
                    help="Python interpreter with torch (and onnxruntime) (default: this interpreter)")
    ap.add_argument("--no-ort", action="store_true",
                    help="skip ONNX Runtime (benches/ort_lstm_bench.py); compare recur and PyTorch only")
    ap.add_argument("--workloads", nargs="+", default=["w1", "w2", "w2-gru"],
                    choices=["w1", "w2", "w2-gru"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-seconds", type=float, default=3.0)
    ap.add_argument("--precision", choices=["f32", "bf16"], default="f32",
                    help="recur's products (PyTorch and ORT stay f32); bf16 checks the bf16 target")
    ap.add_argument("--out", default=os.path.join("runs", "bench", "compare.json"),
                    help="JSON with raw runs, medians and ratios (default runs/bench/compare.json)")
    args = ap.parse_args(argv)
    global ACTIVE_TARGETS
    ACTIVE_TARGETS = bf16_targets(cpu_flags()) if args.precision == "bf16" else TARGETS

    recur = os.path.abspath(args.recur)
    if not os.path.isfile(recur) or not os.access(recur, os.X_OK):
        sys.exit(f"error: recur binary not found at {recur}; "
                 f"build it with `cargo build --release` (or pass --recur PATH)")
    if args.rounds < 1 or any(t < 1 for t in args.threads):
        ap.error("--rounds and --threads must be >= 1")
    impls = tuple(i for i in IMPLS if not (args.no_ort and i == "ort"))
    if "ort" in impls:
        err = ort_available(args.python)
        if err:
            sys.exit(f"error: {args.python} cannot import onnxruntime/onnx ({err}); "
                     f"`pip install onnxruntime onnx onnxscript` into it, or pass --no-ort")
    prefixes = {"recur": recur, "pytorch": args.python, "ort": args.python}
    cpu = cpu_model()
    header = (f"CPU: {cpu}\nthreads: {' '.join(map(str, args.threads))}; "
              f"implementations: {', '.join(LABELS[i] for i in impls)}; "
              f"{args.rounds} rounds, order rotating per round; min {args.min_seconds:g} s per measurement"
              + ("\nprecision: recur bf16, PyTorch and ORT f32" if args.precision == "bf16" else ""))
    print(header, flush=True)

    runs = []
    with tempfile.TemporaryDirectory(prefix="compare_lstm-") as tmp:
        for threads in args.threads:
            for w in args.workloads:
                for rnd in range(args.rounds):
                    order = rotation(impls, rnd)
                    for impl in order:
                        r = run_one(impl, prefixes[impl], w, threads, args.min_seconds, tmp,
                                    args.precision)
                        runs.append({"workload": w, "threads": threads, "round": rnd,
                                     "impl": impl, "first": order[0], "result": r})
                        print(f"[threads {threads}] {w:6s} round {rnd} {LABELS[impl]:7s}  "
                              f"train {fmt(r.get('train_seq_per_s')):>8} seq/s  "
                              f"infer {fmt(r.get('infer_seq_per_s')):>8} seq/s  "
                              f"b1 p50 {fmt(r.get('lat_b1_p50_ms')):>7} ms  "
                              f"peak {fmt(r.get('peak_rss_mb')):>7} MB", flush=True)

    summary = {}
    lines = ["", header]
    n_targets = n_ok = 0
    cols = [i for i in ("pytorch", "ort", "recur") if i in impls]
    others = [i for i in ("pytorch", "ort") if i in impls]
    for threads in args.threads:
        summary[str(threads)] = {}
        for w in args.workloads:
            lines.append(f"\n### {w}, threads = {threads} (median of {args.rounds} rounds, "
                         f"min {args.min_seconds:g} s per measurement)\n")
            lines.append("| metric | " + " | ".join(LABELS[i] for i in cols) + " | "
                         + " | ".join(f"recur/{LABELS[o]}" for o in others) + " | target | ok |")
            lines.append("|---|" + "---:|" * (len(cols) + len(others)) + "---|---|")
            summary[str(threads)][w] = {}
            for key, label, _higher in METRICS:
                med = {impl: median([x["result"].get(key) for x in runs
                                     if x["workload"] == w and x["threads"] == threads
                                     and x["impl"] == impl]) for impl in impls}
                ratio = ratio_of(med["recur"], med["pytorch"])
                ratio_ort = ratio_of(med["recur"], med.get("ort"))
                rat = {"pytorch": ratio, "ort": ratio_ort} if "ort" in impls else {"pytorch": ratio}
                target, ok, flags = check(w, key, rat)
                n_targets += len(flags)
                n_ok += sum(1 for f in flags if f)
                summary[str(threads)][w][key] = {"recur": med["recur"], "pytorch": med["pytorch"],
                                                 "ort": med.get("ort"),
                                                 "ratio": ratio, "ratio_ort": ratio_ort,
                                                 "target": target or None,
                                                 "ok": all(flags) if flags else None}
                rat = {"pytorch": ratio, "ort": ratio_ort}
                lines.append(f"| {label} | " + " | ".join(fmt(med[i]) for i in cols) + " | "
                             + " | ".join(fmt_ratio(rat[o]) for o in others)
                             + f" | {target} | {ok} |")
            torch_runs = [x["result"] for x in runs if x["impl"] == "pytorch"
                          and x["workload"] == w and x["threads"] == threads]
            said = []
            for key, what in (("infer_path", "inference"), ("lat_b1_path", "batch-1")):
                got = [r.get(key) for r in torch_runs if r.get(key)]
                if got:
                    said.append(what + " " + ", ".join(
                        f"{p} in {got.count(p)} of {len(got)} rounds" for p in sorted(set(got))))
            if said:
                lines.append("\nPyTorch's better CPU path (oneDNN or its own kernels): " + "; ".join(said))
            d = [x["result"].get("max_abs_diff") for x in runs if x["impl"] == "ort"
                 and x["workload"] == w and x["threads"] == threads]
            if d:
                first = next(x["result"] for x in runs if x["impl"] == "ort"
                             and x["workload"] == w and x["threads"] == threads)
                ops = first.get("onnx_ops") or {}
                rnn = ", ".join(f"{n} x {op}" for op, n in ops.items() if op in ("LSTM", "GRU"))
                lines.append(f"\nORT: torch.onnx.export opset {first.get('opset')}, {rnn or 'no fused RNN op'}; "
                             f"max |ORT - PyTorch| on the outputs = {max(d):.3g}")
    lines.append("\nratio = recur / PyTorch" + (", recur / ORT" if "ort" in impls else "")
                 + ": higher is better for seq/s; lower is better for latency (ms) and memory (MB)."
                 + (" ORT runs inference only (no training figures)." if "ort" in impls else "")
                 + (" Target: issue 15's bf16 one, recur in bf16 against PyTorch in f32."
                    if args.precision == "bf16"
                    else " Targets are issue 15's f32 ones, on recur / the reference named."))
    lines.append(f"\ntargets met: {n_ok} / {n_targets}")
    print("\n".join(lines))

    versions = {impl: next((x["result"].get("version") for x in runs if x["impl"] == impl), None)
                for impl in impls}
    diffs = [x["result"].get("max_abs_diff") for x in runs if x["impl"] == "ort"]
    doc = {
        "config": {"recur": recur, "python": args.python, "workloads": args.workloads,
                   "threads": args.threads, "rounds": args.rounds,
                   "min_seconds": args.min_seconds, "versions": versions,
                   "impls": list(impls), "cpu": cpu, "order": "rotating per round",
                   "precision": args.precision,
                   "ort_max_abs_diff": max(diffs) if diffs else None,
                   "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        "targets": {f"{w}:{k}": [f"{LABELS[r]} {op} {thr}" for r, op, thr in ts]
                    for (w, k), ts in ACTIVE_TARGETS.items()},
        "ratio_note": ("ratio = recur / pytorch, ratio_ort = recur / ort; higher is better for "
                       "*_seq_per_s, lower for *_ms and *_mb; ort is inference-only (training keys null)"),
        "runs": runs,
        "summary": summary,
        "targets_met": n_ok,
        "targets_checked": n_targets,
    }
    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(out), prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run `recur bench lstm` and the PyTorch reference (benches/torch_lstm_bench.py)
side by side and print recur/PyTorch ratio tables.

For every workload, every thread count and every round, both implementations
run as separate subprocesses (fresh process each, so peak RSS is per run):

    RECUR --threads N bench lstm --workload W --json TMP --min-seconds S
    PYTHON benches/torch_lstm_bench.py --workload W --threads N --json TMP --min-seconds S

In even rounds (0, 2, ...) recur goes first, in odd rounds PyTorch goes first,
so that slow drift of the machine (thermal, other load) does not favour one
side. Each metric is reduced to its median over rounds; the derived metric
"training RSS growth" (peak_rss_mb - rss_before_train_mb) is computed per run
and then reduced to its median.

Ratios are always recur / PyTorch. For throughput (seq/s) higher is better;
for latency (ms) and memory (MB) lower is better. Targets:

    w1      train seq/s  >= 1.5     w1 infer seq/s >= 1.2    w1 peak RSS <= 1.0
    w2      train seq/s  >= 1.5     w2 b1 p50 ms   <= 0.25
    w2-gru  train seq/s  >= 1.5

All raw runs, the medians and the ratios are written to --out as JSON.
No network is used.

Usage (from the repo root, after `cargo build --release`)::

    .venv-ref/bin/python benches/compare_lstm.py
    .venv-ref/bin/python benches/compare_lstm.py --workloads w2 --threads 1 --rounds 5
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCH_SCRIPT = os.path.join(ROOT, "benches", "torch_lstm_bench.py")

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
TARGETS = {
    ("w1", "train_seq_per_s"): (">=", 1.5),
    ("w1", "infer_seq_per_s"): (">=", 1.2),
    ("w1", "peak_rss_mb"): ("<=", 1.0),
    ("w2", "train_seq_per_s"): (">=", 1.5),
    ("w2", "lat_b1_p50_ms"): ("<=", 0.25),
    ("w2-gru", "train_seq_per_s"): (">=", 1.5),
}
IMPLS = ("recur", "pytorch")


def run_one(impl, cmd_prefix, workload, threads, min_seconds, tmpdir):
    """Run one benchmark subprocess and return its parsed JSON (plus rss_growth_mb)."""
    out = os.path.join(tmpdir, f"{impl}-{workload}-{threads}.json")
    if os.path.exists(out):
        os.unlink(out)
    if impl == "recur":
        cmd = [cmd_prefix, "--threads", str(threads), "bench", "lstm", "--workload", workload,
               "--json", out, "--min-seconds", str(min_seconds)]
    else:
        cmd = [cmd_prefix, TORCH_SCRIPT, "--workload", workload, "--threads", str(threads),
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


def check(workload, key, ratio):
    t = TARGETS.get((workload, key))
    if t is None:
        return "", ""
    op, thr = t
    target = f"{op} {thr}"
    if ratio is None:
        return target, "?"
    ok = ratio >= thr if op == ">=" else ratio <= thr
    return target, "yes" if ok else "NO"


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
        description="Compare `recur bench lstm` with the PyTorch reference and print ratio tables.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Ratios are recur/PyTorch: higher is better for seq/s, lower is better for ms and MB.")
    ap.add_argument("--recur", default=os.path.join(ROOT, "target", "release", "recur"),
                    help="recur binary (default target/release/recur)")
    ap.add_argument("--python", default=sys.executable,
                    help="Python interpreter with torch (default: this interpreter)")
    ap.add_argument("--workloads", nargs="+", default=["w1", "w2", "w2-gru"],
                    choices=["w1", "w2", "w2-gru"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-seconds", type=float, default=3.0)
    ap.add_argument("--out", default=os.path.join("runs", "bench", "compare.json"),
                    help="JSON with raw runs, medians and ratios (default runs/bench/compare.json)")
    args = ap.parse_args(argv)

    recur = os.path.abspath(args.recur)
    if not os.path.isfile(recur) or not os.access(recur, os.X_OK):
        sys.exit(f"error: recur binary not found at {recur}; "
                 f"build it with `cargo build --release` (or pass --recur PATH)")
    if args.rounds < 1 or any(t < 1 for t in args.threads):
        ap.error("--rounds and --threads must be >= 1")
    prefixes = {"recur": recur, "pytorch": args.python}

    runs = []
    with tempfile.TemporaryDirectory(prefix="compare_lstm-") as tmp:
        for threads in args.threads:
            for w in args.workloads:
                for rnd in range(args.rounds):
                    order = IMPLS if rnd % 2 == 0 else IMPLS[::-1]
                    for impl in order:
                        r = run_one(impl, prefixes[impl], w, threads, args.min_seconds, tmp)
                        runs.append({"workload": w, "threads": threads, "round": rnd,
                                     "impl": impl, "first": order[0], "result": r})
                        print(f"[threads {threads}] {w:6s} round {rnd} {impl:7s}  "
                              f"train {fmt(r.get('train_seq_per_s')):>8} seq/s  "
                              f"infer {fmt(r.get('infer_seq_per_s')):>8} seq/s  "
                              f"b1 p50 {fmt(r.get('lat_b1_p50_ms')):>7} ms  "
                              f"peak {fmt(r.get('peak_rss_mb')):>7} MB", flush=True)

    summary = {}
    lines = []
    n_targets = n_ok = 0
    for threads in args.threads:
        lines.append(f"\n### threads = {threads} (median of {args.rounds} rounds, "
                     f"min {args.min_seconds:g} s per measurement)\n")
        lines.append("| workload | metric | recur | PyTorch | ratio | target | ok |")
        lines.append("|---|---|---:|---:|---:|---|---|")
        summary[str(threads)] = {}
        for w in args.workloads:
            summary[str(threads)][w] = {}
            for key, label, _higher in METRICS:
                med = {impl: median([x["result"].get(key) for x in runs
                                     if x["workload"] == w and x["threads"] == threads
                                     and x["impl"] == impl]) for impl in IMPLS}
                ratio = (med["recur"] / med["pytorch"]
                         if med["recur"] is not None and med["pytorch"] not in (None, 0) else None)
                target, ok = check(w, key, ratio)
                if target:
                    n_targets += 1
                    n_ok += ok == "yes"
                summary[str(threads)][w][key] = {"recur": med["recur"], "pytorch": med["pytorch"],
                                                 "ratio": ratio, "target": target or None,
                                                 "ok": {"yes": True, "NO": False}.get(ok)}
                lines.append(f"| {w} | {label} | {fmt(med['recur'])} | {fmt(med['pytorch'])} | "
                             f"{'-' if ratio is None else f'{ratio:.3g}'} | {target} | {ok} |")
        lines.append("\nratio = recur / PyTorch: higher is better for seq/s; "
                     "lower is better for latency (ms) and memory (MB).")
    lines.append(f"\ntargets met: {n_ok} / {n_targets}")
    print("\n".join(lines))

    versions = {impl: next((x["result"].get("version") for x in runs if x["impl"] == impl), None)
                for impl in IMPLS}
    doc = {
        "config": {"recur": recur, "python": args.python, "workloads": args.workloads,
                   "threads": args.threads, "rounds": args.rounds,
                   "min_seconds": args.min_seconds, "versions": versions,
                   "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        "targets": {f"{w}:{k}": f"{op} {thr}" for (w, k), (op, thr) in TARGETS.items()},
        "ratio_note": "ratio = recur / pytorch; higher is better for *_seq_per_s, lower for *_ms and *_mb",
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

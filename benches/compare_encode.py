"""Run `recur bench encode`, benches/torch_encode_bench.py
(sentence-transformers on PyTorch) and benches/ort_encode_bench.py (the same
model exported with torch.onnx.export and run by onnxruntime) on the same
sentences and the same thread count, in an order that rotates per round,
and print the CPU model, the medians, and the recur/PyTorch and recur/ORT
ratios side by side.

    cargo build --release && target/release/recur models fetch all-MiniLM-L6-v2
    .venv-ref/bin/pip install torch sentence-transformers onnxruntime onnx onnxscript
    .venv-ref/bin/python benches/compare_encode.py --input sentences.txt --threads 2 --rounds 3
    .venv-ref/bin/python benches/compare_encode.py --texts runs/corpus/wiki.texts.jsonl --no-ort

Each run is a fresh subprocess. Round r starts with implementation r mod 3
of (recur, PyTorch, ORT) and goes on in that cycle; with --no-ort, recur and
PyTorch alternate as before (recur first in even rounds). All three follow
the protocol of `recur bench encode`: a warm-up over the first two batches,
passes over every sentence in batches of --batch-size until --min-seconds
have passed, then 200 batch-1 calls after 10 warm-ups. The ORT runner does
BERT, mean pooling and L2 normalisation inside the ONNX graph, tokenises
with the model's own sentence-transformers preprocessing, and exits with an
error if its embeddings differ from sentence-transformers' by more than
1e-4 (the difference is printed). Ratios are always recur / other: above 1
is faster for sentences/s, below 1 is faster for latency.

--model defaults to the recur cache's all-MiniLM-L6-v2. Without --input,
the first --limit (2,000) chunk texts of a built corpus (--texts
FILE.texts.jsonl) are used. All runs, the medians and the ratios go to
--out (default runs/bench/encode.json).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))
from bench_env import cpu_model, ort_available  # noqa: E402

IMPLS = ("recur", "pytorch", "ort")
LABELS = {"recur": "recur", "pytorch": "PyTorch", "ort": "ORT"}
KEYS = [("sentences_per_s", "sentences/s"), ("lat_b1_p50_ms", "b1 p50 ms"),
        ("lat_b1_p95_ms", "b1 p95 ms"), ("lat_b1_mean_ms", "b1 mean ms")]


def rotation(impls, rnd):
    k = rnd % len(impls)
    return tuple(impls[k:]) + tuple(impls[:k])


def main():
    ap = argparse.ArgumentParser(
        description="recur bench encode vs sentence-transformers (PyTorch) vs ONNX Runtime, side by side.")
    home = Path(os.environ.get("RECUR_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "recur")
    ap.add_argument("--model", default=str(home / "models" / "all-MiniLM-L6-v2"))
    ap.add_argument("--input")
    ap.add_argument("--texts", help="a corpus .texts.jsonl to take --limit sentences from")
    ap.add_argument("--limit", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-seconds", type=float, default=5.0)
    ap.add_argument("--recur", default=str(ROOT / "target" / "release" / "recur"))
    ap.add_argument("--python", default=sys.executable,
                    help="Python with torch, sentence-transformers (and onnxruntime) (default: this one)")
    ap.add_argument("--no-ort", action="store_true", help="skip ONNX Runtime (benches/ort_encode_bench.py)")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench" / "encode.json"),
                    help="JSON with all runs, medians and ratios (default runs/bench/encode.json)")
    a = ap.parse_args()
    impls = tuple(i for i in IMPLS if not (a.no_ort and i == "ort"))
    if "ort" in impls:
        err = ort_available(a.python)
        if err:
            sys.exit(f"error: {a.python} cannot import onnxruntime/onnx ({err}); "
                     f"`pip install onnxruntime onnx onnxscript` into it, or pass --no-ort")
    tmp = Path(tempfile.mkdtemp())
    if a.input is None:
        if a.texts is None:
            sys.exit("give --input sentences.txt or --texts corpus.texts.jsonl")
        rows = [json.loads(l)["text"] for l in open(a.texts, encoding="utf-8")][: a.limit]
        a.input = str(tmp / "sentences.txt")
        Path(a.input).write_text("\n".join(rows) + "\n", encoding="utf-8")
    cpu = cpu_model()
    header = (f"CPU: {cpu}\nthreads {a.threads}, batch {a.batch_size}; implementations: "
              f"{', '.join(LABELS[i] for i in impls)}; {a.rounds} rounds, order rotating per round; "
              f"min {a.min_seconds:g} s per throughput measurement")
    print(header, flush=True)
    common = ["--model", a.model, "--input", a.input, "--threads", str(a.threads),
              "--batch-size", str(a.batch_size), "--min-seconds", str(a.min_seconds)]
    runs = {i: [] for i in impls}
    for r in range(a.rounds):
        for impl in rotation(impls, r):
            out = tmp / f"{impl}-{r}.json"
            if impl == "recur":
                cmd = [a.recur, "--threads", str(a.threads), "-q", "bench", "encode", "--encoder", a.model,
                       "--input", a.input, "--batch-size", str(a.batch_size),
                       "--min-seconds", str(a.min_seconds), "--json", str(out)]
            else:
                script = "torch_encode_bench.py" if impl == "pytorch" else "ort_encode_bench.py"
                cmd = [a.python, str(ROOT / "benches" / script), *common, "--json", str(out)]
            p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if p.returncode != 0 or not out.exists():
                sys.stderr.write(p.stderr[-4000:])
                sys.exit(f"error: {impl} run failed (exit {p.returncode}): {' '.join(cmd)}")
            runs[impl].append(json.loads(out.read_text()))
            x = runs[impl][-1]
            print(f"round {r} {LABELS[impl]:7s}: {x['sentences_per_s']:.1f} sentences/s, "
                  f"b1 p50 {x['lat_b1_p50_ms']:.2f} ms"
                  + (f", max |ORT - sentence-transformers| {x['max_abs_diff']:.3g}" if impl == "ort" else ""),
                  flush=True)
    keys = [k for k, _ in KEYS]
    med = {i: {k: statistics.median(x[k] for x in runs[i]) for k in keys} for i in runs}
    cols = [i for i in ("pytorch", "ort", "recur") if i in impls]
    others = [i for i in ("pytorch", "ort") if i in impls]
    ratios = {o: {k: med["recur"][k] / med[o][k] if med[o][k] else None for k in keys} for o in others}
    lines = ["", header,
             f"\n{runs['recur'][0]['sentences']} sentences, median of {a.rounds} rounds "
             f"(ratios recur / other)\n",
             "| measure | " + " | ".join(LABELS[i] for i in cols) + " | "
             + " | ".join(f"recur/{LABELS[o]}" for o in others) + " |",
             "|---|" + "---:|" * (len(cols) + len(others))]
    for k, label in KEYS:
        lines.append(f"| {label} | " + " | ".join(f"{med[i][k]:.2f}" for i in cols) + " | "
                     + " | ".join("-" if ratios[o][k] is None else f"{ratios[o][k]:.2f}" for o in others)
                     + " |")
    diff = max((x["max_abs_diff"] for x in runs.get("ort", [])), default=None)
    if diff is not None:
        lines.append(f"\nORT: torch.onnx.export opset {runs['ort'][0].get('opset')}, BERT + mean pooling + "
                     f"normalise in the graph; max |ORT - sentence-transformers| = {diff:.3g}")
    print("\n".join(lines))
    doc = {"config": {"model": a.model, "input": a.input, "threads": a.threads, "batch": a.batch_size,
                      "rounds": a.rounds, "min_seconds": a.min_seconds, "impls": list(impls), "cpu": cpu,
                      "order": "rotating per round", "ort_max_abs_diff": diff,
                      "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
           "runs": runs, "median": med, "ratios": {f"recur/{o}": ratios[o] for o in others}}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

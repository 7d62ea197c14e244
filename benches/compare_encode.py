"""Run `recur bench encode` and benches/torch_encode_bench.py
(sentence-transformers) alternately on the same sentences and the same
thread count, and print the medians and the recur/PyTorch ratios.

    cargo build --release && target/release/recur models fetch all-MiniLM-L6-v2
    .venv-ref/bin/python benches/compare_encode.py --input sentences.txt --threads 2 --rounds 3

--model defaults to the recur cache's all-MiniLM-L6-v2. Without --input,
the first 2,000 chunk texts of a built corpus (--texts FILE.texts.jsonl)
are used. Results go to runs/bench/encode.json.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser()
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
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    if a.input is None:
        if a.texts is None:
            sys.exit("give --input sentences.txt or --texts corpus.texts.jsonl")
        rows = [json.loads(l)["text"] for l in open(a.texts, encoding="utf-8")][: a.limit]
        a.input = str(tmp / "sentences.txt")
        Path(a.input).write_text("\n".join(rows) + "\n", encoding="utf-8")
    runs = {"recur": [], "pytorch": []}
    for r in range(a.rounds):
        order = ["recur", "pytorch"] if r % 2 == 0 else ["pytorch", "recur"]
        for impl in order:
            out = tmp / f"{impl}-{r}.json"
            if impl == "recur":
                cmd = [a.recur, "--threads", str(a.threads), "-q", "bench", "encode", "--encoder", a.model,
                       "--input", a.input, "--batch-size", str(a.batch_size),
                       "--min-seconds", str(a.min_seconds), "--json", str(out)]
            else:
                cmd = [sys.executable, str(ROOT / "benches" / "torch_encode_bench.py"), "--model", a.model,
                       "--input", a.input, "--threads", str(a.threads), "--batch-size", str(a.batch_size),
                       "--min-seconds", str(a.min_seconds), "--json", str(out)]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            runs[impl].append(json.loads(out.read_text()))
            print(f"round {r} {impl}: {runs[impl][-1]['sentences_per_s']:.1f} sentences/s, "
                  f"b1 p50 {runs[impl][-1]['lat_b1_p50_ms']:.2f} ms", flush=True)
    keys = ["sentences_per_s", "lat_b1_p50_ms", "lat_b1_p95_ms", "lat_b1_mean_ms"]
    med = {i: {k: statistics.median(x[k] for x in runs[i]) for k in keys} for i in runs}
    print(f"\n{a.threads} threads, batch {a.batch_size}, {runs['recur'][0]['sentences']} sentences, "
          f"median of {a.rounds} rounds (ratio recur/PyTorch)")
    for k in keys:
        print(f"  {k:<16} recur {med['recur'][k]:9.2f}   pytorch {med['pytorch'][k]:9.2f}   "
              f"ratio {med['recur'][k] / med['pytorch'][k]:.2f}")
    (ROOT / "runs" / "bench").mkdir(parents=True, exist_ok=True)
    (ROOT / "runs" / "bench" / "encode.json").write_text(json.dumps({"runs": runs, "median": med}, indent=1))


if __name__ == "__main__":
    main()

"""Sentence-encoding speed of Python sentence-transformers, with the
protocol of `recur bench encode` step for step: one warm-up call on the
first two batches; then every sentence of the file encoded in batches of
--batch-size (sentence-transformers sorts by length inside encode(), as
recur does), repeated until --min-seconds have passed; then 200 batch-1
calls on distinct sentences after 10 warm-ups.

    .venv-ref/bin/pip install torch sentence-transformers
    .venv-ref/bin/python benches/torch_encode_bench.py --model DIR --input sentences.txt --threads 2
"""
import argparse
import json
import time

import numpy as np
import torch
from sentence_transformers import SentenceTransformer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="sentence-transformers model folder")
    ap.add_argument("--input", required=True, help="sentences, one per line")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--min-seconds", type=float, default=3.0)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    texts = [l for l in open(a.input, encoding="utf-8").read().splitlines() if l.strip()]
    model = SentenceTransformer(a.model, device="cpu")
    enc = lambda t, b: model.encode(t, batch_size=b, normalize_embeddings=True, convert_to_numpy=True)
    with torch.inference_mode():
        enc(texts[: 2 * a.batch_size], a.batch_size)
        t0, passes = time.perf_counter(), 0
        while passes == 0 or time.perf_counter() - t0 < a.min_seconds:
            enc(texts, a.batch_size)
            passes += 1
        secs = time.perf_counter() - t0
        lat = []
        for i in range(210):
            s = time.perf_counter()
            enc([texts[i % len(texts)]], 1)
            if i >= 10:
                lat.append((time.perf_counter() - s) * 1e3)
    lat = np.array(lat)
    r = {
        "sentences": len(texts),
        "batch": a.batch_size,
        "threads": a.threads,
        "passes": passes,
        "sentences_per_s": passes * len(texts) / secs,
        "lat_b1_p50_ms": float(np.percentile(lat, 50)),
        "lat_b1_p95_ms": float(np.percentile(lat, 95)),
        "lat_b1_mean_ms": float(lat.mean()),
    }
    print(json.dumps(r))
    if a.json:
        json.dump(r, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()

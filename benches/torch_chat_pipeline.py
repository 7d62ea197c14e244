"""The /chat pipeline of `recur serve` in Python and PyTorch, in process
(no HTTP), for a side-by-side latency figure: for each request, encode the
newest message with sentence-transformers (earlier messages come from a
cache, as in recur), pad the context to C by repeating the earliest, run
the LSTM LVM that `recur demo` trained (its safetensors, same tensor names
and forward pass), and find the top 5 of the bank by one matrix product.
The messages are those of `recur bench serve --fresh --turns 3 --clients 1`.

    .venv-ref/bin/python benches/torch_chat_pipeline.py --threads 2 --requests 1000
    target/release/recur bench serve --fresh --clients 1 --requests 1000
"""
import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from sentence_transformers import SentenceTransformer

MESSAGES = [
    "What do you know about the history of Rome?",
    "The city was founded on seven hills.",
    "Tell me more about its emperors.",
    "Augustus was the first of them.",
    "How did the republic end?",
    "I read that Caesar crossed the Rubicon.",
    "What happened to the economy afterwards?",
    "Trade across the Mediterranean grew quickly.",
    "Which languages were spoken there?",
    "Latin in the west and Greek in the east.",
    "How large was the army?",
    "Roads connected the provinces to the capital.",
    "Why did the western empire fall?",
    "Historians still argue about the causes.",
    "What is the weather like in Paris today?",
    "It rained all morning near the river.",
    "The election results were announced last night.",
    "The president spoke about jobs and taxes.",
    "Our team won the match in the final minute.",
    "The coach praised the young striker.",
]


class LstmLvm(torch.nn.Module):
    """recur's `lstm` LVM with one block: Linear(D, d) -> LSTM -> LayerNorm(out + x) -> last -> Linear(d, D) -> normalize."""

    def __init__(self, d_in, d):
        super().__init__()
        self.input_proj = torch.nn.Linear(d_in, d)
        self.lstm = torch.nn.LSTM(d, d, batch_first=True)
        self.norm = torch.nn.LayerNorm(d)
        self.output_proj = torch.nn.Linear(d, d_in)

    def forward(self, x):
        h = self.input_proj(x)
        y, _ = self.lstm(h)
        h = self.norm(y[:, -1] + h[:, -1])
        return F.normalize(self.output_proj(h), dim=-1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--encoder", default=os.path.expanduser("~/.cache/recur/models/all-MiniLM-L6-v2"))
    ap.add_argument("--model", default="runs/demo/lvm/model.safetensors")
    ap.add_argument("--bank", nargs="+", default=["runs/corpus/wiki.npz", "runs/corpus/ood.npz"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--turns", type=int, default=3)
    ap.add_argument("--context", type=int, default=5)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    enc = SentenceTransformer(a.encoder, device="cpu")
    w = load_file(a.model)
    d_in, d = w["input_proj.weight"].shape[1], w["input_proj.weight"].shape[0]
    lvm = LstmLvm(d_in, d)
    lvm.load_state_dict({k.replace("blocks.0.", ""): v for k, v in w.items()}, strict=True)
    lvm.eval()
    bank = torch.from_numpy(np.concatenate([np.load(p)["vectors"] for p in a.bank]).astype(np.float32))
    bank = F.normalize(bank, dim=-1)
    cache = {}
    lat = []
    with torch.inference_mode():
        for i in range(-10, a.requests):
            j = max(i, 0)
            msgs = [MESSAGES[(j + k) % len(MESSAGES)] for k in range(a.turns)]
            msgs[-1] = msgs[-1] + f" (request {i})"
            t = time.perf_counter()
            new = [m for m in msgs if m not in cache]
            if new:
                for m, v in zip(new, enc.encode(new, convert_to_tensor=True)):
                    cache[m] = v
            vs = [cache[m] for m in msgs[-a.context:]]
            vs = [vs[0]] * (a.context - len(vs)) + vs
            pred = lvm(torch.stack(vs).unsqueeze(0))
            scores, idx = torch.topk(pred @ bank.T, 5)
            _ = (scores.tolist(), idx.tolist())
            if i >= 0:
                lat.append((time.perf_counter() - t) * 1000)
    lat = np.array(lat)
    r = {"requests": a.requests, "threads": a.threads, "p50_ms": float(np.percentile(lat, 50)),
         "p90_ms": float(np.percentile(lat, 90)), "p99_ms": float(np.percentile(lat, 99))}
    print(f"PyTorch /chat pipeline (in process, no HTTP), {a.requests} requests, {a.threads} threads: "
          f"p50 {r['p50_ms']:.2f} ms  p90 {r['p90_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms")
    if a.json:
        json.dump(r, open(a.json, "w"))


if __name__ == "__main__":
    main()

"""PyTorch reference for `recur bench lstm`: LSTM/GRU training, inference and
batch-1 latency on the CPU, on synthetic data.

`recur bench lstm` mirrors this script exactly; `benches/compare_lstm.py` runs
both and prints the ratios. No data files and no network are used.

Workloads
---------
* ``w1`` (classifier): LSTM(16, 64) -> last time step -> Dropout(0.3) ->
  Linear(64, 1) -> logits. Batch 512, sequence length 32, 16 features.
  x ~ randn [512, 32, 16]; labels ~ Bernoulli(0.3) as float.
  BCEWithLogits(pos_weight = 7/3), Adam(lr 5e-4), clip_grad_norm_(1.0).
* ``w2`` (LVM): Linear(768, 512) -> 4 x {h = LayerNorm(LSTM(512, 512)(h) + h)}
  -> last time step -> Linear(512, 768) -> L2-normalise. Batch 64, sequence
  length 5, 768 features. Inputs randn normalised along the last dim, targets
  random unit vectors [64, 768]. MSE loss, AdamW(lr 1e-3, weight decay 0.01),
  no clipping. 9,196,800 parameters.
* ``w2-gru``: as ``w2`` with GRU(512, 512) in the blocks. 7,095,552 parameters.

Inputs: 8 distinct batches are generated up front (after
``torch.manual_seed(seed)`` and model construction) and cycled through.

Measurement protocol (in this order, in one process)
----------------------------------------------------
1. ``rss_before_train_mb``: current resident set size (``/proc/self/statm``)
   just before training warm-up.
2. Training, ``model.train()``: 3 warm-up steps, then timed steps until at
   least ``--min-seconds`` have elapsed AND at least 10 steps were made. One
   step = forward, loss, backward, (clip for w1), optimizer step, zero_grad.
   ``train_seq_per_s = steps * batch / elapsed``.
3. ``peak_rss_mb`` = ``getrusage(RUSAGE_SELF).ru_maxrss / 1024`` read right
   after training (training runs first, so this is the training peak).
4. Inference throughput, ``model.eval()`` + ``torch.inference_mode()``, same
   batch size as training (512 for w1, 64 for w2s): 3 warm-up forwards, then
   timed forwards until >= ``--min-seconds`` and >= 10 passes.
   ``infer_seq_per_s = passes * batch / elapsed``.
5. Batch-1 latency (all workloads), eval + inference_mode, one input
   [1, seq_len, features]: 10 warm-up forwards, then 200 forwards each timed
   with ``time.perf_counter()``; p50 / p95 (numpy percentile, linear
   interpolation) and mean, in milliseconds.

Steps 4 and 5 run twice, on PyTorch's two CPU paths for its LSTM and GRU
layers: oneDNN (the default: for an LSTM it re-lays out the weights on
every call, about a third of a w2 batch-1 forward) and its own kernels
(``torch.backends.mkldnn.flags(enabled=False)``); each metric is PyTorch's
better one, and ``infer_path`` / ``lat_b1_path`` say which (``onednn`` or
``native``), with both paths' figures under ``paths``.

Threads: ``torch.set_num_threads(--threads)`` (default 1) and
``torch.set_num_interop_threads(1)``.

Usage (from the repo root)::

    .venv-ref/bin/python benches/torch_lstm_bench.py --workload w1
    .venv-ref/bin/python benches/torch_lstm_bench.py --workload w2 --threads 2 --json out.json
"""
import argparse, json, os, resource, sys, tempfile, time, warnings
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

N_BATCHES = 8
TRAIN_WARMUP, INFER_WARMUP, LAT_WARMUP, LAT_ITERS, MIN_ITERS = 3, 3, 10, 200, 10
EXPECTED_PARAMS = {"w2": 9_196_800, "w2-gru": 7_095_552}


class Classifier(nn.Module):
    """W1: LSTM(16, 64) -> last step -> Dropout(0.3) -> Linear(64, 1)."""

    def __init__(self, features=16, hidden=64, dropout=0.3):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, 1, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(self.dropout(out[:, -1])).squeeze(-1)


class Block(nn.Module):
    def __init__(self, d, cell):
        super().__init__()
        self.lstm = (nn.GRU if cell == "gru" else nn.LSTM)(d, d, batch_first=True)
        self.norm = nn.LayerNorm(d)

    def forward(self, h):
        return self.norm(self.lstm(h)[0] + h)


class Lvm(nn.Module):
    """W2: Linear(768, 512) -> 4 residual recurrent blocks -> last step -> Linear(512, 768) -> normalise."""

    def __init__(self, cell="lstm", d_in=768, d=512, n_blocks=4):
        super().__init__()
        self.input_proj = nn.Linear(d_in, d)
        self.blocks = nn.ModuleList([Block(d, cell) for _ in range(n_blocks)])
        self.output_proj = nn.Linear(d, d_in)

    def forward(self, x):
        h = self.input_proj(x)
        for b in self.blocks:
            h = b(h)
        return F.normalize(self.output_proj(h[:, -1]), dim=-1)


def build(workload):
    """Model, optimiser, loss_fn(pred, y), clip flag, batch, seq_len, features, data batches."""
    if workload == "w1":
        batch, seq_len, feats = 512, 32, 16
        model = Classifier(feats)
        opt = torch.optim.Adam(model.parameters(), lr=5e-4)
        bce = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(7.0 / 3.0))
        data = [(torch.randn(batch, seq_len, feats),
                 torch.bernoulli(torch.full((batch,), 0.3)))
                for _ in range(N_BATCHES)]
        return model, opt, bce, True, batch, seq_len, feats, data
    batch, seq_len, feats = 64, 5, 768
    model = Lvm("gru" if workload == "w2-gru" else "lstm")
    n = sum(p.numel() for p in model.parameters())
    assert n == EXPECTED_PARAMS[workload], f"{workload}: {n} parameters, expected {EXPECTED_PARAMS[workload]}"
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)  # weight_decay 0.01 (default)
    data = [(F.normalize(torch.randn(batch, seq_len, feats), dim=-1),
             F.normalize(torch.randn(batch, feats), dim=-1))
            for _ in range(N_BATCHES)]
    return model, opt, F.mse_loss, False, batch, seq_len, feats, data


def current_rss_mb():
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_timed(step, warmup, min_seconds, min_iters):
    """Warm-up calls, then timed calls until >= min_seconds and >= min_iters; (iters, elapsed)."""
    for i in range(warmup):
        step(i)
    i, t0 = 0, time.perf_counter()
    while True:
        step(warmup + i)
        i += 1
        elapsed = time.perf_counter() - t0
        if i >= min_iters and elapsed >= min_seconds:
            return i, elapsed


def bench(args):
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(args.seed)
    model, opt, loss_fn, clip, batch, seq_len, feats, data = build(args.workload)
    params = list(model.parameters())
    n_params = sum(p.numel() for p in params)

    # 1-3. training first, so ru_maxrss is the training peak
    rss_before = current_rss_mb()
    model.train()

    def train_step(i):
        x, y = data[i % N_BATCHES]
        loss = loss_fn(model(x), y)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()

    train_steps, train_elapsed = run_timed(train_step, TRAIN_WARMUP, args.min_seconds, MIN_ITERS)
    peak = peak_rss_mb()

    # 4-5. inference throughput and batch-1 latency, on each CPU path
    model.eval()
    paths = {}
    # mkldnn.flags() also sets TF32 on oneDNN, which warns on a CPU build.
    warnings.filterwarnings("ignore", message="TF32 acceleration")
    for path, onednn in (("onednn", True), ("native", False)):
        with torch.inference_mode(), torch.backends.mkldnn.flags(enabled=onednn):
            infer_passes, infer_elapsed = run_timed(
                lambda i: model(data[i % N_BATCHES][0]), INFER_WARMUP, args.min_seconds, MIN_ITERS)
            x1 = data[0][0][:1].clone()
            for _ in range(LAT_WARMUP):
                model(x1)
            lat = np.empty(LAT_ITERS)
            for k in range(LAT_ITERS):
                t0 = time.perf_counter()
                model(x1)
                lat[k] = time.perf_counter() - t0
        lat_ms = lat * 1e3
        paths[path] = {
            "infer_seq_per_s": infer_passes * batch / infer_elapsed,
            "lat_b1_p50_ms": float(np.percentile(lat_ms, 50)),
            "lat_b1_p95_ms": float(np.percentile(lat_ms, 95)),
            "lat_b1_mean_ms": float(lat_ms.mean()),
        }
    infer_path = max(paths, key=lambda p: paths[p]["infer_seq_per_s"])
    lat_path = min(paths, key=lambda p: paths[p]["lat_b1_p50_ms"])
    best = paths[lat_path]

    return {
        "impl": "pytorch",
        "version": torch.__version__,
        "workload": args.workload,
        "threads": args.threads,
        "params": n_params,
        "batch": batch,
        "seq_len": seq_len,
        "train_steps": train_steps,
        "train_seq_per_s": train_steps * batch / train_elapsed,
        "infer_seq_per_s": paths[infer_path]["infer_seq_per_s"],
        "infer_path": infer_path,
        "lat_b1_p50_ms": best["lat_b1_p50_ms"],
        "lat_b1_p95_ms": best["lat_b1_p95_ms"],
        "lat_b1_mean_ms": best["lat_b1_mean_ms"],
        "lat_b1_path": lat_path,
        "paths": paths,
        "rss_before_train_mb": rss_before,
        "peak_rss_mb": peak,
    }


def write_json_atomic(path, obj):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="PyTorch CPU reference for `recur bench lstm` (training, inference, batch-1 latency).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Protocol: see the module docstring of this file.")
    ap.add_argument("--workload", required=True, choices=["w1", "w2", "w2-gru"])
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--json", metavar="FILE", help="write the result as JSON (atomically)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-seconds", type=float, default=3.0,
                    help="minimum timed duration for training and inference (default 3)")
    args = ap.parse_args(argv)
    if args.threads < 1:
        ap.error("--threads must be >= 1")

    r = bench(args)
    print(f"pytorch {r['version']}  workload {r['workload']}  threads {r['threads']}  "
          f"params {r['params']:,}  batch {r['batch']}  seq_len {r['seq_len']}")
    print(f"  train  {r['train_seq_per_s']:10.1f} seq/s  ({r['train_steps']} steps)")
    print(f"  infer  {r['infer_seq_per_s']:10.1f} seq/s  ({r['infer_path']})")
    print(f"  b1 latency  p50 {r['lat_b1_p50_ms']:.3f} ms  p95 {r['lat_b1_p95_ms']:.3f} ms  "
          f"mean {r['lat_b1_mean_ms']:.3f} ms  ({r['lat_b1_path']})")
    print(f"  RSS before training {r['rss_before_train_mb']:.1f} MB  peak {r['peak_rss_mb']:.1f} MB")
    if args.json:
        write_json_atomic(args.json, r)
    return 0


if __name__ == "__main__":
    sys.exit(main())

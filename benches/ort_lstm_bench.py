"""ONNX Runtime reference for `recur bench lstm`: inference throughput and
batch-1 latency of the w1 / w2 / w2-gru models, exported from PyTorch with
``torch.onnx.export`` and run by ``onnxruntime`` (PyPI) on the CPU.

`benches/compare_lstm.py` runs it next to `recur bench lstm` and
`benches/torch_lstm_bench.py`. It takes the same command line as the latter
and writes the same JSON keys. ONNX Runtime is run for inference only: the
training figures (``train_seq_per_s``, ``train_steps``,
``rss_before_train_mb``, ``peak_rss_mb``) are null. No data files and no
network are used.

Model and data
--------------
The model and the 8 input batches come from ``torch_lstm_bench.build`` after
``torch.manual_seed(seed)``, exactly as in the PyTorch script (same weights,
same inputs). The model is put in ``eval()`` (Dropout off) and exported with
the TorchScript exporter (``dynamo=False``), opset 17, with a dynamic batch
axis on input ``x`` [batch, seq_len, features] and output ``y``. nn.LSTM and
nn.GRU become ONNX ``LSTM`` / ``GRU`` nodes (``linear_before_reset=1`` for
GRU, as PyTorch computes it), which ONNX Runtime runs with its fused CPU
kernels; LayerNorm becomes ``LayerNormalization``. The ONNX op counts are
printed and written to the JSON (``onnx_ops``).

Session: ``intra_op_num_threads = --threads``, ``inter_op_num_threads = 1``,
sequential execution, ``graph_optimization_level = ORT_ENABLE_ALL``,
CPUExecutionProvider. ``torch.set_num_threads(--threads)`` is also set for
the export and the reference forward.

Check: before timing, the ONNX Runtime outputs for the first batch
(training batch size) and for the batch-1 input are compared with PyTorch's
(eval, inference_mode); the largest absolute difference is printed and
written as ``max_abs_diff``. Above 1e-4 the script exits with status 1, so a
wrong export cannot produce a fast wrong number.

Measurement protocol (the inference half of torch_lstm_bench.py's)
-----------------------------------------------------------------
* Inference throughput, same batch size as training (512 for w1, 64 for
  w2s), cycling through the 8 batches (numpy float32, converted before
  timing): 3 warm-up ``session.run`` calls, then timed calls until
  >= ``--min-seconds`` and >= 10 passes.
  ``infer_seq_per_s = passes * batch / elapsed``.
* Batch-1 latency, one input [1, seq_len, features] (the first row of the
  first batch): 10 warm-up calls, then 200 calls each timed with
  ``time.perf_counter()``; p50 / p95 (numpy percentile, linear
  interpolation) and mean, in milliseconds.
* ``rss_after_infer_mb``: resident set size at the end, for information
  only; it includes torch, which the process imported for the export.

Usage (from the repo root)::

    .venv-ref/bin/python benches/ort_lstm_bench.py --workload w1
    .venv-ref/bin/python benches/ort_lstm_bench.py --workload w2 --threads 2 --json out.json
"""
import argparse, os, sys, tempfile, time, warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np
import torch
import onnxruntime as ort

import torch_lstm_bench as tlb
from ort_common import graph_ops, make_session

OPSET = 17
MAX_ABS_DIFF = 1e-4


def export(model, x, path):
    """torch.onnx.export with a dynamic batch axis; returns {op_type: count}."""
    kwargs = dict(input_names=["x"], output_names=["y"],
                  dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                  opset_version=OPSET, do_constant_folding=True)
    with warnings.catch_warnings():
        # the TorchScript exporter's deprecation notice, and its note that an RNN exported
        # with batch > 1 may fail at other batch sizes (checked below at batch 1)
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, (x,), path, dynamo=False, **kwargs)
        except TypeError:  # torch without the dynamo argument
            torch.onnx.export(model, (x,), path, **kwargs)
    return graph_ops(path)


def bench(args):
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(args.seed)
    model, _opt, _loss, _clip, batch, seq_len, feats, data = tlb.build(args.workload)
    n_params = sum(p.numel() for p in model.parameters())
    model.eval()
    xs = [x.numpy().astype(np.float32, copy=True) for x, _y in data]
    x1 = np.ascontiguousarray(xs[0][:1])

    with tempfile.TemporaryDirectory(prefix="ort_lstm-") as tmp:
        path = os.path.join(tmp, f"{args.workload}.onnx")
        with torch.inference_mode():
            ref = model(data[0][0]).numpy()
            ref1 = model(torch.from_numpy(x1)).numpy()
        ops = export(model, data[0][0], path)
        sess = make_session(path, args.threads)
    name = sess.get_inputs()[0].name
    run = lambda x: sess.run(None, {name: x})[0]

    got, got1 = run(xs[0]), run(x1)
    if got.shape != ref.shape or got1.shape != ref1.shape:
        sys.exit(f"error: ORT output shapes {got.shape}, {got1.shape} != torch {ref.shape}, {ref1.shape}")
    diff = float(max(np.abs(got - ref).max(), np.abs(got1 - ref1).max()))
    print(f"onnxruntime {ort.__version__}  {args.workload}: ONNX ops {ops}")
    print(f"  max |ORT - torch| = {diff:.3g} (batch {batch} and batch 1)")
    if not diff <= MAX_ABS_DIFF:
        sys.exit(f"error: ORT output differs from torch by {diff:.3g} > {MAX_ABS_DIFF}")

    infer_passes, infer_elapsed = tlb.run_timed(
        lambda i: run(xs[i % tlb.N_BATCHES]), tlb.INFER_WARMUP, args.min_seconds, tlb.MIN_ITERS)
    for _ in range(tlb.LAT_WARMUP):
        run(x1)
    lat = np.empty(tlb.LAT_ITERS)
    for k in range(tlb.LAT_ITERS):
        t0 = time.perf_counter()
        run(x1)
        lat[k] = time.perf_counter() - t0
    lat_ms = lat * 1e3

    return {
        "impl": "ort",
        "version": ort.__version__,
        "torch_version": torch.__version__,
        "workload": args.workload,
        "threads": args.threads,
        "params": n_params,
        "batch": batch,
        "seq_len": seq_len,
        "opset": OPSET,
        "onnx_ops": ops,
        "max_abs_diff": diff,
        "train_steps": None,
        "train_seq_per_s": None,
        "infer_seq_per_s": infer_passes * batch / infer_elapsed,
        "lat_b1_p50_ms": float(np.percentile(lat_ms, 50)),
        "lat_b1_p95_ms": float(np.percentile(lat_ms, 95)),
        "lat_b1_mean_ms": float(lat_ms.mean()),
        "rss_before_train_mb": None,
        "peak_rss_mb": None,
        "rss_after_infer_mb": tlb.current_rss_mb(),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="ONNX Runtime CPU reference for `recur bench lstm` (inference, batch-1 latency).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Protocol: see the module docstring of this file.")
    ap.add_argument("--workload", required=True, choices=["w1", "w2", "w2-gru"])
    ap.add_argument("--threads", type=int, default=1, help="ORT intra-op threads (default 1)")
    ap.add_argument("--json", metavar="FILE", help="write the result as JSON (atomically)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-seconds", type=float, default=3.0,
                    help="minimum timed duration for inference (default 3)")
    args = ap.parse_args(argv)
    if args.threads < 1:
        ap.error("--threads must be >= 1")

    r = bench(args)
    print(f"onnxruntime {r['version']}  workload {r['workload']}  threads {r['threads']}  "
          f"params {r['params']:,}  batch {r['batch']}  seq_len {r['seq_len']}")
    print(f"  infer  {r['infer_seq_per_s']:10.1f} seq/s")
    print(f"  b1 latency  p50 {r['lat_b1_p50_ms']:.3f} ms  p95 {r['lat_b1_p95_ms']:.3f} ms  "
          f"mean {r['lat_b1_mean_ms']:.3f} ms")
    if args.json:
        tlb.write_json_atomic(args.json, r)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Sentence-encoding speed of ONNX Runtime (PyPI ``onnxruntime``) on the
model sentence-transformers loads, with the protocol of
benches/torch_encode_bench.py (and so of `recur bench encode`) step for
step: one warm-up call on the first two batches; then every sentence of the
file encoded in batches of --batch-size, repeated until --min-seconds have
passed; then 200 batch-1 calls on distinct sentences after 10 warm-ups.
Same command line and same JSON keys as torch_encode_bench.py.

Export: the folder is loaded with ``SentenceTransformer`` (CPU); its BERT
(``model[0].auto_model``, a transformers ``BertModel``) is wrapped with the
pipeline's mean pooling (token embeddings times the attention mask, summed,
divided by the mask count clamped at 1e-9) and L2 normalisation, and that
whole module is exported with ``torch.onnx.export`` (TorchScript exporter,
``dynamo=False``, opset 17; dynamic batch and sequence axes on
``input_ids``, ``attention_mask``, ``token_type_ids``). So pooling and
normalisation run inside the ONNX graph, and ONNX Runtime returns the
finished embeddings.

Encoding with ONNX Runtime mirrors ``SentenceTransformer.encode``: the
sentences are sorted by decreasing character length (``np.argsort`` of
minus ``len``, as sentence-transformers does), cut into batches, each batch
is tokenised by the model's own ``preprocess`` (the tokenizer, padding to
the longest in the batch, truncation at ``max_seq_length``), run by the
session, and the embeddings are put back in input order as one numpy array.
Tokenisation is therefore the same code, and timed, on both sides.

Session: ``intra_op_num_threads = --threads``, ``inter_op_num_threads =
1``, sequential execution, ``graph_optimization_level = ORT_ENABLE_ALL``,
CPUExecutionProvider. ``torch.set_num_threads(--threads)`` for the export
and the reference.

Check: before timing, the first 64 sentences (batch --batch-size) and the
first 4 one by one are encoded by both ``SentenceTransformer.encode`` and
ONNX Runtime; the largest absolute difference of the embeddings is printed
and written as ``max_abs_diff``. Above 1e-4 the script exits with status 1.

    .venv-ref/bin/pip install torch sentence-transformers onnxruntime onnx onnxscript
    .venv-ref/bin/python benches/ort_encode_bench.py --model DIR --input sentences.txt --threads 2
"""
import argparse
import json
import os
import sys
import tempfile
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
import onnxruntime as ort
from sentence_transformers import SentenceTransformer

from ort_common import graph_ops, make_session

OPSET = 17
MAX_ABS_DIFF = 1e-4
INPUTS = ["input_ids", "attention_mask", "token_type_ids"]


class Embed(torch.nn.Module):
    """BERT -> mean pooling over the attention mask -> L2 normalise."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask, token_type_ids):
        tok = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                        token_type_ids=token_type_ids).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(tok.dtype)
        pooled = (tok * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=1)


def export(st, path, example):
    """Export the wrapped BERT of SentenceTransformer `st` to `path`; {op_type: count}."""
    kinds = {type(m).__name__ for m in st}
    pooling = st[1]
    mode = getattr(pooling, "pooling_mode", None) or (
        "mean" if getattr(pooling, "pooling_mode_mean_tokens", False) else "?")
    if mode != "mean":
        sys.exit(f"error: expected mean pooling, the model has {mode!r} ({kinds})")
    feats = st.preprocess(example)
    args = tuple(feats[k] for k in INPUTS)
    model = Embed(st[0].auto_model).eval()
    axes = {k: {0: "batch", 1: "seq"} for k in INPUTS}
    axes["embedding"] = {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, path, input_names=INPUTS, output_names=["embedding"],
                          dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True,
                          dynamo=False)
    return graph_ops(path)


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
    st = SentenceTransformer(a.model, device="cpu")
    st.eval()

    with tempfile.TemporaryDirectory(prefix="ort_encode-") as tmp:
        path = os.path.join(tmp, "encoder.onnx")
        with torch.no_grad():
            ops = export(st, path, texts[: min(len(texts), 4)])
        sess = make_session(path, a.threads)
    names = [i.name for i in sess.get_inputs()]

    def enc(t, b):
        order = np.argsort([-len(s) for s in t])
        out = []
        for s in range(0, len(t), b):
            feats = st.preprocess([t[i] for i in order[s: s + b]])
            out.append(sess.run(None, {k: feats[k].numpy() for k in names})[0])
        emb = np.empty((len(t), out[0].shape[1]), dtype=out[0].dtype)
        emb[order] = np.concatenate(out)
        return emb

    # correctness check against sentence-transformers
    ref_enc = lambda t, b: st.encode(t, batch_size=b, normalize_embeddings=True, convert_to_numpy=True)
    with torch.inference_mode():
        check = texts[:64]
        diff = float(np.abs(enc(check, a.batch_size) - ref_enc(check, a.batch_size)).max())
        for t in texts[:4]:
            diff = max(diff, float(np.abs(enc([t], 1) - ref_enc([t], 1)).max()))
    print(f"onnxruntime {ort.__version__}: ONNX ops {ops}", file=sys.stderr)
    print(f"max |ORT - sentence-transformers| = {diff:.3g}", file=sys.stderr)
    if not diff <= MAX_ABS_DIFF:
        sys.exit(f"error: ORT embeddings differ from sentence-transformers by {diff:.3g} > {MAX_ABS_DIFF}")

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
        "impl": "ort",
        "version": ort.__version__,
        "opset": OPSET,
        "onnx_ops": ops,
        "max_abs_diff": diff,
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

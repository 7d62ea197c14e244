"""Generate the PyTorch reference fixtures for the fused LSTM/GRU kernel tests
(crates/recur-kernels/tests).

Writes ``lstm.safetensors`` and ``gru.safetensors`` into --out. Each file holds
four cases, tensor names prefixed ``a.`` to ``d.``:

    case a: B=3,   L=5, I=4,  H=6
    case b: B=5,   L=7, I=10, H=33
    case c: B=20,  L=4, I=6,  H=21
    case d: B=200, L=3, I=5,  H=9

Per case, inputs (F32), drawn in this order after ``torch.manual_seed(0)``
(re-seeded at the start of each file, cases a to d in order):

    x             [B, L, I]            randn
    weight_ih_l0  [G*H, I]             uniform(-0.6, 0.6)
    weight_hh_l0  [G*H, H]             uniform(-0.6, 0.6)
    bias_ih_l0    [G*H]                uniform(-0.6, 0.6)
    bias_hh_l0    [G*H]                uniform(-0.6, 0.6)
    grad_y        [B, L, H]            randn (upstream gradient of y)

with G = 4 for the LSTM (gate order i, f, g, o) and G = 3 for the GRU (r, z, n),
exactly as PyTorch lays out its parameters. The reference is
``nn.LSTM(I, H, batch_first=True)`` / ``nn.GRU(...)`` in float64 with those f32
values (widened to f64) copied in, run from a zero initial state on
``x.double()``; then ``(y * grad_y.double()).sum().backward()``. Outputs (F64):

    y                  [B, L, H]   output sequence (all time steps)
    grad_x             [B, L, I]
    grad_weight_ih_l0, grad_weight_hh_l0, grad_bias_ih_l0, grad_bias_hh_l0

The safetensors files are written by hand (no safetensors package): u64 LE
header length, JSON header padded with spaces to a multiple of 8, then the
raw little-endian row-major data. Tensors are laid out F64 first, then F32, so
every tensor starts 8-byte aligned in the file. The script re-reads each file
with a small independent reader and checks names, shapes and values.

Usage (from the repo root, with the reference venv)::

    .venv-ref/bin/python scripts/make_kernel_fixtures.py
    .venv-ref/bin/python scripts/make_kernel_fixtures.py --out /tmp/fixtures
"""
import argparse, json, os, struct, sys
import numpy as np
import torch
from torch import nn

# a and b take the dot-product and general GEMM paths of the per-step
# product (6 rows or fewer); c the weight packed once (7..=96 rows per
# thread chunk); d, 200 rows, the general GEMM again on one or two threads.
CASES = [("a", dict(B=3, L=5, I=4, H=6)), ("b", dict(B=5, L=7, I=10, H=33)),
         ("c", dict(B=20, L=4, I=6, H=21)), ("d", dict(B=200, L=3, I=5, H=9))]
PARAMS = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
INIT_RANGE = 0.6
DTYPES = {np.dtype("<f4"): "F32", np.dtype("<f8"): "F64"}
NP_OF = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8")}


def make_case(kind, B, L, I, H):
    """Inputs (float32 numpy) and reference outputs (float64 numpy) for one case."""
    G = 4 if kind == "lstm" else 3
    x = torch.randn(B, L, I)
    w = {
        "weight_ih_l0": torch.empty(G * H, I).uniform_(-INIT_RANGE, INIT_RANGE),
        "weight_hh_l0": torch.empty(G * H, H).uniform_(-INIT_RANGE, INIT_RANGE),
        "bias_ih_l0": torch.empty(G * H).uniform_(-INIT_RANGE, INIT_RANGE),
        "bias_hh_l0": torch.empty(G * H).uniform_(-INIT_RANGE, INIT_RANGE),
    }
    grad_y = torch.randn(B, L, H)

    rnn = (nn.LSTM if kind == "lstm" else nn.GRU)(I, H, batch_first=True).double()
    with torch.no_grad():
        for name in PARAMS:
            getattr(rnn, name).copy_(w[name].double())
    xd = x.double().requires_grad_(True)
    y, _ = rnn(xd)  # zero initial state
    (y * grad_y.double()).sum().backward()

    f32 = {"x": x, **w, "grad_y": grad_y}
    f64 = {"y": y.detach(), "grad_x": xd.grad}
    for name in PARAMS:
        f64["grad_" + name] = getattr(rnn, name).grad
    out = {k: v.numpy().astype("<f4") for k, v in f32.items()}
    out.update({k: v.numpy().astype("<f8") for k, v in f64.items()})
    return out


def write_safetensors(path, tensors, metadata):
    """Write {name: numpy array (<f4 or <f8)} as safetensors; F64 first for alignment."""
    order = sorted(tensors, key=lambda k: (0 if tensors[k].dtype.itemsize == 8 else 1, k))
    header, blobs, off = {}, [], 0
    for name in order:
        a = np.ascontiguousarray(tensors[name])
        b = a.tobytes(order="C")
        header[name] = {"dtype": DTYPES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_safetensors(path):
    """Minimal independent reader: (metadata, {name: numpy array}); validates the layout."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert 8 + n <= len(raw) and n % 8 == 0, "bad header length"
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())
    data = raw[8 + n:]
    spans = sorted((v["data_offsets"][0], v["data_offsets"][1], k) for k, v in header.items())
    pos = 0
    for s, e, k in spans:
        assert s == pos, f"{k}: gap or overlap at {s} (expected {pos})"
        pos = e
    assert pos == len(data), "data section length mismatch"
    out = {}
    for k, v in header.items():
        dt = NP_OF[v["dtype"]]
        s, e = v["data_offsets"]
        assert (8 + n + s) % dt.itemsize == 0, f"{k}: misaligned"
        a = np.frombuffer(data[s:e], dtype=dt)
        assert a.size == int(np.prod(v["shape"], dtype=np.int64)), f"{k}: size/shape mismatch"
        out[k] = a.reshape(v["shape"])
    return meta, out


def expected_shapes(kind, B, L, I, H):
    G = 4 if kind == "lstm" else 3
    p = {"weight_ih_l0": [G * H, I], "weight_hh_l0": [G * H, H],
         "bias_ih_l0": [G * H], "bias_hh_l0": [G * H]}
    s = {"x": ([B, L, I], "F32"), "grad_y": ([B, L, H], "F32"),
         "y": ([B, L, H], "F64"), "grad_x": ([B, L, I], "F64")}
    for k, shape in p.items():
        s[k] = (shape, "F32")
        s["grad_" + k] = (shape, "F64")
    return s


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Write PyTorch float64 reference fixtures (lstm.safetensors, gru.safetensors) "
                    "for the fused recurrent kernel tests.")
    ap.add_argument("--out", default=os.path.join("crates", "recur-kernels", "tests", "fixtures"),
                    help="output folder (default crates/recur-kernels/tests/fixtures)")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)

    for kind in ("lstm", "gru"):
        torch.manual_seed(0)
        tensors = {}
        for prefix, dims in CASES:
            for k, v in make_case(kind, **dims).items():
                tensors[f"{prefix}.{k}"] = v
        meta = {"generator": "scripts/make_kernel_fixtures.py", "torch": torch.__version__,
                "layout": "batch_first, PyTorch gate order (LSTM i,f,g,o; GRU r,z,n)"}
        path = os.path.join(args.out, f"{kind}.safetensors")
        write_safetensors(path, tensors, meta)

        # verify with the independent reader
        rmeta, back = read_safetensors(path)
        assert rmeta == meta, "metadata mismatch"
        want = {f"{p}.{k}": v for p, dims in CASES for k, v in expected_shapes(kind, **dims).items()}
        assert set(back) == set(want), f"names differ: {set(back) ^ set(want)}"
        for k, (shape, dt) in want.items():
            assert list(back[k].shape) == shape, f"{k}: shape {list(back[k].shape)} != {shape}"
            assert DTYPES[back[k].dtype] == dt, f"{k}: dtype {back[k].dtype} != {dt}"
            assert np.array_equal(back[k], tensors[k]), f"{k}: values differ after re-read"
            assert np.all(np.isfinite(back[k])), f"{k}: non-finite values"
        print(f"{path}: {os.path.getsize(path):,} bytes, {len(back)} tensors")
        for p, dims in CASES:
            y = back[f"{p}.y"]
            print(f"  case {p} {dims}: |y|max {np.abs(y).max():.4f}  "
                  f"|grad_x|max {np.abs(back[f'{p}.grad_x']).max():.4f}  "
                  f"|grad_w_hh|max {np.abs(back[f'{p}.grad_weight_hh_l0']).max():.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

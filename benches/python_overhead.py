"""What the Python layer costs: `LSTMClassifier.predict_proba` on 100,000
rows from a float32 C-contiguous array, against the same scoring called in
the extension on columns already in the library's form (float64), which is
the compute `recur predict` runs after reading its file. Also `recur
predict` itself on the same rows as CSV, for reference (its time includes
reading and writing the CSV).

    python benches/python_overhead.py MODEL_DIR [--rows 100000] [--repeat 5]

MODEL_DIR: a rainfall model (`recur demo` writes runs/demo).
"""

import argparse
import os
import subprocess
import tempfile
import time

import numpy as np

import recur

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--rows", type=int, default=100_000)
ap.add_argument("--repeat", type=int, default=5)
ap.add_argument("--recur-bin", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "recur"))
a = ap.parse_args()

root = os.path.join(os.path.dirname(__file__), "..")
header = open(os.path.join(root, "data", "rainfall.csv")).readline().strip().split(",")
data = np.loadtxt(os.path.join(root, "data", "rainfall.csv"), delimiter=",", skiprows=1)
reps = -(-a.rows // len(data))
data = np.tile(data, (reps, 1))[: a.rows]
m = recur.load(a.model)
# A float32 C-contiguous array, one column per feature of the model in its
# order: predict_proba reads it in place.
X = np.ascontiguousarray(data[:, [header.index(f) for f in m.features_]], dtype=np.float32)
# The same values as the library's float64 columns, named.
names = list(m.features_)
cols64 = [np.ascontiguousarray(c, dtype=np.float64) for c in X.T]


def best(f):
    ts = []
    for _ in range(a.repeat):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return min(ts)


m.predict_proba(X)  # warm-up
t_py = best(lambda: m.predict_proba(X))
t_core = best(lambda: m._fitted.model.score(names, cols64))
with tempfile.TemporaryDirectory() as tmp:
    csv = os.path.join(tmp, "x.csv")
    np.savetxt(csv, np.column_stack([np.arange(a.rows), X.astype(np.float64)]), delimiter=",",
               header=",".join([""] + names), comments="", fmt="%.9g")
    cmd = [a.recur_bin, "-q", "predict", "--model", a.model, "--input", csv, "--output", os.path.join(tmp, "p.csv")]
    subprocess.run(cmd, check=True, capture_output=True)
    t_cli = best(lambda: subprocess.run(cmd, check=True, capture_output=True))
print(f"rows {a.rows}, model {a.model}, threads {os.environ.get('RAYON_NUM_THREADS', 'all')}")
print(f"predict_proba from float32 [n, F]: {t_py:.3f} s")
print(f"the library's scoring (float64 columns): {t_core:.3f} s")
print(f"overhead of the Python layer: {100 * (t_py / t_core - 1):+.1f}%")
print(f"recur predict on the same rows as CSV (reading and writing included): {t_cli:.3f} s")

"""A short run of the package on any machine: train a small classifier from
a float32 array, predict, save and load it back, refuse a short input.
`python/aarch64.sh` runs it on the aarch64 wheel under qemu."""

import platform, numpy as np, recur, tempfile, os
print(platform.machine(), recur.__version__, np.__version__)
d = np.loadtxt(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "rainfall.csv"), delimiter=",", skiprows=1)[:2500]
X, y = np.ascontiguousarray(d[:, 1:-1], dtype=np.float32), d[:, -1]
m = recur.LSTMClassifier(sequence_length=8, hidden_size=8, epochs=1, horizon=1, seed=1).fit(X, y)
p = m.predict_proba(X)[:, 1]
print("val AUC", round(m.report_["val"]["auc"], 4), "last p", round(float(p[-1]), 6), "nan rows", int(np.isnan(p).sum()))
out = tempfile.mkdtemp() + "/m"; m.save(out)
same = np.array_equal(recur.load(out).predict_proba(X), m.predict_proba(X), equal_nan=True)
print("reloaded equal", same)
assert same and np.isnan(p[:7]).all() and np.isfinite(p[7:]).all() and 0.5 < m.report_["val"]["auc"] < 1
try:
    m.predict_proba(X[:3])
    raise AssertionError("a 3-row input was scored")
except ValueError as e:
    print("ValueError:", str(e)[:60])

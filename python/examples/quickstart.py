"""The Python quick start: train the rainfall classifier from columns in
memory, predict, save a model directory that `recur predict` opens, load
it back. Needs only the wheel (numpy comes with it); with pandas, pass
`pd.read_csv(...)` instead of the dict of columns.

    python python/examples/quickstart.py [OUT_DIR]
"""

import csv
import pathlib
import sys

import numpy as np

import recur

root = pathlib.Path(__file__).resolve().parents[2]
with open(root / "data" / "rainfall.csv", newline="") as f:
    rows = list(csv.reader(f))
header, body = rows[0], np.array(rows[1:], dtype=np.float64)
columns = {name: body[:, j] for j, name in enumerate(header) if name}  # the unnamed row number is left out

model = recur.LSTMClassifier(**recur.config_params(root / "configs" / "rainfall-ensemble.yaml"))
model.fit(columns)
print(model.report_text_)
p = model.predict_proba(columns)[:, 1]
print(f"{np.isnan(p).sum()} warm-up rows without a probability; the last row: p(rain) {p[-1]:.4f}")
out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "runs/python-rain")
model.save(out)
print(f"saved to {out}: recur predict --model {out} --input data/rainfall.csv --output p.csv")
again = recur.load(out)
assert np.array_equal(again.predict_proba(columns), model.predict_proba(columns), equal_nan=True)

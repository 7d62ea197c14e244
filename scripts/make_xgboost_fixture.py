"""Writes the XGBoost fixtures of crates/recur-models/tests: a small
binary:logistic model (6 trees of depth 3 on 3 features, with missing
values so default directions matter), the probabilities XGBoost itself
gives on 40 rows, and a reg:squarederror model that recur must refuse.

    .venv-ref/bin/pip install xgboost-cpu numpy
    .venv-ref/bin/python scripts/make_xgboost_fixture.py
"""
import json
import os

import numpy as np
import xgboost as xgb

out = os.path.join(os.path.dirname(__file__), "..", "crates", "recur-models", "tests", "fixtures")
rng = np.random.default_rng(7)
x = rng.normal(size=(300, 3)).astype(np.float32)
y = ((x[:, 0] + 0.5 * x[:, 1] * x[:, 2] + 0.3 * rng.normal(size=300)) > 0).astype(np.float32)
x[rng.random(x.shape) < 0.1] = np.nan
d = xgb.DMatrix(x, label=y, feature_names=["a", "b", "c"])
m = xgb.train({"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "base_score": 0.4, "seed": 1}, d, 6)
m.save_model(os.path.join(out, "xgb_binary.json"))
test = rng.normal(size=(40, 3)).astype(np.float32)
test[rng.random(test.shape) < 0.15] = np.nan
p = m.predict(xgb.DMatrix(test, feature_names=["a", "b", "c"]))
rows = [[None if np.isnan(v) else float(v) for v in r] for r in test]
json.dump({"rows": rows, "probabilities": [float(v) for v in p]}, open(os.path.join(out, "xgb_binary_expected.json"), "w"), indent=1)
r = xgb.train({"objective": "reg:squarederror", "max_depth": 1}, xgb.DMatrix(x, label=y), 1)
r.save_model(os.path.join(out, "xgb_regression.json"))
print("xgboost", xgb.__version__, "fixtures written to", os.path.abspath(out))

"""Writes the XGBoost fixtures of crates/recur-models/tests: a small
binary:logistic model (6 trees of depth 3 on 3 features, with missing
values so default directions matter), the probabilities XGBoost itself
gives on 40 rows, and a reg:squarederror model that recur must refuse.

Then an early-stopped XGBClassifier on noisy lagged features (`a`, `b`,
`a_lag1`, `b_lag1`): the file holds best_iteration + 1 + 10 rounds, and
predict_proba scores with the first best_iteration + 1 only. Its expected
file has predict_proba on 60 held-out rows, the probabilities of all the
trees (which must differ), best_iteration, the rounds in the file, and
XGBoost's total-gain importance of the trees predict_proba uses (and of
all of them: get_score reads every tree, early stopping or not).

    .venv-ref/bin/pip install xgboost-cpu numpy pandas scikit-learn
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

# Early stopping, with its own generator so the fixtures above stay as they were.
import pandas as pd  # noqa: E402

g = np.random.default_rng(21)
a, b = g.normal(size=700), g.normal(size=700)
names = ["a", "b", "a_lag1", "b_lag1"]
x = np.column_stack([a[1:], b[1:], a[:-1], b[:-1]]).astype(np.float32)
y = ((0.6 * x[:, 0] + 0.4 * x[:, 2] * x[:, 1] + 0.8 * g.normal(size=len(x))) > 0).astype(int)
x[g.random(x.shape) < 0.1] = np.nan
df = pd.DataFrame(x, columns=names)
train, val, test = df[:450], df[450:630], df[630:690]
clf = xgb.XGBClassifier(n_estimators=300, early_stopping_rounds=10, max_depth=3, learning_rate=0.3,
                        tree_method="hist", n_jobs=1, random_state=1)
clf.fit(train, y[:450], eval_set=[(val, y[450:630])], verbose=False)
clf.save_model(os.path.join(out, "xgb_early_stopped.json"))
bst = clf.get_booster()
best, n_rounds = int(clf.best_iteration), bst.num_boosted_rounds()
p = clf.predict_proba(test)[:, 1]
p_all = bst.predict(xgb.DMatrix(test), iteration_range=(0, 0))
assert best < 60 and n_rounds == best + 11, (best, n_rounds)
assert np.abs(p - bst.predict(xgb.DMatrix(test), iteration_range=(0, best + 1))).max() == 0
assert np.abs(p - p_all).max() > 1e-3, "all the trees and the early-stopped ones must score apart"
tv = test.to_numpy()
assert np.isnan(tv).any(axis=1).sum() > 5, "the rows must exercise default directions"
used = bst[: best + 1].get_score(importance_type="total_gain")
json.dump({
    "feature_names": names,
    "rows": [[None if np.isnan(v) else float(v) for v in r] for r in tv],
    "probabilities": [float(v) for v in p],
    "probabilities_all_trees": [float(v) for v in p_all],
    "best_iteration": best,
    "n_rounds": n_rounds,
    "total_gain": {k: float(v) for k, v in used.items()},
    "total_gain_all_trees": {k: float(v) for k, v in bst.get_score(importance_type="total_gain").items()},
}, open(os.path.join(out, "xgb_early_stopped_expected.json"), "w"), indent=1)
print("early stopped: best_iteration", best, "of", n_rounds, "rounds")
print("xgboost", xgb.__version__, "fixtures written to", os.path.abspath(out))

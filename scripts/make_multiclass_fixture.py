"""Generate the scikit-learn reference figures for recur's multi-class
metrics (crates/recur-deploy/src/multiclass.rs; test
crates/recur-deploy/tests/multiclass_metrics.rs).

Three cases of class probabilities (rows summing to 1) and true classes,
drawn with numpy's generator seeded 0:

    a: n=60, K=4, every class present, probabilities from a softmax of
       normal logits shifted towards the true class
    b: n=25, K=3, class 2 never predicted most probable
    c: n=40, K=5, with ties in the probabilities (rounded to 1 decimal)

For each case the fixture holds the probabilities (row-major), the labels
and scikit-learn's accuracy_score, f1_score(average="macro"),
roc_auc_score(multi_class="ovr", average="macro"), log_loss and
confusion_matrix.

    python3 scripts/make_multiclass_fixture.py \
        --out crates/recur-deploy/tests/fixtures/multiclass_metrics.json
"""

import argparse
import json

import numpy as np
import sklearn
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    roc_auc_score,
)


def case(rng, n, k, shift, rounded=False, never=None):
    y = np.arange(n) % k
    rng.shuffle(y)
    z = rng.normal(size=(n, k))
    z[np.arange(n), y] += shift
    if never is not None:
        z[:, never] -= 5.0
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    if rounded:
        p = np.round(p, 1) + 1e-3
        p /= p.sum(axis=1, keepdims=True)
    pred = p.argmax(axis=1)
    return {
        "k": k,
        "p": p.reshape(-1).tolist(),
        "y": y.tolist(),
        "accuracy": accuracy_score(y, pred),
        "macro_f1": f1_score(y, pred, average="macro", zero_division=0),
        "macro_auc": roc_auc_score(y, p, multi_class="ovr", average="macro"),
        "log_loss": log_loss(y, p, labels=list(range(k))),
        "confusion": confusion_matrix(y, pred, labels=list(range(k))).tolist(),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    out = {
        "sklearn": sklearn.__version__,
        "a": case(rng, 60, 4, 1.5),
        "b": case(rng, 25, 3, 1.0, never=2),
        "c": case(rng, 40, 5, 1.0, rounded=True),
    }
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()

"""PyTorch reference for `recur train configs/rainfall.yaml`.

Mirrors recur's pipeline and recipe exactly, so that the only differences
from the Rust run are the random draws (init, shuffle, dropout):

* data: data/rainfall.csv, 9 features (the unnamed row-number column is
  dropped), label of row r = rain[r+1] (horizon 1);
* split (crates/recur-data/src/split.rs): gap = max(L-1, h); usable = n - 2*gap;
  train rows [0, n_train), val [n_train+gap, +n_val), test [val_end+gap, n),
  fractions rounded half away from zero as Rust's f64::round;
* windows (crates/recur-data/src/windows.rs, prepare.rs): start s covers rows
  s..s+L-1 and belongs to part [a, b) iff s >= a, r = s+L-1 < b, r+h < b and
  r has a label;
* scaling (scaler.rs): mean / population std over train rows, std < 1e-12 -> 1;
* model (recur-models/src/classifier.rs): LSTM(9, 64) -> last hidden state ->
  Dropout(0.3) -> Linear(64, 1); xavier_uniform_ input weights, orthogonal_
  recurrent weights, zero LSTM biases, default nn.Linear head;
* training (recur-train): BCEWithLogits with pos_weight = neg/pos over the
  training windows, Adam(lr 5e-4), batch 512 shuffled each epoch (last partial
  batch kept), grad-norm clip 1.0, up to 30 epochs, early stopping on val loss
  with patience 5, best weights restored;
* metrics (metrics.rs): ROC AUC (ties = average ranks), average precision as
  scikit-learn, log loss (clip 1e-15), Brier, all in float64.

Run from the repo root with the reference venv:

    .venv-ref/bin/python benches/torch_classifier.py                # seed 42
    .venv-ref/bin/python benches/torch_classifier.py --seeds 5      # seeds 42..46
    .venv-ref/bin/python benches/torch_classifier.py --json out.json
"""
import argparse, copy, csv, json, math, os, time
import numpy as np
import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FEATURES = ["temperature", "dew point", "sea-level pressure", "visibility",
            "average wind speed", "max sustained wind-speed",
            "minimum temperature", "maximum temperature", "rain"]
TARGET, H, L = "rain", 1, 32
TRAIN_FRAC, VAL_FRAC = 0.70, 0.15
HIDDEN, DROPOUT, LR, BATCH, EPOCHS, PATIENCE, CLIP = 64, 0.3, 5e-4, 512, 30, 5, 1.0
EXPECTED = {"n_val": 2683, "n_test": 2682, "pos_val": 969, "pos_test": 942}  # recur's counts


def rust_round(x):
    """f64::round: half away from zero (x >= 0 here)."""
    return int(math.floor(x + 0.5))


def load_data(path):
    """Windows (float32 [N, L, F]) and labels per part, exactly as recur builds them."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    raw = np.array([[float(r[header.index(c)]) for c in FEATURES] for r in body], np.float64)
    y = raw[:, FEATURES.index(TARGET)] if TARGET in FEATURES else \
        np.array([float(r[header.index(TARGET)]) for r in body])
    n = len(raw)
    labels = np.full(n, np.nan)
    labels[: n - H] = y[H:]                       # label of row r = target[r + h]
    gap = max(L - 1, H)
    usable = max(n - 2 * gap, 0)
    n_train, n_val = rust_round(usable * TRAIN_FRAC), rust_round(usable * VAL_FRAC)
    val_start = n_train + gap
    val_end = val_start + n_val
    ranges = {"train": (0, n_train), "val": (val_start, val_end), "test": (min(val_end + gap, n), n)}
    mean = raw[:n_train].mean(axis=0)
    std = raw[:n_train].std(axis=0, ddof=0)
    std[std < 1e-12] = 1.0
    x = ((raw - mean) / std).astype(np.float32)
    starts = np.arange(n - L + 1)
    last = starts + L - 1
    parts = {}
    for name, (a, b) in ranges.items():
        s = starts[(starts >= a) & (last < b) & (last + H < b) & ~np.isnan(labels[last])]
        windows = x[s[:, None] + np.arange(L)[None, :]]
        parts[name] = (torch.from_numpy(windows), torch.from_numpy(labels[s + L - 1].astype(np.float32)))
    return parts, {"n_rows": n, "gap": gap, "ranges": ranges}


class Classifier(nn.Module):
    def __init__(self, n_features):
        super().__init__()
        self.lstm = nn.LSTM(n_features, HIDDEN, num_layers=1, batch_first=True)
        self.dropout = nn.Dropout(DROPOUT)
        self.fc = nn.Linear(HIDDEN, 1)
        nn.init.xavier_uniform_(self.lstm.weight_ih_l0)
        nn.init.orthogonal_(self.lstm.weight_hh_l0)
        nn.init.zeros_(self.lstm.bias_ih_l0)
        nn.init.zeros_(self.lstm.bias_hh_l0)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(self.dropout(out[:, -1])).squeeze(-1)


def roc_auc(p, y):
    pos, neg = int((y > 0.5).sum()), int((y <= 0.5).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    ps = p[order]
    ranks = np.empty(len(p))
    i = 0
    while i < len(p):                             # ties share their average rank
        j = i
        while j + 1 < len(p) and ps[j + 1] == ps[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return (ranks[y > 0.5].sum() - pos * (pos + 1) / 2.0) / (pos * neg)


def average_precision(p, y):
    order = np.argsort(-p, kind="mergesort")
    ps, ys = p[order], (y[order] > 0.5).astype(np.float64)
    tp, total = np.cumsum(ys), ys.sum()
    if total == 0:
        return float("nan")
    last = np.r_[np.nonzero(np.diff(ps))[0], len(ps) - 1]   # end of each distinct threshold
    recall, precision = tp[last] / total, tp[last] / (last + 1)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def metrics(logits, y):
    p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    y = y.astype(np.float64)
    pc = np.clip(p, 1e-15, 1 - 1e-15)
    return {"roc_auc": roc_auc(p, y), "pr_auc": average_precision(p, y),
            "logloss": float(-np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc))),
            "brier": float(np.mean((p - y) ** 2))}


def train_one(parts, seed):
    (xtr, ytr), (xva, yva), (xte, yte) = parts["train"], parts["val"], parts["test"]
    pos = float(ytr.sum()); neg = len(ytr) - pos
    pos_weight = neg / pos if pos > 0 else 1.0
    torch.manual_seed(seed)
    model = Classifier(xtr.shape[2])
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight))
    opt = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    best, best_epoch, best_state, bad, epochs_run, t_train = math.inf, 0, None, 0, 0, 0.0
    for epoch in range(1, EPOCHS + 1):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(len(ytr), generator=gen)
        for i in range(0, len(perm), BATCH):
            idx = perm[i:i + BATCH]
            opt.zero_grad()
            loss = loss_fn(model(xtr[idx]), ytr[idx])
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            opt.step()
        model.eval()
        with torch.no_grad():
            val_loss = loss_fn(model(xva), yva).item()
        t_train += time.perf_counter() - t0
        epochs_run = epoch
        if val_loss < best:
            best, best_epoch, best_state, bad = val_loss, epoch, copy.deepcopy(model.state_dict()), 0
        else:
            bad += 1
            if bad >= PATIENCE:
                break
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        val_m = metrics(model(xva).numpy(), yva.numpy())
        test_m = metrics(model(xte).numpy(), yte.numpy())
    return {"seed": seed, "val": val_m, "test": test_m, "best_epoch": best_epoch,
            "best_val_loss": best, "epochs_run": epochs_run, "pos_weight": pos_weight,
            "seconds_per_epoch": t_train / epochs_run}


def print_run(r, counts):
    print(f"seed {r['seed']}: best_epoch {r['best_epoch']} / epochs_run {r['epochs_run']}, "
          f"pos_weight {r['pos_weight']:.6f}, {r['seconds_per_epoch']:.2f} s/epoch")
    print(f"  {'part':<5} {'n':>6} {'pos':>5} {'roc_auc':>8} {'pr_auc':>8} {'logloss':>8} {'brier':>8}")
    for part in ("val", "test"):
        m = r[part]
        print(f"  {part:<5} {counts['n_' + part]:>6} {counts['pos_' + part]:>5} {m['roc_auc']:>8.4f} "
              f"{m['pr_auc']:>8.4f} {m['logloss']:>8.4f} {m['brier']:>8.4f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "rainfall.csv"))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="write the report here")
    ap.add_argument("--seeds", type=int, default=1, help="run seeds seed..seed+N-1")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    parts, info = load_data(a.data)
    counts = {f"{k}_{p}": (len(y) if k == "n" else int(y.sum()))
              for p, (_, y) in parts.items() for k in ("n", "pos")}
    print(f"rows {info['n_rows']}, gap {info['gap']}, row ranges {info['ranges']}")
    print("windows: " + ", ".join(f"{p} {counts['n_' + p]} ({counts['pos_' + p]} pos)" for p in parts))
    same = all(counts[k] == v for k, v in EXPECTED.items())
    print(f"matches recur's val/test counts {EXPECTED}: {'YES' if same else 'NO  <-- MISMATCH'}")
    runs = []
    for seed in range(a.seed, a.seed + a.seeds):
        runs.append(train_one(parts, seed))
        print_run(runs[-1], counts)
    report = {"data": a.data, "threads": a.threads, "counts": counts, "runs": runs}
    if a.seeds > 1:
        aucs = np.array([r["test"]["roc_auc"] for r in runs])
        report["test_roc_auc_mean"], report["test_roc_auc_std"] = float(aucs.mean()), float(aucs.std(ddof=1))
        print(f"test ROC AUC over seeds {a.seed}..{a.seed + a.seeds - 1}: mean {aucs.mean():.4f}, "
              f"std {aucs.std(ddof=1):.4f} (sample), {aucs.std():.4f} (population)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()

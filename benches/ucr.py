"""UCR/UEA figures for recur's sequence classifiers: the plain LSTM and
LSTM-FCN on the sets that aeon's wheel ships, trained on TRAIN only (80% of
it trains, 20% validates for early stopping and calibration), TEST only
scored, over several seeds; mean and spread of test accuracy and ROC AUC,
and training seconds.

Two classes (GunPoint, ItalyPowerDemand): accuracy of the raw probability
at 0.5, ROC AUC. More (BasicMotions: 4 classes, 6 channels; JapaneseVowels:
9 classes, 12 channels, 7 to 29 steps): accuracy of the most probable
class, one-vs-rest macro ROC AUC of the calibrated probabilities. LSTM-FCN
runs without its dimension shuffle on JapaneseVowels, whose lengths differ
(the shuffle reads a fixed number of steps).

The .ts files come from aeon's wheel on PyPI (`pip download aeon==1.6.0
--no-deps`, unpacked under --cache), or from --data DIR holding
NAME_TRAIN.ts / NAME_TEST.ts. Each run is `recur train` then `recur
predict` in a fresh process.

Usage (from the repo root, after `cargo build --release`)::

    python3 benches/ucr.py                       # 5 seeds, both sets, both models
    python3 benches/ucr.py --sets GunPoint --seeds 1 2 --models lstm-fcn
"""
import argparse, csv, glob, json, os, statistics, subprocess, sys, tempfile, time, zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AEON = "aeon==1.6.0"
# name -> the positive class label (either works: accuracy is symmetric),
# None for the sets of more than two classes
SETS = {"GunPoint": "2", "ItalyPowerDemand": "2", "BasicMotions": None, "JapaneseVowels": None}
# Sets whose series differ in length.
UNEQUAL = {"JapaneseVowels"}
MODELS = {
    # The paper's LSTM-FCN: 8 LSTM cells with the dimension shuffle,
    # filters 128/256/128, kernels 8/5/3, dropout 0.8, Adam 1e-3.
    "lstm-fcn": "model: {type: lstm-fcn, hidden_size: 8, dropout: 0.8}\n"
                "training: {learning_rate: 0.001, batch_size: 16, epochs: 150, early_stopping_patience: 40, seed: SEED}\n",
    # The seed's LSTM classifier over every step of the series.
    "lstm": "model: {type: lstm, hidden_size: 64, num_layers: 1, dropout: 0.3}\n"
            "training: {learning_rate: 0.001, batch_size: 16, epochs: 150, early_stopping_patience: 40, seed: SEED}\n",
}


def fetch(cache):
    """The folder of aeon's bundled data sets, downloading the wheel once."""
    data = os.path.join(cache, "aeon-data")
    if os.path.isdir(data):
        return data
    os.makedirs(cache, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", AEON, "--no-deps", "-d", cache],
                   check=True, stdout=subprocess.DEVNULL)
    wheel = glob.glob(os.path.join(cache, "aeon-*.whl"))[0]
    with zipfile.ZipFile(wheel) as z:
        for n in z.namelist():
            if n.startswith("aeon/datasets/data/") and n.endswith(".ts"):
                out = os.path.join(data, os.path.basename(n))
                os.makedirs(data, exist_ok=True)
                with open(out, "wb") as f:
                    f.write(z.read(n))
    return data


def run(recur, data, name, positive, model, seed, work):
    cfg = os.path.join(work, f"{name}-{model}-{seed}.yaml")
    with open(cfg, "w") as f:
        f.write(f"data:\n  path: {os.path.join(data, name + '_TRAIN.ts')}\n  layout: sequences\n"
                + (f"  target: {{positive_label: \"{positive}\"}}\n" if positive else "")
                + "  split: {train: 0.8, val: 0.2, test: 0.0, shuffle: true}\n")
        m = MODELS[model].replace("SEED", str(seed))
        if name in UNEQUAL and model == "lstm-fcn":
            m = m.replace("dropout: 0.8}", "dropout: 0.8, shuffle: false}")
        f.write(m)
    out = os.path.join(work, f"{name}-{model}-{seed}")
    t0 = time.perf_counter()
    subprocess.run([recur, "-q", "train", "--config", cfg, "--out", out], check=True,
                   stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    pred = out + "-test.csv"
    subprocess.run([recur, "-q", "predict", "--model", out, "--input",
                    os.path.join(data, name + "_TEST.ts"), "--output", pred],
                   check=True, stdout=subprocess.DEVNULL)
    with open(pred) as f:
        rows = list(csv.DictReader(f))
    if positive is None:
        classes = [k[2:] for k in rows[0] if k.startswith("p_")]
        acc = sum(r["class"] == r["label"] for r in rows) / len(rows)
        aucs = [auc_of([float(r["p_" + c]) for r in rows], [r["label"] == c for r in rows])
                for c in classes if any(r["label"] == c for r in rows)]
        auc = sum(aucs) / len(aucs)
        y = rows
    else:
        y = [float(r["label"]) for r in rows]
        p = [float(r["p_lstm"]) for r in rows]
        acc = sum((pi >= 0.5) == (yi == 1.0) for pi, yi in zip(p, y)) / len(y)
        auc = auc_of(p, [yi == 1.0 for yi in y])
    return {"set": name, "model": model, "seed": seed, "accuracy": acc, "auc": auc,
            "train_seconds": seconds, "n_test": len(y)}


def auc_of(p, is_pos):
    """ROC AUC by pairs (ties count half)."""
    pos = [pi for pi, t in zip(p, is_pos) if t]
    neg = [pi for pi, t in zip(p, is_pos) if not t]
    return sum((a > b) + 0.5 * (a == b) for a in pos for b in neg) / (len(pos) * len(neg))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recur", default=os.path.join(ROOT, "target", "release", "recur"))
    ap.add_argument("--data", help="a folder with NAME_TRAIN.ts and NAME_TEST.ts (else aeon's)")
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/recur/ucr"))
    ap.add_argument("--sets", nargs="+", default=list(SETS))
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    ap.add_argument("--out", default=os.path.join(ROOT, "runs", "bench", "ucr.json"))
    args = ap.parse_args()
    data = args.data or fetch(args.cache)
    results = []
    with tempfile.TemporaryDirectory() as work:
        for name in args.sets:
            for model in args.models:
                for seed in args.seeds:
                    r = run(args.recur, data, name, SETS[name], model, seed, work)
                    print(f"{name:<18} {model:<9} seed {seed}: accuracy {r['accuracy']:.4f}, "
                          f"AUC {r['auc']:.4f}, {r['train_seconds']:.1f} s", flush=True)
                    results.append(r)
    print("\n| set | model | test accuracy | test ROC AUC | training s |")
    print("| --- | --- | --- | --- | --- |")
    for name in args.sets:
        for model in args.models:
            rs = [r for r in results if r["set"] == name and r["model"] == model]
            sd = lambda k: statistics.stdev([r[k] for r in rs]) if len(rs) > 1 else 0.0
            mean = lambda k: statistics.mean([r[k] for r in rs])
            print(f"| {name} | {model} | {mean('accuracy'):.4f} +- {sd('accuracy'):.4f} | "
                  f"{mean('auc'):.4f} +- {sd('auc'):.4f} | {mean('train_seconds'):.1f} |")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"\nwrote {args.out} ({len(results)} runs, seeds {args.seeds})")


if __name__ == "__main__":
    main()

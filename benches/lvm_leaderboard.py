"""Job B's leaderboard on the bundled corpus, by one command.

Trains every recipe `configs/lvm-text*.yaml` (one per model kind) with each
seed of --seeds, measures each seed's models with
`recur lvm leaderboard --heldout` (the articles that seed held out, OOD
news and speeches, batch-1 latency, training time), and prints the mean and
spread over the seeds of every kind's validation and OOD cosine and of its
margin over the context mean (the held-out articles, and with them the
baselines, change with the seed).

Usage: python3 benches/lvm_leaderboard.py [--seeds 42 1 2] [--corpus runs/corpus]
       [--out runs/lvm-leaderboard] [--recur target/release/recur] [--threads N]
       [--extra "min_context: 1"] [--train wiki2.npz]

The corpus is what `recur demo` builds into runs/corpus (wiki.npz, ood.npz).
--extra adds a line to every recipe's data section (e.g. short windows),
--train names another training file in the corpus folder. Each seed's
Markdown table and JSON are written under --out, beside the model
directories it trains there; nothing is written elsewhere.
Only the standard library is used.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys


def recipe_for(text, corpus, seed, train, extra):
    """The recipe with absolute data paths, another seed and the extra line."""
    text = text.replace("../runs/corpus/wiki.npz", os.path.join(corpus, train))
    text = text.replace("../runs/corpus/ood.npz", os.path.join(corpus, "ood.npz"))
    text, n = re.subn(r"(?m)^  seed: \d+$", f"  seed: {seed}", text)
    if n != 1:
        sys.exit("lvm_leaderboard: a recipe has no `  seed:` line under training")
    if extra:
        text, n = re.subn(r"(?m)^data:$", "data:\n  " + extra, text)
        if n != 1:
            sys.exit("lvm_leaderboard: a recipe has no `data:` section")
    return text


def run(cmd):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[42])
    ap.add_argument("--corpus", default="runs/corpus")
    ap.add_argument("--out", default="runs/lvm-leaderboard")
    ap.add_argument("--recur", default="target/release/recur")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--extra", default="")
    ap.add_argument("--train", default="wiki.npz")
    args = ap.parse_args()
    corpus = os.path.abspath(args.corpus)
    for f in (args.train, "ood.npz"):
        if not os.path.exists(os.path.join(corpus, f)):
            sys.exit(f"lvm_leaderboard: no {os.path.join(corpus, f)}; `recur demo` builds the corpus")
    here = os.path.dirname(os.path.abspath(__file__))
    configs = os.path.join(here, "..", "configs")
    recipes = sorted(f for f in os.listdir(configs) if f.startswith("lvm-text") and f.endswith(".yaml"))
    threads = ["--threads", str(args.threads)] if args.threads else []
    rows = {}  # name -> list of (val, ood, margin_val, margin_ood, params, seconds)
    for seed in args.seeds:
        base = os.path.abspath(os.path.join(args.out, f"seed-{seed}"))
        os.makedirs(base, exist_ok=True)
        dirs = []
        for r in recipes:
            name = r[: -len(".yaml")]
            cfg = os.path.join(base, r)
            with open(os.path.join(configs, r)) as f:
                text = recipe_for(f.read(), corpus, seed, args.train, args.extra)
            with open(cfg, "w") as f:
                f.write(text)
            model = os.path.join(base, name)
            if not os.path.exists(os.path.join(model, "report.json")):
                run([args.recur, "--quiet", *threads, "lvm", "train", "--config", cfg, "--out", model])
            dirs.append(model)
        js = os.path.join(base, "leaderboard.json")
        run([args.recur, "--quiet", *threads, "lvm", "leaderboard", "--models", *dirs,
             "--data", os.path.join(corpus, args.train), "--ood", os.path.join(corpus, "ood.npz"),
             "--heldout", "--json", js, "--markdown", os.path.join(base, "leaderboard.md")])
        with open(js) as f:
            entries = json.load(f)
        entries = entries["entries"] if isinstance(entries, dict) else entries
        mean = next(e for e in entries if e["name"] == "context_mean")
        for e in entries:
            rows.setdefault(e["name"], []).append((
                e["val_cosine"], e["ood_cosine"],
                e["val_cosine"] - mean["val_cosine"], e["ood_cosine"] - mean["ood_cosine"],
                e.get("params"), e.get("train_seconds"),
            ))
    n = len(args.seeds)
    spread = (lambda v: statistics.stdev(v)) if n > 1 else (lambda v: 0.0)
    print(f"\n{n} seed(s): {' '.join(map(str, args.seeds))}; mean +- standard deviation over seeds")
    print("| model | params | val cosine | OOD cosine | val - context mean | OOD - context mean | training s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, rs in sorted(rows.items(), key=lambda kv: -statistics.mean(r[0] for r in kv[1])):
        col = lambda i: [r[i] for r in rs]
        ms = lambda v, p=4: f"{statistics.mean(v):.{p}f} +- {spread(v):.{p}f}"
        secs = [s for s in col(5) if s is not None]
        print(f"| {name} | {rs[0][4] or ''} | {ms(col(0))} | {ms(col(1))} | {ms(col(2))} | {ms(col(3))} | "
              f"{statistics.mean(secs):.1f} |" if secs else
              f"| {name} | | {ms(col(0))} | {ms(col(1))} | {ms(col(2))} | {ms(col(3))} | |")


if __name__ == "__main__":
    main()

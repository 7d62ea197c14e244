"""Checks that `recur eval --json` on a model's own training file gives the
figures of its training report, model by model, raw and calibrated, field
by field (validation and test). Usage: eval_matches_report.py MODEL_DIR EVAL_JSON"""
import json
import sys

model, ev = sys.argv[1], json.load(open(sys.argv[2]))
report = json.load(open(f"{model}/report.json"))
assert ev["training_file"], "eval did not recognise the training file"
models = report["models"]
assert set(ev["models"]) == set(models), (sorted(ev["models"]), sorted(models))
checked = 0
for name, m in models.items():
    for v in ("raw", "calibrated"):
        got = ev["models"][name][v]
        assert got["threshold"] == m[v]["threshold"], (name, v)
        for part, key in (("validation", "val"), ("test", "test")):
            if m[v].get(key) is None:
                continue
            assert got["parts"][part] == m[v][key], (name, v, part, got["parts"][part], m[v][key])
            checked += 1
print(f"eval reproduces {checked} score sets of {model}/report.json exactly ({', '.join(sorted(models))})")

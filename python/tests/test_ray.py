"""Batch scoring on a local Ray: `BatchScorer` in Ray Data's `map_batches`
gives the probabilities of `recur predict`, series by series."""

import os

import numpy as np
import pandas as pd
import pytest

import recur
from conftest import run

import ray  # installed by .ci/run: a missing ray fails, it does not skip


def test_ray_data_map_batches_scores_as_recur_predict(recur_bin, rainfall, root, tmp_path):
    # A small model: three series (stations) cut from the bundled file.
    model = tmp_path / "model"
    est = recur.LSTMClassifier(target_column="rain", horizon=1, sequence_length=8, hidden_size=8,
                               epochs=1, trees=True, trees_lags=(1,), trees_iterations=20)
    est.fit(rainfall.head(6000)).save(model)
    frames = []
    for k in range(3):
        f = rainfall.iloc[6000 + 1000 * k: 7000 + 1000 * k].reset_index(drop=True).copy()
        f["station"] = k
        frames.append(f)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ds = ray.data.from_pandas(frames)
        scored = ds.map_batches(
            recur.BatchScorer, fn_constructor_args=(str(model), "station"),
            batch_size=None, batch_format="pandas", concurrency=2,
        ).to_pandas()
    finally:
        ray.shutdown()
    assert len(scored) == 3000
    for k, f in enumerate(frames):
        path = tmp_path / f"s{k}.csv"
        f.drop(columns=["station"]).to_csv(path, index=False)
        run(recur_bin, "-q", "predict", "--model", str(model), "--input", str(path),
            "--output", str(tmp_path / f"p{k}.csv"))
        want = pd.read_csv(tmp_path / f"p{k}.csv", dtype=str, keep_default_na=False)
        rows = want["row"].astype(int).to_numpy()
        got = scored[scored["station"] == k].sort_values("Unnamed: 0").reset_index(drop=True)
        assert np.isnan(got["p_trees"].astype(float).to_numpy()[: rows.min()]).all()
        for col in ["p_lstm", "p_trees", "p_ensemble", "probability", "decision"]:
            v = got[col].astype(float).to_numpy()[rows]
            cells = ["" if np.isnan(x) else (str(int(x)) if col == "decision" else f"{x:.6f}") for x in v]
            assert cells == list(want[col]), (k, col)
        assert got["probability"].notna().sum() > 900


def test_the_batch_function_is_the_same_in_pandas(rainfall, tmp_path):
    """What Spark's applyInPandas would call: the scorer on one frame."""
    model = tmp_path / "m"
    recur.LSTMClassifier(target_column="rain", horizon=1, sequence_length=8, hidden_size=8,
                         epochs=1).fit(rainfall.head(3000)).save(model)
    s = recur.BatchScorer(str(model))
    frame = rainfall.iloc[3000:3500]
    out = s(frame)
    assert list(out.columns[: frame.shape[1]]) == list(frame.columns) and len(out) == 500
    direct = recur.load(model).predict_proba(frame.reset_index(drop=True))[:, 1]
    assert np.array_equal(out["probability"].to_numpy(), direct, equal_nan=True)
    import pickle
    assert pickle.loads(pickle.dumps(s)).model_dir == str(model)
    with pytest.raises(ValueError, match="series_column 'nosuch' is not a column"):
        recur.BatchScorer(str(model), "nosuch")(frame)
    # A row without its series was dropped by groupby and scored as NaN,
    # its series read as if the row were not there: refused, naming it.
    keyed = frame.assign(station="a").reset_index(drop=True)
    keyed.loc[100, "station"] = None
    with pytest.raises(ValueError, match="row 100 of the batch has no 'station'"):
        recur.BatchScorer(str(model), "station")(keyed)
    # A batch scored before (its columns would come twice), and a batch
    # that is not a DataFrame.
    with pytest.raises(ValueError, match="already has the column"):
        s(out)
    with pytest.raises(TypeError, match="a batch is a pandas DataFrame"):
        s(frame.to_numpy())
    # A series shorter than the first window is NaN throughout, as the
    # first rows of a longer one are: it does not fail the batch.
    import pandas as pd

    two = pd.concat([frame.assign(station="a"), frame.head(3).assign(station="b")], ignore_index=True)
    got = recur.BatchScorer(str(model), "station")(two)["probability"]
    assert got.iloc[500:].isna().all() and got.iloc[:500].notna().sum() > 400
    assert s(frame.head(3))["probability"].isna().all()


def test_the_scorer_takes_only_a_time_series_classifier(tmp_path):
    """A whole-series model has no rows to score: named at once (it failed
    with an AttributeError on the first batch)."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 12, 1)), np.array([0, 1] * 20)
    recur.SequenceClassifier(hidden_size=2, epochs=1, filters=(4, 4, 4), kernels=(3, 3, 1)).fit(X, y).save(tmp_path / "s")
    with pytest.raises(ValueError, match="holds a SequenceClassifier: BatchScorer scores the rows"):
        recur.BatchScorer(str(tmp_path / "s"))
    # Paths as the other entry points take them; anything else is the
    # wrong kind of argument.
    with pytest.raises(ValueError, match="holds a SequenceClassifier"):
        recur.BatchScorer(os.fsencode(tmp_path / "s"))
    with pytest.raises(TypeError, match="model_dir is NoneType"):
        recur.BatchScorer(None)

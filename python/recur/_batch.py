"""`BatchScorer`: a recur model as a pandas batch function, for the
engines that score tables in parallel (Ray Data's `map_batches`, Spark's
`groupBy(...).applyInPandas`, Dask's `map_partitions`).

A window reads the rows before it, so a series must reach the function
whole, in time order: one block per series in Ray Data
(`ray.data.from_pandas([one frame per series])` with `batch_size=None`),
one group per series in Spark. Within a batch, rows are grouped by
`series_column` when one is given. The scorer loads the model once per
worker (Ray's callable class, or once per process in Spark) and returns
the batch with the columns of `recur predict` added, NaN on the rows
before the first window.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ._estimator import StrPath, _path

COLUMNS = ("p_lstm", "p_trees", "p_ensemble", "probability", "decision")


class BatchScorer:
    """Scores pandas batches with the Job A classifier in `model_dir` (a
    model directory of the rows layout, as `recur train` or
    `LSTMClassifier.save` writes it), loaded once.

    `series_column`: the column that names each row's series when a batch
    holds several (a Spark group, a Ray block of many series). The rows of
    each series are scored together, in the batch's order, so its windows
    never read another series' rows. Without it the whole batch is one
    series. Calling the scorer on a batch returns it with the columns of
    `recur predict` added (see `__call__`)."""

    def __init__(self, model_dir: StrPath, series_column: Optional[str] = None):
        from . import load

        from ._estimator import LSTMClassifier

        self.model_dir = _path(model_dir, "model_dir", "the model directory's path")
        self.series_column = series_column
        self._model: Any = load(self.model_dir)
        if not isinstance(self._model, LSTMClassifier):
            raise ValueError(
                f"{self.model_dir} holds a {type(self._model).__name__}: BatchScorer scores the rows "
                "of a time series with a Job A classifier of the rows layout (what `recur train` "
                "writes from a table)"
            )

    def _one(self, frame: Any) -> dict:
        n = len(frame)
        out = {c: np.full(n, np.nan) for c in COLUMNS}
        if n <= self._model.first_row_:
            # Rows before the first window, all of them: NaN, as the rows
            # before it are in a longer batch (a short series among the
            # groups must not fail the whole batch).
            return out
        s = self._model.score_rows(frame)
        for c in COLUMNS:
            out[c][s["row"]] = s[c]
        return out

    def __call__(self, batch: Any) -> Any:
        """`batch` (a pandas DataFrame) with the columns p_lstm, p_trees,
        p_ensemble (raw), probability (calibrated) and decision added."""
        import pandas as pd

        if not isinstance(batch, pd.DataFrame):
            raise TypeError(f"a batch is a pandas DataFrame, not {type(batch).__name__}")
        taken = [c for c in COLUMNS if c in batch.columns]
        if taken:
            raise ValueError(
                f"the batch already has the column(s) {', '.join(taken)} the scorer adds "
                "(a batch scored before?); drop or rename them"
            )
        index = batch.index
        batch = batch.reset_index(drop=True)
        if self.series_column is not None and self.series_column not in batch.columns:
            raise ValueError(
                f"series_column {self.series_column!r} is not a column of the batch; "
                f"the columns are: {', '.join(map(str, batch.columns))}"
            )
        if self.series_column is not None:
            missing = batch[self.series_column].isna().to_numpy()
            if missing.any():
                # pandas' groupby drops such rows: they would be scored as
                # NaN and their series read as if they were not there.
                raise ValueError(
                    f"row {int(np.argmax(missing))} of the batch has no {self.series_column!r} "
                    "(NaN or None): every row needs its series"
                )
        if self.series_column is None:
            parts = [(batch.index.to_numpy(), batch)]
        else:
            parts = [(g.index.to_numpy(), g.reset_index(drop=True)) for _, g in batch.groupby(self.series_column, sort=False)]
        cols = {c: np.full(len(batch), np.nan) for c in COLUMNS}
        for idx, frame in parts:
            got = self._one(frame)
            for c in COLUMNS:
                cols[c][idx] = got[c]
        out = pd.concat([batch, pd.DataFrame(cols)], axis=1)
        # The caller's index back, so the result joins on it (it was 0..n).
        out.index = index
        return out

    def __reduce__(self) -> Any:
        return (BatchScorer, (self.model_dir, self.series_column))

    def __repr__(self) -> str:
        series = "" if self.series_column is None else f", series_column={self.series_column!r}"
        return f"BatchScorer({self.model_dir!r}{series})"

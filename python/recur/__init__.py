"""recur in Python: LSTM sequence models trained and run by recur's Rust
library, with numpy in and out and the GIL released while it works.

- `LSTMClassifier`: the time-series classifier (Job A) as a scikit-learn
  estimator; `config_params(file)` gives a recur config's keywords.
- `SequenceClassifier`: whole series per sample (UCR/UEA-style data; two
  or more classes, several channels, lengths that differ) as a
  scikit-learn estimator.
- `load(dir)`: any model directory `recur` (or this package) wrote: an
  `LSTMClassifier` for a Job A classifier of a time series, a
  `SequenceClassifier` for one of whole series, an `Lvm` for Job B.
- `Lvm`: a latent vector model (Job B): `predict` maps float32 windows
  `[N, C, D]` to the next vectors `[N, D]`; `Lvm.train` trains one.
- `SentenceEncoder(name_or_dir).encode(texts)`: normalised float32
  sentence embeddings `[N, D]`.
- `BatchScorer(dir)`: a model as a pandas batch function for Ray Data's
  `map_batches` or Spark's `applyInPandas`.

Errors carry the messages of the `recur` command line: `ValueError` for
bad values, `TypeError` for an argument of the wrong kind, and `OSError`
for files (`FileNotFoundError` for a missing one, `PermissionError` for
one that may not be read). Paths are `str`, `bytes` or `os.PathLike`.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from typing import Any, Optional

import numpy as np

from . import _estimator, _recur
from ._batch import BatchScorer
from ._estimator import (
    LSTMClassifier,
    StrPath,
    TrainingWarning,
    _contiguous,
    _object_numbers,
    _path,
    _progress_callback,
    _unmasked,
    _unplaced,
    config_params,
)
from ._sequence import SequenceClassifier

__version__ = _recur.__version__
__all__ = [
    "BatchScorer", "LSTMClassifier", "Lvm", "SentenceEncoder", "SequenceClassifier", "TrainingWarning",
    "config_params", "load",
]

# What an LVM trained on arrays records as its `data.train` (config.yaml,
# split.json): the arrays went through a temporary file, gone afterwards.
ARRAYS_RECORDED = "(the arrays given to recur.Lvm.train)"


def _article_indices(x: Any) -> np.ndarray:
    """`article_indices` as int64: whole numbers, each article's chunks
    in one run (the chunk order is the rows' order within it)."""
    a = np.asarray(_unmasked(x, "article_indices"))
    whole = lambda v: np.isfinite(v) & (v == np.round(v)) & (np.abs(v) < 2.0**63)  # noqa: E731
    if a.dtype.kind == "f" and a.size and not np.all(whole(a)):
        i = int(np.flatnonzero(~whole(a))[0])
        raise ValueError(
            f"article_indices[{i}] is {a.flat[i].item()!r}: give whole numbers within int64, "
            "the document of each chunk"
        )
    if a.dtype.kind == "u" and a.size and a.max() > np.iinfo(np.int64).max:
        i = int(np.argmax(a > np.iinfo(np.int64).max))
        raise ValueError(f"article_indices[{i}] is {int(a[i])}: give whole numbers within int64")
    if a.dtype.kind not in "biuf":
        raise ValueError(f"article_indices have dtype {a.dtype}: give whole numbers, the document of each chunk")
    a = _contiguous(a, dtype=np.int64)
    if a.ndim == 1 and a.size:
        starts = np.flatnonzero(np.r_[True, a[1:] != a[:-1]])
        runs = a[starts]
        uniq, first = np.unique(runs, return_index=True)
        if len(uniq) != len(runs):
            again = np.setdiff1d(np.arange(len(runs)), first)[0]
            earlier = int(np.flatnonzero(runs[:again] == runs[again])[0])
            raise ValueError(
                f"article_indices: article {runs[again]} has chunks at rows {starts[earlier]} and "
                f"{starts[again]} with another article between; give each article's chunks "
                "together, in order"
            )
    return a


def _float32(x: Any, what: str) -> np.ndarray:
    """`x` as a contiguous float32 array. Complex, text and object values
    are refused (the cast would drop an imaginary part in silence), and so
    are finite values beyond float32's range (the cast would make them
    infinite), each named by its index."""
    a = _object_numbers(np.asarray(_unmasked(x, what)))
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{what} have dtype {a.dtype}: give real numbers (float32)")
    if a.dtype.kind == "f" and a.dtype.itemsize > 4:
        big = np.isfinite(a) & (np.abs(a) > np.finfo(np.float32).max)
        if big.any():
            at = tuple(int(i) for i in np.argwhere(big)[0])
            raise ValueError(
                f"{what}{list(at)} is {float(a[at])!r}, beyond float32's range (3.4e38): scale the vectors"
            )
    return _contiguous(a, dtype=np.float32)


class Lvm:
    """A Job B latent vector model. Open one with `Lvm.load(path)` (or
    `recur.load(path)`), or train one with `Lvm.train(out, config)`.

    Attributes: `kind`, `context` (C), `dim` (D), `path`, `report_` (the
    training report as a dict, from `report.json`; empty for a directory
    `recur import-torch` wrote) and `report_text_` (as `recur lvm train`
    prints it). Pickling carries the model's own files as they were when
    it loaded (as the estimators do), so an unpickled `Lvm` predicts as
    this one."""

    def __init__(self, model: "_recur.Lvm", report: Optional[dict] = None, report_text: str = ""):
        if not isinstance(model, _recur.Lvm):
            raise TypeError(
                f"Lvm() takes a loaded model, not {type(model).__name__}: open a model directory "
                "with recur.Lvm.load(path), or train one with recur.Lvm.train(out, config)"
            )
        self._m = model
        self.report_: dict[str, Any] = report or {}
        self.report_text_ = report_text
        self._files: dict[str, bytes] = {}

    @classmethod
    def load(cls, path: StrPath) -> "Lvm":
        """Opens an LVM directory written by `recur lvm train`, `recur
        import-torch` or `Lvm.train` (or its `model.safetensors` alone),
        checking every tensor's name and shape."""
        m = cls._open(_path(path, "path", "an LVM directory's path"))
        report = m._files.get("report.json")
        if report is not None:
            try:
                m.report_ = json.loads(report)
            except ValueError:
                m.report_ = {}
            m.report_text_ = _recur.report_text(report.decode("utf-8", "replace"), "lvm")
        return m

    @property
    def path(self) -> str:
        """The model directory (or weights file) it was loaded from."""
        return os.fspath(self._m.path)

    def __repr__(self) -> str:
        return f"Lvm(kind={self.kind!r}, context={self.context}, dim={self.dim}, path={self.path!r})"

    @classmethod
    def _open(cls, path: str, report: Optional[dict] = None, report_text: str = "") -> "Lvm":
        if os.path.isfile(path):
            # A weights file alone: pickled as a directory holding it.
            weights = _estimator._read(path)
            m = cls(_recur.Lvm.load(path), report, report_text)
            if _estimator._read(path) != weights:
                raise OSError(f"{path}: the file changed while it was loaded; load it again")
            m._files = {"model.safetensors": weights}
            return m
        man = os.path.join(path, _estimator.MANIFEST)
        before = _estimator._read(man) if os.path.isfile(man) else None
        m = cls(_recur.Lvm.load(path), report, report_text)
        # The bytes recur checked as it loaded: the manifest is the same
        # before and after (see `_estimator._Fitted`).
        m._files = _estimator._own_files(path)
        if m._files.get(_estimator.MANIFEST) != before:
            raise OSError(f"{path}: the model directory changed while it was loaded; load it again")
        return m

    def __getstate__(self) -> dict[str, Any]:
        return {
            "report_": self.report_,
            "report_text_": self.report_text_,
            "_model_dir_tar": _estimator._tar_files(self._files),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        import shutil
        import weakref

        path = _estimator._untar_dir(state["_model_dir_tar"])
        # A model loaded from a weights file alone comes back as that file.
        alone = not os.path.exists(os.path.join(path, _estimator.MANIFEST))
        try:
            m = Lvm._open(
                os.path.join(path, "model.safetensors") if alone else path,
                state.get("report_"),
                state.get("report_text_", ""),
            )
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        self.__dict__.update(m.__dict__)
        # The folder is the unpickled model's alone, removed with it.
        weakref.finalize(self, shutil.rmtree, path, True)

    @property
    def kind(self) -> str:
        """`lstm`, `gru`, `amn`, `transformer` or `mlp`."""
        return self._m.kind

    @property
    def context(self) -> int:
        """The context length C."""
        return self._m.context

    @property
    def dim(self) -> int:
        """The vector dimension D."""
        return self._m.dim

    def predict(self, windows: Any) -> np.ndarray:
        """The predicted next vector of each window: float32 `[N, C, D]`
        in (C the context, D the dimension), float32 `[N, D]` out."""
        if windows is None or isinstance(windows, (str, bytes, dict)):
            raise TypeError(
                f"windows is {type(windows).__name__}; give an array [N, {self.context}, {self.dim}]"
            )
        w = _float32(windows, "windows")
        if w.ndim != 3:
            raise ValueError(f"windows have shape {w.shape}; give [N, {self.context}, {self.dim}]")
        return self._m.predict(w)

    @classmethod
    def train(
        cls,
        out: StrPath,
        config: Any = None,
        *,
        vectors: Any = None,
        article_indices: Any = None,
        progress: Any = False,
    ) -> "Lvm":
        """Trains an LVM into the model directory `out` and loads it.
        `config` is a config file's path or a dict of its sections (see
        configs/lvm.yaml); with `vectors`, a dict. The training data is the
        config's `data.train` (.npz), or the arrays `vectors` (float32
        `[n, D]`, a document's chunks in order) and `article_indices`
        (`[n]`, the document of each chunk), written to a chunks .npz for
        the run. `progress` is False, True (a tqdm bar) or a callable
        `f(event, text, n)`, as the estimators take it.

        As `recur lvm train --out` does, an `out` that holds an earlier
        recur model directory is replaced by the new one (as a whole, once
        training has finished); any other non-empty folder is refused."""
        out = _path(out, "out", "the model directory to write")
        if not out:
            raise ValueError("out is empty: give the model directory to write")
        if vectors is not None and isinstance(config, (str, os.PathLike)):
            raise ValueError(
                "with vectors, give config as a dict of a config file's sections "
                "(a config file names its own data.train)"
            )
        if config is not None and not isinstance(config, (str, os.PathLike, dict)):
            raise TypeError(f"config is {type(config).__name__}: give a config file's path or a dict of its sections")
        cb = _progress_callback(progress)
        with tempfile.TemporaryDirectory(prefix="recur-lvm-") as tmp:
            if isinstance(config, (str, os.PathLike)) and vectors is None:
                report, text = _recur.train_lvm(os.fspath(config), out, True, cb)
            else:
                cfg: dict[str, Any] = dict(config) if isinstance(config, dict) else {}
                if vectors is not None:
                    v = _float32(vectors, "vectors")
                    if article_indices is None:
                        raise ValueError("vectors need article_indices: the document of each chunk")
                    a = _article_indices(article_indices)
                    if v.ndim != 2 or a.shape != (v.shape[0],) or not v.size:
                        raise ValueError(
                            f"vectors have shape {v.shape} and article_indices {a.shape}; give [n, D] and [n], n >= 1"
                        )
                    # Named here, not as the temporary file they go through.
                    bad = np.flatnonzero(~np.isfinite(v).all(axis=1))
                    if bad.size:
                        raise ValueError(f"vectors row {bad[0]} holds NaN or infinity; every value must be finite")
                    chunk = np.zeros_like(a)
                    for i in range(1, len(a)):
                        chunk[i] = chunk[i - 1] + 1 if a[i] == a[i - 1] else 0
                    path = os.path.join(tmp, "train.npz")
                    np.savez(path, vectors=v, article_indices=a, chunk_indices=chunk)
                    cfg["data"] = {**cfg.get("data", {}), "train": path}
                    if cb is not None:
                        # The notes name the arrays too, not the file.
                        said = cb

                        def cb(event: str, text: str, n: int, _said: Any = said, _file: str = path) -> None:
                            _said(event, text.replace(_file, "the arrays vectors and article_indices"), n)
                try:
                    # The model records the arrays, not the file they went
                    # through (deleted when this returns).
                    recorded = ARRAYS_RECORDED if vectors is not None else None
                    report, text = _recur.train_lvm(json.dumps(cfg), out, False, cb, recorded)
                except (ValueError, OSError) as e:
                    msg = _unplaced(str(e))
                    # The arrays, not the file they went through.
                    if vectors is not None:
                        msg = msg.replace(path, "the arrays vectors and article_indices")
                    if msg == str(e):
                        raise
                    raise type(e)(msg) from None
        lvm = cls._open(out, json.loads(report), text)
        _estimator.warn_report(lvm.report_ or {})
        return lvm

    @classmethod
    def import_torch(
        cls,
        checkpoint: StrPath,
        out: StrPath,
        *,
        context: Optional[int] = None,
        heads: Optional[int] = None,
    ) -> "Lvm":
        """`recur import-torch`: a PyTorch checkpoint of an LVM (`.pt` with
        `model_state_dict` and `model_config`, the other layouts the README
        lists, or `.safetensors`) into the model directory `out`, every
        tensor name and shape checked and no pickled code run; then loads
        it. `context` and `heads` give the context length and a
        Transformer's head count where the file does not state them (as
        `--context` and `--heads`). What the CLI prints as warnings (a
        context length assumed, a prefix read without) comes as
        `UserWarning`s. As the CLI, an `out` holding an earlier recur
        model directory is replaced; any other non-empty folder is refused."""
        checkpoint = _path(checkpoint, "checkpoint", "the checkpoint's path")
        out = _path(out, "out", "the model directory to write")
        if not out:
            raise ValueError("out is empty: give the model directory to write")
        for name, v in (("context", context), ("heads", heads)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))):
                raise TypeError(f"{name} is {type(v).__name__}: give a whole number, or leave it out")
            if v is not None and v < 1:
                raise ValueError(f"{name} is {v}: give a whole number from 1, or leave it out")
        said = _recur.import_torch(
            checkpoint, out, None if context is None else int(context), None if heads is None else int(heads)
        )
        for w in said:
            warnings.warn(w, UserWarning, stacklevel=2)
        return cls._open(out)


class SentenceEncoder:
    """A sentence encoder: a known name (`all-MiniLM-L6-v2` or
    `gtr-t5-base`, fetched into recur's cache on first use, as `recur
    models fetch NAME` fetches it) or a sentence-transformers folder.
    Pickling keeps the name, or the folder's absolute path, and
    unpickling opens it again."""

    def __init__(self, name_or_dir: StrPath = "all-MiniLM-L6-v2", *, progress: Any = False):
        name_or_dir = _path(name_or_dir, "name_or_dir", "an encoder's name or a sentence-transformers folder")
        self._e = _recur.SentenceEncoder(name_or_dir, _progress_callback(progress))
        # What unpickling opens again: the same name, or the same folder
        # by its absolute path (the weights are not copied into a pickle).
        self._source = os.path.abspath(name_or_dir) if os.path.isdir(name_or_dir) else name_or_dir

    def __reduce__(self) -> Any:
        return (SentenceEncoder, (self._source,))

    def __repr__(self) -> str:
        return f"SentenceEncoder({self._source!r})"

    @property
    def dim(self) -> int:
        """The embedding dimension D."""
        return self._e.dim

    def encode(self, texts: Any, batch_size: int = 32) -> np.ndarray:
        """Normalised float32 embeddings `[N, D]` of a list of str."""
        if isinstance(texts, str):
            raise ValueError("give a list of str, not one str")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] is {type(t).__name__}, not str: give text (decode bytes first)")
            if not t.strip():
                raise ValueError(f"texts[{i}] is empty: give text to embed")
        if not texts:
            raise ValueError("texts is empty: give at least one str")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size is {batch_size!r}: give a whole number, at least 1")
        return self._e.encode(texts, int(batch_size))


def load(path: StrPath) -> Any:
    """Opens a model directory of either job: an `LSTMClassifier` (fitted)
    for a Job A classifier of a time series, a `SequenceClassifier` for
    one of whole series, an `Lvm` for a Job B model. (Typed `Any`, as
    `pickle.load` is: which one depends on the folder; `Lvm.load` is typed
    `Lvm`.)"""
    path = _path(path, "path", "a model directory's path")
    if _recur.kind_of(path) == "classifier":
        if _recur.Classifier.load(path).layout == "sequences":
            return SequenceClassifier._from_dir(path)
        return LSTMClassifier._from_dir(path)
    return Lvm.load(path)

"""Type hints of the extension module (crates/recur-py/src/lib.rs)."""

from typing import Any, Callable, Optional

import numpy as np

__version__: str

Progress = Optional[Callable[[str, str, int], Any]]

def train_classifier(
    config: str, names: list[str], columns: list[Any], out: str, progress: Progress = None
) -> tuple[str, str]: ...
def train_sequences(
    config: str, series: list[np.ndarray], labels: list[str], out: str, progress: Progress = None
) -> tuple[str, str]: ...
def train_lvm(
    config: str, out: str, is_file: bool = False, progress: Progress = None, recorded: str | None = None
) -> tuple[str, str]: ...
def kind_of(path: str) -> str: ...
def default_config() -> str: ...
def read_config(path: str) -> str: ...

class Classifier:
    @staticmethod
    def load(path: str) -> "Classifier": ...
    def score(self, names: list[str], columns: list[Any]) -> dict[str, Any]: ...
    def score_array(self, x: np.ndarray) -> dict[str, Any]: ...
    def score_series(self, series: list[np.ndarray]) -> dict[str, Any]: ...
    classes: list[str]
    positive_label: Optional[str]
    layout: str
    features: list[str]
    sequence_length: int
    first_row: int
    min_rows: int
    threshold: float
    deployed: str
    path: str
    config_json: str

class Lvm:
    @staticmethod
    def load(path: str) -> "Lvm": ...
    def predict(self, windows: np.ndarray) -> np.ndarray: ...
    kind: str
    context: int
    dim: int
    path: str

class SentenceEncoder:
    def __init__(self, name_or_dir: str, progress: Progress = None) -> None: ...
    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray: ...
    dim: int

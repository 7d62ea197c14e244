"""Shared fixtures: the repository, the `recur` binary built beside the
wheel, and the bundled rainfall data."""

import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def root() -> pathlib.Path:
    return ROOT


@pytest.fixture(scope="session")
def recur_bin() -> str:
    """The CLI the package is compared with (RECUR_BIN, or the release
    build of this checkout)."""
    b = os.environ.get("RECUR_BIN", str(ROOT / "target" / "release" / "recur"))
    assert os.access(b, os.X_OK), f"{b} is not built: run cargo build --release first"
    return b


@pytest.fixture(scope="session")
def rainfall():
    import pandas as pd

    return pd.read_csv(ROOT / "data" / "rainfall.csv")


def run(*args: str) -> subprocess.CompletedProcess:
    r = subprocess.run(list(args), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r

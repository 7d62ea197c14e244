#!/usr/bin/env bash
# The Python package's checks, as .ci/run runs them: build the wheel from
# this checkout, install it alone in a fresh virtual environment and run
# the quick start there; then add the test dependencies (scikit-learn,
# pandas, pytest, Ray Data, mypy), check the type hints and run
# python/tests against the wheel and the release `recur` binary. WORK
# (default: a new temporary folder) holds the environments and the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
work="${1:-$(mktemp -d)}"
mkdir -p "$work"

python3 -m venv "$work/build"
"$work/build/bin/pip" install -q "maturin>=1.9,<2"
(cd python && "$work/build/bin/maturin" build --release -o "$work/dist")
cargo build --release -p recur-cli

python3 -m venv "$work/env"
"$work/env/bin/pip" install -q "$work"/dist/recur_lstm-*.whl
(cd "$work" && "$work/env/bin/python" "$root/python/examples/quickstart.py" "$work/quickstart-model")
test -s "$work/quickstart-model/model.safetensors"

"$work/env/bin/pip" install -q "pytest>=7" "scikit-learn>=1.2" "pandas>=1.5" "polars>=1" "ray[data]>=2.9" "mypy>=1.10"
# The declared types against the built package: the stubs of the native
# module (stubtest), the package's own annotations and the examples a user
# copies (mypy), so that correct code type-checks.
(cd "$work" && "$work/env/bin/python" -m mypy.stubtest --mypy-config-file "$root/python/pyproject.toml" recur._recur \
  && "$work/env/bin/python" -m mypy --config-file "$root/python/pyproject.toml" -p recur \
  && "$work/env/bin/python" -m mypy --config-file "$root/python/pyproject.toml" "$root"/python/examples/*.py)
(cd "$work" && RECUR_BIN="$root/target/release/recur" "$work/env/bin/python" -m pytest -q -p no:cacheprovider "$root/python/tests")

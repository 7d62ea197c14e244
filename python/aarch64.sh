#!/usr/bin/env bash
# The aarch64 (ARM64 Linux) wheel, cross-built on an x86-64 machine and
# run there under qemu: the Rust target and the cross gcc come from rustup
# and Debian; numpy's aarch64 wheel from PyPI; an aarch64 CPython and its
# libraries are unpacked from Debian's arm64 packages into WORK/root
# (nothing arm64 is installed on the machine). Then python/examples/smoke.py
# runs on the aarch64 wheel. Not part of .ci/run: the cross build of the
# whole workspace takes about 10 minutes on two cores.
#
#   python/aarch64.sh [WORK]      (needs root for apt-get)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
work="${1:-$(mktemp -d)}"
mkdir -p "$work/deb" "$work/root" "$work/site" "$work/dist"

rustup target add aarch64-unknown-linux-gnu
command -v aarch64-linux-gnu-gcc >/dev/null || apt-get install -y -q gcc-aarch64-linux-gnu g++-aarch64-linux-gnu
python3 -m venv "$work/build"
"$work/build/bin/pip" install -q "maturin>=1.9,<2"
(cd python && CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
  CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++ \
  AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
  "$work/build/bin/maturin" build --release --target aarch64-unknown-linux-gnu -o "$work/dist")

# An aarch64 CPython 3.11 to run it, unpacked, and qemu to run that.
dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
apt-get update -q >/dev/null
(cd "$work/deb" && apt-get download -q qemu-user-static python3.11-minimal:arm64 libpython3.11-minimal:arm64 \
  libpython3.11-stdlib:arm64 libc6:arm64 libffi8:arm64 libexpat1:arm64 libbz2-1.0:arm64 liblzma5:arm64 \
  zlib1g:arm64 libssl3:arm64 libgcc-s1:arm64 libstdc++6:arm64 libuuid1:arm64 libsqlite3-0:arm64 libcrypt1:arm64)
for d in "$work"/deb/*.deb; do dpkg-deb -x "$d" "$work/root"; done
"$work/build/bin/pip" download -q numpy --platform manylinux2014_aarch64 --only-binary=:all: \
  --python-version 3.11 -d "$work/deb"
for w in "$work"/deb/numpy-*.whl "$work"/dist/recur_lstm-*aarch64.whl; do
  python3 -m zipfile -e "$w" "$work/site"
done
PYTHONPATH="$work/site" "$work/root/usr/bin/qemu-aarch64-static" -L "$work/root" \
  "$work/root/usr/bin/python3.11" "$root/python/examples/smoke.py"
ls "$work"/dist/*.whl

#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ from the repository's own files (data,
# configs, test fixtures, the demo's model when it is there), so that the
# fuzzer starts from inputs that parse. Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
c=fuzz/corpus
mkdir -p $c/{csv,ts,npz,checkpoint,pickle,import,config,lvm_config,iso,parquet}
for f in data/*.csv; do head -20 "$f" > "$c/csv/$(basename "$f")"; done
cp crates/recur-data/tests/fixtures/*.parquet $c/parquet/
cp configs/*.yaml $c/config/
cp configs/lvm*.yaml $c/lvm_config/
cp crates/recur-kernels/tests/fixtures/*.safetensors $c/checkpoint/
[ -f runs/demo/model.safetensors ] && cp runs/demo/model.safetensors $c/checkpoint/demo.safetensors
cp crates/recur-models/tests/fixtures/*.npz crates/recur-deploy/tests/fixtures/*_io.npz $c/npz/
printf '2020-01-01' > $c/iso/date
printf '2020-01-01T12:30:00.123+05:30' > $c/iso/zoned
printf '@problemName t\n@univariate true\n@equalLength true\n@seriesLength 4\n@classLabel true a b\n@data\n1,2,3,4:a\n2,3,4,5:b\n' > $c/ts/uni.ts
printf '@problemName m\n@univariate false\n@dimensions 2\n@equalLength false\n@missing true\n@classLabel true 0 1\n@data\n1,2,?:4,5,6:0\n' > $c/ts/multi.ts
# The import target reads its first byte as the file's kind: 0 a .pt zip,
# 1 a safetensors file. The pickle target gets the pickles inside the zips.
for f in crates/recur-deploy/tests/fixtures/*.pt crates/recur-deploy/tests/fixtures/variants/*; do
  kind='\000'; [ "$(head -c 2 "$f")" = PK ] || kind='\001'
  { printf "$kind"; cat "$f"; } > "$c/import/$(basename "$f")"
  python3 - "$f" "$c/pickle" <<'PY'
import sys, zipfile, os
try:
    z = zipfile.ZipFile(sys.argv[1])
except zipfile.BadZipFile:
    sys.exit()
for n in z.namelist():
    if n.endswith(".pkl"):
        open(os.path.join(sys.argv[2], os.path.basename(sys.argv[1]) + ".pkl"), "wb").write(z.read(n))
PY
done
echo "seeded $(find $c -type f | wc -l) files in $c"

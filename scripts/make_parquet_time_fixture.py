"""Writes two Parquet files under crates/recur-data/tests/fixtures, both by
pyarrow itself (no pandas, so the only zone names in them are in the
`ARROW:schema` key-value metadata):

- times_pyarrow.parquet: a zoned, a fixed-offset, a UTC and a naive
  timestamp column of different units, a date32 and a time64 column, and a
  plain double;
- times_int96.parquet: the zoned and the naive column again, as the
  deprecated INT96 timestamps (Spark, Impala), which carry no zone flag.

The tests `reads_zones_from_the_arrow_schema` and `reads_int96_timestamps`
in crates/recur-data/src/table.rs expect the text this script prints.

    .venv-ref/bin/pip install pyarrow
    .venv-ref/bin/python scripts/make_parquet_time_fixture.py
"""
import datetime as dt
import os

import pyarrow as pa
import pyarrow.parquet as pq

out = os.path.join(
    os.path.dirname(__file__), "..", "crates", "recur-data", "tests", "fixtures", "times_pyarrow.parquet"
)
tokyo = dt.timezone(dt.timedelta(hours=9))
kolkata = dt.timezone(dt.timedelta(hours=5, minutes=30))
table = pa.table(
    {
        # Midnight in Tokyo: 15:00 the day before in UTC.
        "tokyo": pa.array(
            [dt.datetime(2024, 1, 5, tzinfo=tokyo), dt.datetime(2024, 1, 6, tzinfo=tokyo)],
            pa.timestamp("ms", tz="Asia/Tokyo"),
        ),
        "kolkata": pa.array(
            [dt.datetime(2024, 1, 5, tzinfo=kolkata), dt.datetime(2024, 1, 6, 0, 0, 0, 250000, tzinfo=kolkata)],
            pa.timestamp("us", tz="+05:30"),
        ),
        "utc": pa.array(
            [dt.datetime(2024, 1, 5, tzinfo=dt.timezone.utc), None],
            pa.timestamp("ns", tz="UTC"),
        ),
        # Nanoseconds: Parquet's TIMESTAMP(NANOS) has no legacy converted type.
        "naive": pa.array([0, 1704544200000000250], pa.timestamp("ns")),
        "day": pa.array([dt.date(2024, 1, 5), dt.date(1969, 12, 31)], pa.date32()),
        "at": pa.array([dt.time(1, 2, 3), dt.time(23, 59, 59, 500000)], pa.time64("us")),
        "x": pa.array([1.5, -2.0]),
    }
)
pq.write_table(table, out)
int96 = out.replace("times_pyarrow", "times_int96")
pq.write_table(table.select(["tokyo", "naive"]), int96, use_deprecated_int96_timestamps=True)
for path in (out, int96):
    print("pyarrow", pa.__version__, "wrote", os.path.abspath(path), os.path.getsize(path), "bytes")
    print(pq.read_table(path).to_pandas().to_string())
    print(pq.ParquetFile(path).schema)

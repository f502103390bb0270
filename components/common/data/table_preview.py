"""Parquet tables as CSV text too: MLflow's artifact viewer previews CSV, not Parquet."""

from __future__ import annotations

import io


def csv_text(parquet: bytes) -> str:
    """The table in `parquet` (a file's bytes) as CSV with a header row."""
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pa_csv.write_csv(pq.read_table(io.BytesIO(parquet)), buffer)
    return buffer.getvalue().decode("utf-8")

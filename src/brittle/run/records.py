"""``images.parquet``: one row per (model, perturbation, severity, image).

The per-image evidence behind every aggregate in ``results.json``: how many detections
the model made on the clean and the perturbed image (at the operating confidence), how
many stayed (same class, IoU >= 0.5), changed class, were lost or appeared, the
resulting consistency and whether the image counts as affected, and, on labeled data,
each side's F1 against the ground truth. Written one row group per cell, so the file
grows on disk and never in memory; any Parquet reader (pandas, polars, DuckDB, Spark)
opens it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from brittle.run.cache import RunImage
from brittle.run.scoring import CellScore, ScoreOptions

__all__ = ["RECORDS_FILE", "write_image_records"]

RECORDS_FILE = "images.parquet"


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("model", pa.string()),
            ("perturbation", pa.string()),
            ("family", pa.string()),
            ("severity", pa.int8()),
            ("image", pa.string()),
            ("n_clean", pa.int32()),
            ("n_perturbed", pa.int32()),
            ("matched", pa.int32()),
            ("changed", pa.int32()),
            ("lost", pa.int32()),
            ("gained", pa.int32()),
            ("consistency", pa.float64()),
            ("affected", pa.bool_()),
            ("f1_clean", pa.float64()),
            ("f1_perturbed", pa.float64()),
        ]
    )


def write_image_records(
    path: Path,
    images: Sequence[RunImage],
    cells: Mapping[tuple[str, str, int], CellScore],
    families: Mapping[str, str],
    options: ScoreOptions,
) -> None:
    """Write the per-image rows of every (model, perturbation, severity) cell.

    Rows are ordered by model, then the suite's cell order, then the dataset's image
    order; written to a temporary file and renamed, so a reader never sees half a file.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _schema()
    ids = pa.array([im.id for im in images], pa.string())
    tmp = path.with_suffix(".parquet.tmp")
    # No creation timestamps or writer-specific metadata beyond pyarrow's version, so
    # the same run gives the same bytes.
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for (model, pert, severity), cell in cells.items():
            n = len(images)
            cons = cell.consistency
            table = pa.Table.from_arrays(
                [
                    pa.array([model] * n, pa.string()),
                    pa.array([pert] * n, pa.string()),
                    pa.array([families[pert]] * n, pa.string()),
                    pa.array(np.full(n, severity, np.int8)),
                    ids,
                    pa.array(cell.n_clean.astype(np.int32)),
                    pa.array(cell.n_perturbed.astype(np.int32)),
                    pa.array(cell.n_matched.astype(np.int32)),
                    pa.array(cell.changed.astype(np.int32)),
                    pa.array(cell.lost.astype(np.int32)),
                    pa.array(cell.gained.astype(np.int32)),
                    pa.array(cons),
                    pa.array(cons < options.strictness),
                    pa.array(cell.f1_clean, from_pandas=True),
                    pa.array(cell.f1_perturbed, from_pandas=True),
                ],
                schema=schema,
            )
            writer.write_table(table)
    tmp.replace(path)

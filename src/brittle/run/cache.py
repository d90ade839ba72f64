"""The prediction cache: an SQLite database (WAL) in the run directory.

Predictions are stored in the *model's* class space, keyed by
``(model fingerprint, image content hash, perturbation, severity, seed)``, so a
changed class map re-scores without re-running the model, and a resumed run
pays only for what is missing. Each batch is committed in one transaction:
a crash or Ctrl-C loses at most the batch in flight.

Scores of (model, condition) cells are cached too, under a key naming everything
they depend on, so a warm re-run reads them instead of bootstrapping again.

The run directory also records the images a run evaluated (ids, hashes, ground
truth) so every number can be traced back to stored per-image data without the
original dataset.

>>> import tempfile, numpy as np
>>> from brittle.types import Detections
>>> with tempfile.TemporaryDirectory() as d:
...     with PredictionCache(Path(d) / "cache.sqlite") as cache:
...         key = CacheKey("model-fp", "img-hash")
...         cache.put_many([(key, Detections([[1, 2, 3, 4]], [0.5], [7]), None)])
...         got = cache.get_many([key])[key]
...         print(got.detections.labels.tolist(), got.error)
[7] None
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from brittle.types import Detections, GroundTruth

__all__ = [
    "CacheEntry",
    "CacheKey",
    "PredictionCache",
    "RunImage",
    "decode_detections",
    "encode_detections",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS predictions (
    model TEXT NOT NULL,
    image TEXT NOT NULL,
    perturbation TEXT NOT NULL,
    severity INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    detections BLOB NOT NULL,
    error TEXT,
    PRIMARY KEY (model, image, perturbation, severity, seed)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS run_images (
    ordinal INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    hash TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    labeled INTEGER NOT NULL,
    boxes BLOB NOT NULL,
    labels BLOB NOT NULL,
    iscrowd BLOB NOT NULL,
    areas BLOB NOT NULL
);
"""
SCHEMA_VERSION = "2"


@dataclass(frozen=True, slots=True)
class CacheKey:
    """Identifies one prediction; ``perturbation`` is "" for the clean image."""

    model: str
    image: str
    perturbation: str = ""
    severity: int = 0
    seed: int = 0


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A stored prediction, or the error the model raised on that image."""

    detections: Detections
    error: str | None


@dataclass(frozen=True, slots=True)
class RunImage:
    """One image a run evaluated: where it came from and its ground truth."""

    id: str
    hash: str
    width: int
    height: int
    targets: GroundTruth | None


def _blob(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


#: Images per ``IN (...)`` query (SQLite allows 32,766 parameters; smaller is as fast).
_IN_CHUNK = 500

# One row per stored box: 4 float32 coordinates, a float32 score, an int64 label.
_ROW_BYTES = 4 * 4 + 4 + 8


def encode_detections(d: Detections) -> bytes:
    """Detections as one compressed blob (bit-exact for float32 boxes and scores).

    Evaluation keeps up to ``max_det`` low-confidence boxes per image, so raw arrays
    dominate the cache (about 8 KiB per prediction); zlib at level 1 halves that for
    about 0.1 ms, paid in the worker that made the prediction, not in the writer.

    >>> d = Detections([[1, 2, 3, 4]], [0.5], [7])
    >>> decode_detections(encode_detections(d)).labels.tolist()
    [7]
    """
    raw = b"".join(
        (
            _blob(d.boxes.astype(np.float32, copy=False)),
            _blob(d.scores.astype(np.float32, copy=False)),
            _blob(d.labels.astype(np.int64, copy=False)),
        )
    )
    return zlib.compress(raw, 1)


def decode_detections(blob: bytes) -> Detections:
    """The inverse of :func:`encode_detections`."""
    raw = zlib.decompress(blob)
    if len(raw) % _ROW_BYTES:
        raise ValueError(f"corrupt cached detections: {len(raw)} bytes")
    n = len(raw) // _ROW_BYTES
    boxes = np.frombuffer(raw, np.float32, n * 4).reshape(-1, 4)
    scores = np.frombuffer(raw, np.float32, n, offset=n * 16)
    labels = np.frombuffer(raw, np.int64, n, offset=n * 20)
    return Detections(boxes, scores, labels)


class PredictionCache:
    """Open (creating if needed) the cache at ``path``; use as a context manager.

    ``readonly=True`` opens an existing file for reading only (a worker process reading
    what the run's one writer, the main process, committed).
    """

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        if readonly:
            self._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=60.0)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=60.0)
        # WAL lets a reader (report, export) open the file while a run writes to it,
        # and makes each committed batch durable even under kill -9.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            with self._db:
                self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        elif row[0] != SCHEMA_VERSION:
            raise RuntimeError(
                f"{path}: cache schema {row[0]} is not the supported {SCHEMA_VERSION}; "
                "delete the file (it only holds cached predictions) and run again"
            )

    def __enter__(self) -> PredictionCache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def _rows(
        self, keys: Sequence[CacheKey], columns: str, where: str = ""
    ) -> Iterator[tuple[CacheKey, tuple[Any, ...]]]:
        """(key, the row's other ``columns``) for each stored row among ``keys``.

        One query per condition and chunk of images rather than one per key: runs read
        and check whole cells, and per-row queries cost more than the decoding.
        """
        by_condition: dict[tuple[str, str, int, int], dict[str, CacheKey]] = {}
        for key in keys:
            cell = (key.model, key.perturbation, key.severity, key.seed)
            by_condition.setdefault(cell, {})[key.image] = key
        for (model, pert, sev, seed), wanted in by_condition.items():
            images = list(wanted)
            for i in range(0, len(images), _IN_CHUNK):
                chunk = images[i : i + _IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT image, {columns} FROM predictions WHERE model=? AND "
                    f"perturbation=? AND severity=? AND seed=? {where} AND image IN ({marks})",
                    (model, pert, sev, seed, *chunk),
                )
                for image, *rest in rows:
                    yield wanted[image], tuple(rest)

    def get_many(self, keys: Sequence[CacheKey]) -> dict[CacheKey, CacheEntry]:
        """The stored entries among ``keys`` (missing keys are absent from the result)."""
        return {
            key: CacheEntry(decode_detections(blob), error)
            for key, (blob, error) in self._rows(keys, "detections, error")
        }

    def present(self, keys: Sequence[CacheKey]) -> set[CacheKey]:
        """The keys among ``keys`` with a stored prediction (without reading it).

        A stored *failure* does not count: the next run tries that image again (a hosted
        model that was down, a transient error), and keeps the answer if it gets one.
        """
        return {key for key, _ in self._rows(keys, "1", "AND error IS NULL")}

    def failures(self) -> dict[tuple[str, str, int, int], set[str]]:
        """Images with a stored failure, by (model, perturbation, severity, seed).

        Failures are rare and a retried one can turn into a prediction, so cell scores
        are keyed on them too (see brittle.run.scoring.score_key).
        """
        out: dict[tuple[str, str, int, int], set[str]] = {}
        for model, image, pert, sev, seed in self._db.execute(
            "SELECT model, image, perturbation, severity, seed FROM predictions "
            "WHERE error IS NOT NULL"
        ):
            out.setdefault((model, pert, sev, seed), set()).add(image)
        return out

    def get_score(self, key: str) -> bytes | None:
        """A cached cell score (see brittle.run.scoring), or None."""
        row = self._db.execute("SELECT value FROM scores WHERE key=?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def put_score(self, key: str, value: bytes) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO scores VALUES (?, ?)", (key, value))

    def put_many(self, items: Iterable[tuple[CacheKey, Detections | bytes, str | None]]) -> None:
        """Store predictions (or errors) in one transaction.

        A prediction may come already encoded by :func:`encode_detections`.
        """
        rows = [
            (
                k.model,
                k.image,
                k.perturbation,
                k.severity,
                k.seed,
                d if isinstance(d, bytes) else encode_detections(d),
                err,
            )
            for k, d, err in items
        ]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO predictions VALUES (?,?,?,?,?,?,?)", rows)

    def set_run_images(self, images: Sequence[RunImage]) -> None:
        """Replace the record of which images the run evaluated, in order."""
        rows = []
        for i, im in enumerate(images):
            t = im.targets if im.targets is not None else GroundTruth.empty()
            rows.append(
                (
                    i,
                    im.id,
                    im.hash,
                    im.width,
                    im.height,
                    int(im.targets is not None),
                    _blob(t.boxes),
                    _blob(t.labels),
                    _blob(t.iscrowd.astype(np.uint8)),
                    _blob(t.areas),
                )
            )
        with self._db:
            self._db.execute("DELETE FROM run_images")
            self._db.executemany("INSERT INTO run_images VALUES (?,?,?,?,?,?,?,?,?,?)", rows)

    def run_images(self) -> list[RunImage]:
        """The images of the last run, in evaluation order."""
        out = []
        for row in self._db.execute(
            "SELECT id, hash, width, height, labeled, boxes, labels, iscrowd, areas "
            "FROM run_images ORDER BY ordinal"
        ):
            targets = None
            if row[4]:
                targets = GroundTruth(
                    np.frombuffer(row[5], np.float64).reshape(-1, 4),
                    np.frombuffer(row[6], np.int64),
                    np.frombuffer(row[7], np.uint8).astype(bool),
                    np.frombuffer(row[8], np.float64),
                )
            out.append(RunImage(row[0], row[1], row[2], row[3], targets))
        return out

"""The SQLite prediction cache: round trips, errors, persistence across connections."""

from __future__ import annotations

import sqlite3
import zlib
from pathlib import Path

import numpy as np
import pytest

from brittle.run.cache import (
    CacheKey,
    PredictionCache,
    RunImage,
    decode_detections,
    encode_detections,
)
from brittle.types import Detections, GroundTruth


def _dets(n: int, seed: int) -> Detections:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 100, (n, 2))
    boxes = np.hstack([xy, xy + rng.uniform(1, 50, (n, 2))])
    return Detections(boxes, rng.uniform(0, 1, n), rng.integers(0, 80, n))


def test_round_trip_is_bit_exact_and_keys_are_distinct(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    d1, d2 = _dets(7, 1), _dets(0, 2)
    k1, k2 = CacheKey("m", "img"), CacheKey("m", "img", "gaussian_noise@1", 3, 0)
    with PredictionCache(path) as cache:
        cache.put_many([(k1, d1, None), (k2, d2, None)])
    with PredictionCache(path) as cache:  # a new connection sees committed data
        got = cache.get_many([k1, k2, CacheKey("other", "img")])
    assert set(got) == {k1, k2}
    np.testing.assert_array_equal(got[k1].detections.boxes, d1.boxes)
    np.testing.assert_array_equal(got[k1].detections.scores, d1.scores)
    np.testing.assert_array_equal(got[k1].detections.labels, d1.labels)
    assert len(got[k2].detections) == 0


def test_errors_are_stored(tmp_path: Path) -> None:
    with PredictionCache(tmp_path / "c.sqlite") as cache:
        key = CacheKey("m", "bad")
        cache.put_many([(key, Detections.empty(), "RuntimeError: boom")])
        assert cache.get_many([key])[key].error == "RuntimeError: boom"


def test_run_images_keep_order_and_ground_truth(tmp_path: Path) -> None:
    gt = GroundTruth([[1, 2, 3, 4], [0, 0, 5, 5]], [3, 1], [False, True], [4.0, 20.0])
    images = [RunImage("b.jpg", "h2", 10, 20, gt), RunImage("a.jpg", "h1", 5, 5, None)]
    with PredictionCache(tmp_path / "c.sqlite") as cache:
        cache.set_run_images(images)
        cache.set_run_images(images)  # replacing, not appending
        back = cache.run_images()
    assert [im.id for im in back] == ["b.jpg", "a.jpg"]
    assert back[1].targets is None
    t = back[0].targets
    assert t is not None
    np.testing.assert_array_equal(t.boxes, gt.boxes)
    assert t.iscrowd.tolist() == [False, True]
    assert t.areas.tolist() == [4.0, 20.0]


def test_wal_mode_and_schema_version_check(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    PredictionCache(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute("UPDATE meta SET value='999' WHERE key='schema_version'")
    db.commit()
    db.close()
    with pytest.raises(RuntimeError, match="cache schema 999 is not the supported"):
        PredictionCache(path)


def test_encoding_is_exact_compresses_and_rejects_corruption() -> None:
    d = _dets(300, 3)
    blob = encode_detections(d)
    back = decode_detections(blob)
    np.testing.assert_array_equal(back.boxes, d.boxes.astype(np.float32))
    np.testing.assert_array_equal(back.scores, d.scores.astype(np.float32))
    np.testing.assert_array_equal(back.labels, d.labels)
    # Random floats barely compress; low-entropy ones (a real model's many empty
    # low-score boxes) do, and the encoding never costs more than a few bytes.
    assert len(blob) <= 300 * 28 + 64
    quiet = Detections(np.zeros((300, 4)), np.full(300, 0.001), np.zeros(300, np.int64))
    assert len(encode_detections(quiet)) < 300 * 28 / 10
    assert len(decode_detections(encode_detections(Detections.empty()))) == 0
    with pytest.raises(ValueError, match="corrupt cached detections"):
        decode_detections(zlib.compress(b"12345"))

"""Slot layout and per-image column counts behind :class:`brittle.metrics.coco.WeightedAP`.

``WeightedAP.from_records`` lays the true positives of each (threshold, class) row out
as slots, in blocks of rows padded to one width (:func:`_layout`), and describes the
detections counted up to each slot by a few distinct columns (:func:`_distinct_columns`),
which small problems read through one matrix product (:func:`_column_counts`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

_Groups = tuple[tuple[int, int, int], ...]


def _layout(
    row_len: NDArray[np.int64],
) -> tuple[
    NDArray[np.int64],
    _Groups,
    NDArray[np.int64],
    NDArray[np.int64],
    NDArray[np.int64],
    NDArray[np.int64],
]:
    """Slots for ragged rows: rows grouped by length (within 2x), padded to their group's
    widest, so a running maximum runs on a few rectangular blocks with little waste.

    Slots 0 and 1 are sentinels; each row is framed by a lead and a trail slot. Returns
    the non-empty rows in slot order, the groups (first slot, rows, width), per slot the
    entry it holds (entries are the rows' items, row after row) and its kind (0 entry,
    1 pad holding its row's last entry, 2 sentinel, lead or trail), and per row its lead
    and trail slots.
    """
    rows = np.flatnonzero(row_len)
    if not rows.size:
        z = np.zeros(0, np.int64)
        return z, (), np.zeros(2, np.int64), np.full(2, 2, np.int64), z, z
    level = np.ceil(np.log2(row_len[rows])).astype(np.int64)
    order = np.lexsort((rows, level))
    rows, level = rows[order], level[order]
    groups: list[tuple[int, int, int]] = []
    widths = np.zeros(len(rows), np.int64)
    lo = 2
    for g in np.unique(level):
        members = np.flatnonzero(level == g)
        width = int(row_len[rows[members]].max()) + 2
        widths[members] = width
        groups.append((lo, len(members), width))
        lo += len(members) * width
    first_entry = np.cumsum(row_len) - row_len
    owner = np.repeat(rows, widths)
    lead = np.cumsum(widths) - widths + 2
    j = np.arange(2, lo, dtype=np.int64) - np.repeat(lead, widths) - 1  # entry in its row
    n_own = row_len[owner]
    kind = np.concatenate(
        [
            [2, 2],
            np.where(
                (j < 0) | (j == np.repeat(widths, widths) - 2), 2, (j >= n_own).astype(np.int64)
            ),
        ]
    )
    src = np.concatenate([[0, 0], first_entry[owner] + np.clip(j, 0, n_own - 1)])
    return rows, tuple(groups), src, kind, lead, lead + widths - 1


def _distinct_columns(
    bounds: NDArray[np.int64],
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The distinct columns of ``bounds`` (4, S) and each slot's index among them."""
    order = np.lexsort(bounds[::-1])
    sorted_ = bounds[:, order]
    new = np.ones(len(order), np.bool_)
    new[1:] = (sorted_[:, 1:] != sorted_[:, :-1]).any(axis=0)
    col = np.empty(len(order), np.int64)
    col[order] = np.cumsum(new) - 1
    return sorted_[:, new], col


def _column_counts(
    cols: NDArray[np.int64], det_image: NDArray[np.int64], ig_image: NDArray[np.int64], n: int
) -> NDArray[np.float64]:
    """(n, columns): per image, its detections counted by each column (those in
    ``[lo, hi)`` less its ignored ones in ``[ig_lo, ig_hi)``)."""

    def before(image: NDArray[np.int64], at: NDArray[np.int64]) -> NDArray[np.int64]:
        # (len(at), n): detections of each image before each position, from one
        # histogram by (segment between listed positions, image).
        points, where = np.unique(at, return_inverse=True)
        seg = np.searchsorted(points, np.arange(len(image)), side="right")
        hist = np.bincount(seg * n + image, minlength=(len(points) + 1) * n)
        return np.cumsum(hist.reshape(-1, n), axis=0)[where.reshape(-1)]

    hi, lo, ig_hi, ig_lo = cols
    m = len(hi)
    c = before(det_image, np.concatenate([hi, lo]))
    counts = c[:m] - c[m:]
    if len(ig_image):
        g = before(ig_image, np.concatenate([ig_hi, ig_lo]))
        counts -= g[:m] - g[m:]
    return np.ascontiguousarray(counts.T, np.float64)

"""Spawned workers start with one BLAS/OpenMP thread pool per core they own, not per core
of the machine (scoring's matrix products otherwise oversubscribe the other workers' cores)."""

from __future__ import annotations

import multiprocessing as mp
import os

import pytest

from brittle.run.worker import _THREAD_VARIABLES, _thread_limits


def _report(queue: mp.Queue[dict[str, str | None]]) -> None:
    queue.put({k: os.environ.get(k) for k in _THREAD_VARIABLES})


def test_a_spawned_process_inherits_the_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in _THREAD_VARIABLES:
        monkeypatch.delenv(k, raising=False)
    ctx = mp.get_context("spawn")
    queue: mp.Queue[dict[str, str | None]] = ctx.Queue()
    with _thread_limits(3):
        p = ctx.Process(target=_report, args=(queue,))
        p.start()
    seen = queue.get(timeout=60)
    p.join(timeout=60)
    assert seen == dict.fromkeys(_THREAD_VARIABLES, "3")
    # and the calling process is left as it was
    assert all(k not in os.environ for k in _THREAD_VARIABLES)


def test_what_the_user_set_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in _THREAD_VARIABLES:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "4")
    with _thread_limits(1):
        assert os.environ["OPENBLAS_NUM_THREADS"] == "4"
        assert os.environ["OMP_NUM_THREADS"] == "1"
    assert os.environ["OPENBLAS_NUM_THREADS"] == "4"
    assert "OMP_NUM_THREADS" not in os.environ

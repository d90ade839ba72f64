"""The work of a run, split into tasks that any process can do: predict and score.

A run is two phases over the same pool of workers:

1. **predict**: a :class:`PredictTask` is one batch of images (their file bytes) and the
   (condition, model) pairs the cache lacks for it. The worker decodes each image once,
   perturbs it once per condition, runs the models and sends back one
   :class:`Predicted` message per (condition, model) as soon as it has it, so the main
   process (the only writer of the cache) commits it at once and a kill loses at most
   what was in flight.
2. **score**: a :class:`ScoreTask` is one (model, condition) cell; the worker reads the
   predictions from the cache and returns a :class:`~brittle.run.scoring.CellScore`.

Batches are cut by the main process in dataset order and never re-cut, so every
prediction is made in the same company of images whatever the worker count or the
point of interruption: results do not depend on ``--workers`` (a model with a dynamic
batch size could otherwise round differently in another batch).

``workers=1`` runs tasks in the calling process (no pickling, any predictor object);
more start ``spawn`` processes that rebuild the models from their
:class:`ModelRecipe`, one inference thread each by default.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import signal
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from brittle.data.base import Dataset, ImageRecord
from brittle.errors import (
    BrittleError,
    ConfigError,
    DatasetError,
    ModelError,
    ModelUnavailableError,
)
from brittle.models.base import Predictor
from brittle.models.classmap import LabelMap
from brittle.perturbations import rng_for, tuned
from brittle.perturbations.base import Perturbation
from brittle.run.cache import encode_detections
from brittle.run.scoring import CellScore, ScoreOptions, score_cell
from brittle.types import Detections

__all__ = [
    "Condition",
    "ModelRecipe",
    "PredictTask",
    "Predicted",
    "ScoreTask",
    "Scored",
    "TaskDone",
    "Unreadable",
    "WorkerPool",
    "WorkerSetup",
    "usable_cores",
]


@dataclass(frozen=True, slots=True)
class ModelRecipe:
    """How to build a predictor again in another process: ``load_predictor(spec, ...)``."""

    spec: str
    options: dict[str, Any] = field(default_factory=dict)
    kind: str | None = None

    def load(self, threads: int | None) -> Predictor:
        from brittle.models import load_predictor

        return load_predictor(self.spec, kind=self.kind, threads=threads, **self.options)[0]


@dataclass(frozen=True, slots=True)
class Condition:
    """How an image is shown to the models: clean (``name == ""``) or one suite cell."""

    name: str
    severity: int

    @property
    def clean(self) -> bool:
        return not self.name


@dataclass(frozen=True, slots=True)
class WorkerSetup:
    """Everything a worker needs, sent once when it starts."""

    dataset: Dataset
    models: tuple[ModelRecipe | None, ...]
    names: tuple[str, ...]
    label_maps: tuple[LabelMap, ...]
    fingerprints: tuple[str, ...]
    conditions: tuple[Condition, ...]
    overrides: dict[str, dict[str, Any]]
    seed: int
    fail_fast: bool
    cache_path: Path
    scoring: ScoreOptions
    threads: int | None = None


@dataclass(frozen=True, slots=True)
class PredictTask:
    index: int
    records: tuple[ImageRecord, ...]
    data: tuple[bytes, ...]
    #: (condition index, model index, positions in ``records`` the cache lacks)
    work: tuple[tuple[int, int, tuple[int, ...]], ...]


@dataclass(frozen=True, slots=True)
class ScoreTask:
    index: int
    model: int
    condition: int


@dataclass(frozen=True, slots=True)
class Predicted:
    """Raw (model class space) predictions of one model under one condition.

    Detections travel encoded for the cache (brittle.run.cache.encode_detections), so
    compression happens in parallel in the workers and the pickles are smaller.
    """

    task: int
    condition: int
    model: int
    images: tuple[int, ...]
    detections: tuple[bytes, ...]
    errors: tuple[str | None, ...]
    seconds: float


@dataclass(frozen=True, slots=True)
class Unreadable:
    task: int
    image: int
    message: str


@dataclass(frozen=True, slots=True)
class Scored:
    task: int
    model: int
    condition: int
    score: CellScore


@dataclass(frozen=True, slots=True)
class TaskDone:
    task: int


@dataclass(frozen=True, slots=True)
class _Failed:
    message: str
    model_error: bool


Message = Predicted | Unreadable | Scored | TaskDone | _Failed
Task = PredictTask | ScoreTask


def usable_cores() -> int:
    """CPU cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class _Worker:
    """The per-process state: loaded models, perturbations, and what scoring reads."""

    def __init__(self, setup: WorkerSetup, predictors: Sequence[Predictor] | None) -> None:
        self.setup = setup
        if predictors is None:
            missing = [i for i, r in enumerate(setup.models) if r is None]
            if missing:
                raise ConfigError(
                    "a model given as a Python object cannot be sent to worker processes; "
                    "run with workers=1 or load it from a spec"
                )
            predictors = [r.load(setup.threads) for r in setup.models if r is not None]
        self.predictors = list(predictors)
        self.perts: dict[str, Perturbation] = {
            c.name: tuned(c.name, setup.overrides.get(c.name))
            for c in setup.conditions
            if not c.clean
        }
        self._scoring: Any = None

    def run(self, task: Task) -> Iterator[Message]:
        if isinstance(task, PredictTask):
            yield from self._predict(task)
        else:
            yield Scored(task.index, task.model, task.condition, self._score(task))
        yield TaskDone(task.index)

    # --- predict --------------------------------------------------------------------

    def _predict(self, task: PredictTask) -> Iterator[Message]:
        images: dict[int, NDArray[np.uint8]] = {}
        needed = sorted({i for _, _, idx in task.work for i in idx})
        for i in needed:
            try:
                images[i] = self.setup.dataset.load(task.records[i], task.data[i]).image
            except (OSError, DatasetError) as exc:
                yield Unreadable(task.index, i, str(exc))
        by_condition: dict[int, list[tuple[int, tuple[int, ...]]]] = {}
        for c, m, idx in task.work:
            by_condition.setdefault(c, []).append((m, tuple(i for i in idx if i in images)))
        for c, jobs in by_condition.items():
            cond = self.setup.conditions[c]
            made: dict[int, NDArray[np.uint8]] = {}
            for m, idx in jobs:
                if not idx:
                    continue
                batch = [self._image(cond, task.records[i], images[i], made, i) for i in idx]
                t0 = time.perf_counter()
                dets, errors = self._call(m, batch, [task.records[i].id for i in idx])
                seconds = time.perf_counter() - t0
                blobs = tuple(encode_detections(d) for d in dets)
                yield Predicted(task.index, c, m, idx, blobs, tuple(errors), seconds)

    def _image(
        self,
        cond: Condition,
        record: ImageRecord,
        image: NDArray[np.uint8],
        made: dict[int, NDArray[np.uint8]],
        i: int,
    ) -> NDArray[np.uint8]:
        """The image under ``cond``, made once per task however many models need it."""
        if cond.clean:
            return image
        if i not in made:
            pert = self.perts[cond.name]
            # Perturbation.__call__ draws the parameters and then the pixels from one
            # generator, so brittle.perturb() reproduces any cell's image.
            rng = rng_for(self.setup.seed, pert.name, cond.severity, record.id)
            made[i] = pert(image, cond.severity, rng)[0]
        return made[i]

    def _call(
        self, m: int, batch: list[NDArray[np.uint8]], ids: list[str]
    ) -> tuple[list[Detections], list[str | None]]:
        predictor = self.predictors[m]
        try:
            outs = predictor.predict(batch)
            if len(outs) != len(batch):
                raise ModelError(f"returned {len(outs)} results for {len(batch)} images")
            return list(outs), [None] * len(batch)
        except ModelUnavailableError:
            raise  # the model cannot answer at all: stop the run, do not record N failures
        except Exception as exc:
            if self.setup.fail_fast:
                where = ids[0] if len(ids) == 1 else f"a batch from {ids[0]}"
                raise ModelError(
                    f"model {self.setup.names[m]!r} failed on {where}: "
                    f"{type(exc).__name__}: {exc} (without --fail-fast the error is "
                    "recorded and the run goes on)"
                ) from exc
        # Find the image(s) to blame: one at a time, recording each failure.
        dets: list[Detections] = []
        errors: list[str | None] = []
        for img in batch:
            try:
                out = predictor.predict([img])
                if len(out) != 1:
                    raise ModelError(f"returned {len(out)} results for 1 image")
                dets.append(out[0])
                errors.append(None)
            except ModelUnavailableError:
                raise
            except Exception as exc:
                dets.append(Detections.empty())
                errors.append(f"{type(exc).__name__}: {exc}")
        return dets, errors

    # --- score ----------------------------------------------------------------------

    def _score(self, task: ScoreTask) -> CellScore:
        from brittle.run.scoring import ScoringInputs

        if self._scoring is None:
            self._scoring = ScoringInputs.from_cache(self.setup.cache_path, self.setup.dataset)
        inputs: ScoringInputs = self._scoring
        cond = self.setup.conditions[task.condition]
        return score_cell(
            inputs,
            fingerprint=self.setup.fingerprints[task.model],
            label_map=self.setup.label_maps[task.model],
            perturbation=None if cond.clean else self.perts[cond.name],
            severity=cond.severity,
            seed=self.setup.seed,
            options=self.setup.scoring,
        )


def _process_main(setup: WorkerSetup, tasks: Any, results: Any) -> None:
    """A worker process: take tasks until None, send messages; never raise."""
    # Ctrl-C reaches the whole process group; the main process alone decides what
    # happens (it stops the workers), so a worker never dies half-way through a send.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import cv2

    # OpenCV's own pool would put 2+ threads per worker on cores the other workers use
    # (measured: 8-13% slower than one thread per worker).
    cv2.setNumThreads(setup.threads or 1)
    try:
        worker = _Worker(setup, None)
    except BaseException as exc:
        results.put(_Failed(_describe(exc), isinstance(exc, BrittleError)))
        return
    parent = mp.parent_process()
    while True:
        try:
            task = tasks.get(timeout=1.0)
        except queue.Empty:
            # The parent was killed (kill -9 leaves no one to send the None): stop.
            if parent is not None and not parent.is_alive():
                return
            continue
        except (EOFError, OSError):
            return
        if task is None:
            return
        try:
            for msg in worker.run(task):
                results.put(msg)
        except BaseException as exc:
            results.put(_Failed(_describe(exc), isinstance(exc, BrittleError)))
            return


#: Thread-pool sizes that numpy's BLAS (OpenBLAS, MKL) and OpenMP read once, when loaded.
_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")


@contextlib.contextmanager
def _thread_limits(threads: int) -> Iterator[None]:
    """Spawned workers start with ``threads`` BLAS/OpenMP threads each (unless the user
    set these variables): a worker's matrix products (scoring) with the machine's core
    count each oversubscribe the cores the other workers use (measured: the demo's scoring
    phase took 45 s instead of 15 s with 2 workers x 2 OpenBLAS threads on 2 cores)."""
    saved = {k: os.environ.get(k) for k in _THREAD_VARIABLES}
    for k, v in saved.items():
        if v is None:
            os.environ[k] = str(threads)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BrittleError):
        return str(exc)
    return "".join(traceback.format_exception(exc)).rstrip()


class WorkerPool:
    """Runs tasks in this process (``workers == 1``) or in ``workers`` spawned ones.

    ``submit`` queues a task; ``messages`` yields what the workers send until every
    submitted task is done, raising :class:`ModelError` (fail-fast) or
    :class:`RuntimeError` (a worker crashed or died) when one fails.
    """

    def __init__(
        self,
        setup: WorkerSetup,
        workers: int,
        predictors: Sequence[Predictor] | None = None,
    ) -> None:
        if workers < 1:
            raise ConfigError(f"workers must be at least 1, got {workers}")
        self.setup = setup
        self.workers = workers
        self._predictors = predictors
        self._local: _Worker | None = None
        self._pending: list[Task] = []
        self._procs: list[BaseProcess] = []
        self._tasks: Any = None
        self._results: Any = None
        self._outstanding = 0

    @property
    def capacity(self) -> int:
        """Tasks worth keeping queued: enough to keep every worker busy, no more, so
        memory stays flat however large the dataset."""
        return 2 * self.workers

    def _start(self) -> None:
        if self.workers == 1:
            if self._local is None:
                self._local = _Worker(self.setup, self._predictors)
            return
        if self._procs:
            return
        ctx = mp.get_context("spawn")
        self._tasks = ctx.Queue()
        self._results = ctx.Queue()
        with _thread_limits(self.setup.threads or 1):
            for _ in range(self.workers):
                p = ctx.Process(
                    target=_process_main,
                    args=(self.setup, self._tasks, self._results),
                    daemon=True,
                )
                p.start()
                self._procs.append(p)

    def submit(self, task: Task) -> None:
        self._start()
        self._outstanding += 1
        if self._local is not None:
            self._pending.append(task)
        else:
            self._tasks.put(task)

    @property
    def outstanding(self) -> int:
        return self._outstanding

    def messages(self, until: int = 0) -> Iterator[Message]:
        """Messages until at most ``until`` submitted tasks are unfinished."""
        while self._outstanding > until:
            if self._local is not None:
                task = self._pending.pop(0)
                for msg in self._local.run(task):
                    if isinstance(msg, TaskDone):
                        self._outstanding -= 1
                    yield msg
                continue
            msg = self._next()
            if isinstance(msg, _Failed):
                self.close()
                if msg.model_error:
                    raise ModelError(msg.message)
                raise RuntimeError(f"a worker process failed:\n{msg.message}")
            if isinstance(msg, TaskDone):
                self._outstanding -= 1
            yield msg

    def _next(self) -> Message:
        while True:
            try:
                msg: Message = self._results.get(timeout=0.5)
                return msg
            except queue.Empty:
                dead = [p for p in self._procs if not p.is_alive()]
                if dead:
                    codes = ", ".join(str(p.exitcode) for p in dead)
                    self.close()
                    raise RuntimeError(
                        f"a worker process died (exit code {codes}); finished work is "
                        "cached: run the same command again to resume"
                    ) from None

    def close(self) -> None:
        """Stop the workers (idempotent)."""
        if self._procs:
            for _ in self._procs:
                with contextlib.suppress(OSError, ValueError):
                    self._tasks.put(None)
            deadline = time.monotonic() + 2.0
            for p in self._procs:
                p.join(max(0.0, deadline - time.monotonic()))
                if p.is_alive():
                    p.terminate()
                    p.join(1.0)
            for q in (self._tasks, self._results):
                q.close()
                q.cancel_join_thread()
            self._procs = []
        self._local = None
        self._pending.clear()
        self._outstanding = 0

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Hosted models over HTTP: ``--model NAME=path/to/model.http.yaml``.

A ``*.http.yaml`` file describes an inference endpoint: its ``url``, the response
``format`` (Roboflow's hosted detection API built in, or a ``generic`` JSON mapping),
the class names, how to send an image, where the API key comes from, and how hard to
push the server. :class:`HttpPredictor` sends one request per image, up to
``concurrency`` at once and at most ``rate_limit`` per second, retries what can
succeed on a second try (429, 5xx, timeouts, dropped connections, a body that is not
JSON) with exponential backoff and full jitter, honouring ``Retry-After``, and raises
for an image that keeps failing (brittle records the error for that image and goes on).

The API key is read from an environment variable and never leaves the request: it is
not in the fingerprint (so cached predictions survive a new key), the repr, pickles,
or error messages, and httpx's own log lines are redacted. A config file or URL that
contains a key is refused.

The config file's model and the parsing of responses live in
:mod:`brittle.models.http_config` (re-exported here).

>>> limiter = RateLimiter(rate=2.0, clock=lambda: 0.0)  # a frozen clock: no time passes
>>> [limiter.reserve() for _ in range(3)]  # seconds each caller waits: 1/rate apart
[0.0, 0.5, 1.0]
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import json
import logging
import math
import os
import random
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import numpy as np
from numpy.typing import NDArray

from brittle.errors import ConfigError, ModelError, ModelUnavailableError
from brittle.models.http_config import (
    PARSER_VERSION,
    ROBOFLOW,
    SECRET_NAMES,
    HttpConfig,
    MalformedResponseError,
    ParamValue,
    ResponseSpec,
    is_url,
    load_http_config,
    parse_detections,
    parse_retry_after,
    redact,
    to_xyxy,
    url_config,
)
from brittle.models.names import read_names
from brittle.types import Detections

if TYPE_CHECKING:
    import httpx

__all__ = [
    "ROBOFLOW",
    "HttpConfig",
    "HttpPredictor",
    "MalformedResponseError",
    "RateLimiter",
    "ResponseSpec",
    "load_http_config",
    "load_http_predictor",
    "parse_detections",
    "parse_retry_after",
    "redact",
    "to_xyxy",
]


#: Statuses worth another try: rate limited, request timeout, and every 5xx.
RETRY_STATUSES = frozenset({408, 425, 429})


class _Secret:
    """A string that does not show itself: repr and str are ``***``; pickling refused."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("an API key is not pickled; rebuild the predictor from its config")


class _RedactingFilter(logging.Filter):
    """Rewrites httpx/httpcore log records (which show request URLs) without the secrets."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # pragma: no cover - a broken record: leave it to logging
            return True
        clean = redact(message, sorted(self.secrets))
        if clean != message:
            record.msg, record.args = clean, None
        return True


_LOG_FILTER = _RedactingFilter()
#: Where httpx and httpcore log (a filter on a parent logger does not see its children's
#: records, so each is named).
_HTTP_LOGGERS = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)
_LOG_FILTER_LOCK = threading.Lock()


def _guard_logs(secret: str) -> None:
    with _LOG_FILTER_LOCK:
        _LOG_FILTER.secrets.add(secret)
        for name in _HTTP_LOGGERS:
            logger = logging.getLogger(name)
            if _LOG_FILTER not in logger.filters:
                logger.addFilter(_LOG_FILTER)


# --- the config file ------------------------------------------------------------------


class RateLimiter:
    """A token bucket shared by a predictor's threads: at most ``rate`` requests per
    second on average, bursts of at most ``burst``; plus a pause every thread respects
    (after a 429 with Retry-After). ``rate=None``: no limit, pauses only.

    ``acquire`` reserves the next free slot under a lock and sleeps outside it, so
    concurrent callers queue up at ``1/rate`` spacing. ``clock`` and ``sleep`` are
    injectable for tests.
    """

    def __init__(
        self,
        rate: float | None,
        burst: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self.burst = max(1.0, burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._last = clock()
        self._not_before = -math.inf

    def reserve(self) -> float:
        """Take a token; the seconds to wait before using it."""
        with self._lock:
            now = self._clock()
            wait = 0.0
            if self.rate is not None:
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
                self._last = now
                self._tokens -= 1.0
                if self._tokens < 0:
                    wait = -self._tokens / self.rate
            return max(wait, self._not_before - now)

    def acquire(self) -> float:
        """Wait for a token (and any pause); returns the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return max(0.0, wait)

    def pause(self, seconds: float) -> None:
        """No request from any thread for ``seconds`` from now."""
        with self._lock:
            self._not_before = max(self._not_before, self._clock() + seconds)


# --- the predictor --------------------------------------------------------------------


def _encode(image: NDArray[np.uint8], fmt: str, quality: int) -> bytes:
    import cv2

    bgr = np.ascontiguousarray(image[:, :, ::-1])
    if fmt == "png":
        ok, buf = cv2.imencode(".png", bgr)
    else:
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ModelError(f"could not encode a {image.shape} image as {fmt}")
    return bytes(buf.tobytes())


def _image_key(image: NDArray[np.uint8]) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(image.shape).encode())
    h.update(np.ascontiguousarray(image).data)
    return h.digest()


class _GaveUpError(ModelError):
    """One image failed after every retry on transient errors (5xx, 429, timeouts, ...)."""


class _RetryableError(Exception):
    """A failed attempt worth repeating; ``kind`` counts it in ``HttpPredictor.stats``."""

    def __init__(
        self, problem: str, kind: str, retry_after: float | None = None, status: int = 0
    ) -> None:
        super().__init__(problem)
        self.problem = problem
        self.kind = kind
        self.retry_after = retry_after
        self.status = status


class HttpPredictor:
    """A :class:`~brittle.models.base.Predictor` for a model served over HTTP.

    Build it with :func:`load_http_predictor` (or :meth:`from_file`). ``transport``,
    ``clock``, ``sleep`` and ``rng`` are for tests. ``stats`` counts requests, retries
    (by cause) and images given up on. Safe to call from several threads.
    """

    def __init__(
        self,
        config: HttpConfig,
        *,
        source: str = "<http model>",
        base_dir: Path | None = None,
        conf: float = 0.001,
        max_det: int = 300,
        environ: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if max_det < 1:
            raise ConfigError(f"max_det must be at least 1, got {max_det}")
        self.config = config
        self.source = source
        self.conf = float(conf)
        self.max_det = int(max_det)
        self._mapping = config.mapping
        names = config.class_names
        if isinstance(names, str):
            path = Path(names)
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            self._class_names = read_names(path)
        else:
            if not names or not all(n.strip() for n in names):
                raise ConfigError(f"{source}: class_names must be a non-empty list of names")
            self._class_names = tuple(n.strip() for n in names)
        dupes = sorted({n for n in self._class_names if self._class_names.count(n) > 1})
        if dupes:
            raise ConfigError(f"{source}: class_names lists {dupes[0]!r} twice")
        self._index = {n: i for i, n in enumerate(self._class_names)}

        env = os.environ if environ is None else environ
        self._key: _Secret | None = None
        if config.api_key_env:
            value = env.get(config.api_key_env, "")
            if not value.strip():
                raise ConfigError(
                    f"{source}: the API key is read from the environment variable "
                    f"{config.api_key_env}, which is not set; export {config.api_key_env}=<your "
                    "key> (brittle never stores it), or set api_key_env: null for an endpoint "
                    "without a key"
                )
            self._key = _Secret(value.strip())
            _guard_logs(self._key.reveal())
        self._fingerprint = "http:" + self._digest()
        self._limiter = RateLimiter(config.rate_limit, clock=clock, sleep=sleep)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._transport = transport
        self._client: httpx.Client | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        #: What a failed call learnt, by image, for the image-by-image retry brittle makes
        #: next (see predict): bounded, and each entry is used once.
        self._carry: OrderedDict[bytes, Detections | ModelError] = OrderedDict()
        #: An answer that no retry and no other image can change (bad key, wrong URL), or
        #: the verdict that the endpoint is down (stop_after images in a row gave up).
        self._fatal: str | None = None
        self._gave_up_in_row = 0
        self.stats: dict[str, int] = {"requests": 0, "retries": 0, "failed_images": 0}

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> HttpPredictor:
        config = load_http_config(path)
        return cls(config, source=str(path), base_dir=Path(path).parent, **kwargs)

    # --- Predictor -------------------------------------------------------------------

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._class_names

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def _digest(self) -> str:
        c = self.config
        parts = urlsplit(c.url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        query = [(k, v) for k, v in query if k.lower() not in SECRET_NAMES]
        if c.api_key_param:
            query = [(k, v) for k, v in query if k != c.api_key_param]
        url = urlunsplit(parts._replace(query="&".join(f"{k}={v}" for k, v in sorted(query))))
        decisive = {
            "version": PARSER_VERSION,
            "url": url,
            "format": c.format,
            "mapping": self._mapping.model_dump(by_alias=True),
            "class_names": list(self._class_names),
            "params": sorted((k, repr(v)) for k, v in c.request.params.items()),
            "image_format": c.request.image_format,
            "jpeg_quality": c.request.jpeg_quality if c.request.image_format == "jpeg" else None,
            "conf": self.conf,
            "max_det": self.max_det,
        }
        blob = json.dumps(decisive, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:32]

    def predict(self, images: Sequence[NDArray[np.uint8]]) -> list[Detections]:
        """One request per image, up to ``concurrency`` at a time, results in order.

        Raises ModelError when an image still fails after every retry. What the failed
        call learnt is kept for the next call on each of its images (brittle's
        image-by-image retry): answers are not paid for twice, and a failure that took
        every retry is reported again at once rather than retried as long again.
        """
        keys = [_image_key(im) for im in images]
        results: list[Detections | ModelError | None] = []
        todo: list[int] = []
        with self._lock:
            for i, k in enumerate(keys):
                got = self._carry.pop(k, None)
                results.append(got)
                if got is None:
                    todo.append(i)
        if len(todo) == 1:
            results[todo[0]] = self._guarded(images[todo[0]])
        elif todo:
            pool = self._executor()
            futures = {i: pool.submit(self._guarded, images[i]) for i in todo}
            for i, fut in futures.items():
                results[i] = fut.result()
        failed = [i for i, r in enumerate(results) if isinstance(r, ModelError)]
        if not failed:
            return [r for r in results if isinstance(r, Detections)]
        for r in results:
            if isinstance(r, ModelUnavailableError):
                raise r  # the run stops: nothing to carry over
        # brittle answers a failed call by calling again image by image: keep what this
        # call learnt (answers and failures, not what it took from the carry) for that.
        with self._lock:
            for i in todo:
                result = results[i]
                if result is not None:
                    self._carry[keys[i]] = result
            while len(self._carry) > 1024:
                self._carry.popitem(last=False)
        first = results[failed[0]]
        assert isinstance(first, ModelError)
        if len(images) == 1:
            raise first
        raise ModelError(f"{len(failed)} of {len(images)} images failed; first: {first}")

    # --- one image -------------------------------------------------------------------

    def _guarded(self, image: NDArray[np.uint8]) -> Detections | ModelError:
        try:
            dets = self._predict_one(image)
        except ModelUnavailableError as exc:
            return ModelUnavailableError(self._redact(str(exc)))
        except _GaveUpError as exc:
            with self._lock:
                self.stats["failed_images"] += 1
                self._gave_up_in_row += 1
                stop = self.config.stop_after and self._gave_up_in_row >= self.config.stop_after
                if stop and self._fatal is None:
                    self._fatal = (
                        f"{self.source}: {self._shown_url()} looks down: "
                        f"{self._gave_up_in_row} images in a row failed after "
                        f"{self.config.retries + 1} attempts each (last: {exc}); the "
                        "predictions made so far are cached: run the same command again "
                        "once the endpoint answers (stop_after: 0 never stops)"
                    )
            if stop:
                return ModelUnavailableError(self._redact(self._fatal or str(exc)))
            return ModelError(self._redact(str(exc)))
        except ModelError as exc:
            with self._lock:
                self.stats["failed_images"] += 1
            return ModelError(self._redact(str(exc)))
        except Exception as exc:  # anything unexpected still must not leak the key
            with self._lock:
                self.stats["failed_images"] += 1
            return ModelError(self._redact(f"{type(exc).__name__}: {exc}"))
        with self._lock:
            self._gave_up_in_row = 0
        return dets

    def _predict_one(self, image: NDArray[np.uint8]) -> Detections:
        import httpx

        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ModelError(
                f"expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}"
            )
        height, width = int(image.shape[0]), int(image.shape[1])
        req = self.config.request
        data = _encode(image, req.image_format, req.jpeg_quality)
        params: dict[str, ParamValue] = dict(req.params)
        headers = {"Accept": "application/json"}
        if self._key is not None and self.config.api_key_param:
            params[self.config.api_key_param] = self._key.reveal()
        if self._key is not None and self.config.api_key_header:
            headers[self.config.api_key_header] = self.config.api_key_prefix + self._key.reveal()
        mime = "image/png" if req.image_format == "png" else "image/jpeg"
        body: dict[str, Any]
        if req.mode == "base64":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = {"content": base64.b64encode(data)}
        else:
            ext = "png" if req.image_format == "png" else "jpg"
            body = {"files": {req.file_field: (f"image.{ext}", data, mime)}}

        attempts = self.config.retries + 1
        problems: list[str] = []
        client = self._http()
        if self._fatal is not None:
            raise ModelUnavailableError(self._fatal)
        for attempt in range(attempts):
            self._limiter.acquire()
            with self._lock:
                self.stats["requests"] += 1
            try:
                try:
                    resp = client.post(self.config.url, params=params, headers=headers, **body)
                except httpx.TimeoutException as exc:
                    raise _RetryableError(
                        f"no answer within {self.config.timeout:g} s ({type(exc).__name__})",
                        "timeout",
                    ) from None
                except httpx.TransportError as exc:
                    raise _RetryableError(f"{type(exc).__name__}: {exc}", "connection") from None
                status = resp.status_code
                if 200 <= status < 300:
                    try:
                        dets = parse_detections(
                            resp.content, self._mapping, self._class_names, width, height,
                            index=self._index,
                        )  # fmt: skip
                    except MalformedResponseError as exc:
                        raise _RetryableError(f"HTTP {status} but {exc}", "not JSON") from None
                    except ModelError as exc:
                        raise ModelError(f"{self.source}: {exc}") from None
                    return self._filter(dets)
                if status in RETRY_STATUSES or 500 <= status < 600:
                    wait = parse_retry_after(resp.headers.get("Retry-After"))
                    what = f"HTTP {status} {resp.reason_phrase}".rstrip()
                    raise _RetryableError(what, f"HTTP {status}", wait, status)
                refused = self._refused(resp)
                if status in (401, 403, 404):
                    self._fatal = refused  # every other image would get the same answer
                    raise ModelUnavailableError(refused)
                raise ModelError(refused)
            except _RetryableError as exc:
                problem = exc
            problems.append(self._redact(problem.problem))
            if attempt + 1 == attempts:
                break
            with self._lock:
                self.stats["retries"] += 1
                label = f"retry: {problem.kind}"
                self.stats[label] = self.stats.get(label, 0) + 1
            if problem.retry_after is not None:
                wait = min(problem.retry_after, self.config.retry_after_max)
                if problem.status == 429:
                    self._limiter.pause(wait)  # the whole client backs off, not one thread
            else:
                ceiling = min(self.config.backoff_max, self.config.backoff * 2**attempt)
                wait = self._rng.uniform(0, ceiling)
            if wait > 0:
                self._sleep(wait)
        last = problems[-1]
        others = sorted(set(problems[:-1]) - {last})
        also = f" (earlier: {'; '.join(others)[:200]})" if others else ""
        raise _GaveUpError(
            f"{self.source}: {self._shown_url()}: gave up after {attempts} attempts: {last}{also}"
        )

    def _refused(self, resp: httpx.Response) -> str:
        status = resp.status_code
        text = " ".join(resp.text.split())[:200] if resp.content else ""
        hint = ""
        if status in (401, 403) and self.config.api_key_env:
            hint = f"; check the key in ${self.config.api_key_env}"
        elif status in (401, 403):
            hint = "; the endpoint wants a key: set api_key_env"
        elif status == 404:
            hint = "; check the url (model id and version)"
        body = f": {text}" if text else ""
        return f"{self.source}: {self._shown_url()}: HTTP {status} {resp.reason_phrase}{body}{hint}"

    def _filter(self, dets: Detections) -> Detections:
        """brittle's --conf and --max-det, as for every model (no-ops for a server that
        already applied tighter ones)."""
        keep = dets.scores > self.conf
        if not keep.all():
            dets = dets.select(keep)
        if len(dets) > self.max_det:
            order = np.argsort(-dets.scores, kind="stable")[: self.max_det]
            dets = dets.select(np.sort(order))
        return dets

    # --- plumbing --------------------------------------------------------------------

    def _secrets(self) -> list[str]:
        return [self._key.reveal()] if self._key is not None else []

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets())

    def _shown_url(self) -> str:
        return self._redact(self.config.url)

    def _http(self) -> httpx.Client:
        import httpx

        with self._lock:
            if self._client is None:
                n = self.config.concurrency
                self._client = httpx.Client(
                    timeout=httpx.Timeout(self.config.timeout),
                    limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
                    transport=self._transport,
                    follow_redirects=False,
                    headers={"User-Agent": "brittle"},
                )
            return self._client

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    self.config.concurrency, thread_name_prefix="brittle-http"
                )
            return self._pool

    def close(self) -> None:
        """Close the connection pool and the request threads (idempotent)."""
        with self._lock:
            pool, client = self._pool, self._client
            self._pool = self._client = None
        if pool is not None:
            pool.shutdown(wait=True)
        if client is not None:
            client.close()

    def __enter__(self) -> HttpPredictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"HttpPredictor({self.source!r}, url={self._shown_url()!r}, "
            f"format={self.config.format!r}, classes={len(self._class_names)})"
        )

    def __reduce__(self) -> Any:
        # Rebuilt from the config file and the environment on the other side: the key
        # itself is never pickled.
        names = self._class_names if is_url(self.source) else None
        return (_rebuild, (self.source, self.conf, self.max_det, names))


def _rebuild(
    source: str, conf: float, max_det: int, url_names: Sequence[str] | None = None
) -> HttpPredictor:
    if url_names is not None:
        config = url_config(source, url_names)
        return HttpPredictor(config, source=source, conf=conf, max_det=max_det)
    return HttpPredictor.from_file(source, conf=conf, max_det=max_det)


#: Options the command line passes to every model that mean nothing for a hosted one.
_NOT_APPLICABLE = {
    "iou": "NMS runs on the server: set its overlap/IoU in request.params",
    "format": "the response format is the config's `format:`",
    "input_size": "the server decides the input size",
}


def load_http_predictor(
    spec: str,
    *,
    conf: float = 0.001,
    max_det: int = 300,
    share: int = 1,
    class_names: Sequence[str] | None = None,
    **options: Any,
) -> HttpPredictor:
    """Build an :class:`HttpPredictor` from a ``*.http.yaml`` file, or from an endpoint's
    URL and ``class_names`` (:func:`~brittle.models.http_config.url_config`: Roboflow's
    format; the command line passes the dataset's class names).

    ``conf`` and ``max_det`` are applied to what the server returns, as for every
    model; ``iou``/``format``/``input_size`` cannot apply (warning); anything else is a
    ConfigError. ``share``: how many processes call the endpoint at once (brittle's
    workers); each gets that fraction of ``concurrency`` and ``rate_limit``, so the
    server sees the configured limits in total.
    """
    ignored = {k: v for k, v in options.items() if k in _NOT_APPLICABLE}
    unknown = sorted(set(options) - set(_NOT_APPLICABLE) - {"threads"})
    if unknown:
        raise ConfigError(f"{spec}: an HTTP model takes no {', '.join(unknown)} option")
    for k, v in ignored.items():
        if v is not None:
            warnings.warn(f"{spec}: ignoring {k}={v!r}: {_NOT_APPLICABLE[k]}", UserWarning, 2)
    if share < 1:
        raise ConfigError(f"share must be at least 1, got {share}")
    if is_url(spec):
        if not class_names:
            raise ConfigError(
                f"{redact(spec)}: a model given by its URL answers with class names, and "
                "brittle takes them to be the dataset's: this dataset has none. Describe the "
                "model in NAME.http.yaml with its class_names (docs/models.md)"
            )
        config = url_config(spec, class_names)
    elif class_names is not None:
        raise ConfigError(f"{spec}: the class names of an HTTP model are its config's")
    else:
        config = load_http_config(spec)
    if share > 1:
        config = config.model_copy(
            update={
                "concurrency": max(1, -(-config.concurrency // share)),
                "rate_limit": None if config.rate_limit is None else config.rate_limit / share,
            }
        )
    base = None if is_url(spec) else Path(spec).parent
    return HttpPredictor(config, source=str(spec), base_dir=base, conf=conf, max_det=max_det)

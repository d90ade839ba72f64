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

>>> parse_retry_after("2")
2.0
>>> redact("POST https://x.test/m/1?api_key=s3cret&confidence=1")
'POST https://x.test/m/1?api_key=***&confidence=1'
>>> to_xyxy([10.0, 20.0, 4.0, 6.0], "cxcywh")
(8.0, 17.0, 12.0, 23.0)
"""

from __future__ import annotations

import base64
import concurrent.futures
import email.utils
import hashlib
import json
import logging
import math
import os
import random
import re
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit, urlunsplit

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from brittle.configfiles import read_yaml_mapping, validate
from brittle.errors import ConfigError, ModelError
from brittle.models.names import read_names
from brittle.types import Detections

if TYPE_CHECKING:
    import httpx

__all__ = [
    "HttpConfig",
    "HttpPredictor",
    "RateLimiter",
    "load_http_config",
    "load_http_predictor",
    "parse_retry_after",
    "redact",
    "to_xyxy",
]

#: Bump when parsing changes in a way that could change predictions: it is part of the
#: fingerprint, so predictions cached by older code are not reused.
PARSER_VERSION = "1"

#: Query parameters / config keys that carry credentials: refused in config files and URLs.
SECRET_NAMES = frozenset(
    {"api_key", "apikey", "api-key", "key", "token", "access_token", "secret", "password"}
)
#: Statuses worth another try: rate limited, request timeout, and every 5xx.
RETRY_STATUSES = frozenset({408, 425, 429})

_SECRET_PARAM = re.compile(
    r"(?<![A-Za-z0-9_-])("
    + "|".join(re.escape(n) for n in sorted(SECRET_NAMES))
    + r")=[^&\s'\"<>]+",
    re.IGNORECASE,
)


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` with every secret (raw or URL-encoded) and every ``api_key=...``-like query
    value replaced by ``***``."""
    for s in secrets:
        if s:
            for form in dict.fromkeys((s, quote(s, safe=""), quote_plus(s))):
                text = text.replace(form, "***")
    return _SECRET_PARAM.sub(lambda m: f"{m.group(1)}=***", text)


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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


ParamValue = str | int | float | bool


class RequestSpec(_Strict):
    """How each image is sent."""

    mode: Literal["base64", "multipart"] = Field(
        default="base64",
        description="base64: the encoded image as the body (application/x-www-form-urlencoded, "
        "as Roboflow expects); multipart: a form upload in field `file_field`",
    )
    image_format: Literal["png", "jpeg"] = Field(
        default="png", description="png is lossless: the server sees exactly brittle's pixels"
    )
    jpeg_quality: int = Field(default=95, ge=1, le=100)
    file_field: str = Field(default="file", min_length=1, description="multipart field name")
    params: dict[str, ParamValue] = Field(
        default_factory=dict, description="extra query parameters (e.g. confidence, overlap)"
    )

    @field_validator("mode", mode="before")
    @classmethod
    def _no_url_mode(cls, value: Any) -> Any:
        if value == "url":
            raise ValueError(
                "mode 'url' (the server fetches the image from a URL) cannot work: brittle "
                "sends images it perturbs in memory, which have no URL; use base64 or multipart"
            )
        return value


class ResponseSpec(_Strict):
    """Where the detections are in a JSON response (dotted paths; list items by number)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    predictions: str = Field(
        default="predictions", description="path to the list of detections ('' = the body)"
    )
    box: str | list[str] = Field(
        description="path to a list of 4 numbers, or the 4 paths of its numbers, in a detection"
    )
    box_format: Literal["xyxy", "xywh", "cxcywh"]
    normalized: bool = Field(default=False, description="coordinates are fractions of the image")
    class_: str = Field(alias="class", description="path to the class name or index")
    score: str = Field(description="path to the confidence")

    @field_validator("box")
    @classmethod
    def _four(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 4:
            raise ValueError(f"give one path or 4 paths, got {len(value)}")
        return value


#: Roboflow's hosted detection API: ``{"predictions": [{x, y, width, height, class,
#: confidence}, ...]}``, box centres and sizes in the image's pixels.
ROBOFLOW = ResponseSpec.model_validate(
    {
        "predictions": "predictions",
        "box": ["x", "y", "width", "height"],
        "box_format": "cxcywh",
        "normalized": False,
        "class": "class",
        "score": "confidence",
    }
)


class HttpConfig(_Strict):
    """A ``*.http.yaml`` file (see docs/models.md, "Hosted models over HTTP")."""

    url: str = Field(description="the endpoint images are POSTed to")
    format: Literal["roboflow", "generic"]
    class_names: list[str] | str = Field(
        description="the model's classes: a list, or a names file relative to the config"
    )
    request: RequestSpec = Field(default_factory=RequestSpec)
    response: ResponseSpec | None = Field(
        default=None, description="field mapping; required for (and only for) format: generic"
    )
    api_key_env: str | None = Field(
        default=None,
        description="environment variable holding the API key (roboflow: ROBOFLOW_API_KEY)",
    )
    api_key_param: str | None = Field(
        default=None, description="query parameter the key is sent in (roboflow: api_key)"
    )
    api_key_header: str | None = Field(default=None, description="header the key is sent in")
    api_key_prefix: str = Field(default="", description="e.g. 'Bearer ' for Authorization")
    concurrency: int = Field(default=4, ge=1, le=64, description="requests in flight")
    rate_limit: float | None = Field(default=None, gt=0, description="requests per second")
    timeout: float = Field(default=30.0, gt=0, description="seconds per connect/read/write")
    retries: int = Field(default=6, ge=0, le=20, description="extra attempts per image")
    backoff: float = Field(default=0.5, gt=0, description="first retry waits up to this (s)")
    backoff_max: float = Field(default=30.0, gt=0, description="longest backoff (s)")
    retry_after_max: float = Field(default=60.0, gt=0, description="cap on Retry-After (s)")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError("must be the name of an environment variable, e.g. ROBOFLOW_API_KEY")
        if len(value) >= 16 and not value.isupper() and any(c.isdigit() for c in value):
            # Not echoed: this looks like the key itself written where its variable's name goes.
            raise ValueError(
                "looks like an API key, not the name of the environment variable that holds "
                "it; write the variable's name (e.g. ROBOFLOW_API_KEY) and export the key there"
            )
        return value

    @field_validator("url")
    @classmethod
    def _plain_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL")
        if "@" in parts.netloc:
            raise ValueError(
                "must not contain credentials (user:password@); give the key through api_key_env"
            )
        try:
            parts.port  # noqa: B018 - raises for a malformed host:port
        except ValueError:
            raise ValueError("is not a valid URL (host:port)") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> HttpConfig:
        if self.format == "generic" and self.response is None:
            raise ValueError("format: generic needs a `response:` field mapping")
        if self.format == "roboflow" and self.response is not None:
            raise ValueError("`response:` is for format: generic (roboflow's is built in)")
        if self.api_key_param and self.api_key_header:
            raise ValueError("send the key in a query parameter or a header, not both")
        if (
            self.api_key_env
            and self.format == "generic"
            and not (self.api_key_param or self.api_key_header)
        ):
            raise ValueError("api_key_env: say where the key goes: api_key_param or api_key_header")
        return self

    @property
    def mapping(self) -> ResponseSpec:
        return self.response if self.response is not None else ROBOFLOW


def _refuse_secrets(doc: Mapping[str, Any], source: str) -> None:
    """ConfigError when the file itself holds a key (the message never shows the value)."""
    hint = (
        "do not write API keys in config files; export the key in an environment variable "
        "(ROBOFLOW_API_KEY for format: roboflow, or the one api_key_env names): brittle "
        "reads it from there and never stores it"
    )
    names = set(SECRET_NAMES)
    if isinstance(doc.get("api_key_param"), str):
        names.add(doc["api_key_param"].lower())  # where this endpoint wants its key
    found = [k for k in doc if str(k).lower() in SECRET_NAMES]
    request = doc.get("request")
    params = request.get("params") if isinstance(request, Mapping) else None
    if isinstance(params, Mapping):
        found += [f"request.params.{k}" for k in params if str(k).lower() in names]
    url = doc.get("url")
    if isinstance(url, str):
        query = urlsplit(url).query
        found += [f"url ?{k}=" for k, _ in parse_qsl(query) if k.lower() in names]
    if found:
        raise ConfigError(f"{source}: {', '.join(found)}: {hint}")


def load_http_config(path: str | Path) -> HttpConfig:
    """Read and validate a ``*.http.yaml`` file; ConfigError lists every problem."""
    p = Path(path)
    doc = read_yaml_mapping(
        p, "HTTP model config", "an HTTP model config is a mapping (url:, format:, ...)"
    )
    _refuse_secrets(doc, str(p))
    config = validate(HttpConfig, doc, str(p))
    if config.format == "roboflow":
        defaults: dict[str, Any] = {}
        if "api_key_env" not in config.model_fields_set:
            defaults["api_key_env"] = "ROBOFLOW_API_KEY"
        if not config.api_key_param and not config.api_key_header:
            defaults["api_key_param"] = "api_key"
        config = config.model_copy(update=defaults)
    return config


# --- geometry, parsing ----------------------------------------------------------------


def to_xyxy(box: Sequence[float], box_format: str) -> tuple[float, float, float, float]:
    """``box`` in ``xyxy`` | ``xywh`` (top-left corner, size) | ``cxcywh`` as x1, y1, x2, y2.

    Exact for float32 inputs: the sums and halvings fit in float64's mantissa, so a
    server that converts brittle-style float32 boxes to centres hands back the same boxes.
    """
    a, b, c, d = (float(v) for v in box)
    if box_format == "xyxy":
        return a, b, c, d
    if box_format == "xywh":
        return a, b, a + c, b + d
    if box_format == "cxcywh":
        return a - c / 2, b - d / 2, a + c / 2, b + d / 2
    raise ValueError(f"unknown box format {box_format!r}")


_MISSING = object()


def _get(obj: Any, path: str) -> Any:
    """The value at a dotted ``path`` (``a.b.0.c``); ``_MISSING`` when absent."""
    if path == "":
        return obj
    for part in path.split("."):
        if isinstance(obj, Mapping):
            obj = obj.get(part, _MISSING)
        elif isinstance(obj, list) and part.lstrip("-").isdigit():
            i = int(part)
            obj = obj[i] if -len(obj) <= i < len(obj) else _MISSING
        else:
            return _MISSING
        if obj is _MISSING:
            return _MISSING
    return obj


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ModelError(f"{what}: expected a number, got {type(value).__name__} {value!r:.40}")
    out = float(value)
    if not math.isfinite(out):
        raise ModelError(f"{what}: expected a finite number, got {out}")
    return out


class MalformedResponseError(Exception):
    """A body that is not JSON (an HTML error page from a proxy): worth another try."""


def parse_detections(
    body: bytes | str | Any,
    mapping: ResponseSpec,
    class_names: Sequence[str],
    width: int,
    height: int,
    *,
    index: Mapping[str, int] | None = None,
) -> Detections:
    """Detections in image pixels from one response body (bytes/str JSON, or parsed).

    Raises :class:`MalformedResponseError` when the body is not JSON, ModelError when it is
    JSON without the expected fields or with a class the config does not list.
    """
    if isinstance(body, bytes | str):
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
            raise MalformedResponseError(
                f"the response is not JSON: {' '.join(text.split())[:80]!r}"
            ) from None
    else:
        doc = body
    if index is None:
        index = {n: i for i, n in enumerate(class_names)}
    preds = _get(doc, mapping.predictions)
    if not isinstance(preds, list):
        keys = f" (keys: {', '.join(map(str, list(doc)[:8]))})" if isinstance(doc, dict) else ""
        where = f"'{mapping.predictions}'" if mapping.predictions else "the body"
        raise ModelError(f"the response has no list of detections at {where}{keys}")
    n = len(preds)
    boxes = np.zeros((n, 4), np.float64)
    scores = np.zeros(n, np.float64)
    labels = np.zeros(n, np.int64)
    for i, p in enumerate(preds):
        at = f"{mapping.predictions or 'response'}[{i}]"
        if isinstance(mapping.box, str):
            raw = _get(p, mapping.box)
            if not isinstance(raw, list) or len(raw) != 4:
                raise ModelError(
                    f"{at}.{mapping.box}: expected a list of 4 numbers, got {raw!r:.60}"
                )
            values = [_number(v, f"{at}.{mapping.box}") for v in raw]
        else:
            values = []
            for path in mapping.box:
                v = _get(p, path)
                if v is _MISSING:
                    raise ModelError(f"{at}: no '{path}' field")
                values.append(_number(v, f"{at}.{path}"))
        x1, y1, x2, y2 = to_xyxy(values, mapping.box_format)
        if mapping.normalized:
            x1, x2, y1, y2 = x1 * width, x2 * width, y1 * height, y2 * height
        boxes[i] = (x1, y1, x2, y2)
        score = _get(p, mapping.score)
        if score is _MISSING:
            raise ModelError(f"{at}: no '{mapping.score}' field")
        scores[i] = _number(score, f"{at}.{mapping.score}")
        cls = _get(p, mapping.class_)
        if isinstance(cls, str):
            if cls not in index:
                raise ModelError(
                    f"{at}: class {cls!r} is not in the config's class_names "
                    f"({len(class_names)} names: {', '.join(class_names[:6])}"
                    f"{', …' if len(class_names) > 6 else ''}); add it to class_names"
                )
            labels[i] = index[cls]
        elif isinstance(cls, int) and not isinstance(cls, bool):
            if not 0 <= cls < len(class_names):
                raise ModelError(
                    f"{at}: class index {cls} is outside class_names (0..{len(class_names) - 1})"
                )
            labels[i] = cls
        elif cls is _MISSING:
            raise ModelError(f"{at}: no '{mapping.class_}' field")
        else:
            raise ModelError(
                f"{at}.{mapping.class_}: expected a class name or index, got {cls!r:.40}"
            )
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
    return Detections(boxes.astype(np.float32), scores.astype(np.float32), labels)


# --- Retry-After, rate limiting -------------------------------------------------------


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds (fractions accepted) or
    an HTTP date; None when absent or unreadable. Never negative.

    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT",
    ...                   now=datetime(2015, 10, 21, 7, 28, tzinfo=UTC))
    10.0
    >>> parse_retry_after("soon") is None
    True
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


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
        #: An answer that no retry and no other image can change (bad key, wrong URL).
        self._fatal: str | None = None
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
            return self._predict_one(image)
        except ModelError as exc:
            with self._lock:
                self.stats["failed_images"] += 1
            return ModelError(self._redact(str(exc)))
        except Exception as exc:  # anything unexpected still must not leak the key
            with self._lock:
                self.stats["failed_images"] += 1
            return ModelError(self._redact(f"{type(exc).__name__}: {exc}"))

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
            raise ModelError(self._fatal)
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
        raise ModelError(
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
        return (_rebuild, (self.source, self.conf, self.max_det))


def _rebuild(source: str, conf: float, max_det: int) -> HttpPredictor:
    return HttpPredictor.from_file(source, conf=conf, max_det=max_det)


#: Options the command line passes to every model that mean nothing for a hosted one.
_NOT_APPLICABLE = {
    "iou": "NMS runs on the server: set its overlap/IoU in request.params",
    "format": "the response format is the config's `format:`",
    "input_size": "the server decides the input size",
}


def load_http_predictor(
    spec: str, *, conf: float = 0.001, max_det: int = 300, share: int = 1, **options: Any
) -> HttpPredictor:
    """Build an :class:`HttpPredictor` from a ``*.http.yaml`` file.

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
    config = load_http_config(spec)
    if share > 1:
        config = config.model_copy(
            update={
                "concurrency": max(1, -(-config.concurrency // share)),
                "rate_limit": None if config.rate_limit is None else config.rate_limit / share,
            }
        )
    return HttpPredictor(
        config, source=str(spec), base_dir=Path(spec).parent, conf=conf, max_det=max_det
    )

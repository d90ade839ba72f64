"""What a ``*.http.yaml`` file says and how a response becomes detections (no network here).

The config models (:class:`HttpConfig` and its parts), Roboflow's response mapping, the
parsing of JSON responses into :class:`~brittle.types.Detections`, ``Retry-After``, and
the redaction of secrets from anything that could be shown or logged. The client that
sends the requests is :mod:`brittle.models.http`.

>>> parse_retry_after("2")
2.0
>>> redact("POST https://x.test/m/1?api_key=s3cret&confidence=1")
'POST https://x.test/m/1?api_key=***&confidence=1'
>>> to_xyxy([10.0, 20.0, 4.0, 6.0], "cxcywh")
(8.0, 17.0, 12.0, 23.0)
"""

from __future__ import annotations

import email.utils
import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from brittle.configfiles import read_yaml_mapping, validate
from brittle.errors import ConfigError, ModelError
from brittle.types import Detections

if TYPE_CHECKING:
    pass

__all__ = [
    "PARSER_VERSION",
    "ROBOFLOW",
    "SECRET_NAMES",
    "HttpConfig",
    "MalformedResponseError",
    "RequestSpec",
    "ResponseSpec",
    "is_url",
    "load_http_config",
    "parse_detections",
    "parse_retry_after",
    "redact",
    "to_xyxy",
    "url_config",
]

#: Bump when parsing changes in a way that could change predictions: it is part of the
#: fingerprint, so predictions cached by older code are not reused.
PARSER_VERSION = "1"

#: Query parameters / config keys that carry credentials: refused in config files and URLs.
SECRET_NAMES = frozenset(
    {"api_key", "apikey", "api-key", "key", "token", "access_token", "secret", "password"}
)

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
    stop_after: int = Field(
        default=5,
        ge=0,
        description="stop the run when this many images in a row failed after every retry "
        "(the endpoint is down; finished predictions stay cached); 0: never stop",
    )

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
    return _validated(doc, str(p))


def is_url(spec: str) -> bool:
    """Whether a model spec is an endpoint's URL (``--model https://...``)."""
    return spec.lower().startswith(("http://", "https://"))


def url_config(url: str, class_names: Sequence[str]) -> HttpConfig:
    """The config ``--model URL`` stands for: Roboflow's response format, the key from
    ``ROBOFLOW_API_KEY``, and the parameters a fair evaluation needs (Roboflow's own
    defaults, confidence 40% and overlap 30%, would hide most of what mAP counts).

    >>> c = url_config("https://detect.roboflow.com/css/27", ["helmet", "vest"])
    >>> c.format, c.api_key_env, dict(c.request.params), c.class_names
    ('roboflow', 'ROBOFLOW_API_KEY', {'confidence': 1, 'overlap': 50}, ['helmet', 'vest'])
    """
    doc = {
        "url": url,
        "format": "roboflow",
        "class_names": list(class_names),
        "request": {"params": {"confidence": 1, "overlap": 50}},
    }
    return _validated(doc, redact(url))


def _validated(doc: dict[str, Any], source: str) -> HttpConfig:
    _refuse_secrets(doc, source)
    config = validate(HttpConfig, doc, source)
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

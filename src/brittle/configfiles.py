"""Reading YAML config files into strict pydantic models, with every error located.

Suite files, hosted-model files and torchvision model files all go through here, so a
mistake reads the same everywhere: the file, the line for syntax errors, and for each
invalid field its dotted location.

>>> from pydantic import BaseModel, ConfigDict
>>> class Point(BaseModel):
...     model_config = ConfigDict(extra="forbid")
...     x: int
>>> validate(Point, {"x": 1}, "p.yaml").x
1
>>> validate(Point, {"x": "a", "y": 2}, "p.yaml")
Traceback (most recent call last):
...
brittle.errors.ConfigError: p.yaml: 2 problems
  x: Input should be a valid integer, unable to parse string as an integer
  y: Extra inputs are not permitted
>>> parse_yaml_mapping("a: [1", "p.yaml", "a point")
Traceback (most recent call last):
...
brittle.errors.ConfigError: p.yaml:1:6: not valid YAML: expected ',' or ']', but got '<stream end>'
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from brittle.errors import ConfigError

__all__ = ["location", "parse_yaml_mapping", "read_yaml_mapping", "validate"]

M = TypeVar("M", bound=BaseModel)


def location(loc: tuple[int | str, ...]) -> str:
    """pydantic's error location as ``a.b[2].c``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _message(err: Any) -> str:
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg


def parse_yaml_mapping(text: str, source: str, what: str) -> dict[str, Any]:
    """``text`` parsed as a YAML mapping; ConfigError with line and column otherwise.

    ``what`` names the kind of file in the error for a non-mapping document, e.g.
    "a suite file is a mapping (dataset:, models:, ...)".
    """
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(f"{source}{where}: not valid YAML: {problem}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: {what}")
    return doc


def read_yaml_mapping(path: str | Path, kind: str, what: str) -> dict[str, Any]:
    """Read ``path`` (a ``kind``, e.g. "suite file") and parse it as a YAML mapping."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: {kind} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the {kind}: {exc.strerror}") from None
    return parse_yaml_mapping(text, str(p), what)


def validate(
    model: type[M],
    doc: dict[str, Any],
    source: str,
    message: Callable[[Any], str] = _message,
) -> M:
    """``doc`` validated as ``model``; a ConfigError lists every problem with its location.

    Only each error's location and message are shown, never pydantic's echo of the input
    (a config could hold something that must not be printed).
    """
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        lines = [f"  {location(e['loc'])}: {message(e)}" for e in exc.errors()]
        word = "problem" if len(lines) == 1 else "problems"
        raise ConfigError(f"{source}: {len(lines)} {word}\n" + "\n".join(lines)) from None

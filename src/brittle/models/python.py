"""Predictors written in Python: ``path/to/file.py:Name`` or ``module:Name``.

``Name`` is a class, a factory function, or a ready-made object. A class or
factory is called once; it receives the evaluation settings it declares as
keyword parameters (``conf``, ``iou``, ``max_det``, …) and nothing else, so a
predictor that takes no arguments still works. The result must have
``class_names`` and ``predict``; a missing ``fingerprint`` is derived from the
source file (with a warning). See ``examples/fastestdet.py``.

>>> load_python_predictor("brittle.types:Detections")
Traceback (most recent call last):
...
brittle.errors.ModelError: brittle.types:Detections: calling Detections() failed: \
TypeError: Detections.__init__() missing 3 required positional arguments: 'boxes', 'scores', \
and 'labels'
"""

from __future__ import annotations

import hashlib
import inspect
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from brittle.errors import BrittleError, ConfigError, ModelError
from brittle.models.base import Predictor
from brittle.registry import load_reference
from brittle.types import Detections

__all__ = ["load_python_predictor"]

#: Settings the command line passes to every model; silently not given to a predictor
#: that does not declare them (unless they differ from these defaults: then we warn).
_EVAL_DEFAULTS: dict[str, Any] = {"conf": 0.001, "max_det": 300}
#: Settings of how to run, not of what to predict: given only to a predictor that
#: declares them, never warned about, and left out of derived fingerprints.
_RUNTIME = frozenset({"threads"})


class _WithFingerprint:
    """A predictor without ``fingerprint``, given one derived from its source."""

    def __init__(self, inner: Any, fingerprint: str) -> None:
        self._inner = inner
        self._fingerprint = fingerprint

    @property
    def class_names(self) -> Sequence[str]:
        names: Sequence[str] = self._inner.class_names
        return names

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def predict(self, images: Sequence[NDArray[np.uint8]]) -> list[Detections]:
        out: list[Detections] = self._inner.predict(images)
        return out

    def __getattr__(self, name: str) -> Any:
        # Anything else (close(), the model's own settings) stays reachable.
        return getattr(self._inner, name)


def _source_file(ref: str, obj: Any) -> Path | None:
    module_part = ref.rpartition(":")[0]
    if module_part.endswith(".py") or "/" in module_part or "\\" in module_part:
        return Path(module_part)
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    file = getattr(module, "__file__", None)
    return Path(file) if file else None


def _accepted(factory: Any, options: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The options ``factory`` declares as keyword parameters, and the names of the rest."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return {}, list(options)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(options), []
    names = {
        n
        for n, p in params.items()
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }
    return {k: v for k, v in options.items() if k in names}, [k for k in options if k not in names]


def load_python_predictor(ref: str, **options: Any) -> Predictor:
    """Import ``ref`` (``path/to/file.py:Name`` or ``module:Name``) and build the predictor.

    Options the factory does not declare are dropped, with a warning unless they
    are the evaluation defaults every model gets (``conf=0.001``, ``max_det=300``).
    """
    target = load_reference(ref)
    name = ref.rpartition(":")[2]
    if inspect.isclass(target) or (callable(target) and not hasattr(target, "predict")):
        kwargs, dropped = _accepted(target, options)
        ignored = [
            k
            for k in dropped
            if k not in _RUNTIME and _EVAL_DEFAULTS.get(k, object()) != options[k]
        ]
        if ignored:
            shown = ", ".join(f"{k}={options[k]!r}" for k in ignored)
            warnings.warn(
                f"{ref}: {name}() takes no {', '.join(ignored)} parameter; ignoring {shown}",
                UserWarning,
                stacklevel=2,
            )
        try:
            predictor = target(**kwargs)
        except BrittleError:
            raise
        except Exception as exc:
            raise ModelError(
                f"{ref}: calling {name}() failed: {type(exc).__name__}: {exc}"
            ) from exc
    else:
        predictor = target
    missing = [a for a in ("class_names", "predict") if not hasattr(predictor, a)]
    if missing or not callable(getattr(predictor, "predict", None)):
        what = ", ".join(f"`{m}`" for m in missing) or "a callable `predict`"
        raise ConfigError(
            f"{ref}: {name} made a {type(predictor).__name__} without {what}; a predictor "
            "needs `class_names` (list of str), `predict(images) -> list[Detections]` and "
            "`fingerprint` (str) -- see docs/models.md and examples/fastestdet.py"
        )
    class_names = predictor.class_names
    if (
        isinstance(class_names, str)
        or not isinstance(class_names, Sequence)
        or not all(isinstance(n, str) for n in class_names)
        or not class_names
    ):
        raise ConfigError(
            f"{ref}: class_names must be a non-empty list of str, got {class_names!r:.80}"
        )
    if getattr(predictor, "fingerprint", None) is None:
        source = _source_file(ref, target)
        h = hashlib.sha256()
        if source is not None and source.is_file():
            h.update(source.read_bytes())
        decisive = sorted((k, v) for k, v in options.items() if k not in _RUNTIME)
        h.update(f":{name}:{decisive!r}".encode())
        warnings.warn(
            f"{ref}: the predictor has no `fingerprint`; cached predictions are keyed on "
            f"{source.name if source else 'its name'} and {name!r} only, so they cannot see "
            "changes to the model's weights: add a `fingerprint` (e.g. the weights file's "
            "sha256) or delete the run's cache.sqlite after changing weights",
            UserWarning,
            stacklevel=2,
        )
        return _WithFingerprint(predictor, f"python:{h.hexdigest()[:32]}")
    if not isinstance(predictor.fingerprint, str):
        raise ConfigError(
            f"{ref}: fingerprint must be a str, got {type(predictor.fingerprint).__name__}"
        )
    result: Predictor = predictor
    return result

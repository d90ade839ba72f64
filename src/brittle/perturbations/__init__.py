"""brittle's perturbation catalogue: registry, lookup and the small public API.

Built-in perturbations live one family per module (``noise``, ``blur``, ``weather``,
``light``, ``digital``, ``geometric``, ``occlusion``) and register themselves with
:func:`register`. Third-party packages add theirs through the entry-point group
``brittle.perturbations`` (a :class:`~brittle.perturbations.base.Perturbation` subclass), and
any function ``(image, severity, rng) -> image`` can be used by reference as
``"package.module:function"`` or ``"path/to/file.py:function"``.

>>> import numpy as np
>>> img = np.full((32, 48, 3), 128, np.uint8)
>>> out = perturb(img, "gaussian_noise", 3, seed=1)
>>> out.shape, out.dtype, bool((out != img).any())
((32, 48, 3), dtype('uint8'), True)
>>> out2, boxes = perturb(img, "hflip", 1, boxes=[[0, 0, 10, 8]])
>>> boxes.tolist()
[[38.0, 0.0, 48.0, 8.0]]
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import json
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from brittle.errors import ConfigError, ShapeError
from brittle.perturbations.base import (
    FAMILIES,
    Params,
    Perturbation,
    rng_for,
    transform_boxes,
    validate_class,
)
from brittle.registry import Registry, load_reference

__all__ = [
    "FAMILIES",
    "Perturbation",
    "catalogue",
    "get_perturbation",
    "perturb",
    "register",
    "registry",
    "rng_for",
    "transform_boxes",
    "tuned",
]

registry: Registry[type[Perturbation]] = Registry(
    "perturbation", entry_point_group="brittle.perturbations"
)

_BUILTIN_MODULES = ("noise", "blur", "weather", "light", "digital", "geometric", "occlusion")
_loaded = False
_done = False
_load_lock = threading.RLock()


def register(cls: type[Perturbation]) -> type[Perturbation]:
    """Class decorator adding a perturbation to the catalogue under ``cls.name``."""
    validate_class(cls)
    registry.register(cls.name)(cls)
    return cls


def _load_builtins() -> None:
    global _loaded, _done
    if _done:
        return
    # Another thread waits here until the catalogue is complete; the loading thread itself
    # re-enters (the family modules register through this package) and sees _loaded.
    with _load_lock:
        if _loaded:
            return
        _loaded = True
        for mod in _BUILTIN_MODULES:
            try:
                importlib.import_module(f"brittle.perturbations.{mod}")
            except ModuleNotFoundError as exc:
                if exc.name != f"brittle.perturbations.{mod}":
                    raise
        _done = True


class FunctionPerturbation(Perturbation):
    """Wraps a user function ``(image, severity, rng) -> image`` (photometric only)."""

    family: ClassVar[str] = "digital"
    description: ClassVar[str] = "user function"

    def __init__(self, ref: str, fn: Callable[..., Any]) -> None:
        self.ref = ref
        self.fn = fn

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        return {"severity": severity}

    def apply(self, image: NDArray[np.uint8], params: Params, rng: np.random.Generator) -> Any:
        out = np.asarray(self.fn(image, params["severity"], rng))
        if out.shape != image.shape or out.dtype != np.uint8:
            raise ShapeError(
                f"{self.ref}: must return uint8 {image.shape}, got {out.dtype} {out.shape}"
            )
        return out


def tuned(name: str, overrides: Mapping[str, Any] | None = None) -> Perturbation:
    """The perturbation ``name`` with some of its drawn parameters fixed (a suite's
    parameter overrides). Its ``tag`` (cache key) includes a digest of the overrides.

    >>> p = tuned("motion_blur", {"angle": 0.0})
    >>> p.params(3, 100, 100, rng_for(0, "motion_blur", 3, "a"))["angle"], p.tag != "motion_blur@1"
    (0.0, True)
    >>> tuned("motion_blur", {"angel": 0.0})
    Traceback (most recent call last):
    ...
    brittle.errors.ConfigError: motion_blur has no parameter 'angel'; did you mean 'angle'? (its parameters: angle, radius_px, sigma_px)
    """  # noqa: E501
    base = get_perturbation(name)
    if not overrides:
        return base
    fixed = dict(overrides)
    known = sorted(base.params(3, 64, 64, np.random.default_rng(0)))
    for key in fixed:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{name} has no parameter {key!r}{hint} (its parameters: "
                f"{', '.join(known) or 'none'})"
            )
    _check_effect(base, fixed)
    digest = hashlib.blake2b(
        json.dumps(fixed, sort_keys=True, default=str).encode(), digest_size=6
    ).hexdigest()
    cls = type(base)

    class Tuned(cls):  # type: ignore[valid-type, misc]
        def params(
            self, severity: int, height: int, width: int, rng: np.random.Generator
        ) -> Params:
            # Draw as usual (the generator advances the same way), then fix the overrides.
            drawn: Params = dict(super().params(severity, height, width, rng))
            drawn.update(fixed)
            return drawn

        @property
        def tag(self) -> str:
            return f"{cls.name}@{cls.version}+{digest}"

    Tuned.__name__ = Tuned.__qualname__ = f"Tuned{cls.__name__}"
    out: Perturbation = Tuned()
    return out


def _check_effect(pert: Perturbation, fixed: Mapping[str, Any]) -> None:
    """Refuse overrides that would silently do nothing: a parameter the output is not
    computed from (rotate's ``angle`` is folded into its ``matrix`` when drawn)."""
    texture = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    drawn = pert.params(3, 48, 64, np.random.default_rng(0))
    for key, value in fixed.items():
        if drawn[key] == value:
            continue
        outs = []
        for v in (drawn[key], value):
            try:
                outs.append(pert.apply(texture, {**drawn, key: v}, np.random.default_rng(2)))
            except Exception as exc:
                raise ConfigError(
                    f"{pert.name}: {key}={value!r} does not work: {type(exc).__name__}: {exc}"
                ) from None
        if np.array_equal(outs[0], outs[1]):
            derived = [k for k in drawn if k != key]
            raise ConfigError(
                f"{pert.name}: overriding {key!r} has no effect (the output is computed from "
                f"{', '.join(derived) or 'nothing else'}); fix those instead"
            )


def get_perturbation(name: str) -> Perturbation:
    """The perturbation called ``name`` (or a ``module:function`` reference).

    >>> get_perturbation("gaussian_noize")
    Traceback (most recent call last):
    ...
    brittle.errors.UnknownNameError: unknown perturbation 'gaussian_noize'; did you mean ...
    """
    _load_builtins()
    if ":" in name:
        target = load_reference(name)
        if isinstance(target, type) and issubclass(target, Perturbation):
            return target()
        if not callable(target):
            raise ConfigError(f"{name}: not a Perturbation subclass or a function")
        fp = FunctionPerturbation(name, target)
        fp.name = name  # type: ignore[misc]
        return fp
    return registry.get(name)()


def catalogue() -> dict[str, list[type[Perturbation]]]:
    """Registered perturbations grouped by family, families in display order."""
    _load_builtins()
    groups: dict[str, list[type[Perturbation]]] = {f: [] for f in FAMILIES}
    for _, cls in registry.items():
        groups.setdefault(cls.family, []).append(cls)
    return {f: v for f, v in groups.items() if v}


@overload
def perturb(
    image: ArrayLike,
    name: str,
    severity: int,
    *,
    seed: int = 0,
    boxes: None = None,
    sample_id: str = "",
) -> NDArray[np.uint8]: ...


@overload
def perturb(
    image: ArrayLike,
    name: str,
    severity: int,
    *,
    seed: int = 0,
    boxes: ArrayLike,
    sample_id: str = "",
) -> tuple[NDArray[np.uint8], NDArray[np.float64]]: ...


def perturb(
    image: ArrayLike,
    name: str,
    severity: int,
    *,
    seed: int = 0,
    boxes: ArrayLike | None = None,
    sample_id: str = "",
) -> NDArray[np.uint8] | tuple[NDArray[np.uint8], NDArray[np.float64]]:
    """Perturb one RGB uint8 image; with ``boxes`` (xyxy pixels) also return the moved boxes.

    Boxes that end up mostly outside the image are dropped (see
    :data:`brittle.perturbations.base.MIN_VISIBLE_FRACTION`). The same (image, name, severity,
    seed, sample_id) always gives the same bytes.
    """
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ShapeError(f"perturb: expected uint8 (H, W, 3) RGB, got {img.dtype} {img.shape}")
    p = get_perturbation(name)
    rng = rng_for(seed, p.name, severity, sample_id)
    out, moved, _, _ = p(img, severity, rng, None if boxes is None else np.asarray(boxes))
    if boxes is None:
        return out
    assert moved is not None
    return out, moved

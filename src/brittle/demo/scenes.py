"""Synthetic detection scenes: filled shapes on textured, lit backgrounds, with exact boxes.

Every scene is a pure function of ``(seed, index, size)``: the same arguments give the same
pixels on every machine (numpy's ``default_rng`` seeded with ``(seed, index)``, and OpenCV's
integer polygon rasteriser). A scene has one to seven objects of three classes
(:data:`CLASS_NAMES`):

* ``circle``: a filled ellipse, aspect 0.7-1.4, any rotation;
* ``square``: a filled rectangle, aspect 0.7-1.4, any rotation;
* ``triangle``: an isosceles triangle standing on its base (tilted by at most 15 degrees).

Objects are 12-60 px across (log-uniform), in saturated or muted colours chosen to stand out
from the background under them, shaded (lit from above) and casting a soft shadow below.
Later objects may hide part of earlier ones, but at least 55% of every object stays visible.
Backgrounds are linear or radial gradients, smooth colour noise, stripes or soft tiles, some
with a fine grain; the whole scene is then lit by a vertical (and slightly sideways) light
gradient, an overall brightness and a colour cast. Scenes therefore have an *up*: light from
above, shadows below, triangles on their base, as in photographs.

A box is the tight pixel box of the object's *visible* part: the columns and rows holding a
pixel at least half covered by the object after occlusion by the objects in front of it.

>>> image, boxes, labels = make_scene(seed=0, index=0)
>>> image.shape, image.dtype, boxes.shape[1], labels.dtype
((160, 160, 3), dtype('uint8'), 4, dtype('int64'))
>>> bool(np.array_equal(image, make_scene(seed=0, index=0)[0]))
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CLASS_NAMES",
    "MAX_OBJECTS",
    "MAX_SIZE",
    "MIN_SIZE",
    "Scene",
    "make_scene",
    "render_scene",
    "write_dataset",
]

#: Class names, in label order.
CLASS_NAMES = ("circle", "square", "triangle")
#: Objects are this many pixels across at least / at most (before rotation), at 160 px.
MIN_SIZE, MAX_SIZE = 12, 60
#: Objects per scene: 1 to this many.
MAX_OBJECTS = 7
#: Share of each object's area that must stay visible after occlusion.
MIN_VISIBLE = 0.55

_SHIFT = 4  # fixed-point bits of the polygon rasteriser (1/16 pixel)
_REFERENCE = 160.0  # sizes above are for this image size; other sizes scale them

Float = NDArray[np.float32]


@dataclass(frozen=True)
class Scene:
    """One rendered scene.

    ``image`` is RGB uint8 (H, W, 3); ``boxes`` float64 (N, 4) xyxy pixels; ``labels``
    int64 (N,) indices into :data:`CLASS_NAMES`; ``masks`` float32 (N, H, W), the visible
    coverage of each object (0..1, after occlusion); ``background`` the scene rendered the
    same way without the objects (but with their shadows), so pixels where every mask is 0
    are equal in ``image`` and ``background``.
    """

    image: NDArray[np.uint8]
    boxes: NDArray[np.float64]
    labels: NDArray[np.int64]
    masks: NDArray[np.float32]
    background: NDArray[np.uint8]


def _rng(seed: int, index: int) -> np.random.Generator:
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be non-negative, got {seed}, {index}")
    return np.random.default_rng([seed, index, 0x5CE7E])


def _hsv(h: float, s: float, v: float) -> Float:
    """An RGB colour in 0..1 from hue (0..1), saturation and value."""
    i = int(h * 6.0) % 6
    f = h * 6.0 - math.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb, np.float32)


def _random_colour(rng: np.random.Generator, muted: bool) -> Float:
    s = rng.uniform(0.05, 0.35) if muted else rng.uniform(0.4, 1.0)
    return _hsv(rng.uniform(), s, rng.uniform(0.25, 0.95))


def _coords(size: int) -> tuple[Float, Float]:
    ax = np.asarray((np.arange(size, dtype=np.float32) + 0.5) / size, np.float32)
    return ax[None, :], ax[:, None]  # x (1, W), y (H, 1) in 0..1


def _background(rng: np.random.Generator, size: int) -> Float:
    """A textured background in 0..1, (H, W, 3)."""
    x, y = _coords(size)
    c0, c1 = _random_colour(rng, True), _random_colour(rng, rng.uniform() < 0.5)
    kind = int(rng.integers(5))
    t: NDArray[Any]
    if kind == 0:  # linear gradient
        a = rng.uniform(0, 2 * math.pi)
        t = (x - 0.5) * math.cos(a) + (y - 0.5) * math.sin(a) + 0.5
    elif kind == 1:  # radial gradient
        cx, cy = rng.uniform(0.1, 0.9, 2)
        t = np.sqrt((x - cx) ** 2 + (y - cy) ** 2) * rng.uniform(0.8, 1.6)
    elif kind == 2:  # smooth colour noise
        k = int(rng.integers(3, 9))
        low = rng.uniform(0, 1, (k, k, 3)).astype(np.float32)
        field = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
        mix = rng.uniform(0.25, 0.6)
        base = c0 * (1 - mix) + field * mix
        return np.asarray(np.clip(base, 0, 1), np.float32)
    elif kind == 3:  # stripes
        a = rng.uniform(0, math.pi)
        period = rng.uniform(6, 40) / _REFERENCE
        phase = (x * math.cos(a) + y * math.sin(a)) / period
        t = 0.5 + 0.5 * np.sin(2 * math.pi * phase + rng.uniform(0, 2 * math.pi))
        t = t * rng.uniform(0.3, 0.8)
    else:  # soft tiles
        k = int(rng.integers(3, 7))
        low = rng.uniform(0, 1, (k, k, 1)).astype(np.float32)
        t = cv2.resize(low, (size, size), interpolation=cv2.INTER_NEAREST)
        t = cv2.GaussianBlur(t, (0, 0), size / 80.0) * rng.uniform(0.3, 0.7)
    t = np.clip(t, 0, 1)[..., None] if np.ndim(t) == 2 else np.clip(t, 0, 1)
    bg = c0 * (1 - t) + c1 * t
    return np.asarray(bg, np.float32)


def _grain(rng: np.random.Generator, bg: Float) -> Float:
    """A faint fine texture (paper, concrete) on some backgrounds."""
    if rng.uniform() >= 0.35:
        return bg
    h, w = bg.shape[:2]
    g = rng.normal(0, 1, (h, w)).astype(np.float32)
    g = np.asarray(cv2.GaussianBlur(g, (0, 0), rng.uniform(0.6, 1.5)), np.float32)
    g *= rng.uniform(0.02, 0.05) / max(float(g.std()), 1e-6)
    return np.asarray(np.clip(bg + g[..., None], 0, 1), np.float32)


def _polygon(rng: np.random.Generator, cls: int, extent: float) -> NDArray[np.float64]:
    """Vertices (K, 2) of a shape of class ``cls`` centred on 0, at most ``extent`` across."""
    aspect = rng.uniform(0.7, 1.4)
    w, h = (extent, extent / aspect) if aspect >= 1 else (extent * aspect, extent)
    if cls == 0:  # ellipse
        t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        pts = np.stack([np.cos(t) * w / 2, np.sin(t) * h / 2], axis=1)
        angle = rng.uniform(0, math.pi)
    elif cls == 1:  # rectangle
        pts = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
        angle = rng.uniform(0, math.pi / 2)
    else:  # triangle on its base, apex up (image y grows downwards)
        pts = np.array([[-w / 2, h / 3], [w / 2, h / 3], [0.0, -2 * h / 3]])
        angle = rng.uniform(-1, 1) * math.radians(15)
    c, s = math.cos(angle), math.sin(angle)
    return np.asarray(pts @ np.array([[c, s], [-s, c]]), np.float64)


def _raster(pts: NDArray[np.float64], h: int, w: int) -> Float:
    """Anti-aliased coverage (h, w) in 0..1 of a polygon in pixel coordinates."""
    mask = np.zeros((h, w), np.uint8)
    fixed = np.rint(pts * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(mask, [fixed], 255, lineType=cv2.LINE_AA, shift=_SHIFT)
    return mask.astype(np.float32) / 255.0


def _window(
    lo: NDArray[np.float64], hi: NDArray[np.float64], pad: int, size: int
) -> tuple[slice, slice, int, int]:
    """Rows, columns and top-left corner of the pixels within ``pad`` of a box."""
    x0, y0 = (max(math.floor(v) - pad, 0) for v in lo)
    x1, y1 = (min(math.ceil(v) + pad, size) for v in hi)
    return slice(y0, y1), slice(x0, x1), x0, y0


def render_scene(seed: int, index: int, size: int = 160) -> Scene:
    """Scene ``index`` of the series ``seed``, ``size`` x ``size`` pixels (see the module)."""
    if size < 32:
        raise ValueError(f"size must be at least 32 px, got {size}")
    rng = _rng(seed, index)
    scale = size / _REFERENCE
    canvas = _grain(rng, _background(rng, size))
    plain = canvas.copy()  # the same background, shadows only
    x, y = _coords(size)
    shadow_dx = rng.uniform(-2.0, 2.0) * scale
    shadow_dy = rng.uniform(1.5, 4.5) * scale
    shadow_sigma = max(1.5 * scale, 0.8)
    shadow_strength = rng.uniform(0.15, 0.4)
    pad = math.ceil(abs(shadow_dx) + abs(shadow_dy) + 3 * shadow_sigma) + 2
    visible: list[Float] = []  # full-size visible coverage of each object so far
    areas: list[float] = []  # each object's own (unoccluded) area
    labels: list[int] = []
    for _ in range(int(rng.integers(1, MAX_OBJECTS + 1))):
        cls = int(rng.integers(len(CLASS_NAMES)))
        extent = math.exp(rng.uniform(math.log(MIN_SIZE), math.log(MAX_SIZE))) * scale
        shape = _polygon(rng, cls, extent)
        lo, hi = shape.min(axis=0), shape.max(axis=0)
        for _try in range(12):
            centre = rng.uniform(1.0 - lo, size - 1.0 - hi)
            rows, cols, x0, y0 = _window(lo + centre, hi + centre, pad, size)
            alpha = _raster(
                shape + centre - (x0, y0), rows.stop - rows.start, cols.stop - cols.start
            )
            area = float(alpha.sum())
            if area >= 4 and all(
                float(v.sum()) - float((v[rows, cols] * alpha).sum()) >= MIN_VISIBLE * a
                for v, a in zip(visible, areas, strict=True)
            ):
                break
        else:
            continue  # no free place for this object: leave it out
        a3 = alpha[..., None]
        # Colour: distinct from what lies under the object.
        under = (canvas[rows, cols] * a3).sum(axis=(0, 1)) / area
        colour = _random_colour(rng, rng.uniform() < 0.2)
        for _c in range(8):
            if float(np.abs(colour - under).sum()) >= 0.45:
                break
            colour = _random_colour(rng, rng.uniform() < 0.2)
        # Soft shadow below, on everything drawn so far.
        m = np.array([[1, 0, shadow_dx], [0, 1, shadow_dy]], np.float32)
        roi_h, roi_w = alpha.shape
        shadow = cv2.warpAffine(alpha, m, (roi_w, roi_h), flags=cv2.INTER_LINEAR)
        shadow = cv2.GaussianBlur(shadow, (0, 0), shadow_sigma) * shadow_strength
        keep = (1 - shadow)[..., None]
        canvas[rows, cols] *= keep
        plain[rows, cols] *= keep
        # Shading: lit from above, darker towards the bottom of the object.
        top, bottom = float(lo[1] + centre[1]), float(hi[1] + centre[1])
        t = (y[rows] * size - top) / max(bottom - top, 1.0)
        shade = 1 + rng.uniform(0.0, 0.35) * (0.5 - np.clip(t, 0, 1))
        fill = np.clip(colour[None, None, :] * shade[..., None], 0, 1)
        canvas[rows, cols] = canvas[rows, cols] * (1 - a3) + fill * a3
        for v in visible:
            v[rows, cols] *= 1 - alpha
        full = np.zeros((size, size), np.float32)
        full[rows, cols] = alpha
        visible.append(full)
        areas.append(area)
        labels.append(cls)
    # Light: brighter at the top, a little from one side, overall level and colour cast.
    light = (
        rng.uniform(0.55, 1.15)
        * (1 + rng.uniform(0.0, 0.5) * (0.5 - y) + rng.uniform(-0.15, 0.15) * (x - 0.5))
    )[..., None] * (1 + rng.uniform(-0.08, 0.08, 3)).astype(np.float32)
    image = _to_uint8(canvas * light)
    background = _to_uint8(plain * light)
    masks = np.stack(visible) if visible else np.zeros((0, size, size), np.float32)
    boxes = np.array([_tight_box(v) for v in visible], np.float64).reshape(-1, 4)
    ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return Scene(
        image=image,
        boxes=boxes[ok],
        labels=np.array(labels, np.int64)[ok],
        masks=np.asarray(masks[ok], np.float32),
        background=background,
    )


def _to_uint8(image: NDArray[Any]) -> NDArray[np.uint8]:
    return np.asarray(np.clip(np.rint(image * 255.0), 0, 255), np.uint8)


def _tight_box(mask: Float) -> tuple[float, float, float, float]:
    """xyxy pixel box of the pixels at least half covered; zeros when there are none."""
    cols = np.flatnonzero((mask >= 0.5).any(axis=0))
    rows = np.flatnonzero((mask >= 0.5).any(axis=1))
    if not len(cols) or not len(rows):
        return (0.0, 0.0, 0.0, 0.0)
    return (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))


def make_scene(
    seed: int, index: int, size: int = 160
) -> tuple[NDArray[np.uint8], NDArray[np.float64], NDArray[np.int64]]:
    """RGB image, xyxy boxes and class labels of scene ``index`` of the series ``seed``."""
    scene = render_scene(seed, index, size)
    return scene.image, scene.boxes, scene.labels


def write_dataset(root: Path, n: int, seed: int, size: int = 160) -> Path:
    """Write scenes ``0..n-1`` of series ``seed`` as a YOLO dataset under ``root``.

    ``root/images/NNNNN.png`` (lossless, so the pixels are exactly the scene's),
    ``root/labels/NNNNN.txt`` (``class cx cy w h``, normalised) and ``root/data.yaml``
    (``val: images`` and the class names). Returns ``root``.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    width = max(5, len(str(n - 1)))
    for i in range(n):
        image, boxes, labels = make_scene(seed, i, size)
        stem = f"{i:0{width}d}"
        ok = cv2.imwrite(str(root / "images" / f"{stem}.png"), image[:, :, ::-1])
        if not ok:
            raise OSError(f"cannot write {root / 'images' / f'{stem}.png'}")
        lines = [
            f"{c} {(x1 + x2) / 2 / size:.6f} {(y1 + y2) / 2 / size:.6f} "
            f"{(x2 - x1) / size:.6f} {(y2 - y1) / size:.6f}"
            for (x1, y1, x2, y2), c in zip(boxes.tolist(), labels.tolist(), strict=True)
        ]
        (root / "labels" / f"{stem}.txt").write_text("".join(f"{s}\n" for s in lines))
    names = "\n".join(f"  {i}: {name}" for i, name in enumerate(CLASS_NAMES))
    (root / "data.yaml").write_text(
        "# brittle demo scenes: brittle.demo.scenes.write_dataset"
        f"(n={n}, seed={seed}, size={size})\nval: images\nnc: {len(CLASS_NAMES)}\n"
        f"names:\n{names}\n"
    )
    return root

"""Occluders and lens defects: things between the scene and the sensor.

``cutout`` hides parts of the scene (an occluding object, a sticker, random erasing);
``dirty_lens`` puts out-of-focus dirt on the front glass; ``vignetting``,
``chromatic_aberration`` and ``lens_distortion`` are what cheap or wide-angle lenses do. Only
``lens_distortion`` moves pixels, and it moves boxes with them through the same closed-form
map (:meth:`LensDistortion.map_points`).

Sizes and shifts are fractions of the short side (or of the half-diagonal, for the radial
lens effects), so a 640 and a 1280 image at the same severity look alike.

>>> import numpy as np
>>> p = LensDistortion()
>>> params = p.params(3, 480, 640, np.random.default_rng(0))
>>> p.map_points(np.array([[320.0, 240.0]]), params, 480, 640).tolist()  # the centre stays
[[320.0, 240.0]]
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, ClassVar

import cv2
import numpy as np
from numpy.typing import NDArray

from brittle.perturbations import register
from brittle.perturbations.base import Image, Params, Perturbation, as_image, short_side

__all__ = [
    "ChromaticAberration",
    "Cutout",
    "DirtyLens",
    "LensDistortion",
    "Vignetting",
]


@register
class Cutout(Perturbation):
    """Occluded object parts: opaque rectangles of a random flat colour or of random noise
    (random erasing, Zhong et al. 2020), standing in for poles, signs, people, stickers.

    ``n`` rectangles of equal area, aspect ratio (w/h) log-uniform in 1/2-2, placed at random
    without overlapping each other where possible, together covering the given fraction of
    the image. Each is a flat colour (probability 1/2) or per-pixel uniform noise.

    ===================  ==  ==  ===  ===  ===
    severity              1   2    3    4    5
    rectangles            1   2    3    4    5
    area covered (%)      3   6   10   15   21
    ===================  ==  ==  ===  ===  ===
    """

    name: ClassVar[str] = "cutout"
    family: ClassVar[str] = "occlusion"
    description: ClassVar[str] = "occluders: 1-5 random flat/noise rectangles covering 3-21%"

    COUNT: ClassVar[tuple[int, ...]] = (1, 2, 3, 4, 5)
    AREA: ClassVar[tuple[float, ...]] = (0.03, 0.06, 0.10, 0.15, 0.21)

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        n = self.COUNT[severity - 1]
        each = self.AREA[severity - 1] * height * width / n
        rects: list[list[int]] = []
        for _ in range(n):
            for _attempt in range(30):
                aspect = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
                rw = min(width, max(1, round(math.sqrt(each * aspect))))
                rh = min(height, max(1, round(each / rw)))
                x = int(rng.integers(0, width - rw + 1))
                y = int(rng.integers(0, height - rh + 1))
                free = all(
                    x >= a + c or a >= x + rw or y >= b + d or b >= y + rh for a, b, c, d in rects
                )
                if free:
                    break
            rects.append([x, y, rw, rh])
        noise = [bool(v) for v in rng.random(n) < 0.5]
        colours = rng.integers(0, 256, (n, 3)).tolist()
        return {"rects": rects, "noise": noise, "colours": colours}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        out = image.copy()
        for (x, y, w, h), noisy, colour in zip(
            params["rects"], params["noise"], params["colours"], strict=True
        ):
            if noisy:
                out[y : y + h, x : x + w] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            else:
                out[y : y + h, x : x + w] = np.asarray(colour, np.uint8)
        return out


def _soft_blur(x: NDArray[np.float32], sigma: float) -> NDArray[np.float32]:
    k = 2 * int(3 * sigma + 0.5) + 1
    return np.asarray(cv2.GaussianBlur(x, (k, k), sigma), dtype=np.float32)


@register
class DirtyLens(Perturbation):
    """Dirt, oil and water marks on the front glass: out-of-focus blotches that dim, tint
    and smear what is behind them, plus the veiling haze their scattered light adds.

    Each blotch is a soft ellipse (radius a fraction of the short side, edge blur half its
    radius, since dirt that close to the lens is far out of focus). Under it the scene is
    smeared (a copy blurred by 2% of the short side) and attenuated by ``opacity`` (a little
    less for red, more for blue, so dirt looks brownish); over the whole frame a veil of
    scattered light mixes in the mean brightness.

    =========================  =========  =========  =========  =========  =========
    severity                           1          2          3          4          5
    blotches                           3          5          7          9         12
    radius (% of short side)         3-7        4-9       5-11       6-13       7-15
    opacity (peak)               0.3-0.5   0.35-0.6   0.4-0.65   0.45-0.7  0.5-0.75
    veil                            0.02       0.04       0.06       0.08       0.10
    =========================  =========  =========  =========  =========  =========
    """

    name: ClassVar[str] = "dirty_lens"
    family: ClassVar[str] = "occlusion"
    description: ClassVar[str] = "dirt/oil on the lens: 3-12 dark blurred blotches + haze veil"

    COUNT: ClassVar[tuple[int, ...]] = (3, 5, 7, 9, 12)
    RADIUS: ClassVar[tuple[tuple[float, float], ...]] = (
        (0.03, 0.07), (0.04, 0.09), (0.05, 0.11), (0.06, 0.13), (0.07, 0.15),
    )  # fmt: skip
    OPACITY: ClassVar[tuple[tuple[float, float], ...]] = (
        (0.3, 0.5), (0.35, 0.6), (0.4, 0.65), (0.45, 0.7), (0.5, 0.75),
    )  # fmt: skip
    VEIL: ClassVar[tuple[float, ...]] = (0.02, 0.04, 0.06, 0.08, 0.10)
    # Relative absorption of dirt per channel (RGB): blue most, so blotches look brownish.
    ABSORB: ClassVar[tuple[float, float, float]] = (0.85, 1.0, 1.2)
    # The blotch mask and the blurred copy are made at this short side, then resized up:
    # both are smooth, and it keeps the cost independent of the image size.
    WORK_SIDE: ClassVar[int] = 160

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        n = self.COUNT[severity - 1]
        rlo, rhi = self.RADIUS[severity - 1]
        olo, ohi = self.OPACITY[severity - 1]
        side = short_side(height, width)
        spots = []
        for _ in range(n):
            r = float(rng.uniform(rlo, rhi)) * side
            spots.append(
                {
                    "x": float(rng.uniform(0, width)),
                    "y": float(rng.uniform(0, height)),
                    "rx": r,
                    "ry": r * float(rng.uniform(0.6, 1.0)),
                    "angle": float(rng.uniform(0, 180)),
                    "opacity": float(rng.uniform(olo, ohi)),
                }
            )
        return {"spots": spots, "veil": self.VEIL[severity - 1]}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        h, w = image.shape[:2]
        f = min(1.0, self.WORK_SIDE / short_side(h, w))
        sw, sh = max(1, round(w * f)), max(1, round(h * f))
        cover = np.zeros((sh, sw), np.float32)  # where the smeared copy shows through
        absorb = np.zeros((sh, sw), np.float32)  # how much light the dirt stops
        for s in params["spots"]:
            one = np.zeros_like(cover)
            centre = (round(s["x"] * f * 16), round(s["y"] * f * 16))
            axes = (max(1, round(s["rx"] * f * 16)), max(1, round(s["ry"] * f * 16)))
            cv2.ellipse(one, centre, axes, s["angle"], 0, 360, 1.0, -1, cv2.LINE_AA, shift=4)
            one = _soft_blur(one, max(0.5, 0.5 * s["rx"] * f))
            cover = np.maximum(cover, one)
            absorb = np.maximum(absorb, one * np.float32(s["opacity"]))
        small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32)
        behind = _soft_blur(small, max(0.5, 0.02 * short_side(sh, sw)))
        # out = ((1 - c) img + c behind) t (1 - veil) + veil mean, with c the cover and t the
        # transmission, is img * A + B with A and B smooth: build them small, resize them up.
        veil = np.float32(params["veil"])
        trans = 1.0 - absorb[..., None] * np.asarray(self.ABSORB, np.float32)
        c = cover[..., None]
        gain = (1.0 - c) * trans * (1.0 - veil)
        offset = c * behind * trans * (1.0 - veil) + veil * np.float32(small.mean())
        gain_up = cv2.resize(gain, (w, h), interpolation=cv2.INTER_LINEAR)
        offset_up = cv2.resize(offset, (w, h), interpolation=cv2.INTER_LINEAR)
        out = cv2.multiply(image, gain_up, dtype=cv2.CV_32F)
        return as_image(cv2.add(out, offset_up, dtype=cv2.CV_8U))


def _radius(height: int, width: int) -> NDArray[np.float32]:
    """Distance of each pixel centre from the image centre, over the half-diagonal."""
    y = (np.arange(height, dtype=np.float32) + 0.5 - height / 2)[:, None]
    x = (np.arange(width, dtype=np.float32) + 0.5 - width / 2)[None, :]
    return np.asarray(np.sqrt(x * x + y * y) / np.float32(math.hypot(width, height) / 2))


@lru_cache(maxsize=16)
def _vignette_gain(height: int, width: int, strength: float) -> NDArray[np.float32]:
    # cos^4 law: illumination at field angle t falls as cos(t)^4 = 1 / (1 + tan(t)^2)^2;
    # the lens's tan(t) at the corner is set so the corner keeps 1 - strength.
    tan2 = (1.0 - strength) ** -0.5 - 1.0
    r = _radius(height, width)
    g = 1.0 / (1.0 + np.float32(tan2) * r * r) ** 2
    gain = np.ascontiguousarray(np.repeat(g[..., None], 3, axis=2), dtype=np.float32)
    gain.flags.writeable = False
    return gain


@register
class Vignetting(Perturbation):
    """Radial fall-off of brightness towards the corners (wide-angle lenses, lens hoods,
    small sensors), following the cos^4 law of natural vignetting.

    The gain is ``1 / (1 + t^2 r^2)^2`` with ``r`` the distance from the centre over the
    half-diagonal, ``t`` set so the corners keep ``1 - strength`` of their value; applied to
    the encoded (gamma) values, centred, circular, deterministic.

    =====================  ====  ====  ====  ====  ====
    severity                  1     2     3     4     5
    corner darkening (%)     20    35    50    65    80
    =====================  ====  ====  ====  ====  ====
    """

    name: ClassVar[str] = "vignetting"
    family: ClassVar[str] = "occlusion"
    description: ClassVar[str] = "radial darkening (cos^4 law): corners 20-80% darker"
    random: ClassVar[bool] = False

    STRENGTH: ClassVar[tuple[float, ...]] = (0.2, 0.35, 0.5, 0.65, 0.8)

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        return {"strength": self.STRENGTH[severity - 1]}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        h, w = image.shape[:2]
        gain = _vignette_gain(h, w, float(params["strength"]))
        return as_image(cv2.multiply(image, gain, dtype=cv2.CV_8U))


@register
class ChromaticAberration(Perturbation):
    """Lateral chromatic aberration: the lens magnifies red and blue slightly differently
    from green, so edges grow red/cyan and blue/yellow fringes that widen towards the
    corners (cheap and wide-angle lenses).

    Red is magnified by ``1 + d`` and blue by ``1 - d`` about the image centre, green is
    untouched; ``d`` is the shift at the corners as a fraction of the half-diagonal, so the
    centre is unaffected and the colour planes part by ``2 d`` at the corners. No axial
    (purple) fringing.

    ================================  =====  =====  =====  =====  =====
    severity                              1      2      3      4      5
    d, corner shift (% half-diag.)     0.15    0.3    0.5   0.75    1.1
    R-B separation px, corners, 640     1.4    2.7    4.5    6.8    9.9
    ================================  =====  =====  =====  =====  =====
    """

    name: ClassVar[str] = "chromatic_aberration"
    family: ClassVar[str] = "occlusion"
    description: ClassVar[str] = "lateral CA: red/blue magnified +-0.15-1.1% about the centre"
    random: ClassVar[bool] = False

    SHIFT: ClassVar[tuple[float, ...]] = (0.0015, 0.003, 0.005, 0.0075, 0.011)

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        d = self.SHIFT[severity - 1]
        return {"red": 1.0 + d, "blue": 1.0 - d}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        h, w = image.shape[:2]
        # OpenCV puts pixel centres on integers: the image centre is ((w-1)/2, (h-1)/2).
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        out = image.copy()
        for channel, key in ((0, "red"), (2, "blue")):
            k = float(params[key])
            m = np.array([[k, 0.0, cx * (1 - k)], [0.0, k, cy * (1 - k)]])
            out[..., channel] = cv2.warpAffine(
                np.ascontiguousarray(image[..., channel]),
                m,
                (w, h),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REFLECT_101,
            )
        return out


_RADIAL_TABLE = 4096


@lru_cache(maxsize=8)
def _distortion_maps(height: int, width: int, k1: float) -> tuple[Any, Any]:
    """Fixed-point remap tables for barrel distortion ``k1`` (output pixel -> source)."""
    rn = math.hypot(width, height) / 2
    s = 1.0 / (1.0 + k1)
    # The inverse radial map, ru / rd as a function of rd^2 over [0, 1] (the frame), by
    # Newton on s * ru * (1 + k1 ru^2) = rd, which increases on [0, 1] when k1 > -1/3.
    rd = np.sqrt(np.linspace(0.0, 1.0, _RADIAL_TABLE))
    ru = rd.copy()
    for _ in range(12):
        f = s * ru * (1.0 + k1 * ru * ru) - rd
        ru = np.clip(ru - f / (s * (1.0 + 3.0 * k1 * ru * ru)), 0.0, None)
    ratio = np.where(rd > 0, ru / np.where(rd > 0, rd, 1.0), 1.0 / s)
    table = ratio.astype(np.float32)[None, :]
    y = ((np.arange(height, dtype=np.float32) + 0.5 - height / 2) / np.float32(rn))[:, None]
    x = ((np.arange(width, dtype=np.float32) + 0.5 - width / 2) / np.float32(rn))[None, :]
    pos = (x * x + y * y) * np.float32(_RADIAL_TABLE - 1)
    # Per-pixel lookup with linear interpolation: cv2.remap on the one-row table is a fast
    # 1-D interp (np.interp costs ~5x more, and this runs once per image size).
    per_pixel = cv2.remap(
        table, pos, np.zeros_like(pos), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    scale = per_pixel * np.float32(rn)
    # Source in box coordinates, shifted to OpenCV's pixel-centre convention.
    mx = np.float32(width / 2 - 0.5) + x * scale
    my = np.float32(height / 2 - 0.5) + y * scale
    return cv2.convertMaps(mx, my, cv2.CV_16SC2)


@register
class LensDistortion(Perturbation):
    """Barrel distortion of wide-angle and surveillance lenses: straight lines bow outwards,
    objects near the edges are squeezed. Pixels move; boxes move with them.

    Brown-Conrady radial model on ``u``, the offset from the image centre over the
    half-diagonal: a clean point ``u`` lands at ``s * u * (1 + k1 |u|^2)`` with
    ``s = 1 / (1 + k1)``, which keeps the corners in the corners so the frame stays full
    (the centre is magnified by ``s``; content near the edge midpoints leaves the frame).
    :meth:`map_points` is this closed form; the pixels are resampled (bilinear) through its
    inverse, solved by Newton's method on a fine radial table (consistent to 0.03 px, the
    resolution of OpenCV's fixed-point maps).

    ========  =====  =====  =====  =====  =====
    severity      1      2      3      4      5
    k1        -0.04  -0.08  -0.13  -0.19  -0.26
    ========  =====  =====  =====  =====  =====
    """

    name: ClassVar[str] = "lens_distortion"
    family: ClassVar[str] = "occlusion"
    description: ClassVar[str] = "barrel distortion (k1 -0.04 to -0.26); boxes follow"
    geometric: ClassVar[bool] = True
    random: ClassVar[bool] = False

    K1: ClassVar[tuple[float, ...]] = (-0.04, -0.08, -0.13, -0.19, -0.26)

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        return {"k1": self.K1[severity - 1]}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        h, w = image.shape[:2]
        m1, m2 = _distortion_maps(h, w, float(params["k1"]))
        out = cv2.remap(
            image, m1, m2, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        return as_image(out)

    def map_points(
        self, points: NDArray[np.float64], params: Params, height: int, width: int
    ) -> NDArray[np.float64]:
        k1 = float(params["k1"])
        rn = math.hypot(width, height) / 2
        c = np.array([width / 2, height / 2])
        u = (np.asarray(points, np.float64).reshape(-1, 2) - c) / rn
        r2 = (u * u).sum(axis=1, keepdims=True)
        return np.asarray(c + rn * u * (1.0 + k1 * r2) / (1.0 + k1), dtype=np.float64)

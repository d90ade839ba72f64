"""Light: exposure, contrast and colour.

brightness and contrast are ImageNet-C common corruptions and saturate a validation one
(Hendrycks & Dietterich 2019), with the published constants (but for saturate's severity
3, raised so that the effect grows with every severity). The others model what
cameras get wrong about light: night-time underexposure with sensor noise, a wrong tone
curve, hue and white-balance errors, a monochrome mode, and blown highlights.

Tone and colour changes that act per channel are 256-entry lookup tables; exposure is
applied in linear light (sRGB decoded, changed, re-encoded), as a sensor would see it.
"""

from __future__ import annotations

from functools import lru_cache
from statistics import NormalDist
from typing import Any, ClassVar

import cv2
import numpy as np
from numpy.typing import NDArray

from brittle.perturbations import register
from brittle.perturbations.base import Params, Perturbation, as_image, short_side
from brittle.perturbations.noise import lookup16

__all__ = [
    "Brightness",
    "ColorTemperature",
    "Contrast",
    "Gamma",
    "Grayscale",
    "HueShift",
    "LowLight",
    "Overexposure",
    "Saturate",
]

Image = NDArray[np.uint8]
F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
#: What OpenCV hands back (its stubs type results loosely).
Arr = NDArray[Any]

_LEVELS = np.arange(256, dtype=np.float64) / 255


def _srgb_decode(v: F64) -> F64:
    out: F64 = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    return out


def _srgb_encode(v: F64) -> F64:
    v = np.clip(v, 0.0, 1.0)
    out: F64 = np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)
    return out


_LINEAR = _srgb_decode(_LEVELS)
#: 256 quantiles of N(0, 1): uniform bytes through this table are Gaussian noise at a
#: tenth of the cost of ``standard_normal`` (tails cut at 2.9 sigma).
_NORMAL = np.array([NormalDist().inv_cdf((i + 0.5) / 256) for i in range(256)])


def _lut3(tables: F64) -> Image:
    """A (3, 256) table of values in [0, 1] as an OpenCV per-channel uint8 LUT."""
    t = np.clip(np.round(np.asarray(tables) * 255), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(t.T.reshape(256, 1, 3))


def _apply_lut(image: Image, lut: Image) -> Image:
    return as_image(cv2.LUT(image, lut))


def _vmax_vmin(image: Image) -> tuple[Arr, Arr]:
    """Per-pixel max (HSV value) and min of the three channels."""
    r, g, b = cv2.split(image)
    return cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b)


# --------------------------------------------------------------------------- ImageNet-C


_BRIGHTNESS = (0.1, 0.2, 0.3, 0.4, 0.5)


@register
class Brightness(Perturbation):
    """ImageNet-C brightness: HSV value raised by ``shift`` (clipped at 1), hue and
    saturation kept; channels scale by ``V' / V``.

    ========  ===  ===  ===  ===  ===
    severity    1    2    3    4    5
    ========  ===  ===  ===  ===  ===
    shift     0.1  0.2  0.3  0.4  0.5
    ========  ===  ===  ===  ===  ===
    """

    name: ClassVar[str] = "brightness"
    family: ClassVar[str] = "light"
    description: ClassVar[str] = "brightness: HSV value + 0.1-0.5 of full scale (ImageNet-C)"
    random: ClassVar[bool] = False
    imagenet_c: ClassVar[str | None] = "common"

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        return {"shift": _BRIGHTNESS[severity - 1]}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        c = float(params["shift"])
        v, _ = _vmax_vmin(image)
        new_v = np.minimum(_LEVELS + c, 1.0)
        ratio = np.ones(256, np.float32)
        ratio[1:] = new_v[1:] / _LEVELS[1:]
        f = cv2.LUT(v, ratio.reshape(256, 1))
        out = cv2.multiply(image, cv2.merge([f, f, f]), dtype=cv2.CV_8U)
        # Black pixels have no hue: HSV maps them to grey at the new value.
        black = np.zeros(256, np.uint8)
        black[0] = round(c * 255)
        lift = cv2.LUT(v, black)
        return as_image(cv2.add(out, cv2.merge([lift, lift, lift])))


_CONTRAST = (0.4, 0.3, 0.2, 0.1, 0.05)


@register
class Contrast(Perturbation):
    """ImageNet-C contrast: each channel pulled towards its image mean,
    ``x' = mean + factor * (x - mean)``.

    ========  ===  ===  ===  ===  ====
    severity    1    2    3    4     5
    ========  ===  ===  ===  ===  ====
    factor    0.4  0.3  0.2  0.1  0.05
    ========  ===  ===  ===  ===  ====
    """

    name: ClassVar[str] = "contrast"
    family: ClassVar[str] = "light"
    description: ClassVar[str] = (
        "low contrast: channels pulled to their mean, factor 0.4-0.05 (ImageNet-C)"
    )
    random: ClassVar[bool] = False
    imagenet_c: ClassVar[str | None] = "common"

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        return {"factor": _CONTRAST[severity - 1]}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        c = float(params["factor"])
        mean = np.array(cv2.mean(image)[:3])
        m = np.zeros((3, 4), np.float64)
        m[:, :3] = np.eye(3) * c
        m[:, 3] = (1 - c) * mean
        return as_image(cv2.transform(image, m))


#: (scale, offset). ImageNet-C's severity 3 scale is 2: doubling the saturation then moves
#: luma no more than cutting it to 0.1 (severity 2) does (mean 1 - SSIM over css-valid at
#: 320 px: 0.0402 against 0.0408), so brittle uses 2.5 (0.066).
_SATURATE = ((0.3, 0.0), (0.1, 0.0), (2.5, 0.0), (5.0, 0.1), (20.0, 0.2))


@register
class Saturate(Perturbation):
    """ImageNet-C saturate: HSV saturation mapped to ``clip(S * scale + offset, 0, 1)``,
    hue and value kept. Severities 1-2 wash the colours out, 3-5 oversaturate them.
    Severity 3's scale is 2.5 (ImageNet-C: 2, which changes an image no more than
    severity 2 does).

    Grey pixels (S = 0) have no hue; ImageNet-C's conversion then paints the added
    saturation red, brittle keeps them grey.

    ========  ===  ===  ===  ===  ===
    severity    1    2    3    4    5
    ========  ===  ===  ===  ===  ===
    scale     0.3  0.1  2.5  5    20
    offset    0    0    0    0.1  0.2
    ========  ===  ===  ===  ===  ===
    """

    name: ClassVar[str] = "saturate"
    family: ClassVar[str] = "light"
    description: ClassVar[str] = (
        "saturation change: HSV S x0.3, x0.1 (washed out) to x2.5-x20 (vivid) (ImageNet-C)"
    )
    random: ClassVar[bool] = False
    imagenet_c: ClassVar[str | None] = "validation"

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        scale, offset = _SATURATE[severity - 1]
        return {"scale": scale, "offset": offset}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        a, b = float(params["scale"]), float(params["offset"])
        v, n = _vmax_vmin(image)
        # x' = V - (S'/S) (V - x) keeps hue and value; S'/S depends on (V, min) only, so
        # it is one lookup in a 256 x 256 table. Grey pixels (V == min) are left alone.
        k = _saturation_table(a, b)[(v.astype(np.uint16) << 8) | n]
        v3 = cv2.merge([v, v, v])
        drop = cv2.multiply(cv2.subtract(v3, image), cv2.merge([k, k, k]), dtype=cv2.CV_32F)
        return as_image(cv2.subtract(v3, drop, dtype=cv2.CV_8U))


def _saturation_table(scale: float, offset: float) -> F32:
    """(V << 8 | min) -> S'/S, with S = (V - min) / V and S' = clip(S * scale + offset)."""
    v = np.arange(256, dtype=np.float64)[:, None]
    n = np.arange(256, dtype=np.float64)[None, :]
    s = np.where(v > n, (v - n) / np.maximum(v, 1), 0.0)
    s_new = np.clip(s * scale + offset, 0.0, 1.0)
    k = np.where(s > 0, s_new / np.where(s > 0, s, 1.0), 1.0)
    return k.astype(np.float32).ravel()


# --------------------------------------------------------------------------- tone


#: Exponents darkening (> 1) and brightening (< 1) the mid-tones. Brightening moves the
#: image less for the same exponent (SSIM 1 - effect about half), so its exponents reach
#: further: the two directions then degrade an image about equally at each severity.
_GAMMA_DARK = (1.2, 1.38, 1.58, 1.8, 2.0)
_GAMMA_BRIGHT = (1 / 1.22, 1 / 1.5, 1 / 1.82, 1 / 2.25, 1 / 2.8)


@register
class Gamma(Perturbation):
    """Wrong tone curve: ``x' = x ** gamma`` on [0, 1] values, darkening or brightening
    (washing out) the mid-tones with black and white fixed; the direction is drawn per
    image. At gamma = 2.2 (or 1 / 2.2) this is linear data shown as sRGB (or sRGB decoded
    twice).

    ==============  ====  ====  ====  ====  ====
    severity           1     2     3     4     5
    ==============  ====  ====  ====  ====  ====
    gamma (darker)  1.2   1.38  1.58  1.8   2.0
    1 / gamma       1.22  1.5   1.82  2.25  2.8
    (brighter)
    ==============  ====  ====  ====  ====  ====
    """

    name: ClassVar[str] = "gamma"
    family: ClassVar[str] = "light"
    description: ClassVar[str] = (
        "tone-curve error: x ** gamma, gamma 1.2-2.0 (darker) or 1/1.22-1/2.8 (washed out)"
    )

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        dark = bool(rng.random() < 0.5)
        return {"gamma": (_GAMMA_DARK if dark else _GAMMA_BRIGHT)[severity - 1]}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        t = _LEVELS ** float(params["gamma"])
        return _apply_lut(image, _lut3(np.stack([t, t, t])))


_HUE = (5.0, 10.0, 16.0, 24.0, 34.0)


@register
class HueShift(Perturbation):
    """Hue rotation: HSV hue turned by ``degrees`` (sign drawn per image), saturation and
    value kept, as from a faulty colour pipeline or a mis-set tint.

    ========  ===  ===  ===  ===  ===
    severity    1    2    3    4    5
    ========  ===  ===  ===  ===  ===
    degrees     5   10   16   24   34
    ========  ===  ===  ===  ===  ===
    """

    name: ClassVar[str] = "hue_shift"
    family: ClassVar[str] = "light"
    description: ClassVar[str] = "hue rotation by 5-34 degrees (either way), S and V kept"

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        d = _HUE[severity - 1]
        return {"degrees": d if rng.random() < 0.5 else -d}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        x = image.astype(np.float32)
        x *= 1 / 255
        hsv = np.asarray(cv2.cvtColor(x, cv2.COLOR_RGB2HSV), np.float32)
        # OpenCV's float HSV -> RGB wraps hue, so no modulo is needed.
        hsv[..., 0] += float(params["degrees"])
        rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        return as_image(cv2.convertScaleAbs(rgb, alpha=255.0))


# --------------------------------------------------------------------------- white balance

_D_REF = 6500.0
#: linear sRGB from CIE XYZ (D65).
_XYZ_TO_RGB = np.array(
    [[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]]
)


def _planck_rgb(kelvin: float) -> F64:
    """Linear sRGB of a black body (Kim et al. 2002 cubic fit to the Planckian locus,
    valid 1667-25000 K)."""
    t = min(max(kelvin, 1667.0), 25000.0)
    if t <= 4000:
        x = -0.2661239e9 / t**3 - 0.2343589e6 / t**2 + 0.8776956e3 / t + 0.179910
    else:
        x = -3.0258469e9 / t**3 + 2.1070379e6 / t**2 + 0.2226347e3 / t + 0.240390
    if t <= 2222:
        y = -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683
    elif t <= 4000:
        y = -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867
    else:
        y = 3.0817580 * x**3 - 5.87338670 * x**2 + 3.75112997 * x - 0.37001483
    xyz = np.array([x / y, 1.0, (1 - x - y) / y])
    out: F64 = _XYZ_TO_RGB @ xyz
    return out


def wb_gains(kelvin: float) -> list[float]:
    """Channel gains (green = 1) of a scene lit at ``kelvin`` seen with 6500 K white balance."""
    g = _planck_rgb(kelvin) / _planck_rgb(_D_REF)
    return [float(v) for v in g / g[1]]


def _gain_curve(gain: float) -> F64:
    """Linear light times ``gain``; gains above 1 roll off to full scale
    (``g x / (1 + (g - 1) x)``) so white stays white, as a camera's highlight handling
    keeps it, instead of clipping to a colour."""
    x = _LINEAR
    out: F64 = x * gain if gain <= 1 else x * gain / (1 + (gain - 1) * x)
    return out


_MIRED = (70.0, 100.0, 135.0, 175.0, 220.0)


@register
class ColorTemperature(Perturbation):
    """White-balance error of ``mired`` micro-reciprocal degrees, warm or cool (drawn per
    image). Warm: a scene lit at ``K`` (lower than daylight) shot with a 6500 K
    (daylight) white balance; cool: the reverse, daylight shot with a ``K`` preset. The
    channel gains are the ratio of the two black-body colours in linear sRGB (green
    fixed; cool = 1 / warm), applied in linear light with highlights rolling off to white.

    ========  ====  ====  ====  ====  ====
    severity     1     2     3     4     5
    ========  ====  ====  ====  ====  ====
    mired       70   100   135   175   220
    K         4470  3940  3460  3040  2670
    ========  ====  ====  ====  ====  ====
    """

    name: ClassVar[str] = "color_temperature"
    family: ClassVar[str] = "light"
    description: ClassVar[str] = (
        "white-balance error: 70-220 mired warm (orange) or cool (blue) cast"
    )

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        shift = _MIRED[severity - 1]
        kelvin = 1e6 / (1e6 / _D_REF + shift)
        warm = bool(rng.random() < 0.5)
        gains = wb_gains(kelvin)
        if not warm:
            gains = [1 / g for g in gains]
        return {"mired": shift, "kelvin": round(kelvin, 1), "direction": "warm" if warm else "cool",
                "gains": gains}  # fmt: skip

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        curves = np.stack([_gain_curve(float(g)) for g in params["gains"]])
        return _apply_lut(image, _lut3(_srgb_encode(curves)))


_GRAY = (0.4, 0.55, 0.7, 0.85, 1.0)


@register
class Grayscale(Perturbation):
    """Colour loss: a blend towards the channel mean ``(R + G + B) / 3``, as a monochrome
    (IR / night) camera mode or a desaturating encoder gives, by ``fraction``.

    ========  ===  ====  ===  ====  ===
    severity    1     2    3     4    5
    ========  ===  ====  ===  ====  ===
    fraction  0.4  0.55  0.7  0.85  1.0
    ========  ===  ====  ===  ====  ===
    """

    name: ClassVar[str] = "grayscale"
    family: ClassVar[str] = "light"
    description: ClassVar[str] = "colour loss: blend 40-100% towards the channel mean (mono mode)"
    random: ClassVar[bool] = False

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        return {"fraction": _GRAY[severity - 1]}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        f = float(params["fraction"])
        m = np.eye(3) * (1 - f) + f / 3
        return as_image(cv2.transform(image, m))


# --------------------------------------------------------------------------- exposure

#  brightness: output level of white after the camera's auto gain (linear light); photons:
#  photo-electrons a white pixel collected (shot noise); read: read noise in electrons;
#  cast: how far towards the drawn colour cast (1 = full).
_LOW_LIGHT = (
    {"brightness": 0.6, "photons": 600.0, "read": 2.0, "cast": 0.25},
    {"brightness": 0.45, "photons": 220.0, "read": 2.0, "cast": 0.45},
    {"brightness": 0.33, "photons": 90.0, "read": 2.0, "cast": 0.65},
    {"brightness": 0.24, "photons": 40.0, "read": 2.0, "cast": 0.85},
    {"brightness": 0.17, "photons": 18.0, "read": 2.0, "cast": 1.0},
)
#: Night casts (RGB gains): sodium street light, and the green-blue of cheap sensors/LEDs.
_CASTS = {"sodium": (1.0, 0.88, 0.62), "cool": (0.82, 1.0, 1.05)}


@register
class LowLight(Perturbation):
    """Night shot on a cheap camera: little light, so few photo-electrons (``photons`` for
    a white pixel) and the auto gain lifting white only to ``brightness`` (linear light).
    Each channel gets Poisson shot noise (Gaussian approximation, variance = electrons)
    plus ``read`` electrons of read noise, independently (colour noise), and a colour cast
    (sodium-lamp orange or cool green-blue, drawn per image) applied ``cast`` of the way.

    ==========  ====  ====  ====  ====  ====
    severity       1     2     3     4     5
    ==========  ====  ====  ====  ====  ====
    brightness  0.6   0.45  0.33  0.24  0.17
    photons     600   220   90    40    18
    read        2     2     2     2     2
    cast        0.25  0.45  0.65  0.85  1.0
    ==========  ====  ====  ====  ====  ====
    """

    name: ClassVar[str] = "low_light"
    family: ClassVar[str] = "light"
    description: ClassVar[str] = (
        "night shot: dark (white at 0.6-0.17), shot + read noise of 600-18 e-, colour cast"
    )

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        cast = "sodium" if rng.random() < 0.5 else "cool"
        return {**_LOW_LIGHT[severity - 1], "tint": cast}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        table = _night_table(
            float(params["brightness"]), float(params["photons"]), float(params["read"]),
            float(params["cast"]), str(params["tint"]),
        )  # fmt: skip
        # The output depends only on (channel, input level, noise quantile): one lookup
        # per value in a 3 x 256 x 256 table replaces float noise arithmetic.
        idx = np.left_shift(image, 8, dtype=np.uint16)
        idx |= rng.integers(0, 256, image.shape, dtype=np.uint8)
        # One 64 KB table per channel, looked up on that channel's contiguous plane with a
        # 16-bit index: about twice as fast as one np.take in the whole table, which first
        # copies its 32-bit index into a 10 MB intp array.
        planes = cv2.split(idx)
        out = [
            lookup16(table[c << 16 : (c + 1) << 16], np.asarray(planes[c], np.uint16))
            for c in range(3)
        ]
        return as_image(cv2.merge(out))


@lru_cache(maxsize=32)
def _night_table(brightness: float, photons: float, read: float, cast: float, tint: str) -> Image:
    """(channel << 16 | level << 8 | noise byte) -> output level for :class:`LowLight`."""
    gains = 1 + cast * (np.asarray(_CASTS[tint]) - 1)
    electrons = _LINEAR[None, :] * (photons * gains)[:, None]  # (3, 256) expected count
    sigma = np.sqrt(electrons + read**2)
    z = _NORMAL
    lin = (electrons[:, :, None] + sigma[:, :, None] * z[None, None, :]) * (brightness / photons)
    return np.ascontiguousarray((_srgb_encode(lin) * 255).round().astype(np.uint8).ravel())


_OVER = (
    {"ev": 0.4, "bloom": 0.1, "radius": 0.01},
    {"ev": 0.8, "bloom": 0.18, "radius": 0.015},
    {"ev": 1.25, "bloom": 0.27, "radius": 0.02},
    {"ev": 1.75, "bloom": 0.36, "radius": 0.025},
    {"ev": 2.3, "bloom": 0.45, "radius": 0.03},
)
_BLOOM_WORK = 160


@register
class Overexposure(Perturbation):
    """Blown highlights: linear light multiplied by ``2 ** ev`` and clipped at full scale,
    with bloom: the clipped excess light blurred (sigma ``radius`` of the short side) and
    added back at ``bloom`` strength.

    ========  ====  =====  ====  =====  ====
    severity     1      2     3      4     5
    ========  ====  =====  ====  =====  ====
    ev         0.4   0.8   1.25   1.75   2.3
    bloom      0.1   0.18  0.27   0.36   0.45
    radius     0.01  0.015 0.02   0.025  0.03
    ========  ====  =====  ====  =====  ====
    """

    name: ClassVar[str] = "overexposure"
    family: ClassVar[str] = "light"
    description: ClassVar[str] = (
        "overexposure: +0.4 to +2.3 EV in linear light, clipped, with highlight bloom"
    )
    random: ClassVar[bool] = False

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        return dict(_OVER[severity - 1])

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        h, w = image.shape[:2]
        gain = 2.0 ** float(params["ev"])
        lin = _LINEAR * gain
        exposed = _apply_lut(image, _lut3(np.stack([_srgb_encode(lin)] * 3)))
        # Bloom is smooth: build it from the excess light on a small copy.
        k = _BLOOM_WORK / short_side(h, w)
        sh, sw = max(1, round(h * k)), max(1, round(w * k))
        small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
        excess = np.minimum(np.maximum(lin - 1.0, 0.0) / max(gain - 1.0, 1e-6), 1.0)
        glow = cv2.LUT(small, np.repeat(excess.astype(np.float32), 3).reshape(256, 1, 3))
        sigma = float(params["radius"]) * _BLOOM_WORK
        glow = cv2.GaussianBlur(glow, (0, 0), sigma)
        glow8 = cv2.convertScaleAbs(glow, alpha=255.0 * float(params["bloom"]))
        glow8 = cv2.resize(glow8, (w, h), interpolation=cv2.INTER_LINEAR)
        return as_image(cv2.add(exposed, glow8))

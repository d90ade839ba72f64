"""Noise: sensor and transmission noise.

The four ImageNet-C noises (Hendrycks & Dietterich 2019) keep their names and published
severity constants: ``gaussian_noise``, ``shot_noise`` and ``impulse_noise`` (common) and
``speckle_noise`` (validation). As in ImageNet-C and COCO-C they are independent per pixel
and per channel, with constants in units of full scale: the noise per pixel is the same at
any image size (so a large image shrunk for display, or for a model, looks less noisy than
a small one at the same severity). ``iso_noise`` (not in ImageNet-C) models what a camera at
high ISO really delivers: fine luminance grain plus blotchy colour noise, both with a grain
size relative to the short side.

Speed: drawing 1.2 M normal or Poisson variates with numpy takes 10-60 ms for one 640x640
image. Instead every noise here draws 16 random bits per value (``rng.bytes``, about 1 ms)
and maps them through a table of quantiles (inverse-CDF sampling): exact for impulse noise,
a normal quantised to 65 536 levels (tails cut at 4.17 sigma) for the Gaussian ones, and a
Poisson quantised to 4 096 levels for shot noise. The output is uint8 anyway, so the
quantisation is invisible.

>>> import numpy as np
>>> img = np.full((64, 64, 3), 128, np.uint8)
>>> out = GaussianNoise().apply(img, {"sigma": 0.08}, np.random.default_rng(0))
>>> 18 < float(out.std()) < 23
True
"""

from __future__ import annotations

import statistics
from functools import lru_cache
from typing import ClassVar, TypeVar

import cv2
import numpy as np
from numpy.typing import NDArray

from brittle.perturbations import register
from brittle.perturbations.base import Image, Params, Perturbation, level, short_side

__all__ = [
    "GaussianNoise",
    "ImpulseNoise",
    "IsoNoise",
    "ShotNoise",
    "SpeckleNoise",
    "grain_noise",
    "lookup16",
    "standard_normal",
]

_LEVELS = 65536
_T = TypeVar("_T", bound=np.generic)
# Shot noise indexes a (256, 4096) table with 12 of the 16 random bits: 1 MB per constant.
_SHOT_BITS = 12
#: Values per band where a table lookup works band by band (see ``ShotNoise.apply``).
_BAND = 1 << 17


def _uniform16(rng: np.random.Generator, shape: tuple[int, ...]) -> NDArray[np.uint16]:
    """Uniform integers 0..65535 of ``shape``: the fastest draw numpy offers.

    The values are those of ``rng.bytes(2 * n)`` read as little-endian uint16 (the byte
    order is fixed so the same generator gives the same values on every machine).
    ``Generator.bytes`` draws full-range uint32s and then copies them twice (to a bytes
    object, then a slice of it); where :func:`_bytes_are_uint32` confirms that, drawing the
    uint32s directly and viewing their halves gives the same values and leaves the generator
    in the same state, without the copies (0.2-0.3 ms less on a 640x640 image).
    """
    n = int(np.prod(shape))
    if _bytes_are_uint32():
        words = rng.integers(0, 1 << 32, size=(n + 1) // 2, dtype=np.uint32)
        return words.view(np.uint16)[:n].reshape(shape)
    return np.frombuffer(bytearray(rng.bytes(2 * n)), dtype="<u2").reshape(shape)


@lru_cache(maxsize=1)
def _bytes_are_uint32() -> bool:
    """Whether ``rng.bytes`` is little-endian full-range uint32 draws on this machine and
    numpy version: checked once (odd and even numbers of uint16s, starting from a half-used
    64-bit word), so a numpy that draws its bytes otherwise falls back to ``rng.bytes``."""
    if not np.little_endian:  # the uint16 halves of a uint32 would come out swapped
        return False
    for n_bytes in (6, 8, 2):
        a = np.random.Generator(np.random.PCG64(12345))
        b = np.random.Generator(np.random.PCG64(12345))
        for g in (a, b):
            g.integers(0, 1 << 32, size=1, dtype=np.uint32)  # leaves half a word buffered
        expect = a.bytes(n_bytes)
        got = b.integers(0, 1 << 32, size=(n_bytes + 3) // 4, dtype=np.uint32)
        if got.astype("<u4").tobytes()[:n_bytes] != expect:
            return False
        if a.bit_generator.state != b.bit_generator.state:
            return False
    return True


@lru_cache(maxsize=1)
def _normal_quantiles() -> NDArray[np.float64]:
    """Standard normal quantiles at the midpoints of 65 536 equal-probability bins."""
    inv = statistics.NormalDist().inv_cdf
    return np.array([inv((i + 0.5) / _LEVELS) for i in range(_LEVELS)], dtype=np.float64)


@lru_cache(maxsize=1)
def _normal_quantiles32() -> NDArray[np.float32]:
    return _normal_quantiles().astype(np.float32)


def standard_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> NDArray[np.float32]:
    """Standard normal variates by inverse-CDF lookup: several times faster than numpy's."""
    return lookup16(_normal_quantiles32(), _uniform16(rng, shape))


def lookup16(table: NDArray[_T], index: NDArray[np.uint16]) -> NDArray[_T]:
    """``np.take(table, index)`` for a 65 536-entry ``table``, band by band: the same
    values, faster (gaussian_noise on a 640x640 image: 25% less time; shared with
    ``low_light``).

    np.take first copies a non-intp index into a fresh intp array (four times the bytes
    of a uint16 one); in bands that copy stays small and in cache. ``mode="clip"`` skips
    the bounds check, which a uint16 index into 65 536 entries cannot fail.

    >>> table = np.arange(65536, dtype=np.float32) / 2
    >>> lookup16(table, np.array([[0, 3], [65535, 7]], np.uint16)).tolist()
    [[0.0, 1.5], [32767.5, 3.5]]
    """
    flat = index.reshape(-1)
    out = np.empty(flat.shape, table.dtype)
    for start in range(0, flat.size, _BAND):
        stop = start + _BAND
        np.take(table, flat[start:stop], out=out[start:stop], mode="clip")
    return out.reshape(index.shape)


def _grain(
    rng: np.random.Generator, height: int, width: int, grain: float, channels: int, binned: bool
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """:func:`grain_noise` before normalisation, and the per-channel factors that normalise
    it (callers that go on to a matrix product fold them in rather than scale an image)."""
    gh = max(2, round(height / grain))
    gw = max(2, round(width / grain))
    field = standard_normal(rng, (gh, gw, channels))
    if (gh, gw) == (height, width):
        return field, np.ones(channels, np.float32)
    interp = cv2.INTER_AREA if gh > height else cv2.INTER_CUBIC
    resized = cv2.resize(field, (width, height), interpolation=interp)
    field = np.asarray(resized, dtype=np.float32).reshape(height, width, channels)
    target = min(1.0, grain) if binned else 1.0
    _, std = cv2.meanStdDev(field)
    return field, (target / np.maximum(std.ravel(), 1e-6)).astype(np.float32)


def grain_noise(
    rng: np.random.Generator,
    height: int,
    width: int,
    grain: float,
    channels: int = 1,
    *,
    binned: bool = True,
) -> NDArray[np.float32]:
    """Gaussian noise of shape (height, width, channels) made of blobs ``grain`` px wide.

    Drawn as independent unit normals on a grid of ``grain``-sized cells and resized to the
    image, so the same grain (as a fraction of the image) looks the same at any resolution.
    Cells larger than a pixel are interpolated (cubic) and re-normalised to unit std per
    pixel. Cells smaller than a pixel are averaged into it: with ``binned`` the std per
    pixel then falls to ``grain``, as when a sensor bins pixels (what keeps a downscaled
    image and a smaller one alike); without, it is re-normalised to 1.

    Shared with :mod:`brittle.perturbations.blur` (glass blur's pixel displacements).
    """
    field, scale = _grain(rng, height, width, grain, channels, binned)
    if np.any(scale != 1.0):
        field *= scale
    return field


@lru_cache(maxsize=16)
def _gaussian_table(sigma: float) -> NDArray[np.int16]:
    # Rounding the noise before adding it to an integer image is the same as rounding the
    # sum (up to ties), so the table can hold integers and the addition stay integer.
    return np.rint(_normal_quantiles() * (sigma * 255.0)).astype(np.int16)


@lru_cache(maxsize=16)
def _speckle_table(sigma: float) -> NDArray[np.float32]:
    # The factor (1 + sigma z) is floored at 0: a negative product would be clipped to 0
    # anyway, and a non-negative one lets OpenCV round and saturate in one pass.
    return np.maximum(1.0 + sigma * _normal_quantiles(), 0.0).astype(np.float32)


@lru_cache(maxsize=16)
def _shot_table(photons: float) -> NDArray[np.uint8]:
    """Output value for (input value, uniform bin): Poisson(v/255 * photons) / photons.

    Row v holds the Poisson quantiles at 4 096 equal-probability bins, scaled back to
    0..255 and rounded.
    """
    bins = 1 << _SHOT_BITS
    lam = np.arange(256, dtype=np.float64) / 255.0 * photons
    kmax = int(photons + 12.0 * np.sqrt(photons) + 12.0)
    k = np.arange(kmax + 1, dtype=np.float64)
    # pmf by the recurrence p(k) = p(k-1) * lam / k, vectorised as a cumulative product.
    ratios = lam[:, None] / np.maximum(k[None, 1:], 1.0)
    pmf = np.exp(-lam)[:, None] * np.concatenate(
        [np.ones((256, 1)), np.cumprod(ratios, axis=1)], axis=1
    )
    cdf = np.cumsum(pmf, axis=1)
    q = (np.arange(bins, dtype=np.float64) + 0.5) / bins
    counts = np.stack([np.searchsorted(row, q) for row in cdf]).astype(np.float64)
    values = np.clip(np.minimum(counts, kmax) / photons, 0.0, 1.0) * 255.0
    return np.rint(values).astype(np.uint8).reshape(-1)


@register
class GaussianNoise(Perturbation):
    """Sensor read noise: additive Gaussian, independent per pixel and channel (ImageNet-C).

    ======================  =====  =====  =====  =====  =====
    severity                  1      2      3      4      5
    ======================  =====  =====  =====  =====  =====
    sigma (of full scale)    0.08   0.12   0.18   0.26   0.38
    ======================  =====  =====  =====  =====  =====
    """

    name: ClassVar[str] = "gaussian_noise"
    family: ClassVar[str] = "noise"
    description: ClassVar[str] = (
        "sensor read noise: additive Gaussian per pixel, sigma 0.08-0.38 of full scale"
    )
    version: ClassVar[int] = 1
    imagenet_c: ClassVar[str | None] = "common"

    SIGMA: ClassVar[tuple[float, ...]] = (0.08, 0.12, 0.18, 0.26, 0.38)

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        return {"sigma": level(self.SIGMA, severity)}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        noise = lookup16(_gaussian_table(float(params["sigma"])), _uniform16(rng, image.shape))
        return np.asarray(cv2.add(image, noise, dtype=cv2.CV_8U), dtype=np.uint8)


@register
class ShotNoise(Perturbation):
    """Photon shot noise: Poisson counts, value = Poisson(x * photons) / photons (ImageNet-C).

    ``photons`` is the expected photon count at full scale: the fewer photons, the noisier
    (and at 3 photons the output takes only the values 0, 85, 170, 255).

    ======================  =====  =====  =====  =====  =====
    severity                  1      2      3      4      5
    ======================  =====  =====  =====  =====  =====
    photons at full scale     60     25     12      5      3
    ======================  =====  =====  =====  =====  =====
    """

    name: ClassVar[str] = "shot_noise"
    family: ClassVar[str] = "noise"
    description: ClassVar[str] = "photon shot noise: Poisson, 60 down to 3 photons at full scale"
    version: ClassVar[int] = 1
    imagenet_c: ClassVar[str | None] = "common"

    PHOTONS: ClassVar[tuple[float, ...]] = (60.0, 25.0, 12.0, 5.0, 3.0)

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        return {"photons": level(self.PHOTONS, severity)}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        table = _shot_table(float(params["photons"]))
        h = image.shape[0]
        bins = _uniform16(rng, image.shape).reshape(h, -1)
        bins >>= 16 - _SHOT_BITS
        values = image.reshape(h, -1)
        out = np.empty(values.shape, np.uint8)
        # np.take converts any other index type to a fresh intp array: 10 MB for a whole
        # 640x640 image, most of its time. Bands of rows reuse one cache-sized intp buffer.
        # mode="clip" skips the bounds check; every index is below 256 << _SHOT_BITS anyway.
        rows = max(1, _BAND // values.shape[1])
        buf = np.empty((rows, values.shape[1]), np.intp)
        for top in range(0, h, rows):
            index = buf[: min(rows, h - top)]
            np.left_shift(values[top : top + rows], _SHOT_BITS, out=index, dtype=np.intp)
            np.bitwise_or(index, bins[top : top + rows], out=index)
            np.take(table, index, out=out[top : top + rows], mode="clip")
        return out.reshape(image.shape)


@register
class ImpulseNoise(Perturbation):
    """Salt-and-pepper noise: a fraction of values set to 0 or 255, half each (ImageNet-C).

    Per value, as in ``skimage.util.random_noise(mode="s&p")``: channels flip independently,
    so most hit pixels turn a saturated colour rather than black or white.

    ======================  =====  =====  =====  =====  =====
    severity                  1      2      3      4      5
    ======================  =====  =====  =====  =====  =====
    fraction of values       0.03   0.06   0.09   0.17   0.27
    ======================  =====  =====  =====  =====  =====
    """

    name: ClassVar[str] = "impulse_noise"
    family: ClassVar[str] = "noise"
    description: ClassVar[str] = (
        "salt-and-pepper (dead/hot values, bit errors): 3-27% of values set to 0 or 255"
    )
    version: ClassVar[int] = 1
    imagenet_c: ClassVar[str | None] = "common"

    AMOUNT: ClassVar[tuple[float, ...]] = (0.03, 0.06, 0.09, 0.17, 0.27)

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        return {"amount": level(self.AMOUNT, severity)}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        half = round(float(params["amount"]) / 2 * _LEVELS)
        h = image.shape[0]
        u = _uniform16(rng, image.shape).reshape(h, -1)
        # 0/255 masks, combined with OpenCV's bitwise ops (ten times faster than numpy's
        # masked assignment): hit values become 0, then salt ones 255.
        hit = np.less(u, 2 * half).view(np.uint8) * np.uint8(255)
        salt = np.less(u, half).view(np.uint8) * np.uint8(255)
        out = cv2.bitwise_or(cv2.bitwise_and(image.reshape(h, -1), cv2.bitwise_not(hit)), salt)
        return np.ascontiguousarray(np.asarray(out, dtype=np.uint8).reshape(image.shape))


@register
class SpeckleNoise(Perturbation):
    """Multiplicative noise: x + x * N(0, sigma), so black stays black (ImageNet-C validation).

    ======================  =====  =====  =====  =====  =====
    severity                  1      2      3      4      5
    ======================  =====  =====  =====  =====  =====
    sigma (relative)         0.15   0.20   0.35   0.45   0.60
    ======================  =====  =====  =====  =====  =====
    """

    name: ClassVar[str] = "speckle_noise"
    family: ClassVar[str] = "noise"
    description: ClassVar[str] = (
        "multiplicative (speckle) noise: x * (1 + N(0, sigma)), sigma 0.15-0.6"
    )
    version: ClassVar[int] = 1
    imagenet_c: ClassVar[str | None] = "validation"

    SIGMA: ClassVar[tuple[float, ...]] = (0.15, 0.20, 0.35, 0.45, 0.60)

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        return {"sigma": level(self.SIGMA, severity)}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        factor = lookup16(_speckle_table(float(params["sigma"])), _uniform16(rng, image.shape))
        return np.asarray(cv2.multiply(image, factor, dtype=cv2.CV_8U), dtype=np.uint8)


@lru_cache(maxsize=1)
def _iso_gain() -> NDArray[np.float32]:
    """Noise std per encoded value 0..255, relative to mid-grey (128).

    Sensor noise is shot plus read noise in linear light (variance a*L + b); the gamma
    encoding (2.2) stretches the shadows, so encoded noise is a little stronger in the
    shadows and weaker in the highlights. Floored and capped to stay plausible after the
    camera's own noise reduction.
    """
    v = np.arange(256, dtype=np.float64) / 255.0
    lin = np.maximum(v, 0.02) ** 2.2
    std = np.sqrt(lin + 4e-4) / (2.2 * lin ** (1.0 - 1.0 / 2.2))
    gain = np.clip(std / std[128], 0.5, 1.6)
    return np.asarray(gain, dtype=np.float32)


# Y'CbCr (BT.601) -> RGB: rows R, G, B; columns Y, Cb, Cr.
_YCC_TO_RGB = np.array(
    [[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]], dtype=np.float32
)


@register
class IsoNoise(Perturbation):
    """High-ISO sensor noise as cameras deliver it: luminance grain plus colour blotches.

    After demosaicing and the camera's noise reduction, luminance noise is fine (about a
    pixel at 640 px) and chroma noise forms blotches a few pixels wide. Both are strongest
    in the shadows (see :func:`_iso_gain`). Stds are at mid-grey, in units of full scale;
    grain sizes are fractions of the short side (pixels at 640 in brackets).

    ====================  ==========  ==========  ==========  ==========  ==========
    severity                  1           2           3           4           5
    ====================  ==========  ==========  ==========  ==========  ==========
    luma std                0.02        0.035       0.05        0.07        0.09
    chroma std (Cb, Cr)     0.012       0.02        0.03        0.04        0.05
    luma grain             0.0016 (1)  0.0016 (1)  0.0016 (1)  0.0016 (1)  0.0016 (1)
    chroma grain           0.006 (3.8) 0.007 (4.5) 0.008 (5.1) 0.009 (5.8) 0.010 (6.4)
    ====================  ==========  ==========  ==========  ==========  ==========

    Grains under a pixel (small images) average into it, which lowers the std per pixel as
    binning does; that keeps a large image, shrunk, looking like a small one.
    """

    name: ClassVar[str] = "iso_noise"
    family: ClassVar[str] = "noise"
    description: ClassVar[str] = (
        "high-ISO sensor noise: luma grain 0.02-0.09 plus colour blotches 0.012-0.05"
    )
    version: ClassVar[int] = 1

    LUMA: ClassVar[tuple[float, ...]] = (0.02, 0.035, 0.05, 0.07, 0.09)
    CHROMA: ClassVar[tuple[float, ...]] = (0.012, 0.02, 0.03, 0.04, 0.05)
    LUMA_GRAIN: ClassVar[float] = 0.0016
    CHROMA_GRAIN: ClassVar[tuple[float, ...]] = (0.006, 0.007, 0.008, 0.009, 0.010)

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        side = short_side(height, width)
        return {
            "luma_std": level(self.LUMA, severity),
            "chroma_std": level(self.CHROMA, severity),
            "luma_grain_px": round(self.LUMA_GRAIN * side, 4),
            "chroma_grain_px": round(level(self.CHROMA_GRAIN, severity) * side, 4),
        }

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        h, w = image.shape[:2]
        luma, luma_scale = _grain(rng, h, w, float(params["luma_grain_px"]), 1, True)
        chroma, chroma_scale = _grain(rng, h, w, float(params["chroma_grain_px"]), 2, True)
        stds = np.array(
            [params["luma_std"], params["chroma_std"], params["chroma_std"]], dtype=np.float32
        )
        stds *= np.concatenate([luma_scale, chroma_scale])
        ycc = cv2.merge([luma, chroma])
        delta = np.asarray(cv2.transform(ycc, _YCC_TO_RGB * (255.0 * stds)[None, :]), np.float32)
        luma_in = np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), dtype=np.uint8)
        # cv2.LUT rather than np.take: the same float32 values, without np.take's copy of
        # the uint8 index into a 3 MB intp array.
        gain = np.asarray(cv2.LUT(luma_in, _iso_gain()), dtype=np.float32)
        delta *= gain[..., None]
        return np.asarray(cv2.add(image, delta, dtype=cv2.CV_8U), dtype=np.uint8)

"""Digital perturbations: compression, resampling and data loss between sensor and model.

These model what happens to an image after the lens: codecs (JPEG, WebP), a camera or
stream with fewer pixels than the dataset (``downscale``, ``pixelate``), lost packets and
dead sensor pixels (``pixel_dropout``), reduced bit depth (``posterize``) and the small
local warps of ImageNet-C's ``elastic_transform``.

Three of them are ImageNet-C common corruptions (Hendrycks & Dietterich, ICLR 2019) and keep
their names and severity constants: ``jpeg_compression``, ``pixelate`` and
``elastic_transform``, as implemented for arbitrary sizes by ``imagecorruptions`` (COCO-C,
Michaelis et al. 2019). That package applies pixelate's resize factor and elastic's pixel
displacements unchanged at every size, so a 1280 image "at severity 3" keeps much more of
its detail than a 640 one. brittle follows imagecorruptions exactly up to a short side of
:data:`COCO_SHORT_SIDE` = 480 (COCO's 640x480, the size COCO-C was published on) and, above
it, scales the spatial quantities by ``short_side / 480``, so that a larger image looks like
its COCO-sized copy. (Scaling below 480 too would turn severity 1 of pixelate into a
near-identity resize at 320 px.) JPEG quality is not spatial (the codec works on 8x8 pixel
blocks whatever the image size) and is used as published.

>>> import numpy as np
>>> img = np.zeros((32, 32, 3), np.uint8)
>>> img[:, 16:] = 200
>>> out = Posterize().apply(img, {"bits": 1}, np.random.default_rng(0))
>>> sorted(np.unique(out).tolist())
[0, 255]
"""

from __future__ import annotations

import io
from functools import lru_cache
from typing import Any, ClassVar

import cv2
import numpy as np
from numpy.typing import NDArray

from brittle.perturbations import register
from brittle.perturbations.base import Image, Params, Perturbation, as_image, short_side

__all__ = [
    "Downscale",
    "ElasticTransform",
    "JpegCompression",
    "PixelDropout",
    "Pixelate",
    "Posterize",
    "WebpCompression",
    "jpeg_roundtrip",
    "webp_roundtrip",
]

# cv2.remap takes a single 2-channel map with None as the second; its stubs say otherwise.
_NO_MAP: Any = None

#: Short side of a COCO image (640x480): up to it pixelate and elastic_transform equal
#: imagecorruptions' (COCO-C); above it they scale with short_side / 480.
COCO_SHORT_SIDE = 480


def _decode_rgb(buf: NDArray[np.uint8], what: str) -> Image:
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR_RGB)
    if out is None:  # pragma: no cover - only with a broken OpenCV build
        raise RuntimeError(f"OpenCV could not decode its own {what} stream")
    return as_image(out)


def jpeg_roundtrip(image: Image, quality: int) -> Image:
    """Encode RGB ``image`` as a baseline JPEG (4:2:0, standard tables) and decode it again.

    Every encoder option is pinned, so the bytes do not depend on OpenCV's defaults; libjpeg's
    default integer DCT makes them identical on every machine with the same libjpeg.
    """
    flags = [
        cv2.IMWRITE_JPEG_QUALITY, int(quality),
        cv2.IMWRITE_JPEG_OPTIMIZE, 0,
        cv2.IMWRITE_JPEG_PROGRESSIVE, 0,
        cv2.IMWRITE_JPEG_RST_INTERVAL, 0,
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
    ]  # fmt: skip
    # The codec converts to YCbCr assuming BGR order: hand it BGR or the colours skew.
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), flags)
    if not ok:  # pragma: no cover
        raise RuntimeError("OpenCV could not encode JPEG")
    return _decode_rgb(buf, "JPEG")


def webp_roundtrip(image: Image, quality: int) -> Image:
    """Encode RGB ``image`` as lossy WebP at ``quality`` (1-100) and decode it again.

    Pillow's encoder at ``method=0`` (libwebp's fastest effort) costs about 8 ms on a 640x640
    image against about 24 ms for OpenCV's, which offers no effort setting; the artefacts
    (1 - SSIM within 0.005 of OpenCV's at every quality used here) are the same kind.

    OpenCV decodes: VP8 decoding is bit-exact by specification and both bundle libwebp,
    whose RGB conversion gives the same bytes as Pillow's decoder (checked on css-valid
    images at every quality here), without Pillow's animation decoder and its RGBA canvas
    and copies (0.6 ms of a 640x640 round trip).
    """
    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.fromarray(image).save(buf, "WEBP", quality=int(quality), method=0)
    return _decode_rgb(np.frombuffer(buf.getbuffer(), np.uint8), "WebP")


def _down_up(image: Image, factor: float, up: int) -> Image:
    """Area-average down by ``factor`` (what a coarser sensor integrates), then back up."""
    h, w = image.shape[:2]
    if factor >= 1.0:
        return image.copy()
    small = cv2.resize(
        image,
        (max(1, int(w * factor)), max(1, int(h * factor))),
        interpolation=cv2.INTER_AREA,
    )
    return as_image(cv2.resize(small, (w, h), interpolation=up))


@register
class JpegCompression(Perturbation):
    """JPEG compression artefacts: 8x8 blocking, ringing, chroma bleeding (ImageNet-C).

    Baseline JPEG with 4:2:0 chroma subsampling through OpenCV's libjpeg, at the
    ImageNet-C qualities. JPEG works on fixed 8x8 pixel blocks, so the quality is not
    rescaled with image size (as in COCO-C): at the same quality a larger image suffers
    relatively less.

    ========  ==  ==  ==  ==  ==
    severity   1   2   3   4   5
    quality   25  18  15  10   7
    ========  ==  ==  ==  ==  ==
    """

    name: ClassVar[str] = "jpeg_compression"
    family: ClassVar[str] = "digital"
    description: ClassVar[str] = "JPEG artefacts (blocking, ringing): quality 25-7, 4:2:0"
    random: ClassVar[bool] = False
    imagenet_c: ClassVar[str | None] = "common"

    QUALITY: ClassVar[tuple[int, ...]] = (25, 18, 15, 10, 7)

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        return {"quality": self.QUALITY[severity - 1]}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        return jpeg_roundtrip(image, int(params["quality"]))


@register
class WebpCompression(Perturbation):
    """Lossy WebP (VP8 intra) artefacts: smeared texture, blocky flat areas, colour blotches.

    WebP is what many web pipelines and some camera apps re-encode to; at low quality it
    smooths texture away rather than ringing like JPEG. Qualities are chosen so the
    structural damage (1 - SSIM) grows from barely visible to about that of JPEG at 7.

    ========  ==  ==  ==  ==  ==
    severity   1   2   3   4   5
    quality   40  20  10   5   1
    ========  ==  ==  ==  ==  ==
    """

    name: ClassVar[str] = "webp_compression"
    family: ClassVar[str] = "digital"
    description: ClassVar[str] = "WebP (VP8) artefacts: texture smearing, blocks; quality 40-1"
    random: ClassVar[bool] = False

    QUALITY: ClassVar[tuple[int, ...]] = (40, 20, 10, 5, 1)

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        return {"quality": self.QUALITY[severity - 1]}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        return webp_roundtrip(image, int(params["quality"]))


@register
class Pixelate(Perturbation):
    """Mosaic: area-averaged down, nearest-neighbour up, so the image shows flat blocks
    (ImageNet-C).

    ImageNet-C and imagecorruptions resize the image by ``c`` (BOX filter) and back
    (NEAREST), whatever its size; brittle does exactly that up to a short side of 480. Larger
    images are reduced to the short side ``c * 480`` a 640x480 image gets (factor
    ``c * 480 / short_side``), so from 480 up the blocks are the same fraction of the image.

    =====================  =====  =====  =====  =====  =====
    severity                   1      2      3      4      5
    c (ImageNet-C)          0.60   0.50   0.40   0.30   0.25
    block px, side <= 480    1.7    2.0    2.5    3.3    4.0
    low-res side, > 480      288    240    192    144    120
    block px at 640          2.2    2.7    3.3    4.4    5.3
    =====================  =====  =====  =====  =====  =====
    """

    name: ClassVar[str] = "pixelate"
    family: ClassVar[str] = "digital"
    description: ClassVar[str] = "mosaic (ImageNet-C): area-average down by 0.6-0.25, NEAREST up"
    random: ClassVar[bool] = False
    imagenet_c: ClassVar[str | None] = "common"

    C: ClassVar[tuple[float, ...]] = (0.6, 0.5, 0.4, 0.3, 0.25)

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        c = self.C[severity - 1]
        return {"factor": c * min(1.0, COCO_SHORT_SIDE / short_side(height, width))}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        return _down_up(image, float(params["factor"]), cv2.INTER_NEAREST_EXACT)


@register
class Downscale(Perturbation):
    """A lower-resolution camera or digital zoom: the scene captured with fewer pixels,
    then resized back to the input size with bilinear interpolation (as a detector's
    preprocessing would).

    The capture resolution is a fixed short side (standard video formats), so the loss of
    detail looks the same whatever the input size; inputs already smaller than it are
    returned unchanged. The factor at 640 is ``side / 640``.

    ==================  ====  ====  ====  ====  ====
    severity               1     2     3     4     5
    capture short side   288   240   180   144   112
    video format         CIF  QVGA     -  QCIF     -
    factor at 640       0.45  0.38  0.28  0.23  0.18
    ==================  ====  ====  ====  ====  ====
    """

    name: ClassVar[str] = "downscale"
    family: ClassVar[str] = "digital"
    description: ClassVar[str] = "low-resolution capture (288-112 px short side), bilinear up"
    random: ClassVar[bool] = False

    SIDE: ClassVar[tuple[int, ...]] = (288, 240, 180, 144, 112)

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        return {"factor": min(1.0, self.SIDE[severity - 1] / short_side(height, width))}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        return _down_up(image, float(params["factor"]), cv2.INTER_LINEAR)


@lru_cache(maxsize=8)
def _posterize_lut(bits: int) -> NDArray[np.uint8]:
    levels = (1 << bits) - 1
    x = np.arange(256, dtype=np.float64)
    lut = np.round(np.round(x * levels / 255.0) * 255.0 / levels)
    lut.flags.writeable = False
    return lut.astype(np.uint8)


@register
class Posterize(Perturbation):
    """Reduced bit depth (cheap encoders, 16-bit colour paths, aggressive quantisation):
    smooth gradients turn into bands.

    Each channel is rounded to ``2**bits`` evenly spaced levels spanning 0-255 (so black and
    white stay black and white and the mean brightness does not shift, unlike a plain bit
    mask).

    ========  ==  ==  ==  ==  ==
    severity   1   2   3   4   5
    bits       6   5   4   3   2
    levels    64  32  16   8   4
    ========  ==  ==  ==  ==  ==
    """

    name: ClassVar[str] = "posterize"
    family: ClassVar[str] = "digital"
    description: ClassVar[str] = "bit-depth reduction: 6-2 bits per channel (colour banding)"
    random: ClassVar[bool] = False

    BITS: ClassVar[tuple[int, ...]] = (6, 5, 4, 3, 2)

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        return {"bits": self.BITS[severity - 1]}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        return as_image(cv2.LUT(image, _posterize_lut(int(params["bits"]))))


@lru_cache(maxsize=8)
def _grid(height: int, width: int) -> NDArray[np.float32]:
    """(H, W, 2) float32 pixel coordinates (x, y), for cv2.remap; read-only."""
    g = np.empty((height, width, 2), np.float32)
    g[..., 0] = np.arange(width, dtype=np.float32)[None, :]
    g[..., 1] = np.arange(height, dtype=np.float32)[:, None]
    g.flags.writeable = False
    return g


@register
class ElasticTransform(Perturbation):
    """Local wobble: every pixel displaced by a smooth random field, as from heat shimmer,
    a rolling shutter on a vibrating mount or a warped protective window (ImageNet-C).

    As in ``imagecorruptions`` (COCO-C): per-pixel uniform noise in ``[-0.005, 0.005] * side``
    smoothed by a Gaussian of sigma ``0.01 * side`` (truncated at 3 sigma, reflected borders)
    and multiplied by ``alpha``; bilinear resampling. That construction gives about the same
    displacement *in pixels* at every size (1.0 to 2.4 px rms); brittle keeps that up to a
    short side of 480 and multiplies it by ``short_side / 480`` above, so a larger image is
    displaced by the same fraction of the image as its 640x480 copy. Deviations: ImageNet-C's
    original random affine jitter (already dropped by imagecorruptions) is not applied, and
    sigma and the noise amplitude follow the short side on both axes (imagecorruptions uses
    height and width separately), so the field is isotropic.

    Boxes are left as they are (``geometric = False``), as in COCO-C: the displacement
    averages zero over any box, is correlated over only about 1% of the image and is 1-2.4 px
    rms at 480 (0.2-0.5% of the short side; about 2% at the extreme), below annotation noise.

    =================================  =====  =====  =====  =====  =====
    severity                               1      2      3      4      5
    alpha (imagecorruptions)            12.5  16.25  21.25     25     30
    rms displacement px, side <= 480     1.0    1.3    1.8    2.1    2.5
    rms displacement px at 640           1.4    1.8    2.3    2.8    3.4
    =================================  =====  =====  =====  =====  =====
    """

    name: ClassVar[str] = "elastic_transform"
    family: ClassVar[str] = "digital"
    description: ClassVar[str] = "smooth local warp (ImageNet-C): 1-2.5 px rms at 480 px short side"
    imagenet_c: ClassVar[str | None] = "common"

    ALPHA: ClassVar[tuple[float, ...]] = (12.5, 16.25, 21.25, 25.0, 30.0)

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        side = short_side(height, width)
        return {
            "alpha": self.ALPHA[severity - 1],
            "sigma": 0.01 * side,
            "amplitude": 0.005 * side,
            "gain": max(1.0, side / COCO_SHORT_SIDE),
        }

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        h, w = image.shape[:2]
        sigma = float(params["sigma"])
        amp = float(params["amplitude"])
        noise: Any = rng.random((h, w, 2), dtype=np.float32)
        # In place (same float32 operations as ``noise * 2amp - amp``): saves two 3 MB arrays.
        noise *= np.float32(2 * amp)
        noise -= np.float32(amp)
        k = 2 * int(3 * sigma + 0.5) + 1
        if sigma > 0 and k > 1:
            noise = cv2.GaussianBlur(noise, (k, k), sigma, borderType=cv2.BORDER_REFLECT)
        scale = np.float32(float(params["alpha"]) * float(params["gain"]))
        maps: Any = cv2.scaleAdd(noise, float(scale), _grid(h, w), dst=noise)
        out = cv2.remap(
            image, maps, _NO_MAP, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        return as_image(out)


@register
class PixelDropout(Perturbation):
    """Lost data: runs of missing macroblocks from dropped packets in a video stream, plus
    dead (stuck black or hot white) sensor pixels.

    A lost run is a horizontal stretch of blocks in raster order (a slice): the decoder either
    fills it with mid-grey or smears the last good row above it downward (both are common
    error-concealment results). Blocks are ``short_side / 40`` pixels (16 at 640, the H.264
    macroblock); run lengths average a third of a block row. Lost-block and dead-pixel
    fractions are of the whole image.

    =====================  =====  =====  =====  =====  =====
    severity                   1      2      3      4      5
    lost blocks (% area)     1.0    2.5    5.0    9.0   15.0
    dead pixels (% pixels)  0.02   0.05    0.1    0.2    0.3
    =====================  =====  =====  =====  =====  =====
    """

    name: ClassVar[str] = "pixel_dropout"
    family: ClassVar[str] = "digital"
    description: ClassVar[str] = "lost packets (grey/smeared macroblock runs, 1-15%) + dead pixels"

    BLOCKS: ClassVar[tuple[float, ...]] = (0.01, 0.025, 0.05, 0.09, 0.15)
    DEAD: ClassVar[tuple[float, ...]] = (0.0002, 0.0005, 0.001, 0.002, 0.003)

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        return {
            "blocks": self.BLOCKS[severity - 1],
            "dead": self.DEAD[severity - 1],
            "block": max(2, round(short_side(height, width) / 40)),
        }

    @staticmethod
    def lost_blocks(
        n_blocks: int, n_lost: int, mean_run: float, rng: np.random.Generator
    ) -> NDArray[np.int64]:
        """Run id (1..m) of each block in raster order, 0 where intact: exactly ``n_lost``
        blocks in non-overlapping runs placed uniformly."""
        ids = np.zeros(n_blocks, np.int64)
        if n_lost <= 0:
            return ids
        n_lost = min(n_lost, n_blocks)
        m = int(max(1, min(n_lost, round(n_lost / mean_run))))
        # Run lengths: a uniform random composition of n_lost into m positive parts.
        cuts = np.sort(rng.choice(n_lost - 1, m - 1, replace=False) + 1) if m > 1 else np.zeros(0)
        lengths = np.diff(np.concatenate([[0], cuts, [n_lost]])).astype(np.int64)
        # Gaps: n_blocks - n_lost intact blocks spread over m + 1 slots (stars and bars).
        free = n_blocks - n_lost
        bars = np.sort(rng.choice(free + m, m, replace=False)) - np.arange(m)
        gaps = np.diff(np.concatenate([[0], bars]))
        starts = np.cumsum(gaps) + np.concatenate([[0], np.cumsum(lengths)[:-1]])
        marks = np.zeros(n_blocks + 1, np.int64)
        np.add.at(marks, starts, 1)
        np.add.at(marks, starts + lengths, -1)
        inside = np.cumsum(marks[:-1]) > 0
        run = np.cumsum(np.isin(np.arange(n_blocks), starts))
        ids[inside] = run[inside]
        return ids

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        h, w = image.shape[:2]
        b = int(params["block"])
        nbx, nby = -(-w // b), -(-h // b)
        n = nbx * nby
        ids = self.lost_blocks(n, round(float(params["blocks"]) * h * w / (b * b)), nbx / 3, rng)
        m = int(ids.max())
        smear_run = np.concatenate([[False], rng.random(m) < 0.5])
        out = image.copy()
        if m:
            grid = ids.reshape(nby, nbx)
            pix = np.repeat(np.repeat(grid, b, axis=0), b, axis=1)[:h, :w]
            smear = smear_run[pix]
            grey = (pix > 0) & ~smear
            out[grey] = 128
            # The row just above each block row (grey where there is none, at the top).
            src = (np.arange(h) // b) * b - 1
            above = image[np.maximum(src, 0)]
            above[src < 0] = 128
            out[smear] = above[smear]
        n_dead = round(float(params["dead"]) * h * w)
        if n_dead:
            where = rng.integers(0, h * w, n_dead)
            value = np.where(rng.random(n_dead) < 0.5, 0, 255).astype(np.uint8)
            out.reshape(-1, 3)[where] = value[:, None]
        return out

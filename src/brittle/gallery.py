"""Failure-gallery pairs: an image and its perturbed version, side by side, with boxes.

Colours are Okabe-Ito (safe for the common colour-vision deficiencies), and line style
carries the same information without colour: ground truth is solid, predictions are
dashed. Class names come from datasets nobody vetted, so every drawn string is reduced
to printable ASCII (OpenCV's Hershey fonts render nothing else) and kept short.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from brittle.errors import ShapeError
from brittle.perturbations.preview import _HEADER_H, _text
from brittle.types import Detections, GroundTruth

__all__ = ["draw_pair", "encode_jpeg"]

GT_COLOR = (0, 158, 115)  # Okabe-Ito bluish green
CLEAN_COLOR = (0, 114, 178)  # Okabe-Ito blue
PERTURBED_COLOR = (213, 94, 0)  # Okabe-Ito vermillion

_FONT = cv2.FONT_HERSHEY_SIMPLEX  # the face preview._text draws with
_TITLE_SCALE = 0.45
_LABEL_SCALE = 0.4
_STRIP_BG = 24  # same dark background as the preview grid
_PAD_BG = 40  # same neutral grey preview._fit letterboxes with
_GAP = 8
_LEGEND_ROW_H = 22
_LEGEND_PAD = 4
_SAMPLE_W = 28
_MAX_NAME = 24
_DASH, _DASH_GAP = 5, 7  # drawn 2 px thick, caps add a pixel each end: 8 on, 4 off


def _ascii(text: str, limit: int = _MAX_NAME) -> str:
    """Printable ASCII only, at most ``limit`` characters (truncation marked by '...').

    >>> _ascii("caf\\u00e9\\nbar"), _ascii("a" * 30, 10), _ascii("wait\\u2026")
    ('caf??bar', 'aaaaaaa...', 'wait...')
    """
    text = text.replace("\u2026", "...")
    text = "".join(c if " " <= c <= "~" else "?" for c in text)
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


def _class_name(label: int, class_names: Sequence[str]) -> str:
    """The drawable name of ``label``; '#<label>' when it has no usable name.

    >>> _class_name(1, ["cat", "dog"]), _class_name(7, ["cat"]), _class_name(0, [" "])
    ('dog', '#7', '#0')
    """
    if 0 <= label < len(class_names):
        name = str(class_names[label])  # str(): names parsed from YAML may be ints or None
        if name.strip():
            return _ascii(name)
    return f"#{label}"


def _fit_text(text: str, max_w: int, scale: float) -> str:
    """Shorten ``text`` until it is at most ``max_w`` pixels wide, so it stays in its panel."""
    while len(text) > 3 and cv2.getTextSize(text, _FONT, scale, 1)[0][0] > max_w:
        text = text[:-4] + "..."
    return text


def _dashed_line(
    img: NDArray[np.uint8],
    a: tuple[int, int],
    b: tuple[int, int],
    color: tuple[int, int, int],
    thickness: int,
) -> None:
    """Dashes starting at ``a``, so every corner of a dashed box is marked."""
    length = max(abs(b[0] - a[0]), abs(b[1] - a[1]))
    if length == 0:
        cv2.line(img, a, a, color, thickness)
        return
    for start in range(0, length + 1, _DASH + _DASH_GAP):
        t0, t1 = start / length, min(start + _DASH, length) / length
        p0 = (round(a[0] + (b[0] - a[0]) * t0), round(a[1] + (b[1] - a[1]) * t0))
        p1 = (round(a[0] + (b[0] - a[0]) * t1), round(a[1] + (b[1] - a[1]) * t1))
        cv2.line(img, p0, p1, color, thickness)


def _dashed_rect(
    img: NDArray[np.uint8], box: tuple[int, int, int, int], color: tuple[int, int, int]
) -> None:
    x1, y1, x2, y2 = box
    corners = [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
    for i, a in enumerate(corners):
        _dashed_line(img, a, corners[(i + 1) % 4], color, 2)


def _pixel_boxes(
    boxes: NDArray[np.floating], sx: float, sy: float, w: int, h: int
) -> list[tuple[int, int, int, int] | None]:
    """Boxes scaled to the panel and clipped to it; None for non-finite or unseen boxes."""
    out: list[tuple[int, int, int, int] | None] = []
    for raw in np.asarray(boxes, np.float64).reshape(-1, 4):
        if not np.isfinite(raw).all():
            out.append(None)
            continue
        # Sorting tolerates inverted boxes; a box entirely off the panel would otherwise
        # clip to a misleading line along the border.
        x1, x2 = sorted((raw[0] * sx, raw[2] * sx))
        y1, y2 = sorted((raw[1] * sy, raw[3] * sy))
        if x2 < 0 or y2 < 0 or x1 > w or y1 > h:
            out.append(None)
            continue
        xs = np.clip(np.rint([x1, x2]), 0, w - 1).astype(int)
        ys = np.clip(np.rint([y1, y2]), 0, h - 1).astype(int)
        out.append((int(xs[0]), int(ys[0]), int(xs[1]), int(ys[1])))
    return out


def _label(
    img: NDArray[np.uint8],
    text: str,
    box: tuple[int, int, int, int],
    color: tuple[int, int, int],
    above: bool,
) -> None:
    """A filled tag at the box's top-left (predictions) or bottom-left (ground truth).

    Opposite corners keep the tags of a prediction and its matching ground truth apart;
    a tag flips inside the box when it would leave the image.
    """
    h, w = img.shape[:2]
    (tw, th), base = cv2.getTextSize(text, _FONT, _LABEL_SCALE, 1)
    bw, bh = tw + 4, th + base + 3
    x1, y1, _, y2 = box
    top = y1 - 1 - bh if above else y2 + 2
    if top < 0 or top + bh > h:
        top = y1 + 2 if above else y2 - 1 - bh
    top = min(max(top, 0), max(h - bh, 0))
    left = min(max(x1, 0), max(w - bw, 0))
    cv2.rectangle(img, (left, top), (left + bw - 1, top + bh - 1), color, -1)
    _text(img, text, (left + 2, top + th + 1), _LABEL_SCALE)


def _check_image(image: NDArray[np.uint8], what: str) -> None:
    if not (
        isinstance(image, np.ndarray)
        and image.dtype == np.uint8
        and image.ndim == 3
        and image.shape[2] == 3
        and image.shape[0] > 0
        and image.shape[1] > 0
    ):
        got = f"{getattr(image, 'dtype', type(image).__name__)} {tuple(np.shape(image))}"
        raise ShapeError(f"{what}: expected uint8 (H, W, 3) RGB with H, W > 0, got {got}")


def _panel(
    image: NDArray[np.uint8],
    gt: GroundTruth,
    dets: Detections,
    class_names: Sequence[str],
    conf: float,
    color: tuple[int, int, int],
    max_side: int,
) -> NDArray[np.uint8]:
    """One image, shrunk to ``max_side`` (never enlarged), with its boxes drawn on a copy."""
    h, w = image.shape[:2]
    s = min(1.0, max_side / max(h, w))
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    if (nw, nh) == (w, h):
        panel = np.array(image, dtype=np.uint8, order="C", copy=True)
    else:
        src = np.ascontiguousarray(image)
        panel = np.asarray(cv2.resize(src, (nw, nh), interpolation=cv2.INTER_AREA), np.uint8)
    sx, sy = nw / w, nh / h

    labels: list[tuple[str, tuple[int, int, int, int], tuple[int, int, int], bool]] = []
    for box, label, crowd in zip(
        _pixel_boxes(gt.boxes, sx, sy, nw, nh), gt.labels, gt.iscrowd, strict=True
    ):
        if box is not None:
            cv2.rectangle(panel, box[:2], box[2:], GT_COLOR, 1 if crowd else 2)
            name = _class_name(int(label), class_names)
            labels.append((f"{name} crowd" if crowd else name, box, GT_COLOR, False))
    keep = np.flatnonzero(dets.scores >= conf)
    keep = keep[np.argsort(dets.scores[keep], kind="stable")]  # best boxes drawn on top
    boxes = _pixel_boxes(dets.boxes[keep], sx, sy, nw, nh)
    for box, i in zip(boxes, keep, strict=True):
        if box is not None:
            _dashed_rect(panel, box, color)
            text = f"{_class_name(int(dets.labels[i]), class_names)} {dets.scores[i]:.2f}"
            labels.append((text, box, color, True))
    # Tags go on after every box so that no line runs through a tag's text.
    for text, box, c, above in labels:
        _label(panel, text, box, c, above)
    return panel


def _legend(conf: float) -> list[tuple[tuple[int, int, int], bool, str]]:
    return [
        (GT_COLOR, False, "ground truth: solid (thin: crowd)"),
        (CLEAN_COLOR, True, f"clean prediction >= {conf:.2f}: dashed"),
        (PERTURBED_COLOR, True, f"perturbed prediction >= {conf:.2f}: dashed"),
    ]


def _legend_layout(texts: Sequence[str], width: int) -> list[tuple[int, int]]:
    """(x, row) of each legend entry, wrapping to a new row when the strip is too narrow."""
    x, row, out = 8, 0, []
    for text in texts:
        ew = _SAMPLE_W + 6 + cv2.getTextSize(text, _FONT, _TITLE_SCALE, 1)[0][0]
        if x > 8 and x + ew > width - 4:
            x, row = 8, row + 1
        out.append((x, row))
        x += ew + 18
    return out


def draw_pair(
    clean: NDArray[np.uint8],
    perturbed: NDArray[np.uint8],
    *,
    gt_clean: GroundTruth,
    gt_perturbed: GroundTruth,
    dets_clean: Detections,
    dets_perturbed: Detections,
    class_names: Sequence[str],
    conf: float = 0.3,
    titles: tuple[str, str] = ("clean", "perturbed"),
    max_side: int = 480,
) -> NDArray[np.uint8]:
    """One RGB image: the clean panel left, the perturbed panel right, and a legend below.

    Each panel is shrunk so its longer side is at most ``max_side`` (never enlarged) and
    sits under a title strip; a shorter panel is padded with grey at the bottom. Ground
    truth is drawn solid (2 px, crowd regions 1 px) in bluish green and tagged with its
    class; predictions scoring at least ``conf`` are drawn dashed, blue on the clean
    panel and vermillion on the perturbed one, tagged "class score". Inputs are not
    modified.

    >>> img = np.full((120, 160, 3), 128, np.uint8)
    >>> gt = GroundTruth([[20, 20, 80, 90]], [0])
    >>> dets = Detections([[22, 18, 84, 92]], [0.9], [0])
    >>> out = draw_pair(img, img // 2, gt_clean=gt, gt_perturbed=gt, dets_clean=dets,
    ...                 dets_perturbed=Detections.empty(), class_names=["person"])
    >>> out.shape  # 26 px title + 120 px image + legend wrapped to 3 rows; 160 + 8 + 160
    (216, 328, 3)
    """
    _check_image(clean, "draw_pair clean")
    _check_image(perturbed, "draw_pair perturbed")
    if max_side < 1:
        raise ValueError(f"draw_pair: max_side must be at least 1, got {max_side}")
    left = _panel(clean, gt_clean, dets_clean, class_names, conf, CLEAN_COLOR, max_side)
    right = _panel(
        perturbed, gt_perturbed, dets_perturbed, class_names, conf, PERTURBED_COLOR, max_side
    )
    lw, rw = left.shape[1], right.shape[1]
    width, body_h = lw + _GAP + rw, max(left.shape[0], right.shape[0])

    legend = _legend(conf)
    places = _legend_layout([text for _, _, text in legend], width)
    legend_h = _LEGEND_PAD + _LEGEND_ROW_H * (1 + max(row for _, row in places))
    canvas = np.full((_HEADER_H + body_h + legend_h, width, 3), _STRIP_BG, np.uint8)
    for x0, panel, title in ((0, left, titles[0]), (lw + _GAP, right, titles[1])):
        pw = panel.shape[1]
        canvas[_HEADER_H : _HEADER_H + body_h, x0 : x0 + pw] = _PAD_BG
        canvas[_HEADER_H : _HEADER_H + panel.shape[0], x0 : x0 + pw] = panel
        title_text = _fit_text(_ascii(str(title), 200), pw - 12, _TITLE_SCALE)
        _text(canvas, title_text, (x0 + 6, 18), _TITLE_SCALE)

    top = _HEADER_H + body_h + _LEGEND_PAD
    for (color, dashed, text), (x, row) in zip(legend, places, strict=True):
        y = top + row * _LEGEND_ROW_H + _LEGEND_ROW_H // 2
        if dashed:
            _dashed_line(canvas, (x, y - 4), (x + _SAMPLE_W, y - 4), color, 2)
        else:
            cv2.line(canvas, (x, y - 4), (x + _SAMPLE_W, y - 4), color, 2)
        _text(canvas, text, (x + _SAMPLE_W + 6, y), _TITLE_SCALE)
    return canvas


def encode_jpeg(image: NDArray[np.uint8], quality: int = 80) -> bytes:
    """JPEG file bytes of an RGB uint8 image (OpenCV writes BGR, so channels are swapped).

    >>> data = encode_jpeg(np.zeros((4, 6, 3), np.uint8))
    >>> data[:2], cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB).shape
    (b'\\xff\\xd8', (4, 6, 3))
    """
    _check_image(image, "encode_jpeg")
    if not 1 <= quality <= 100:
        raise ValueError(f"encode_jpeg: quality must be 1..100, got {quality}")
    bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("encode_jpeg: OpenCV could not encode the image")
    return bytes(buf.tobytes())

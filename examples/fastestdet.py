"""A worked example: your own predictor for a detector brittle has no decoder for.

FastestDet (https://github.com/dog-qiuqiu/FastestDet) predicts one 22x22 map with a
head no generic decoder knows, so we wrap it in a small class. brittle only needs
three things from it (see ``brittle.models.base.Predictor``):

* ``class_names`` -- what the model's label indices mean;
* ``fingerprint`` -- a string that changes whenever predictions could change, so
  brittle's prediction cache is never stale;
* ``predict(images)`` -- a list of RGB uint8 images in, one ``Detections`` each out,
  boxes in that image's own pixels.

Use it as ``brittle eval --model examples/fastestdet.py:FastestDet ...``. brittle calls
``FastestDet()`` and passes the evaluation settings it accepts (``conf``, ``iou``,
``max_det``) as keyword arguments, so the command line's ``--conf`` reaches us.

The model file is looked for in ``$BRITTLE_ASSETS/models`` and then in
``../shared/assets/models`` beside the repository or the current directory; pass
``model_path=`` to point elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from brittle.errors import ConfigError
from brittle.models.names import read_names
from brittle.models.nms import postprocess
from brittle.models.onnx import file_sha256
from brittle.types import Detections

MODEL_FILE = "fastestdet_coco.onnx"
NAMES_FILE = "coco.names"

#: Bump when the decoding below changes: it is part of the fingerprint, so predictions
#: cached by the old code are not reused.
VERSION = "1"


def find_model(filename: str = MODEL_FILE) -> Path:
    """Where the shared model is: $BRITTLE_ASSETS first, then the usual relative places."""
    tried: list[Path] = []
    env = os.environ.get("BRITTLE_ASSETS")
    if env:
        # Accept the assets folder (as the test suite sets it) or its models/ folder.
        tried += [Path(env) / "models" / filename, Path(env) / filename]
    repo_root = Path(__file__).resolve().parents[1]
    tried += [
        repo_root.parent / "shared" / "assets" / "models" / filename,
        Path.cwd().parent / "shared" / "assets" / "models" / filename,
        Path.cwd() / "shared" / "assets" / "models" / filename,
    ]
    for path in tried:
        if path.is_file():
            return path
    looked = ", ".join(str(p) for p in dict.fromkeys(tried))
    raise ConfigError(
        f"{filename} not found (looked in {looked}); set BRITTLE_ASSETS to the shared assets "
        "folder or pass FastestDet(model_path=...)"
    )


class FastestDet:
    """FastestDet (COCO, 352x352) on onnxruntime, decoded as the upstream demo does."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        conf: float = 0.001,
        iou: float | None = None,
        max_det: int = 300,
        threads: int | None = None,
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else find_model()
        if not self.model_path.is_file():
            raise ConfigError(f"{self.model_path}: model file does not exist")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            str(self.model_path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        # The model has a fixed input: [1, 3, 352, 352].
        self.height, self.width = int(inp.shape[2]), int(inp.shape[3])
        self.conf = conf
        # IoU 0.45 as in FastestDet's upstream post-processing; on css-valid it also beats
        # 0.5 and 0.65 (Person AP50 0.579 / 0.574 / 0.557). brittle's --iou overrides it.
        self.iou = 0.45 if iou is None else iou
        self.max_det = max_det
        self._names = read_names(self.model_path.with_name(NAMES_FILE))
        # The fingerprint must change with the weights *and* with anything that changes
        # the output (thresholds, decoding code); brittle keys its cache on it.
        settings = json.dumps([VERSION, self.conf, self.iou, self.max_det])
        digest = hashlib.sha256(settings.encode()).hexdigest()[:12]
        self._fingerprint = f"fastestdet:{file_sha256(self.model_path)}:{digest}"

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._names

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def predict(self, images: Sequence[NDArray[np.uint8]]) -> list[Detections]:
        # The ONNX file has a fixed batch of 1, so we run one image at a time.
        return [self._predict_one(image) for image in images]

    def _predict_one(self, image: NDArray[np.uint8]) -> Detections:
        h, w = image.shape[:2]
        # Match training: a plain stretch to 352x352 (no letterbox) with INTER_AREA, BGR
        # channel order (the upstream code reads images with cv2.imread), values in 0..1.
        # brittle hands us RGB, so the channels are flipped here.
        resized = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_AREA)
        blob = resized[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        fmap = self.session.run(None, {self.input_name: blob})[0][0]  # (85, 22, 22)

        # One prediction per cell: flatten the grid so everything below is vectorised.
        c, gh, gw = fmap.shape
        cells = fmap.reshape(c, gh * gw).T  # (484, 85)
        rows, cols = np.divmod(np.arange(gh * gw), gw)
        obj = cells[:, 0]
        cls = cells[:, 5:]
        labels = cls.argmax(axis=1)
        # FastestDet ranks with an uneven weighting of objectness and class probability
        # (as its upstream demo does); obj * cls would order detections differently, and
        # AP depends only on that order.
        scores = obj**0.6 * cls[np.arange(len(cls)), labels] ** 0.4
        # The centre offset is tanh-bounded to the neighbouring cells; width and height
        # are sigmoid fractions of the whole image, so boxes come out normalised to 0..1.
        cx = (cols + np.tanh(cells[:, 1])) / gw
        cy = (rows + np.tanh(cells[:, 2])) / gh
        bw = 1.0 / (1.0 + np.exp(-cells[:, 3]))
        bh = 1.0 / (1.0 + np.exp(-cells[:, 4]))
        # Normalised coordinates of a plain resize map straight onto the original image:
        # no letterbox padding to undo.
        size = np.array([w, h, w, h], np.float32)
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1) * size
        boxes = np.clip(boxes, 0, size)

        # brittle's postprocess: confidence filter, per-class NMS, keep the best max_det.
        keep = postprocess(
            boxes, scores, labels, conf=self.conf, iou=self.iou, max_det=self.max_det
        )
        return Detections(boxes[keep], scores[keep], labels[keep])

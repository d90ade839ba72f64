"""The embedded demo: synthetic scenes and tiny detectors that ship inside the package.

Nothing here downloads anything. :func:`write_demo_dataset` renders the demo's validation
scenes (:mod:`brittle.demo.scenes`) as a YOLO dataset, and :func:`demo_models` lists the
ONNX detectors trained on other scenes of the same kind by ``scripts/train_demo_models.py``
(docs/demo.md):

* ``plain``: trained without augmentation;
* ``augmented``: the same training with blur and noise augmentation;
* ``flipped``: ``plain`` fine-tuned with horizontal and vertical flips.

>>> sorted(demo_models())
['augmented', 'flipped', 'plain']
>>> TRAINED_WITH["augmented"], REFERENCE["augmented"]
(('blur', 'noise'), 'plain')
"""

from __future__ import annotations

from pathlib import Path

from brittle.demo.scenes import CLASS_NAMES, make_scene, render_scene, write_dataset

__all__ = [
    "CLASS_NAMES",
    "DEMO_IMAGES",
    "DEMO_SEED",
    "MODEL_NAMES",
    "REFERENCE",
    "TRAINED_WITH",
    "demo_models",
    "make_scene",
    "models_dir",
    "render_scene",
    "write_demo_dataset",
]

#: Scene series of the demo's validation split (the models were trained on another series).
DEMO_SEED = 7
#: Images in the demo's validation split.
DEMO_IMAGES = 100
#: The demo models, in the order the demo lists them.
MODEL_NAMES = ("plain", "augmented", "flipped")
#: What each model was trained with (``brittle run --trained-with``) ...
TRAINED_WITH: dict[str, tuple[str, ...]] = {"augmented": ("blur", "noise"), "flipped": ("flip",)}
#: ... and the model trained without it (``brittle run --reference``).
REFERENCE: dict[str, str] = {"augmented": "plain", "flipped": "plain"}


def models_dir() -> Path:
    """The folder holding the demo's ONNX files, inside the installed package."""
    return Path(__file__).resolve().parent / "models"


def demo_models(folder: Path | None = None) -> dict[str, Path]:
    """Name -> ONNX file of every demo model present in ``folder`` (default
    :func:`models_dir`), in :data:`MODEL_NAMES` order."""
    base = models_dir() if folder is None else Path(folder)
    return {
        name: base / f"{name}.onnx" for name in MODEL_NAMES if (base / f"{name}.onnx").is_file()
    }


def write_demo_dataset(root: Path, n: int = DEMO_IMAGES, seed: int = DEMO_SEED) -> Path:
    """Write the demo's validation split (``n`` scenes of series ``seed``, 160 x 160 px) as
    a YOLO dataset under ``root``; returns ``root``."""
    return write_dataset(Path(root), n=n, seed=seed, size=160)

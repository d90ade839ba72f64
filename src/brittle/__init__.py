"""brittle: find where a computer-vision model breaks before production does.

>>> import brittle
>>> isinstance(brittle.__version__, str)
True
>>> import numpy as np
>>> brittle.perturb(np.zeros((8, 8, 3), np.uint8), "vflip", 1).shape
(8, 8, 3)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from brittle._version import __version__

if TYPE_CHECKING:
    from brittle.perturbations import perturb

__all__ = ["__version__", "perturb"]


def __getattr__(name: str) -> Any:
    # Lazy: `import brittle` stays instant; OpenCV loads on first use of perturb().
    if name == "perturb":
        from brittle.perturbations import perturb

        return perturb
    raise AttributeError(f"module 'brittle' has no attribute {name!r}")

"""Optional frameworks (PyTorch, torchvision, Ultralytics): imported only when a model needs them.

Core brittle runs ONNX, Python and hosted models without any of these. A model kind that
needs one imports it through :func:`require`, so a missing extra is a ConfigError that
names the ``pip install`` fixing it (a MissingDependencyError, itself an ImportError),
not an ImportError from deep inside a loader.

>>> require("json", extra="none").dumps([1])
'[1]'
>>> require("surely_not_installed_xyz", extra="torch")
Traceback (most recent call last):
...
brittle.errors.MissingDependencyError: this model needs surely_not_installed_xyz, which is not \
installed: pip install 'brittle[torch]'
"""

from __future__ import annotations

import contextlib
import importlib
import os
from types import ModuleType

from brittle.errors import MissingDependencyError

__all__ = ["framework_versions", "quiet_ultralytics_environment", "require", "set_torch_threads"]


def require(module: str, *, extra: str, note: str = "") -> ModuleType:
    """Import ``module`` or fail with the command that installs brittle's ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.partition(".")[0]
        missing = getattr(exc, "name", None) or top
        what = top if missing.partition(".")[0] == top else f"{top} (its dependency {missing})"
        raise MissingDependencyError(
            f"this model needs {what}, which is not installed: pip install 'brittle[{extra}]'"
            + (f" ({note})" if note else "")
        ) from exc


def set_torch_threads(threads: int | None) -> None:
    """Limit PyTorch to ``threads`` intra-op threads in this process (brittle's workers use 1).

    PyTorch's default is one thread per core in *every* process, so N workers would run
    N x cores threads on N cores; that costs more in contention than it gains.
    """
    if threads is None:
        return
    torch = require("torch", extra="torch")
    torch.set_num_threads(max(1, int(threads)))
    # Inter-op threads can only be set before the first parallel work; later calls raise.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)


def framework_versions(*modules: str) -> str:
    """``name=version`` of each imported module, for fingerprints: an upgrade can change outputs."""
    parts = []
    for name in modules:
        mod = importlib.import_module(name)
        parts.append(f"{name}={getattr(mod, '__version__', '?')}")
    return ",".join(parts)


def quiet_ultralytics_environment() -> None:
    """Keep Ultralytics from reaching the network or installing packages at run time.

    brittle talks to no host the user did not name: Ultralytics would otherwise check for
    updates, send usage events and pip-install missing requirements on the fly. The user's
    own settings of these variables win.
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("YOLO_VERBOSE", "false")

"""Ultralytics and torchvision models without their extras: a clear error, no traceback soup.

Runs in a fresh interpreter where importing torch, torchvision and ultralytics fails, as on
a machine with only core brittle; core brittle itself must not need them.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from brittle.errors import ConfigError
from brittle.models import load_predictor, predictor_kind

_BLOCKED = """
import sys
for name in ("torch", "torchvision", "ultralytics"):
    sys.modules[name] = None  # makes `import name` raise ImportError
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    script = _BLOCKED + textwrap.dedent(code)
    args = [sys.executable, "-c", script]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def test_missing_extras_name_the_install_command(tmp_path: Path) -> None:
    pt = tmp_path / "best.pt"
    pt.write_bytes(b"x")
    proc = _run(
        f"""
        from brittle.errors import MissingDependencyError
        from brittle.models import load_predictor
        for spec in ({str(pt)!r}, "torchvision:fasterrcnn_resnet50_fpn"):
            try:
                load_predictor(spec)
            except MissingDependencyError as exc:
                print(exc)
        # Core brittle needs none of them: these imports would raise ImportError.
        import brittle.cli, brittle.evaluate, brittle.report, brittle.run.worker
        print("core ok")
        """
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines == [
        "this model needs ultralytics, which is not installed: pip install "
        "'brittle[ultralytics]' (Ultralytics is AGPL-3.0; brittle uses it only for .pt models)",
        "this model needs torch, which is not installed: pip install 'brittle[torch]'",
        "core ok",
    ]


def test_specs_pick_their_kind_and_check_files_before_importing_anything(tmp_path: Path) -> None:
    assert predictor_kind("runs/detect/train/weights/best.pt") == "ultralytics"
    assert predictor_kind("torchvision:retinanet_resnet50_fpn_v2") == "torchvision"
    assert predictor_kind("ppe.torchvision.yml") == "torchvision"
    with pytest.raises(ConfigError, match=r"missing\.pt: model file does not exist$"):
        load_predictor(str(tmp_path / "missing.pt"))
    with pytest.raises(ConfigError, match=r"yolo11n\.pt: .* downloads nothing: .*yolo predict"):
        load_predictor("yolo11n.pt")  # a name Ultralytics would download
    with pytest.raises(ConfigError, match="torchvision model config does not exist"):
        load_predictor(str(tmp_path / "missing.torchvision.yaml"))
    with pytest.raises(ConfigError, match="which architecture are these weights for"):
        load_predictor(str(tmp_path / "weights.pth"))

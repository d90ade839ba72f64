"""Third-party perturbations: by `module:function` / `file.py:function` reference, and through
the `brittle.perturbations` entry-point group of an installed distribution."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from brittle.errors import ConfigError, ShapeError
from brittle.perturbations import catalogue, get_perturbation, perturb, registry

PLUGIN = '''
import numpy as np

from brittle.perturbations.base import Perturbation


def invert(image, severity, rng):
    """Blend towards the negative: severity / 5 of the way."""
    a = severity / 5
    return np.clip((1 - a) * image + a * (255 - image.astype(np.float32)), 0, 255).astype(np.uint8)


def broken(image, severity, rng):
    return image[:, :, 0]


class Stripes(Perturbation):
    name = "stripes"
    family = "occlusion"
    description = "black horizontal stripes (a plugin)"
    random = False

    def apply(self, image, params, rng):
        out = image.copy()
        out[::4] = 0
        return out
'''


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "my_plugin.py").write_text(PLUGIN)
    dist = tmp_path / "my_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[brittle.perturbations]\nstripes = my_plugin:Stripes\n")
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    sys.modules.pop("my_plugin", None)
    registry._entries.pop("stripes", None)
    registry._plugins_loaded = False


def test_a_function_by_reference(plugin_dir: Path) -> None:
    img = np.full((6, 8, 3), 200, np.uint8)
    for ref in ("my_plugin:invert", f"{plugin_dir / 'my_plugin.py'}:invert"):
        out = perturb(img, ref, 5)
        assert (out == 55).all()
        assert (perturb(img, ref, 1) == 171).all()  # 0.8 * 200 + 0.2 * 55
    with pytest.raises(ShapeError, match=r"my_plugin:broken: must return uint8 \(6, 8, 3\)"):
        perturb(img, "my_plugin:broken", 3)
    with pytest.raises(ConfigError, match="has no attribute 'nope'"):
        get_perturbation("my_plugin:nope")


def test_an_entry_point_plugin_joins_the_catalogue(plugin_dir: Path) -> None:
    registry._plugins_loaded = False
    img = np.full((8, 8, 3), 100, np.uint8)
    out = perturb(img, "stripes", 2)
    assert (out[::4] == 0).all()
    assert (out[1::4] == 100).all()
    assert "stripes" in [c.name for c in catalogue()["occlusion"]]

"""The registry pattern and module:attr references."""

from __future__ import annotations

from pathlib import Path

import pytest

from brittle.errors import ConfigError, UnknownNameError
from brittle.registry import Registry, load_reference


def test_register_get_and_suggestions() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("gaussian_blur")(1)
    reg.register("motion_blur")(2)
    assert reg.get("motion_blur") == 2
    assert list(reg) == ["gaussian_blur", "motion_blur"]
    with pytest.raises(UnknownNameError) as info:
        reg.get("gausian_blur")
    assert str(info.value) == (
        "unknown widget 'gausian_blur'; did you mean 'gaussian_blur'? "
        "(known: gaussian_blur, motion_blur)"
    )
    with pytest.raises(KeyError):  # also a builtin KeyError
        reg.get("zzz")


def test_double_registration_is_an_error() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("a")(1)
    with pytest.raises(ConfigError, match="registered twice"):
        reg.register("a")(2)


def test_load_reference_from_a_file(tmp_path: Path) -> None:
    f = tmp_path / "mine.py"
    f.write_text("class Thing:\n    value = 42\n")
    assert load_reference(f"{f}:Thing").value == 42
    with pytest.raises(ConfigError, match=r"has no attribute 'Thin'; did you mean 'Thing'\?"):
        load_reference(f"{f}:Thin")
    bad = tmp_path / "broken.py"
    bad.write_text("raise RuntimeError('nope')\n")
    with pytest.raises(ConfigError, match=r"importing .*broken\.py failed: nope"):
        load_reference(f"{bad}:X")
    with pytest.raises(ConfigError, match="expected 'module:name'"):
        load_reference("no_colon")

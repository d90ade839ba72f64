"""Class names of a model: from a file, a list, or the model's own metadata.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "coco.names").write_text("person\\nbicycle\\n\\n")
>>> read_names(d / "coco.names")
('person', 'bicycle')
>>> names_from_metadata({"names": "{0: 'person', 1: 'bicycle'}"})
('person', 'bicycle')
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from brittle.errors import ConfigError

__all__ = ["NAME_SUFFIXES", "find_names_file", "names_from_metadata", "read_names"]

#: Files read as class names: one name per line, or YAML (a list, ``{id: name}``, or a
#: ``data.yaml`` with a ``names`` key).
NAME_SUFFIXES = (".names", ".txt", ".yaml", ".yml")


def _from_obj(obj: Any, where: str) -> tuple[str, ...]:
    """Names from a list or an ``{index: name}`` mapping with indices 0..n-1."""
    if isinstance(obj, Mapping) and "names" in obj and not isinstance(obj["names"], str):
        obj = obj["names"]
    if isinstance(obj, Mapping):
        try:
            items = sorted((int(k), v) for k, v in obj.items())
        except (TypeError, ValueError):
            raise ConfigError(
                f"{where}: class names as a mapping need integer keys 0..n-1, got {list(obj)[:5]}"
            ) from None
        if [k for k, _ in items] != list(range(len(items))):
            raise ConfigError(
                f"{where}: class indices must be 0..{len(items) - 1} without gaps, got "
                f"{[k for k, _ in items][:10]}"
            )
        obj = [v for _, v in items]
    if not isinstance(obj, Sequence) or isinstance(obj, str | bytes) or not obj:
        raise ConfigError(
            f"{where}: expected a non-empty list of class names (or {{0: name, ...}}), "
            f"got {type(obj).__name__}"
        )
    bad = [n for n in obj if not isinstance(n, str) or not n.strip()]
    if bad:
        raise ConfigError(f"{where}: class names must be non-empty strings, got {bad[:3]}")
    return tuple(str(n).strip() for n in obj)


def read_names(path: str | Path) -> tuple[str, ...]:
    """Class names from a ``.names``/``.txt`` file (one per line) or a YAML file.

    Blank lines are skipped; names keep inner spaces (``"traffic light"``).
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: class names file does not exist")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read class names: {exc}") from exc
    if p.suffix.lower() in (".yaml", ".yml"):
        try:
            obj = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: invalid YAML: {exc}") from exc
        return _from_obj(obj, str(p))
    return _from_obj([line.strip() for line in text.splitlines() if line.strip()], str(p))


def names_from_metadata(meta: Mapping[str, str]) -> tuple[str, ...] | None:
    """Names stored in ONNX metadata (Ultralytics: ``names`` as a Python dict literal)."""
    raw = meta.get("names") or meta.get("classes") or meta.get("labels")
    if not raw:
        return None
    try:
        obj = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        # Some exporters store a plain comma-separated list.
        obj = [s.strip() for s in raw.split(",")]
    return _from_obj(obj, "the model's 'names' metadata")


def find_names_file(model_path: Path) -> tuple[Path | None, list[Path]]:
    """The class names file beside a model: ``<stem>.names|txt|yaml|yml``, else the only
    ``*.names`` in its folder.

    Returns the file (or None) and the ``*.names`` candidates seen, for error messages.
    """
    for suffix in NAME_SUFFIXES:
        candidate = model_path.with_suffix(suffix)
        if candidate.is_file():
            return candidate, [candidate]
    others = sorted(model_path.parent.glob("*.names"))
    return (others[0] if len(others) == 1 else None), others

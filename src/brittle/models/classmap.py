"""From a model's classes to a dataset's: class-map files and the label map built from them.

A class map is a YAML mapping ``model class name: dataset class name``; several
model classes may map to one dataset class (``car: vehicle``, ``truck: vehicle``).
Model classes it does not list are dropped. Without a class map, names must
match exactly. Everything is checked before any inference, and errors name the
file, the key and the fix.

>>> lm = build_label_map(["person", "car", "truck", "dog"], ["Person", "vehicle", "Hardhat"],
...                      {"person": "Person", "car": "vehicle", "truck": "vehicle"})
>>> lm.index.tolist(), lm.evaluable, lm.unevaluable_names
([0, 1, 1, -1], (0, 1), ('Hardhat',))
>>> mapped, dropped = lm.apply(Detections([[0, 0, 1, 1]] * 3, [0.9, 0.8, 0.7], [0, 2, 3]))
>>> mapped.labels.tolist(), dropped
([0, 1], 1)
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from numpy.typing import NDArray

from brittle.errors import ConfigError, ModelError
from brittle.types import Detections

__all__ = ["ClassMap", "LabelMap", "build_label_map", "load_class_map"]


class ClassMap(dict[str, str]):
    """A ``{model class: dataset class}`` dict that remembers the file it came from."""

    source: str | None = None


def _preview(names: Sequence[str], n: int = 5) -> str:
    shown = ", ".join(names[:n])
    return shown + (", …" if len(names) > n else "")


def _close(name: str, names: Sequence[str]) -> str:
    """A "did you mean" hint: case-insensitive match first, then difflib."""
    lower = [n for n in names if n.lower() == name.lower()]
    close = lower or difflib.get_close_matches(name, list(names), n=2, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (PyYAML silently keeps the last one)."""


def _no_duplicates(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise ConfigError(
                f"{loader.name}:{line}: {key!r} is mapped twice (first on line {seen[key]}); "
                "a model class maps to one dataset class"
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def load_class_map(path: str | Path) -> ClassMap:
    """Read a class-map YAML file: ``model class: dataset class`` per line.

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "map.yaml"
    >>> _ = f.write_text("person: Person\\ncar: vehicle\\ntruck: vehicle\\n")
    >>> dict(load_class_map(f))
    {'person': 'Person', 'car': 'vehicle', 'truck': 'vehicle'}
    >>> _ = f.write_text("person: [Person, Worker]\\n")
    >>> load_class_map(f)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    brittle.errors.ConfigError: ...map.yaml: 'person' maps to ['Person', 'Worker']; ...
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: class map file does not exist")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the class map: {exc}") from exc
    loader = _UniqueKeyLoader(text)
    loader.name = str(p)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        line = f":{exc.problem_mark.line + 1}" if exc.problem_mark else ""
        raise ConfigError(f"{p}{line}: invalid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: invalid YAML: {exc}") from exc
    finally:
        loader.dispose()
    example = "e.g. `person: Person` (model class: dataset class), one per line"
    if data is None or data == {}:
        raise ConfigError(f"{p}: the class map is empty; add lines {example}")
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{p}: expected a mapping of model class names to dataset class names, "
            f"got a {type(data).__name__}; write it {example}"
        )
    out = ClassMap()
    out.source = str(p)
    for key, value in data.items():
        if not isinstance(key, str):
            raise ConfigError(
                f"{p}: key {key!r} is a {'number' if isinstance(key, int | float) else 'value'}, "
                "not a class name; quote it "
                f'("{key}": ...) if the model class is really called that'
            )
        if isinstance(value, list):
            raise ConfigError(
                f"{p}: {key!r} maps to {value}; a model class maps to one dataset class "
                "(several model classes may map to the same dataset class)"
            )
        if value is None or not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(
                f"{p}: {key!r} maps to {value!r}; give a dataset class name ({key}: Name), "
                "or delete the line to ignore that model class"
            )
        out[key] = str(value)
    return out


@dataclass(frozen=True, eq=False)
class LabelMap:
    """Model class index -> dataset class index (-1: not in the dataset, dropped)."""

    model_names: tuple[str, ...]
    dataset_names: tuple[str, ...]
    index: NDArray[np.int64]

    @property
    def evaluable(self) -> tuple[int, ...]:
        """Dataset class indices some model class maps to: the classes mAP is computed over."""
        return tuple(sorted({int(i) for i in self.index if i >= 0}))

    @property
    def unevaluable_names(self) -> tuple[str, ...]:
        """Dataset classes the model cannot predict (reported, not counted in mAP)."""
        ok = set(self.evaluable)
        return tuple(n for i, n in enumerate(self.dataset_names) if i not in ok)

    def apply(self, dets: Detections) -> tuple[Detections, int]:
        """Relabel ``dets`` into dataset classes; returns them and how many were dropped."""
        if len(dets) == 0:
            return dets, 0
        labels = dets.labels
        bad = labels[(labels < 0) | (labels >= len(self.index))]
        if len(bad):
            raise ModelError(
                f"the model returned class id {int(bad[0])} but has {len(self.index)} class names"
            )
        mapped = self.index[labels]
        keep = mapped >= 0
        return Detections(dets.boxes[keep], dets.scores[keep], mapped[keep]), int((~keep).sum())


def _no_match_error(model: Sequence[str], dataset: Sequence[str]) -> ConfigError:
    by_lower = {n.lower(): n for n in dataset}
    case_only = [(m, by_lower[m.lower()]) for m in model if m.lower() in by_lower]
    if case_only:
        pairs = ", ".join(f"{m} vs {d}" for m, d in case_only[:3])
        note = f" ({len(case_only)} differ only in case: {pairs})"
        example = case_only[0]
    else:
        note = ""
        guess = next(
            (
                (m, c[0])
                for m in model
                if (c := difflib.get_close_matches(m, list(dataset), n=1, cutoff=0.6))
            ),
            None,
        )
        example = guess or (model[0], dataset[0])
    return ConfigError(
        f"the model predicts {len(model)} classes ({_preview(model)}), none named like the "
        f"dataset's {len(dataset)} classes ({_preview(dataset)}){note}; pass --class-map FILE "
        f"mapping model names to dataset names, e.g. `{example[0]}: {example[1]}`"
    )


def _warn_case_only(model: Sequence[str], dataset: Sequence[str], index: NDArray[Any]) -> None:
    """Warn about dataset classes left out only because their case differs from the model's."""
    matched = {dataset[i] for i in index if i >= 0}
    by_lower = {n.lower(): n for n in model}
    missed = [
        (by_lower[d.lower()], d)
        for d in dataset
        if d not in matched and d.lower() in by_lower and by_lower[d.lower()] != d
    ]
    if missed:
        pairs = ", ".join(f"{m} vs {d}" for m, d in missed)
        warnings.warn(
            f"dataset classes not evaluated because names differ only in case ({pairs}); "
            f"map them with --class-map, e.g. `{missed[0][0]}: {missed[0][1]}`",
            UserWarning,
            stacklevel=3,
        )


def build_label_map(
    model_names: Sequence[str],
    dataset_names: Sequence[str],
    mapping: Mapping[str, str] | None = None,
) -> LabelMap:
    """Check names and build the label map; ConfigError before any inference if they don't fit.

    Without ``mapping``, classes match by exact name. With one, only the model
    classes it lists are kept.

    >>> build_label_map(["person", "car"], ["Person", "Hardhat"])
    Traceback (most recent call last):
    ...
    brittle.errors.ConfigError: the model predicts 2 classes (person, car), none named like \
the dataset's 2 classes (Person, Hardhat) (1 differ only in case: person vs Person); pass \
--class-map FILE mapping model names to dataset names, e.g. `person: Person`
    """
    model = tuple(model_names)
    dataset = tuple(dataset_names)
    where = getattr(mapping, "source", None) or "class map"
    ds_index = {n: i for i, n in enumerate(dataset)}
    index = np.full(len(model), -1, np.int64)
    if mapping is None:
        for i, n in enumerate(model):
            index[i] = ds_index.get(n, -1)
        if not (index >= 0).any():
            raise _no_match_error(model, dataset)
        _warn_case_only(model, dataset, index)
        return LabelMap(model, dataset, index)
    if not mapping:
        raise ConfigError(f"{where}: the class map is empty; map model classes to dataset ones")
    problems = []
    for key, value in mapping.items():
        if key not in model:
            problems.append(
                f"{key!r} is not a class of the model{_close(key, model)} "
                f"(the model's {len(model)} classes: {_preview(model, 8)})"
            )
        if value not in ds_index:
            problems.append(
                f"{key!r} maps to {value!r}, which is not a dataset class{_close(value, dataset)} "
                f"(the dataset's {len(dataset)} classes: {_preview(dataset, 10)})"
            )
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    model_index = {n: i for i, n in enumerate(model)}
    for key, value in mapping.items():
        index[model_index[key]] = ds_index[value]
    return LabelMap(model, dataset, index)

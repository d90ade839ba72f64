"""Class-map files and label maps: exact error messages, checked before any inference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from brittle.errors import ConfigError, ModelError
from brittle.models.classmap import ClassMap, build_label_map, load_class_map
from brittle.types import Detections

COCO = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck"]
CSS = ["Hardhat", "Mask", "NO-Hardhat", "Person", "vehicle"]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "map.yaml"
    path.write_text(text)
    return path


def test_load_a_class_map_with_several_to_one(tmp_path: Path) -> None:
    path = write(tmp_path, "# comment\nperson: Person\ncar: vehicle\ntruck: vehicle\n")
    cmap = load_class_map(path)
    assert isinstance(cmap, ClassMap)
    assert cmap == {"person": "Person", "car": "vehicle", "truck": "vehicle"}
    assert cmap.source == str(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "{p}: the class map is empty; add lines e.g. `person: Person` (model class: "
         "dataset class), one per line"),
        ("- person\n- car\n", "{p}: expected a mapping of model class names to dataset class "
         "names, got a list; write it e.g. `person: Person` (model class: dataset class), one "
         "per line"),
        ("person: Person\ncar: vehicle\nperson: Worker\n", "{p}:3: 'person' is mapped twice "
         "(first on line 1); a model class maps to one dataset class"),
        ("person: [Person, Worker]\n", "{p}: 'person' maps to ['Person', 'Worker']; a model "
         "class maps to one dataset class (several model classes may map to the same dataset "
         "class)"),
        ("person:\n", "{p}: 'person' maps to None; give a dataset class name (person: Name), "
         "or delete the line to ignore that model class"),
        ("0: Person\n", "{p}: key 0 is a number, not a class name; quote it (\"0\": ...) if the "
         "model class is really called that"),
        ("person: Person\n  car: [\n", "{p}:2: invalid YAML: mapping values are not allowed "
         "here"),
    ],
)  # fmt: skip
def test_class_map_file_errors(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_class_map(path)
    assert str(exc.value) == message.format(p=path)


def test_missing_class_map_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.yaml: class map file does not exist"):
        load_class_map(tmp_path / "nope.yaml")


def test_unknown_names_on_either_side_name_the_file_and_suggest(tmp_path: Path) -> None:
    cmap = load_class_map(write(tmp_path, "persn: Person\ncar: Vehicle\n"))
    with pytest.raises(ConfigError) as exc:
        build_label_map(COCO, CSS, cmap)
    assert str(exc.value) == (
        f"{tmp_path / 'map.yaml'}: 'persn' is not a class of the model; did you mean 'person'? "
        "(the model's 8 classes: person, bicycle, car, motorcycle, airplane, bus, train, truck); "
        "'car' maps to 'Vehicle', which is not a dataset class; did you mean 'vehicle'? "
        "(the dataset's 5 classes: Hardhat, Mask, NO-Hardhat, Person, vehicle)"
    )


def test_no_common_names_without_a_map_says_how_to_fix() -> None:
    with pytest.raises(ConfigError) as exc:
        build_label_map(COCO, CSS)
    assert str(exc.value) == (
        "the model predicts 8 classes (person, bicycle, car, motorcycle, airplane, …), none "
        "named like the dataset's 5 classes (Hardhat, Mask, NO-Hardhat, Person, vehicle) "
        "(1 differ only in case: person vs Person); pass --class-map FILE mapping model names "
        "to dataset names, e.g. `person: Person`"
    )
    with pytest.raises(ConfigError, match=r"e\.g\. `dog: Hardhat`$"):
        build_label_map(["dog"], ["Hardhat"])


def test_exact_names_match_without_a_map_and_case_only_differences_warn() -> None:
    with pytest.warns(UserWarning, match=r"differ only in case \(person vs Person\)"):
        lm = build_label_map(["person", "vehicle", "dog"], CSS)
    assert lm.index.tolist() == [-1, 4, -1]
    assert lm.evaluable == (4,)
    assert lm.unevaluable_names == ("Hardhat", "Mask", "NO-Hardhat", "Person")


def test_apply_maps_labels_and_counts_drops() -> None:
    lm = build_label_map(COCO, CSS, {"person": "Person", "car": "vehicle", "truck": "vehicle"})
    assert lm.evaluable == (3, 4)
    dets = Detections(np.zeros((4, 4)), [0.9, 0.8, 0.7, 0.6], [0, 7, 1, 2])
    mapped, dropped = lm.apply(dets)
    assert (mapped.labels.tolist(), mapped.scores.tolist(), dropped) == (
        [3, 4, 4], pytest.approx([0.9, 0.8, 0.6]), 1,
    )  # fmt: skip
    empty, none_dropped = lm.apply(Detections.empty())
    assert (len(empty), none_dropped) == (0, 0)
    with pytest.raises(ModelError, match="returned class id 8 but has 8 class names"):
        lm.apply(Detections(np.zeros((1, 4)), [0.5], [8]))


def test_an_empty_mapping_is_an_error() -> None:
    with pytest.raises(ConfigError, match="class map: the class map is empty"):
        build_label_map(COCO, CSS, {})

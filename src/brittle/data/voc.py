"""Pascal VOC: ``Annotations/*.xml`` + ``JPEGImages/``, optional ``ImageSets/Main/{split}.txt``.

Also Roboflow's VOC export, where each XML sits beside its image, either in the folder
itself or in ``train/``, ``valid/``, ``test/`` split folders.

Conventions (the same as detectron2's VOC loader):

- VOC pixel coordinates are 1-based and inclusive, so ``xmin=1, xmax=W`` spans the
  whole image: brittle uses ``(xmin - 1, ymin - 1, xmax, ymax)`` as 0-based xyxy.
- ``difficult=1`` objects become ignore regions (``iscrowd=True``): the VOC metric
  neither rewards nor penalises detections of them, and COCO's crowd flag is how a
  COCO-style evaluation expresses that (mmdetection's VOC → COCO converter does the same).
- Class names are ``labels.txt`` / ``classes.txt`` when present, else the sorted union
  of the object names found.

>>> to_xyxy(1, 1, 10, 20)
(0.0, 0.0, 10.0, 20.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

from brittle.data._common import (
    Box,
    absolute,
    choose_split,
    finite_number,
    fit_box,
    ground_truth,
    index_image,
    no_splits,
    read_names_file,
    relative_id,
    safe_relative,
)
from brittle.data._registry import readers
from brittle.data.base import Dataset, ImageRecord, IssueLog
from brittle.data.images import is_image_path
from brittle.errors import DatasetError
from brittle.types import GroundTruth

__all__ = ["VocReader", "parse_xml", "to_xyxy"]

_NAMES_FILES = ("labels.txt", "classes.txt")
# Tools that write 0-based VOC (LabelImg among them) give xmin=0, i.e. x1=-1 here;
# a one-pixel overhang is that convention, not a labelling error.
_TOL = 1.0


def to_xyxy(xmin: float, ymin: float, xmax: float, ymax: float) -> Box:
    """VOC's 1-based inclusive pixel box as 0-based xyxy (x2, y2 exclusive)."""
    return (float(xmin) - 1.0, float(ymin) - 1.0, float(xmax), float(ymax))


@dataclass
class Element:
    """An XML element with the line it starts on (ElementTree does not keep lines)."""

    tag: str
    line: int
    text: str = ""
    children: list[Element] = field(default_factory=list)

    def find(self, tag: str) -> Element | None:
        """The first child called ``tag``."""
        return next((c for c in self.children if c.tag == tag), None)

    def findtext(self, tag: str) -> str | None:
        """The stripped text of the first child called ``tag`` (None when there is none)."""
        child = self.find(tag)
        return None if child is None else child.text.strip()


def parse_xml(data: bytes) -> Element:
    """Parse ``data`` into :class:`Element` s; raises ``expat.ExpatError`` (with ``lineno``).

    >>> root = parse_xml(b"<annotation>\\n  <object><name> dog </name></object>\\n</annotation>")
    >>> obj = root.find("object")
    >>> obj.line, obj.findtext("name")
    (2, 'dog')
    """
    parser = expat.ParserCreate()
    parser.buffer_text = True
    stack: list[Element] = []
    result: list[Element] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        el = Element(tag, parser.CurrentLineNumber)
        if stack:
            stack[-1].children.append(el)
        else:
            result.append(el)
        stack.append(el)

    def end(tag: str) -> None:
        stack.pop()

    def chars(text: str) -> None:
        if stack:
            stack[-1].text += text

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.Parse(data, True)
    return result[0]


@dataclass
class _Object:
    name: str
    box: Box
    difficult: bool
    line: int


@dataclass
class _Parsed:
    xml: Path
    filename: str | None
    size: tuple[int, int] | None
    objects: list[_Object]


def _parse_annotation(xml: Path, log: IssueLog) -> _Parsed | None:
    """Objects of one XML file; None (after counting why) when the file is unusable."""
    try:
        root = parse_xml(xml.read_bytes())
    except OSError as exc:
        log.add("malformed_line", xml, None, f"cannot read ({exc.strerror}); image skipped")
        return None
    except expat.ExpatError as exc:
        log.add(
            "malformed_line",
            xml,
            exc.lineno,
            f"invalid XML: {expat.ErrorString(exc.code)} (column {exc.offset + 1}); image skipped",
        )
        return None
    if root.tag != "annotation":
        log.add(
            "malformed_line",
            xml,
            root.line,
            f"root element is <{root.tag}>, expected <annotation>; image skipped",
        )
        return None
    size = None
    size_el = root.find("size")
    if size_el is not None:
        w, h = size_el.findtext("width"), size_el.findtext("height")
        if w and h and w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0:
            size = (int(w), int(h))
    objects = []
    for obj in root.children:
        if obj.tag == "object":
            parsed = _parse_object(obj, xml, log)
            if parsed is not None:
                objects.append(parsed)
    return _Parsed(xml, root.findtext("filename"), size, objects)


def _parse_object(obj: Element, xml: Path, log: IssueLog) -> _Object | None:
    name = obj.findtext("name")
    if not name:
        log.add("malformed_line", xml, obj.line, "<object> has no <name>; skipped")
        return None
    difficult_text = obj.findtext("difficult") or "0"
    if difficult_text not in ("0", "1"):
        log.add(
            "malformed_line",
            xml,
            obj.line,
            f"object {name!r}: <difficult> must be 0 or 1, got {difficult_text!r}",
        )
        return None
    bndbox = obj.find("bndbox")
    if bndbox is None:
        log.add("malformed_line", xml, obj.line, f"object {name!r} has no <bndbox>")
        return None
    coords: list[float] = []
    for tag in ("xmin", "ymin", "xmax", "ymax"):
        el = bndbox.find(tag)
        if el is None:
            log.add("malformed_line", xml, bndbox.line, f"object {name!r}: <bndbox> has no <{tag}>")
            return None
        value = finite_number(el.text.strip())
        if value is None:
            log.add(
                "malformed_line",
                xml,
                el.line,
                f"object {name!r}: <{tag}> is not a number: {el.text.strip()!r}",
            )
            return None
        coords.append(value)
    return _Object(name, to_xyxy(*coords), difficult_text == "1", obj.line)


@dataclass
class _Layout:
    ann_dir: Path
    img_dir: Path
    ids: list[str] | None  # from ImageSets/Main/{split}.txt
    split: str | None
    names_dirs: list[Path]


def _image_sets(root: Path) -> dict[str, Path]:
    main = root / "ImageSets" / "Main"
    if not main.is_dir():
        return {}
    # Main/ also holds per-class lists such as aeroplane_train.txt; splits have no "_".
    return {p.stem: p for p in sorted(main.glob("*.txt")) if "_" not in p.stem}


def _has_xml(folder: Path) -> bool:
    return any(p.suffix.lower() == ".xml" for p in folder.iterdir() if p.is_file())


def _roboflow_splits(root: Path) -> dict[str, Path]:
    return {d.name: d for d in sorted(root.iterdir()) if d.is_dir() and _has_xml(d)}


def _layout(root: Path, split: str | None) -> _Layout:
    ann = root / "Annotations"
    if ann.is_dir():
        img = next((root / n for n in ("JPEGImages", "images") if (root / n).is_dir()), None)
        if img is None:
            raise DatasetError(f"{root}: has Annotations/ but no JPEGImages/ folder of images")
        sets = _image_sets(root)
        if not sets:
            no_splits(split, str(root))
            return _Layout(ann, img, None, None, [root])
        name, listing = choose_split(sets, split, str(root / "ImageSets" / "Main"))
        try:
            lines = listing.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{listing}: cannot read: {exc}") from exc
        ids = [line.split()[0] for line in lines if line.strip()]
        return _Layout(ann, img, ids, name, [root])
    if _has_xml(root):
        no_splits(split, str(root))
        return _Layout(root, root, None, None, [root, root.parent])
    splits = _roboflow_splits(root)
    if splits:
        name, folder = choose_split(splits, split, str(root))
        return _Layout(folder, folder, None, name, [folder, root])
    raise DatasetError(
        f"{root}: not a Pascal VOC dataset: expected Annotations/ and JPEGImages/, or .xml "
        "files beside their images"
    )


def _image_index(img_dir: Path) -> dict[str, Path]:
    """Images of ``img_dir`` by stem (VOC pairs an image and its XML by name)."""
    out: dict[str, Path] = {}
    for p in sorted(img_dir.iterdir()):
        if p.is_file() and is_image_path(p) and not p.name.startswith("."):
            out.setdefault(p.stem, p)
    return out


def _image_for(
    stem: str, parsed: _Parsed | None, images: dict[str, Path], img_dir: Path
) -> Path | None:
    if stem in images:
        return images[stem]
    # An XML whose <filename> names a differently-named image in the same folder.
    rel = safe_relative(parsed.filename) if parsed and parsed.filename else None
    if rel is not None and (img_dir / rel).is_file():
        return img_dir / rel
    return None


def _pairs(
    stems: list[str],
    xmls: dict[str, Path],
    images: dict[str, Path],
    img_dir: Path,
    log: IssueLog,
) -> list[tuple[str, Path | None, _Parsed | None, Path]]:
    """(stem, XML, parsed XML, image) for each stem that has an image; counts the rest."""
    found: list[tuple[str, Path | None, _Parsed | None, Path | None]] = []
    for stem in stems:
        xml = xmls.get(stem)
        parsed = _parse_annotation(xml, log) if xml is not None else None
        if xml is not None and parsed is None:
            continue  # unusable XML: its objects are unknown, so the image is skipped
        found.append((stem, xml, parsed, _image_for(stem, parsed, images, img_dir)))
    # An image named by another XML's <filename> is described; it is not missing its XML.
    described = {image for _, xml, _, image in found if xml is not None}
    pairs: list[tuple[str, Path | None, _Parsed | None, Path]] = []
    for stem, xml, parsed, image in found:
        if image is None:
            if xml is not None:
                log.add("orphan_labels", xml, None, f"no image {stem}.* in {img_dir}; ignored")
            else:
                log.add(
                    "unreadable_image",
                    img_dir / stem,
                    None,
                    "listed in the split file but neither the image nor its XML exists",
                )
        elif xml is not None or image not in described:
            pairs.append((stem, xml, parsed, image))
    return pairs


@readers.register("voc")
class VocReader:
    """Pascal VOC XML annotations (classic layout or Roboflow's VOC export)."""

    def sniff(self, path: Path) -> bool:
        """A folder with Annotations/, or with .xml files in it or in its split folders."""
        if not path.is_dir():
            return False
        return (path / "Annotations").is_dir() or _has_xml(path) or bool(_roboflow_splits(path))

    def read(self, path: Path, *, split: str | None = None, strict: bool = False) -> Dataset:
        """Index the VOC dataset at ``path``; see the module docs for the conventions."""
        root = absolute(path)
        if not root.is_dir():
            raise DatasetError(f"{root}: not a Pascal VOC dataset folder")
        layout = _layout(root, split)
        log = IssueLog(strict=strict)
        names_file = next(
            (d / n for d in layout.names_dirs for n in _NAMES_FILES if (d / n).is_file()), None
        )
        declared = read_names_file(names_file) if names_file else None
        images = _image_index(layout.img_dir)
        xmls = {
            p.stem: p
            for p in sorted(layout.ann_dir.iterdir())
            if p.suffix.lower() == ".xml" and not p.name.startswith(".")
        }
        stems = layout.ids if layout.ids is not None else sorted(set(images) | set(xmls))
        rows: list[tuple[str, Path, int, int, _Parsed | None]] = []
        seen: set[str] = set()
        for stem, xml, parsed, image in _pairs(stems, xmls, images, layout.img_dir, log):
            rid = relative_id(image, layout.img_dir)
            if rid in seen:
                log.add(
                    "duplicate_image",
                    xml or image,
                    None,
                    f"image {rid!r} appears more than once; the first is kept",
                )
                continue
            seen.add(rid)
            header = index_image(image, log, rid)
            if header is None:
                continue
            if xml is None:
                expected = layout.ann_dir / f"{stem}.xml"
                log.add(
                    "missing_labels",
                    expected,
                    None,
                    f"annotation file not found; image {rid!r} counted as having no objects",
                )
            elif (
                parsed is not None and parsed.size and parsed.size != (header.width, header.height)
            ):
                rotated = any(n.kind == "exif_rotated" for n in header.notes)
                hint = "; the labels may be for the image before EXIF rotation" if rotated else ""
                log.add(
                    "size_mismatch",
                    xml,
                    None,
                    f"<size> says {parsed.size[0]}x{parsed.size[1]}, the image is "
                    f"{header.width}x{header.height}{hint}",
                )
            rows.append((rid, image, header.width, header.height, parsed))
        class_names = (
            declared
            if declared is not None
            else tuple(sorted({o.name for *_, p in rows if p for o in p.objects}))
        )
        index = {n: i for i, n in enumerate(class_names)}
        where = names_file.name if names_file else "the class list"
        records = [
            ImageRecord(rid, image, w, h, self._targets(p, index, w, h, where, log))
            for rid, image, w, h, p in rows
        ]
        return Dataset(
            name=root.name or str(root),
            format="voc",
            root=root,
            class_names=class_names,
            records=tuple(records),
            issues=log,
            split=layout.split,
        )

    @staticmethod
    def _targets(
        parsed: _Parsed | None, index: dict[str, int], w: int, h: int, where: str, log: IssueLog
    ) -> GroundTruth:
        if parsed is None:
            return GroundTruth.empty()
        xml = parsed.xml
        boxes: list[Box] = []
        labels: list[int] = []
        crowd: list[bool] = []
        for obj in parsed.objects:
            if obj.name not in index:
                log.add("unknown_class", xml, obj.line, f"object {obj.name!r} is not in {where}")
                continue
            fitted, issue = fit_box(obj.box, w, h, _TOL)
            x1, y1, x2, y2 = obj.box
            voc = f"xmin={x1 + 1:g} ymin={y1 + 1:g} xmax={x2:g} ymax={y2:g}"
            if issue == "degenerate_box":
                log.add(
                    issue,
                    xml,
                    obj.line,
                    f"object {obj.name!r}: box has zero or negative size ({voc})",
                )
            elif issue == "box_outside":
                log.add(
                    issue,
                    xml,
                    obj.line,
                    f"object {obj.name!r}: box ({voc}) lies entirely outside the "
                    f"{w}x{h} image; dropped",
                )
            elif issue == "box_clipped":
                log.add(
                    issue,
                    xml,
                    obj.line,
                    f"object {obj.name!r}: box ({voc}) extends outside the {w}x{h} image; "
                    "clipped to it",
                )
            if fitted is None:
                continue
            boxes.append(fitted)
            labels.append(index[obj.name])
            crowd.append(obj.difficult)
        return ground_truth(boxes, labels, crowd)

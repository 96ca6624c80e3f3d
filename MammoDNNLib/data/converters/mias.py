"""mini-MIAS (Mammographic Image Analysis Society MiniMammographic Database) to a manifest.

Reads the original ``Info.txt`` (``REFNUM BG CLASS SEVERITY X Y RADIUS``) or its parsed copy
``annotations.csv``, and the images (``mdbNNN.pgm`` as distributed, or lossless ``.png`` re-encodings).

Mapping and decisions (see ``docs/data.md``):

- All films are MLO views, 1024 x 1024 pixels of 0.2 mm (Info.txt: "reduced to 200 micron pixel edge").
- Y is measured from the bottom-left corner (Info.txt note 3): the lesion centre is pixel
  ``[row = 1024 - Y, col = X]``. The circle of the given radius around the pixel centre becomes the box,
  clipped to the image.
- CIRC/SPIC/MISC are masses with margin circumscribed/spiculated/indistinct (MISC, "ill-defined", is the
  BI-RADS "indistinct" margin); CALC calcification (the circle encloses the cluster); ARCH distortion; ASYM
  asymmetry; B/M benign/malignant; NORM no lesion.
- The four lesion rows without coordinates (mdb059 CIRC; mdb216, mdb233, mdb245 CALC "*NOTE 3*", widely
  distributed calcifications) become lesions with ``box: null``: an image-level label. Their views are not
  box-complete, so the training dataset never uses them as detection targets (nor as lesion-free background).
- Laterality: Info.txt says even films are left and odd films right breasts of one woman, but the film
  markers of some films say the opposite and the films look mirror-reversed, so the anatomical side cannot be
  trusted. The view key is therefore the *display laterality*: the side implied by where the chest wall lies
  in the image under the standard display convention (IHE Mammography: left breast with the chest wall on the
  image's left, right breast on the right), found from the pixels. That is what orientation needs (the
  prepared view puts the chest wall on the left) and what the left-right fusion needs (the two films of a
  woman are a mirrored pair). Info.txt's side is kept as ``extra.info_txt_laterality``.
  ``laterality="parity"`` uses Info.txt's rule instead.
- Films ``2k-1`` and ``2k`` (one woman) form one study with R-MLO and L-MLO, unless exactly one of them is
  held out: then each film is its own study, so that the held-out film alone carries the ``heldout`` split
  (the held-out list is by film). Both studies share the patient id.
- Films in ``heldout.txt`` get split ``heldout``; all others ``train``.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ...errors import InputError
from ..manifest import Lesion, Manifest, StudyEntry, ViewEntry, read_heldout_list

log = logging.getLogger(__name__)

IMAGE_SIZE = 1024  # every mini-MIAS film is 1024 x 1024
PIXEL_SPACING_MM = 0.2

CLASS_MAP: dict[str, tuple[str, dict[str, str]]] = {
    "CIRC": ("mass", {"mass_margin": "circumscribed"}),
    "SPIC": ("mass", {"mass_margin": "spiculated"}),
    "MISC": ("mass", {"mass_margin": "indistinct"}),
    "CALC": ("calcification", {}),
    "ARCH": ("distortion", {}),
    "ASYM": ("asymmetry", {}),
}
SEVERITY_MAP = {"B": "benign", "M": "malignant"}
BACKGROUNDS = {"F": "fatty", "G": "fatty-glandular", "D": "dense-glandular"}

LateralityRule = Literal["image", "parity"]


@dataclass
class MiasRow:
    """One row of Info.txt."""

    film: str  # "mdb001"
    background: str  # F / G / D
    abnormality: str  # CALC, CIRC, ..., NORM
    severity: str | None  # B / M
    x: int | None
    y: int | None  # from the BOTTOM of the image
    radius: int | None
    comment: str = ""
    line: int = 0

    @property
    def number(self) -> int:
        return int(self.film[3:])


def read_info_txt(path: str | Path) -> list[MiasRow]:
    """Parse the original ``Info.txt`` (header text is skipped; data lines start with ``mdb``)."""
    path = Path(path)
    rows = []
    try:
        lines = path.read_text(encoding="latin-1").splitlines()
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    for number, line in enumerate(lines, 1):
        if not re.match(r"^mdb\d{3}\b", line):
            continue
        tokens = line.split()
        if len(tokens) < 3:
            raise InputError(path, f"line {number}: expected 'REFNUM BG CLASS ...', got {line.strip()!r}")
        film, background, abnormality = tokens[:3]
        rest = tokens[3:]
        severity = None
        if rest and rest[0] in SEVERITY_MAP:
            severity = rest.pop(0)
        x = y = radius = None
        comment = ""
        if len(rest) >= 3 and all(re.fullmatch(r"\d+", t) for t in rest[:3]):
            x, y, radius = (int(t) for t in rest[:3])
            comment = " ".join(rest[3:])
        else:
            comment = " ".join(rest)
        rows.append(
            _checked(MiasRow(film, background, abnormality, severity, x, y, radius, comment, number), path)
        )
    if not rows:
        raise InputError(path, "no film rows (lines starting with 'mdb'): is this mini-MIAS Info.txt?")
    return rows


def read_annotations_csv(path: str | Path) -> list[MiasRow]:
    """Parse ``annotations.csv`` (Info.txt as a table; ``y`` from the bottom, ``row_from_top`` = 1024 - y)."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            required = {"refnum", "background", "class", "severity", "x", "y", "radius"}
            missing = required - set(reader.fieldnames or [])
            if missing:
                raise InputError(path, f"missing column(s) {', '.join(sorted(missing))}")
            rows = []
            for number, record in enumerate(reader, 2):
                y = _whole(path, number, record, "y")
                row_from_top = (
                    _whole(path, number, record, "row_from_top") if "row_from_top" in record else None
                )
                if y is not None and row_from_top is not None and row_from_top != IMAGE_SIZE - y:
                    raise InputError(
                        path, f"line {number}: row_from_top {row_from_top} != {IMAGE_SIZE} - y ({y})"
                    )
                severity = (record["severity"] or "").strip() or None
                rows.append(
                    _checked(
                        MiasRow(
                            record["refnum"].strip(),
                            record["background"].strip(),
                            record["class"].strip(),
                            severity,
                            _whole(path, number, record, "x"),
                            y,
                            _whole(path, number, record, "radius"),
                            (record.get("comment") or "").strip(),
                            number,
                        ),
                        path,
                    )
                )
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    return rows


def _whole(path: Path, line: int, record: dict, key: str) -> int | None:
    value = (record.get(key) or "").strip()
    if not value:
        return None
    if not re.fullmatch(r"-?\d+", value):
        raise InputError(path, f"line {line}: {key} {value!r} is not a whole number")
    return int(value)


def _checked(row: MiasRow, path: Path) -> MiasRow:
    where = f"line {row.line} ({row.film})"
    if not re.fullmatch(r"mdb\d{3}", row.film):
        raise InputError(path, f"{where}: film name {row.film!r} is not mdbNNN")
    if row.background not in BACKGROUNDS:
        raise InputError(path, f"{where}: background {row.background!r} is not F, G or D")
    if row.abnormality != "NORM" and row.abnormality not in CLASS_MAP:
        raise InputError(
            path, f"{where}: class {row.abnormality!r} is not one of NORM, {', '.join(CLASS_MAP)}"
        )
    if row.abnormality == "NORM" and (row.severity or row.x is not None):
        raise InputError(path, f"{where}: a NORM film has no severity or coordinates")
    if row.abnormality != "NORM" and row.severity is None:
        raise InputError(path, f"{where}: an abnormal film needs a severity (B or M)")
    for value, name in ((row.x, "X"), (row.y, "Y")):
        if value is not None and not 0 <= value <= IMAGE_SIZE:
            raise InputError(path, f"{where}: {name} {value} is outside the 1024-pixel film")
    return row


def chest_wall_side(pixels: np.ndarray, step: int = 4) -> tuple[str, float]:
    """Which side of a (film) mammogram the chest wall is on: ``("left" | "right", margin)``.

    The breast is the largest bright component (Otsu threshold on the image subsampled by ``step`` - about 256
    pixels across is plenty -, opened to cut it from film labels and scanner strips). The breast is tallest
    where it meets the chest wall and narrows to the nipple, so the side whose outer 15 % of columns holds
    more breast wins. ``margin`` in [0, 1] is the relative height difference (small = uncertain).
    """
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    small = np.asarray(pixels, dtype=np.float32)[::step, ::step]
    if small.max() <= small.min():
        raise ValueError("the image is blank")
    foreground = ndi.binary_opening(small > threshold_otsu(small), iterations=2)
    labels, count = ndi.label(foreground)
    if count == 0:
        raise ValueError("no breast found in the image")
    sizes = np.bincount(labels.ravel())[1:]
    breast = labels == int(np.argmax(sizes)) + 1
    columns = np.flatnonzero(breast.any(axis=0))
    first, last = int(columns[0]), int(columns[-1]) + 1
    band = max(1, int(0.15 * (last - first)))
    heights = breast.sum(axis=0)
    left, right = float(heights[first : first + band].mean()), float(heights[last - band : last].mean())
    margin = abs(left - right) / max(left, right, 1.0)
    return ("left" if left > right else "right"), margin


def convert_mias(
    src: str | Path,
    *,
    images: str | Path | None = None,
    heldout: str | Path | None = None,
    laterality: LateralityRule = "image",
    spacing_mm: float = PIXEL_SPACING_MM,
) -> Manifest:
    """mini-MIAS to a manifest.

    ``src``: the folder holding ``Info.txt`` (or ``annotations.csv``), or either file. ``images``: folder with
    ``mdbNNN.pgm``/``.png`` (default: the source folder, its ``png/`` and ``pgm/``). ``heldout``: the held-out
    film list (default: ``heldout.txt`` beside the table, when present). ``laterality``: ``"image"``
    (chest-wall side in the pixels, the default) or ``"parity"`` (Info.txt's even = left rule).
    """
    src = Path(src)
    table = _find_table(src)
    rows = read_annotations_csv(table) if table.suffix.lower() == ".csv" else read_info_txt(table)
    folder = table.parent
    if laterality not in ("image", "parity"):
        raise ValueError(f"laterality must be 'image' or 'parity', got {laterality!r}")

    films: dict[str, list[MiasRow]] = {}
    for row in rows:
        films.setdefault(row.film, []).append(row)
    notes = [
        f"mini-MIAS from {table.name}: {len(films)} films, {len(rows)} rows, "
        f"{sum(r.abnormality != 'NORM' for r in rows)} lesion rows"
    ]

    heldout_path = Path(heldout) if heldout is not None else folder / "heldout.txt"
    heldout_films: set[str] = set()
    if heldout_path.is_file():
        heldout_films = read_heldout_list(heldout_path)
        unknown = sorted(heldout_films - set(films))
        if unknown:
            raise InputError(heldout_path, f"films not in {table.name}: {', '.join(unknown[:5])}")
        notes.append(f"{len(heldout_films)} films in {heldout_path.name} have split 'heldout'")
    elif heldout is not None:
        raise InputError(heldout_path, "no such held-out list")
    else:
        notes.append("no heldout.txt beside the table: every film has split 'train'")

    image_dirs = (
        [Path(images)]
        if images is not None
        else [folder, folder / "png", folder / "pgm", folder / "pgm_subset"]
    )
    views: dict[str, ViewEntry] = {}
    sides: dict[str, tuple[str, float]] = {}
    for film, film_rows in sorted(films.items()):
        image = _find_image(film, image_dirs, table)
        parity_side = "L" if film_rows[0].number % 2 == 0 else "R"
        if laterality == "image":
            size, small = _read_reduced(image, 4)
            if size != (IMAGE_SIZE, IMAGE_SIZE):
                raise InputError(image, f"a mini-MIAS film is {IMAGE_SIZE} x {IMAGE_SIZE} pixels, got {size}")
            try:
                wall, margin = chest_wall_side(small, step=1)
            except ValueError as exc:
                raise InputError(image, str(exc)) from None
            sides[film] = ("L" if wall == "left" else "R", margin)
        else:
            sides[film] = (parity_side, 1.0)
        views[film] = _view(film, film_rows, image, spacing_mm, parity_side)

    # A woman's two films must be a mirrored pair; where the pixels put both on one side, the less certain one
    # is turned (has not happened on the public release, but a re-digitized copy could).
    for first in sorted(films):
        number = int(first[3:])
        second = f"mdb{number + 1:03d}"
        if number % 2 == 1 and second in films and sides[first][0] == sides[second][0]:
            weaker = first if sides[first][1] < sides[second][1] else second
            turned = "R" if sides[weaker][0] == "L" else "L"
            notes.append(
                f"{first} and {second} both show the chest wall on one side; {weaker} (less certain) "
                f"is taken as {turned}"
            )
            sides[weaker] = (turned, sides[weaker][1])

    disagree = [f for f in sorted(films) if sides[f][0] != views[f].extra["info_txt_laterality"]]
    if laterality == "image":
        notes.append(
            "laterality is the display side from the chest-wall position in the pixels; it differs from "
            f"Info.txt's even/odd rule for {len(disagree)} films"
            + (f" ({', '.join(disagree)})" if disagree else "")
        )
    for film, (side, margin) in sides.items():
        view = views[film]
        view.key = f"{side}-MLO"
        view.extra["laterality_source"] = (
            "chest-wall side in the image (display convention)"
            if laterality == "image"
            else "Info.txt even/odd rule"
        )
        if laterality == "image":
            view.extra["chest_wall_margin"] = round(margin, 4)

    studies = []
    for film in sorted(films):
        number = int(film[3:])
        if number % 2 == 0 and f"mdb{number - 1:03d}" in films:
            continue  # taken with its odd partner
        partner = f"mdb{number + 1:03d}" if number % 2 == 1 else None
        woman = f"mias-woman-{(number + 1) // 2:03d}"
        group = [film] + ([partner] if partner in films else [])
        held = [f in heldout_films for f in group]
        if len(group) == 2 and held[0] != held[1]:
            parts = [[f] for f in group]
        else:
            parts = [group]
        for part in parts:
            split = "heldout" if part[0] in heldout_films else "train"
            study_views = {views[f].key: views[f] for f in part}
            studies.append(
                StudyEntry(
                    id="mias-" + "-".join(part),
                    source="mias",
                    split=split,
                    labelled=True,
                    views=study_views,
                    patient_id=woman,
                    metadata={"films": part},
                )
            )

    unboxed = [
        f"{film} ({r.abnormality})"
        for film, rs in sorted(films.items())
        for r in rs
        if r.abnormality != "NORM" and r.x is None
    ]
    if unboxed:
        notes.append(
            f"{len(unboxed)} lesion rows without coordinates are image-level labels (box null), excluded "
            f"from box training: {', '.join(unboxed)}"
        )
    log.debug("mini-MIAS: %d films in %d studies", len(films), len(studies))
    return Manifest(studies, description="mini-MIAS (Suckling et al. 1994)", notes=notes)


def _view(film: str, rows: list[MiasRow], image: Path, spacing_mm: float, parity_side: str) -> ViewEntry:
    lesions = []
    for index, row in enumerate((r for r in rows if r.abnormality != "NORM"), 1):
        lesion_type, morphology = CLASS_MAP[row.abnormality]
        extra: dict = {"class": row.abnormality}
        box = None
        if row.x is not None and row.y is not None and row.radius is not None:
            # Y counts from the bottom: the centre pixel is [1024 - Y, X], its centre at +0.5.
            cx, cy = row.x + 0.5, (IMAGE_SIZE - row.y) + 0.5
            box = (
                max(cx - row.radius, 0.0),
                max(cy - row.radius, 0.0),
                min(cx + row.radius, float(IMAGE_SIZE)),
                min(cy + row.radius, float(IMAGE_SIZE)),
            )
            extra.update({"x": row.x, "y_from_bottom": row.y, "radius": row.radius})
        else:
            extra["note"] = "Info.txt gives no coordinates" + (f" ({row.comment})" if row.comment else "")
        lesions.append(
            Lesion(
                id=f"{film}-{index}",
                type=lesion_type,
                box=box,
                pathology=SEVERITY_MAP[row.severity],
                morphology=dict(morphology),
                extra=extra,
            )
        )
    return ViewEntry(
        key=f"{parity_side}-MLO",
        image=image,
        spacing=(spacing_mm, spacing_mm),
        size=(IMAGE_SIZE, IMAGE_SIZE),
        source_id=film,
        lesions=lesions,
        extra={"background": BACKGROUNDS[rows[0].background], "info_txt_laterality": parity_side},
    )


def _find_table(src: Path) -> Path:
    if src.is_file():
        return src
    if src.is_dir():
        for name in ("Info.txt", "info.txt", "annotations.csv"):
            if (src / name).is_file():
                return src / name
        raise InputError(src, "no Info.txt or annotations.csv in this folder")
    raise InputError(src, "no such file or folder")


def _find_image(film: str, folders: list[Path], table: Path) -> Path:
    for folder in folders:
        for suffix in (".pgm", ".png", ".PGM", ".PNG"):
            candidate = folder / f"{film}{suffix}"
            if candidate.is_file():
                return Path(os.path.abspath(candidate))
    raise InputError(
        table,
        f"image of {film} not found (looked for {film}.pgm/.png in "
        f"{', '.join(str(f) for f in folders)}); pass images=FOLDER",
    )


def _read_reduced(path: Path, factor: int) -> tuple[tuple[int, int], np.ndarray]:
    """The image's (width, height) and its pixels averaged over ``factor`` x ``factor`` blocks."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            size = image.size
            if image.mode not in ("L", "I;16", "I", "F"):
                image = image.convert("L")
            elif image.mode != "L":
                image = image.convert("F")
            return size, np.asarray(image.reduce(factor))
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(path, f"cannot read the image: {exc}") from None

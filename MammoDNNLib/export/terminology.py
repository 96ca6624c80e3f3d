"""The Slicer terminology of MammoDNN findings: the context file and the ``TerminologyEntry`` segment tag.

The context ``Resources/Terminology/MammoDNN.term.json`` follows Slicer's segmentation context format (dcmqi's
``segment-context-schema.json``): one category, SCT 49755003 "Morphologically Abnormal Structure" (the
category Slicer's own lists file lesions under), holding the four finding types with the codes and display
colours of :data:`MammoDNNLib.vocabulary.FINDING_TYPES`. The file is generated from the vocabulary by
:func:`terminology_context` (``python -m MammoDNNLib.export.terminology`` rewrites it) so the two cannot drift
apart.

A segment's terminology is serialized the way ``vtkSlicerTerminologiesModuleLogic::SerializeTerminologyEntry``
does::

    contextName~catScheme^catValue^catMeaning~typeScheme^typeValue^typeMeaning~modScheme^modValue^modMeaning
    ~regionContextName~regionScheme^regionValue^regionMeaning~regionModScheme^regionModValue^regionModMeaning

with the anatomic region "Breast" (SCT 76752008) and its laterality modifier from Slicer's "Anatomic codes -
DICOM master list".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ..vocabulary import FINDING_TYPES, Code, finding_type

CONTEXT_NAME = "MammoDNN findings"
CONTEXT_SCHEMA = (
    "https://raw.githubusercontent.com/qiicr/dcmqi/master/doc/schemas/segment-context-schema.json#"
)
REGION_CONTEXT_NAME = "Anatomic codes - DICOM master list"
CATEGORY = Code("49755003", "SCT", "Morphologically Abnormal Structure")
BREAST = Code("76752008", "SCT", "Breast")
LATERALITY_CODES: dict[str, Code] = {
    "R": Code("24028007", "SCT", "Right"),
    "L": Code("7771000", "SCT", "Left"),
}
# DICOM context groups holding each type's code (CID 7159 Lesion Segmentation Types; CID 6016 Mammography
# Composite Feature), for the "cid" fields Slicer's files carry.
_CONTEXT_GROUPS: dict[str, tuple[str, str]] = {
    "mass": ("7159", "Lesion Segmentation Types"),
    "calcification": ("6016", "Mammography Composite Feature"),
    "asymmetry": ("6016", "Mammography Composite Feature"),
    "distortion": ("6016", "Mammography Composite Feature"),
}
FILE_NAME = "MammoDNN.term.json"


def rgb255(color: tuple[float, float, float]) -> list[int]:
    return [int(round(255 * max(0.0, min(1.0, c)))) for c in color]


def terminology_context() -> dict[str, Any]:
    """The content of ``MammoDNN.term.json``."""
    types = []
    for t in FINDING_TYPES:
        cid, group = _CONTEXT_GROUPS[t.key]
        entry: dict[str, Any] = {
            "CodeMeaning": t.code.meaning,
            "CodingSchemeDesignator": t.code.scheme,
            "CodeValue": t.code.value,
            "recommendedDisplayRGBValue": rgb255(t.color),
            "3dSlicerLabel": t.key,
            "cid": cid,
            "contextGroupName": group,
        }
        if t.code.scheme == "SCT":
            entry["SNOMEDCTConceptID"] = t.code.value
        types.append(entry)
    return {
        "SegmentationCategoryTypeContextName": CONTEXT_NAME,
        "@schema": CONTEXT_SCHEMA,
        "SegmentationCodes": {
            "Category": [
                {
                    "CodeMeaning": CATEGORY.meaning,
                    "CodingSchemeDesignator": CATEGORY.scheme,
                    "CodeValue": CATEGORY.value,
                    "SNOMEDCTConceptID": CATEGORY.value,
                    "cid": "7150",
                    "contextGroupName": "Segmentation Property Categories",
                    "showAnatomy": True,
                    "Type": types,
                }
            ]
        },
    }


def terminology_entry(type_key: str, laterality: str | None = None) -> str:
    """The ``TerminologyEntry`` tag of a finding of this type in this breast (Slicer's serialization)."""
    t = finding_type(type_key)
    region = ("", "", "")
    modifier = ("", "", "")
    region_context = ""
    if laterality is not None:
        region_context = REGION_CONTEXT_NAME
        region = (BREAST.scheme, BREAST.value, BREAST.meaning)
        lat = LATERALITY_CODES[laterality]
        modifier = (lat.scheme, lat.value, lat.meaning)
    parts = [
        CONTEXT_NAME,
        "^".join((CATEGORY.scheme, CATEGORY.value, CATEGORY.meaning)),
        "^".join((t.code.scheme, t.code.value, t.code.meaning)),
        "^^",
        region_context,
        "^".join(region),
        "^".join(modifier),
    ]
    return "~".join(parts)


def terminology_file() -> Path:
    """The shipped context file."""
    from ..paths import resources_dir

    return resources_dir() / "Terminology" / FILE_NAME


def write_terminology_context(path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(terminology_context(), indent=2) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    """Rewrite the shipped context file (or the path given) from the vocabulary."""
    argv = sys.argv[1:] if argv is None else argv
    target = (
        Path(argv[0])
        if argv
        else Path(__file__).resolve().parents[2] / "Resources" / "Terminology" / FILE_NAME
    )
    write_terminology_context(target)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

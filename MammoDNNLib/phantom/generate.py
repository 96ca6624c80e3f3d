"""The phantom's public entry points: make a study in memory, write it, make many.

``generate_study(seed, size)`` builds the patient, both breasts in 3D, the four compressions, the lesions
and the four images, and returns a :class:`PhantomStudy` (a :class:`MammoDNNLib.study.Study` with DICOM
headers, plus its :class:`~.truth.PhantomTruth` with masks). ``write_study`` puts four DICOM files,
``truth.json`` and the mask PNGs in a folder; ``generate_studies`` writes a numbered collection with an
``index.json``.

Every random draw comes from a stream keyed by the seed and the component's name (:mod:`.seeding`): the same
seed gives byte-identical images and truth, and the 3D anatomy and lesions of a seed do not depend on the
size.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .. import __version__
from ..errors import InputError
from ..geometry import LesionMask
from ..study import Study, View
from ..vocabulary import BIRADS_CATEGORIES, DENSITY_CATEGORIES, VIEW_KEYS, split_view_key
from .anatomy import (
    BreastAnatomy,
    ViewGeometry,
    place_view,
    sample_breast,
    sample_compression,
    sample_patient,
)
from .config import SIZE_SPACING_MM, PhantomConfig
from .dicom import Acquisition, build_header, study_identity, write_dicom
from .lesions import LesionModel, worst_birads
from .placement import place_breast_lesions, plan_lesions
from .projection import RenderedView, build_view_base, fixed_pattern, render_view
from .regions import depth_in_view, quadrant_in_view
from .seeding import check_seed, stream, study_seed
from .truth import (
    MASK_DIR,
    TRUTH_FILE,
    BreastTruth,
    LesionTruth,
    LesionViewTruth,
    PhantomTruth,
    ViewTruth,
    load_truth,
    write_truth,
)

log = logging.getLogger(__name__)

INDEX_FILE = "index.json"
INDEX_SCHEMA = "mammodnn-phantom-index"
GENERATOR = f"MammoDNNLib.phantom {__version__}"


@dataclass
class PhantomStudy:
    """A generated study: the images as a :class:`Study` and the ground truth."""

    study: Study  # views keyed R-CC, L-CC, R-MLO, L-MLO; pixels = stored values (float32); header set
    truth: PhantomTruth  # masks in memory
    pixel_data: dict[str, np.ndarray]  # the uint16 stored values written to the DICOM files

    @property
    def study_id(self) -> str:
        return self.truth.study_id


def _file_name(key: str) -> str:
    return f"{key}.dcm"


def _choose_detector(
    anatomies: dict[str, BreastAnatomy], thicknesses: dict[str, float], formats: list[tuple[float, float]]
) -> tuple[float, float]:
    """The smallest detector format holding both breasts comfortably (as a technologist picks the paddle)."""
    from .anatomy import compressed_extents, compression_scales

    ordered = sorted(formats, key=lambda f: f[0] * f[1])
    for width, height in ordered:
        fits = True
        for side, anatomy in anatomies.items():
            shape = anatomy.shape
            for view in ("CC", "MLO"):
                lo, hi, t_plus, t_minus = compressed_extents(shape, view, np.deg2rad(47.0))
                ea, et = compression_scales(thicknesses[f"{side}-{view}"] / (hi - lo))
                if ea * shape.depth > 0.8 * width or et * (t_plus + t_minus) > 0.85 * height:
                    fits = False
        if fits:
            return width, height
    return ordered[-1]


def generate_study(
    seed: int, size: str = "small", config: PhantomConfig | None = None, *, study_id: str | None = None
) -> PhantomStudy:
    """One four-view study, entirely in memory. ``size``: small (0.5 mm), medium (0.3 mm), full (0.15 mm)."""
    seed = check_seed(seed)
    config = (config or PhantomConfig()).validate()
    spacing = config.spacing_for(size)
    study_id = study_id or f"phantom-{seed}"

    def rng(*names: str | int) -> np.random.Generator:
        return stream(seed, *names)

    patient = sample_patient(rng("patient"), config.anatomy)
    anatomies = {
        side: sample_breast(rng("breast", side), config.anatomy, patient, side) for side in ("R", "L")
    }
    compressions = {}
    for side, anatomy in anatomies.items():
        cc = sample_compression(rng("compression", side, "CC"), config.anatomy, anatomy.shape, "CC", None)
        mlo = sample_compression(
            rng("compression", side, "MLO"), config.anatomy, anatomy.shape, "MLO", cc.thickness
        )
        compressions[f"{side}-CC"], compressions[f"{side}-MLO"] = cc, mlo
    detector = _choose_detector(
        anatomies, {k: c.thickness for k, c in compressions.items()}, config.anatomy.detector_formats_mm
    )
    geometries: dict[str, ViewGeometry] = {}
    for key in VIEW_KEYS:
        side, _ = split_view_key(key)
        geometries[key] = place_view(
            anatomies[side], compressions[key], spacing, detector, rng("placement", key)
        )
    bases = {key: build_view_base(geometries[key], anatomies[split_view_key(key)[0]]) for key in VIEW_KEYS}

    plans = plan_lesions(rng("lesion-plan"), config.lesions)
    lesions: dict[str, list[LesionModel]] = {
        side: place_breast_lesions(
            rng("lesions", side), anatomies[side], bases, plans[side], config.lesions, config.areola_radius_mm
        )
        for side in ("R", "L")
    }

    shape = bases["R-CC"].footprint.shape
    pattern = fixed_pattern(rng("detector"), shape, spacing, config.imaging.fixed_pattern_amplitude)
    rendered: dict[str, RenderedView] = {}
    for key in VIEW_KEYS:
        side, _ = split_view_key(key)
        rendered[key] = render_view(
            bases[key],
            anatomies[side],
            lesions[side],
            config.anatomy,
            config.imaging,
            rng("texture", key),
            rng("noise", key),
            pattern,
        )
    return _assemble(
        seed,
        size,
        spacing,
        study_id,
        config,
        patient.age,
        anatomies,
        geometries,
        lesions,
        rendered,
        {key: compressions[key].force_n for key in VIEW_KEYS},
        {key: compressions[key].mlo_angle_rad for key in VIEW_KEYS},
    )


DENSITY_QUARTILES = (0.25, 0.50, 0.75)


def density_category(percent_density: float) -> str:
    """BI-RADS composition from percent density by the 4th-edition quartiles (A < 25 % <= B < 50 % <= C < 75 %
    <= D)."""
    return DENSITY_CATEGORIES[int(np.searchsorted(DENSITY_QUARTILES, percent_density, side="right"))]


def _flip_mask(mask: LesionMask, width: int) -> LesionMask:
    rows, cols = mask.array.shape
    return LesionMask(mask.array[:, ::-1].copy(), (width - mask.origin[0] - cols, mask.origin[1]))


def _assemble(
    seed: int,
    size: str,
    spacing: float,
    study_id: str,
    config: PhantomConfig,
    age: int,
    anatomies: dict[str, BreastAnatomy],
    geometries: dict[str, ViewGeometry],
    lesions: dict[str, list[LesionModel]],
    rendered: dict[str, RenderedView],
    forces: dict[str, float],
    mlo_angles: dict[str, float],
) -> PhantomStudy:
    identity = study_identity(seed, study_id, age)
    views: dict[str, View] = {}
    view_truths: dict[str, ViewTruth] = {}
    pixel_data: dict[str, np.ndarray] = {}
    lesion_views: dict[str, dict[str, LesionViewTruth]] = {}
    for index, key in enumerate(VIEW_KEYS, start=1):
        side, view = split_view_key(key)
        g = geometries[key]
        out = rendered[key]
        base = out.base
        flip = g.flip
        pixels = out.pixels[:, ::-1].copy() if flip else out.pixels
        breast = base.footprint[:, ::-1].copy() if flip else base.footprint.copy()
        pectoral = base.pectoral_mask[:, ::-1].copy() if flip else base.pectoral_mask.copy()
        region = breast & ~pectoral
        values = pixels[region] if region.any() else pixels.ravel()
        lo, hi = np.percentile(values, [0.5, 99.5])
        acq = Acquisition(
            key=key,
            instance_number=index,
            rows=g.height_px,
            columns=g.width_px,
            spacing_mm=spacing,
            thickness_mm=g.thickness,
            compression_force_n=forces[key],
            positioner_angle_deg=0.0
            if view == "CC"
            else (1 if side == "R" else -1) * np.degrees(mlo_angles[key]),
            bits_stored=config.imaging.bits_stored,
            window_center=float(lo + hi) / 2.0,
            window_width=float(max(hi - lo, 1.0) * 1.1),
        )
        density_factor = 1.0 + 0.5 * out.percent_density
        header = build_header(identity, acq, side, view, density_factor)
        pixel_data[key] = pixels
        views[key] = View(
            pixels=pixels.astype(np.float32),
            spacing=(spacing, spacing),
            laterality=side,
            view=view,
            source=None,
            provenance={
                "laterality": "ImageLaterality (0020,0062)",
                "view": "ViewPosition (0018,5101)",
                "spacing": "ImagerPixelSpacing (0018,1164) / EstimatedRadiographicMagnificationFactor 1.0",
                "origin": f"MammoDNN phantom, seed {seed}",
            },
            header=header,
        )
        nipple = g.prepared_to_original_px(base.nipple_mm)[0]
        line = None
        if g.pectoral is not None:
            top = g.prepared_to_original_px(np.asarray(g.pectoral.top))[0]
            edge = g.prepared_to_original_px(np.asarray(g.pectoral.edge))[0]
            line = ((float(top[0]), float(top[1])), (float(edge[0]), float(edge[1])))
        view_truths[key] = ViewTruth(
            key=key,
            laterality=side,
            view=view,
            file=_file_name(key),
            size=(g.width_px, g.height_px),
            spacing=(spacing, spacing),
            chest_wall_side="right" if flip else "left",
            patient_orientation=tuple(header.PatientOrientation),  # type: ignore[arg-type]
            nipple=(float(nipple[0]), float(nipple[1])),
            pectoral_line=line,
            posterior_nipple_line_mm=float(np.dot(base.nipple_mm - g.origin, g.normal)),
            compressed_thickness_mm=g.thickness,
            compression_force_n=forces[key],
            percent_density=out.percent_density,
            sop_instance_uid=str(header.SOPInstanceUID),
            breast_mask_file=f"{MASK_DIR}/breast_{key}.png",
            pectoral_mask_file=f"{MASK_DIR}/pectoral_{key}.png" if pectoral.any() else None,
            lesion_ids=[lesion.id for lesion in lesions[side]],
            breast_mask=breast,
            pectoral_mask=pectoral if pectoral.any() else None,
        )
        for lesion in lesions[side]:
            render = out.lesions[lesion.id]
            rows, cols = render.mask_window
            mask = LesionMask.from_full_crop(render.mask, (cols.start, rows.start))
            if flip:
                mask = _flip_mask(mask, g.width_px)
            centre_px = g.prepared_to_original_px(render.centre_mm)[0]
            category, snr, contrast = out.visibility[lesion.id]
            lesion_views.setdefault(lesion.id, {})[key] = LesionViewTruth(
                box=mask.box,
                centre=(float(centre_px[0]), float(centre_px[1])),
                quadrant=quadrant_in_view(g, base.nipple_mm, render.centre_mm, config.areola_radius_mm),
                depth=depth_in_view(g, base.nipple_mm, render.centre_mm),
                visibility=category,
                snr=snr,
                contrast=contrast,
                area_px=mask.area,
                mask_file=f"{MASK_DIR}/lesion_{lesion.id}_{key}.png",
                mask=mask,
            )
        views[key].provenance["study_id"] = study_id

    lesion_truths = [
        LesionTruth(
            id=lesion.id,
            laterality=lesion.laterality,
            type=lesion.kind,
            pathology=lesion.pathology,
            morphology=dict(lesion.morphology),
            birads=lesion.birads,
            size_mm=lesion.size_mm,
            position_mm=(float(lesion.centre[0]), float(lesion.centre[1]), float(lesion.centre[2])),
            depth_3d=float(
                np.clip(1.0 - lesion.centre[0] / anatomies[lesion.laterality].shape.depth, 0.0, 1.0)
            ),
            axillary_tail=lesion.in_axillary_tail,
            views=lesion_views[lesion.id],
        )
        for side in ("R", "L")
        for lesion in lesions[side]
    ]
    breasts = {
        side: BreastTruth(
            laterality=side,
            density=density_category(
                0.5 * (rendered[f"{side}-CC"].percent_density + rendered[f"{side}-MLO"].percent_density)
            ),
            percent_density=0.5
            * (rendered[f"{side}-CC"].percent_density + rendered[f"{side}-MLO"].percent_density),
            birads=worst_birads([lesion.birads for lesion in lesions[side]]),
            lesion_ids=[lesion.id for lesion in lesions[side]],
            shape=anatomies[side].shape.to_dict(),
        )
        for side in ("R", "L")
    }
    truth = PhantomTruth(
        study_id=study_id,
        seed=seed,
        size=size,
        spacing_mm=spacing,
        patient_id=identity.patient_id,
        patient_age=age,
        study_instance_uid=identity.study_instance_uid,
        exam_birads=max((b.birads for b in breasts.values()), key=BIRADS_CATEGORIES.index),
        breasts=breasts,
        views=view_truths,
        lesions=lesion_truths,
        config=config.to_dict(),
        generator=GENERATOR,
    )
    study = Study(
        views=views,
        source=None,
        metadata={
            "study_id": study_id,
            "patient_id": identity.patient_id,
            "study_instance_uid": identity.study_instance_uid,
            "phantom_seed": seed,
        },
    )
    return PhantomStudy(study=study, truth=truth, pixel_data=pixel_data)


def write_study(phantom: PhantomStudy, out_dir: str | Path) -> Path:
    """Write the four DICOM files, ``truth.json`` and the masks into ``out_dir`` (created); returns the
    folder."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for key, view in phantom.study.views.items():
        assert view.header is not None
        write_dicom(out_dir / phantom.truth.views[key].file, view.header, phantom.pixel_data[key])
    write_truth(phantom.truth, out_dir)
    return out_dir


def generate_studies(
    out: str | Path,
    studies: int,
    seed: int,
    size: str = "small",
    config: PhantomConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Write ``studies`` studies into ``out/study_0000`` ... (study k seeded from (seed, k)) and
    ``out/index.json``."""
    seed = check_seed(seed)
    if studies < 1:
        raise InputError(out, f"the number of studies must be at least 1, got {studies}")
    if size not in SIZE_SPACING_MM:
        raise InputError(out, f"unknown phantom size {size!r}; expected one of {', '.join(SIZE_SPACING_MM)}")
    config = (config or PhantomConfig()).validate()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    folders: list[Path] = []
    entries = []
    for k in range(studies):
        phantom = generate_study(study_seed(seed, k), size, config, study_id=f"phantom-s{seed}-{k:04d}")
        folder = write_study(phantom, out / f"study_{k:04d}")
        folders.append(folder)
        truth = phantom.truth
        entries.append(
            {
                "folder": folder.name,
                "study_id": truth.study_id,
                "seed": truth.seed,
                "exam_birads": truth.exam_birads,
                "density": {side: b.density for side, b in truth.breasts.items()},
                "lesions": [
                    {"id": les.id, "type": les.type, "pathology": les.pathology} for les in truth.lesions
                ],
                "files": {key: v.file for key, v in truth.views.items()},
                "truth": TRUTH_FILE,
            }
        )
        if progress is not None:
            progress(k + 1, studies)
        log.debug("phantom study %d/%d written to %s", k + 1, studies, folder)
    index = {
        "schema": INDEX_SCHEMA,
        "version": 1,
        "generator": GENERATOR,
        "seed": seed,
        "size": size,
        "spacing_mm": config.spacing_for(size),
        "studies": entries,
    }
    (out / INDEX_FILE).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    return folders


__all__ = ["PhantomStudy", "generate_study", "write_study", "generate_studies", "load_truth"]

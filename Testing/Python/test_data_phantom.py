"""Phantom converter: truth.json folders written by the phantom package, end to end into training samples."""

from __future__ import annotations

import numpy as np
import pytest

from MammoDNNLib.data.converters import convert
from MammoDNNLib.data.converters.phantom import find_phantom_studies
from MammoDNNLib.data.dataset import StudyLoader, read_mask_file
from MammoDNNLib.data.manifest import load_manifest, save_manifest
from MammoDNNLib.errors import InputError
from MammoDNNLib.geometry import LesionMask

phantom = pytest.importorskip("MammoDNNLib.phantom")


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """One small phantom study written by the phantom package, with at least two lesions and both obvious
    and less visible projections (seed 2 had them when written; later seeds are tried if the generator
    changes)."""
    out = tmp_path_factory.mktemp("phantoms")
    for seed in range(2, 40):
        study = phantom.generate_study(seed=seed, size="small")
        visibility = {v.visibility for lesion in study.truth.lesions for v in lesion.views.values()}
        if len(study.truth.lesions) >= 2 and "obvious" in visibility and len(visibility) > 1:
            phantom.write_study(study, out / "study_0000")
            return out
    pytest.fail("no phantom seed in 2..39 gives a study with obvious and less visible lesions")


def test_truth_is_kept(collection, tmp_path):
    manifest = convert("phantom", collection, min_visibility="occult")
    assert len(manifest) == 1 and [p.name for p in find_phantom_studies(collection)] == ["study_0000"]
    truth = phantom.load_truth(collection / "study_0000", masks=False)
    assert sum(1 for _ in manifest.studies[0].lesions) == sum(len(les.views) for les in truth.lesions)
    compared = 0
    for folder, study in zip(find_phantom_studies(collection), manifest.studies, strict=True):
        truth = phantom.load_truth(folder)
        assert study.id == truth.study_id and study.source == "phantom" and study.split == "train"
        assert set(study.views) == set(truth.views)
        for key, view in study.views.items():
            assert view.image.is_file() and view.size == truth.views[key].size
            assert view.density == truth.breasts[key[0]].density
            by_id = {lesion.id: lesion for lesion in view.lesions}
            assert set(by_id) == {lesion.id for lesion in truth.lesions_in(key)}
            for lesion_truth in truth.lesions_in(key):
                lesion, projection = by_id[lesion_truth.id], lesion_truth.views[key]
                assert lesion.type == lesion_truth.type and lesion.pathology == lesion_truth.pathology
                assert lesion.morphology == lesion_truth.morphology and lesion.birads == lesion_truth.birads
                assert lesion.quadrant == projection.quadrant and lesion.depth == pytest.approx(
                    projection.depth
                )
                assert lesion.box == tuple(projection.box)
                # The mask file with its origin is the truth's mask exactly; the outline nearly so.
                full = read_mask_file(lesion.mask, view.size, lesion.mask_origin)
                expected = projection.mask.full((view.size[1], view.size[0]))
                np.testing.assert_array_equal(full, expected)
                traced = LesionMask.from_polygon(lesion.outline, (view.size[1], view.size[0]))
                traced_full = traced.full(expected.shape)
                assert (traced_full & expected).sum() / (traced_full | expected).sum() > 0.85
                compared += 1
        # A lesion is linked across its two views by its id.
        for lesion_truth in truth.lesions:
            ids = [k for k, v in study.views.items() if any(les.id == lesion_truth.id for les in v.lesions)]
            assert sorted(ids) == sorted(lesion_truth.views)
    assert compared >= 2
    path = save_manifest(manifest, tmp_path / "phantom.json")
    assert load_manifest(path, check_files=True).studies == manifest.studies


def test_visibility_threshold_and_split(collection):
    everything = convert("phantom", collection, min_visibility="occult", split="test")
    obvious = convert("phantom", collection, min_visibility="obvious", split=None)
    assert {s.split for s in everything} == {"test"} and {s.split for s in obvious} == {None}
    for full, strict in zip(everything.studies, obvious.studies, strict=True):
        for key in full.views:
            kept = {les.id for les in strict.views[key].lesions}
            left_out = set(strict.views[key].extra.get("occult_lesions", []))
            assert kept | left_out == {les.id for les in full.views[key].lesions} and not kept & left_out
            assert all(les.extra["visibility"] == "obvious" for les in strict.views[key].lesions)
            assert all(
                les.extra["visibility"] != "obvious" for les in full.views[key].lesions if les.id in left_out
            )
    truth = phantom.load_truth(collection / "study_0000", masks=False)
    hidden = sum(v.visibility != "obvious" for les in truth.lesions for v in les.views.values())
    assert hidden > 0
    assert sum(len(v.extra.get("occult_lesions", [])) for v in obvious.studies[0].views.values()) == hidden
    with pytest.raises(InputError, match="no phantom study here"):
        convert("phantom", collection / "study_0000" / "masks")


def test_collection_index(collection, tmp_path):
    index = tmp_path / "index.json"
    index.write_text('{"schema": "mammodnn-phantom-index", "studies": [{"folder": "study_0000"}]}')
    with pytest.raises(InputError, match="lists study_0000, which has no truth.json"):
        find_phantom_studies(tmp_path)
    (collection / "index.json").write_text(index.read_text())
    try:
        assert find_phantom_studies(collection) == [collection / "study_0000"]
    finally:
        (collection / "index.json").unlink()


def test_phantom_study_to_training_sample(collection):
    """Manifest -> real io + preprocessing -> targets whose masks and boxes sit on the truth mask."""
    preprocess = pytest.importorskip("MammoDNNLib.preprocess")
    manifest = convert("phantom", collection, min_visibility="occult")
    study = max(manifest.studies, key=lambda s: sum(1 for _ in s.lesions))
    sample = StudyLoader(preprocess.PreprocessConfig(spacing_mm=0.5)).load(study)
    assert sample.labelled
    kept_any = False
    for key, view in sample.views.items():
        entry = study.views[key]
        if not entry.lesions:
            assert view.target.masks is None and len(view.target.boxes) == 0
            continue
        by_id = {lesion.id: lesion for lesion in entry.lesions}
        assert set(view.target.lesion_ids) <= set(by_id)
        x0, y0, x1, y1 = view.transform.crop
        for lesion in entry.lesions:  # only lesions outside the preparation's crop are left out
            if lesion.id not in view.target.lesion_ids:
                bx0, by0, bx1, by1 = lesion.box
                assert bx1 <= x0 or bx0 >= x1 or by1 <= y0 or by0 >= y1
        for lesion_id, box, mask in zip(
            view.target.lesion_ids, view.target.boxes, view.target.masks, strict=True
        ):
            lesion = by_id[lesion_id]
            inside = (
                max(lesion.box[0], x0),
                max(lesion.box[1], y0),
                min(lesion.box[2], x1),
                min(lesion.box[3], y1),
            )
            np.testing.assert_allclose(view.transform.boxes_to_original([box])[0], inside, atol=1.0)
            back = view.transform.mask_to_original(mask.full(view.image.shape).astype(np.uint8)).astype(bool)
            truth = read_mask_file(lesion.mask, entry.size, lesion.mask_origin)
            truth[:, :x0] = truth[:, x1:] = False
            truth[:y0] = truth[y1:] = False
            assert (back & truth).sum() / (back | truth).sum() > 0.8
            kept_any = True
    assert kept_any

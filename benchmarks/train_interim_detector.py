"""Train the INTERIM detector bundled with the ``mammodnn`` 0.1.0 system
(``Resources/Models/mammodnn/0.1.0/detector``)
until the project's detector (``mammodnn-detector``) is trained.

    python benchmarks/train_interim_detector.py --out DIR [--studies 80] [--iterations 1600] [--threads 1]

The ``detector-tiny-test`` network (ResNet18 to stride 8, 64-channel FPN, four-view fusion, GroupNorm from
scratch)
prepared at 0.8 mm, trained by :func:`MammoDNNLib.training.detector.train_detector` on small phantoms of
collection 7100 (``study_seed(7100, k)``), two or three lesions per breast more often than the default mix,
with
every projection the phantom does not grade occult as a target. It is weak (docs/pipeline.md); it exists so
that
the pipeline and ``mammodnn demo`` run end to end. Collection 7100 is used by nothing else (the pipeline tunes
on
7200 and tests on 7300).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from MammoDNNLib.data.samples import StudySample, ViewSample, ViewTarget
from MammoDNNLib.phantom import PhantomConfig, generate_study, study_seed
from MammoDNNLib.phantom.config import LesionConfig
from MammoDNNLib.preprocess import PreprocessConfig, prepare_view
from MammoDNNLib.vocabulary import class_index

COLLECTION = 7100
SPACING_MM = 0.8
LESIONS = PhantomConfig(
    lesions=LesionConfig(
        normal_study_fraction=0.0,
        second_breast_probability=1.0,
        lesions_per_breast_weights={"1": 0.3, "2": 0.4, "3": 0.3},
    )
)


def phantom_samples(count: int) -> list[StudySample]:
    samples = []
    for k in range(count):
        phantom = generate_study(study_seed(COLLECTION, k), "small", LESIONS)
        views = {}
        for key, view in phantom.study.views.items():
            prepared = prepare_view(view, PreprocessConfig(spacing_mm=SPACING_MM))
            boxes, labels, ids = [], [], []
            for lesion in phantom.truth.lesions:
                projection = lesion.views.get(key)
                if projection is None or projection.visibility == "occult":
                    continue
                boxes.append(prepared.transform.boxes_to_prepared([projection.box])[0])
                labels.append(class_index(lesion.type))
                ids.append(lesion.id)
            target = ViewTarget(np.array(boxes).reshape(-1, 4), np.array(labels), ids)
            views[key] = ViewSample(key, prepared.image, prepared.breast_mask, prepared.transform, target)
        samples.append(StudySample(phantom.truth.study_id, views, True))
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--studies", type=int, default=80)
    parser.add_argument("--iterations", type=int, default=1600)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    import torch

    from MammoDNNLib.models.config import load_config
    from MammoDNNLib.training.detector import TrainOptions, train_detector

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    started = time.monotonic()
    samples = phantom_samples(args.studies)
    config = load_config("detector-tiny-test").replace(
        spacing_mm=SPACING_MM, name="mammodnn-detector-interim"
    )
    info = train_detector(
        samples,
        config,
        args.out,
        TrainOptions(
            name="mammodnn-detector-interim",
            version="0.0.1",
            progress=False,
            max_iterations=args.iterations,
            seed=0,
            device="cpu",
            training_data={
                "source": "phantom",
                "phantom_size": "small",
                "collection_seed": COLLECTION,
                "prepared_spacing_mm": SPACING_MM,
            },
        ),
    )
    print(f"trained {info.label} in {time.monotonic() - started:.0f} s: {info.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

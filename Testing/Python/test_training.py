"""The detector's training loop: schedule, partitions, augmentation geometry, checkpoints and resume, DDP path,
semi-supervised bookkeeping, the CLI, and (slow) that a tiny model learns to find held-out lesions."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
import torch

from MammoDNNLib.models.config import DetectorConfig, TrainingConfig, load_config
from MammoDNNLib.models.detector import Detector
from MammoDNNLib.models.tta import BoxSet
from MammoDNNLib.training.batches import training_batch
from MammoDNNLib.training.detector import TrainOptions, loss_trend, partition_indices, train_detector
from MammoDNNLib.training.metrics import evaluate_detector, froc
from MammoDNNLib.training.schedule import learning_rate
from MammoDNNLib.training.synthetic import SyntheticSpec, synthetic_studies

torch.set_num_threads(1)
SMALL = SyntheticSpec(height=96, width=80, mass_sigma=(3.0, 4.0))


def _config(iterations: int, **training) -> DetectorConfig:
    base = load_config("detector-tiny-test")
    return base.replace(
        training={
            **base.to_dict()["training"],
            "max_iterations": iterations,
            "log_every": 1,
            "checkpoint_every": 2,
            **training,
        }
    )


def test_learning_rate_schedule_follows_the_recipe():
    config = TrainingConfig()  # lr 0.005, 500 warm-up iterations from 0.001x, x0.1 at 67 % and 89 % of 25,000
    assert learning_rate(0, config) == pytest.approx(0.005 * 0.001)
    assert learning_rate(250, config) == pytest.approx(0.005 * (0.001 * 0.5 + 0.5))
    assert learning_rate(500, config) == pytest.approx(0.005)
    assert learning_rate(16749, config) == pytest.approx(0.005)
    assert learning_rate(16750, config) == pytest.approx(0.0005)
    assert learning_rate(22250, config) == pytest.approx(0.00005)
    cosine = TrainingConfig(decay="cosine", warmup_iterations=0, max_iterations=100)
    assert learning_rate(50, cosine) == pytest.approx(0.0025)
    assert learning_rate(100, cosine) == pytest.approx(0.0)


def test_partitions_are_distinct_random_fractions():
    parts = partition_indices(50, 3, 0.8, seed=4)
    assert [len(p) for p in parts] == [40, 40, 40]
    assert all(len(set(p)) == 40 and p.max() < 50 for p in parts)
    assert len({tuple(p) for p in parts}) == 3
    assert [list(p) for p in partition_indices(50, 3, 0.8, seed=4)] == [list(p) for p in parts]
    assert list(partition_indices(7, 1, 0.8, 0)[0]) == list(range(7))


def test_augmentation_moves_boxes_with_the_pixels():
    """A bright square's box must still frame the bright square after rescale + crop + canvas flip."""
    from MammoDNNLib.data.samples import StudySample, ViewSample, ViewTarget
    from MammoDNNLib.geometry import Transform

    image = np.zeros((60, 50), np.float32)
    image[20:30, 12:22] = 1.0
    target = ViewTarget(np.array([[12, 20, 22, 30]], np.float32), np.array([1]), ["a"])
    sample = StudySample(
        "s", {"R-CC": ViewSample("R-CC", image, image > 0, Transform.identity(50, 60), target)}, True
    )
    for scale in (0.8, 1.0, 1.2):
        config = TrainingConfig(scale_range=(scale, scale), horizontal_flip=0.0)
        batch, targets = training_batch([sample], config, np.random.default_rng(3))
        height, width = batch.sizes[0]
        assert abs(height - 60 * min(scale, 1.0)) <= 1 and abs(width - 50 * min(scale, 1.0)) <= 1
        canvas = batch.images[0, 0].numpy()
        rows = np.flatnonzero(canvas.max(1) > 0.5)
        cols = np.flatnonzero(canvas.max(0) > 0.5)
        box = targets[0]["boxes"][0].numpy()
        np.testing.assert_allclose(box, [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], atol=1.0)
    config = TrainingConfig(scale_range=(1.0, 1.0), horizontal_flip=1.0, vertical_flip=1.0)
    batch, targets = training_batch([sample], config, np.random.default_rng(0))
    canvas = batch.images[0, 0].numpy()
    rows = np.flatnonzero(canvas.max(1) > 0.5)
    cols = np.flatnonzero(canvas.max(0) > 0.5)
    np.testing.assert_allclose(targets[0]["boxes"][0].numpy(), [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])


def test_froc_on_hand_made_detections():
    truth = [np.array([[0, 0, 10, 10]]), np.array([[20, 20, 30, 30], [50, 50, 60, 60]])]
    found = [
        BoxSet([[2, 2, 8, 8], [40, 40, 44, 44]], [0.9, 0.8], [1, 1], np.zeros((2, 5))),  # hit, FP
        BoxSet(
            [[21, 21, 29, 29], [22, 22, 28, 28], [51, 51, 59, 59]],
            [0.7, 0.6, 0.3],
            [1, 1, 1],
            np.zeros((3, 5)),
        ),
    ]
    result = froc(zip(found, truth), fp_rates=(0.0, 0.5, 1.0))
    # Scores in order: 0.9 hit (1/3), 0.8 FP (0.5 FP/view), 0.7 hit (2/3), 0.6 duplicate (ignored), 0.3 hit (3/3).
    assert result.sensitivities == pytest.approx((1 / 3, 1.0, 1.0))
    assert (result.lesions, result.views) == (3, 2)
    assert result.full.n_false_positives == 1 and result.to_dict()["fp_per_view"] == [0.0, 0.5, 1.0]
    # Detections with equal scores pass a threshold together: a hit tied with a false positive needs 1 FP/view.
    tied = BoxSet([[2, 2, 8, 8], [40, 40, 44, 44]], [0.5, 0.5], [1, 1], np.zeros((2, 5)))
    assert froc([(tied, truth[0])], fp_rates=(0.0, 1.0)).sensitivities == pytest.approx((0.0, 1.0))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_resume_continues_exactly_and_ddp_single_process_matches(tmp_path, monkeypatch):
    studies = synthetic_studies(4, seed=3, spec=SMALL)
    config = _config(4)
    straight = train_detector(studies, config, tmp_path / "straight", TrainOptions(progress=False, seed=1))
    # Killed during iteration 3 (after the checkpoint at 2), then resumed.

    class Killed(Exception):
        pass

    def kill_at_3(record):
        if record["iteration"] == 3:
            raise Killed

    with pytest.raises(Killed):
        train_detector(
            studies, config, tmp_path / "resumed", TrainOptions(progress=False, seed=1), on_log=kill_at_3
        )
    checkpoints = tmp_path / "resumed" / "checkpoints" / "member-0"
    assert [p.name for p in sorted(checkpoints.glob("checkpoint-*.json"))] == ["checkpoint-0000002.json"]
    resumed = train_detector(
        studies, config, tmp_path / "resumed", TrainOptions(progress=False, seed=1, resume=True)
    )
    a = Detector.from_info(straight).members[0].state_dict()
    b = Detector.from_info(resumed).members[0].state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert loss_trend(tmp_path / "straight" / "train-log.jsonl") == pytest.approx(
        loss_trend(tmp_path / "resumed" / "train-log.jsonl"), abs=1e-4
    )

    # torchrun's environment with one process: the gloo process group and DistributedDataParallel path.
    for key, value in dict(
        WORLD_SIZE="1", RANK="0", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port())
    ).items():
        monkeypatch.setenv(key, value)
    distributed = train_detector(
        studies, config, tmp_path / "ddp", TrainOptions(progress=False, seed=1, device="cpu")
    )
    assert not torch.distributed.is_initialized()
    assert distributed.training_data["world_size"] == 1
    c = Detector.from_info(distributed).members[0].state_dict()
    assert all(torch.allclose(a[k], c[k], atol=1e-5) for k in a)


def test_partitions_make_one_ensemble_model_and_semi_supervised_uses_unlabelled(tmp_path):
    studies = synthetic_studies(5, seed=4, spec=SMALL) + synthetic_studies(
        3, seed=5, spec=SMALL, labelled=False
    )
    semi = {
        "enabled": True,
        "start_iteration": 0,
        "threshold": 0.0,
        "unlabelled_fraction": 1.0,
        "ema_decay": 0.5,
    }
    config = _config(2, semi_supervised=semi)
    info = train_detector(studies, config, tmp_path / "m", TrainOptions(progress=False, partitions=3, seed=2))
    assert [c.file for c in info.components] == [f"member-{i}.safetensors" for i in range(3)]
    members = info.training_data["members"]
    assert [m["studies"] for m in members] == [4, 4, 4]
    assert all(set(m["study_ids"]) <= {s.study_id for s in studies if s.labelled} for m in members)
    assert info.training_data["unlabelled_studies"] == 3
    records = [json.loads(line) for line in (tmp_path / "m" / "train-log.jsonl").read_text().splitlines()]
    assert {r["member"] for r in records} == {0, 1, 2}
    assert all(r["unlabelled"] for r in records)  # every iteration drew an unlabelled study
    assert sum(m["pseudo_boxes"] for m in members) > 0  # threshold 0: the teacher's boxes became targets
    detector = Detector.from_info(info)
    assert len(detector.members) == 3
    study = studies[0]
    found = detector.predict({k: v for k, v in study.views.items()}, tta=True)
    assert set(found) == set(study.views)


def test_train_cli_on_synthetic_studies(tmp_path, capsys):
    from MammoDNNLib.cli import main

    out = tmp_path / "cli-model"
    args = [
        "train",
        "detector",
        "--synthetic",
        "3",
        "--out",
        str(out),
        "--config",
        "detector-tiny-test",
        "--max-iterations",
        "2",
        "--quiet",
        "--json",
    ]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (
        summary["members"] == 1 and (out / "manifest.json").is_file() and (out / "train-log.jsonl").is_file()
    )
    assert main(args) == 1  # refuses to overwrite a run without --resume
    assert "--resume" in capsys.readouterr().err


def _random_detections(study, rng, per_view: int = 8) -> dict[str, BoxSet]:
    """Chance: boxes of lesion size at random places inside the breast, with random scores."""
    out = {}
    for key, view in study.views.items():
        rows, cols = np.nonzero(view.breast_mask)
        pick = rng.integers(0, len(rows), per_view)
        half = rng.uniform(5, 12, per_view)
        boxes = np.column_stack([cols[pick] - half, rows[pick] - half, cols[pick] + half, rows[pick] + half])
        out[key] = BoxSet(boxes, rng.random(per_view), np.ones(per_view, int), np.zeros((per_view, 5)))
    return out


@pytest.mark.slow
def test_tiny_detector_learns_to_find_held_out_lesions(tmp_path):
    torch.set_num_threads(2)
    train = synthetic_studies(40, seed=11)
    held_out = synthetic_studies(16, seed=12)
    config = load_config("detector-tiny-test")  # 200 iterations
    info = train_detector(train, config, tmp_path / "m", TrainOptions(progress=False, seed=0))
    losses = loss_trend(tmp_path / "m" / "train-log.jsonl")
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:2])
    detector = Detector.from_info(info)
    learned = evaluate_detector(detector, held_out, tta=False)
    rng = np.random.default_rng(0)
    pairs = []
    for study in held_out:
        chance_sets = _random_detections(study, rng)
        pairs += [(chance_sets[k], v.target.boxes) for k, v in study.views.items()]
    chance = froc(pairs)
    assert learned.lesions >= 20
    assert learned.at(1.0) >= 0.6, learned.to_dict()
    assert learned.mean_sensitivity >= 3 * chance.mean_sensitivity + 0.2, (
        learned.to_dict(),
        chance.to_dict(),
    )

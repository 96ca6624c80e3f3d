"""Pair precision, recall and F1 of a CC-MLO matching against the truth.

A predicted pair is a true positive when both of its candidates belong to the same true lesion (their
``truth_id``) and that lesion has not already been credited to another predicted pair (a duplicate detection of an
already matched lesion counts as a false positive). Every other predicted pair is a false positive. A true pair is
a lesion with a projection in both views of its breast; it is a false negative when no predicted pair credits it,
whether the matcher missed it or the detector did (the end-to-end figure). ``detectable`` counts the true pairs
whose two projections were both among the candidates, and ``recall_detectable`` is the recall over those only,
which is what the matcher itself could achieve.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class PairMetrics:
    tp: int
    fp: int
    fn: int
    detectable: int  # true pairs with both projections among the candidates

    @property
    def precision(self) -> float:
        predicted = self.tp + self.fp
        return self.tp / predicted if predicted else 1.0

    @property
    def recall(self) -> float:
        actual = self.tp + self.fn
        return self.tp / actual if actual else 1.0

    @property
    def recall_detectable(self) -> float:
        return self.tp / self.detectable if self.detectable else 1.0

    @property
    def f1(self) -> float:
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else 1.0

    def __add__(self, other: PairMetrics) -> PairMetrics:
        return PairMetrics(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn,
                           self.detectable + other.detectable)

    def to_dict(self) -> dict[str, float | int]:
        return {**asdict(self), "precision": self.precision, "recall": self.recall,
                "recall_detectable": self.recall_detectable, "f1": self.f1}


EMPTY = PairMetrics(0, 0, 0, 0)


def pair_metrics(
    predicted: Iterable[tuple[str | None, str | None]],
    true_pairs: Iterable[str],
    detectable: Iterable[str] | None = None,
) -> PairMetrics:
    """Score one breast (or any set): ``predicted`` are the (CC truth id, MLO truth id) of each predicted pair
    (None for a candidate that is no true lesion), ``true_pairs`` the ids of the lesions seen in both views,
    ``detectable`` those of them with both projections among the candidates (default: all)."""
    truth = set(true_pairs)
    reachable = truth if detectable is None else set(detectable) & truth
    credited: set[str] = set()
    tp = fp = 0
    for cc_id, mlo_id in predicted:
        if cc_id is not None and cc_id == mlo_id and cc_id in truth and cc_id not in credited:
            credited.add(cc_id)
            tp += 1
        else:
            fp += 1
    return PairMetrics(tp, fp, len(truth - credited), len(reachable))


def total(metrics: Iterable[PairMetrics]) -> PairMetrics:
    out = EMPTY
    for m in metrics:
        out = out + m
    return out

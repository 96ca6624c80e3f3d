"""Random streams of a phantom study, derived from its seed so that every part is reproducible on its own.

Each component (a breast's anatomy, a lesion, one view's texture or noise) draws from its own stream, keyed by
name, so that adding a draw in one component does not change any other component of the same study.
"""

from __future__ import annotations

import zlib

import numpy as np


def check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"a phantom seed is a non-negative integer, got {seed!r}")
    return int(seed)


def study_seed(seed: int, index: int) -> int:
    """The seed of study ``index`` of a collection made with ``seed`` (a 63-bit integer)."""
    state = np.random.SeedSequence([check_seed(seed), check_seed(index)]).generate_state(1, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))


def stream(seed: int, *names: str | int) -> np.random.Generator:
    """An independent generator for the component ``names`` of the study with ``seed``."""
    keys = tuple(zlib.crc32(str(name).encode("utf-8")) for name in names)
    return np.random.default_rng(np.random.SeedSequence(check_seed(seed), spawn_key=keys))

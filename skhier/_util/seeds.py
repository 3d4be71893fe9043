"""The one recipe that turns a scikit-learn ``random_state`` into seeds."""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

#: seeds are drawn below this bound (what every numpy and nutpie seed accepts)
SEED_MAX = 2**31 - 1


def seeds(random_state, n: int) -> list[int]:
    """``n`` seeds drawn one after another from ``random_state``."""
    rs = check_random_state(random_state)
    return [int(rs.randint(SEED_MAX)) for _ in range(n)]


def generator(random_state) -> np.random.Generator:
    """A numpy Generator seeded by one draw from ``random_state``."""
    return np.random.default_rng(seeds(random_state, 1)[0])

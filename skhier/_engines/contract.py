"""What an engine is given: one typed sampler configuration.

Every engine's ``fit`` takes ``(X, y, codes, n_groups, spec, scaling, *, config, rng)``
(plus ``offset`` for a GLM's fixed part of the linear predictor, ``stats`` for the
collapsed engine's summarized data) and returns its standardized-scale draws.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SamplerConfig:
    """How to sample: the estimator's options, resolved.

    ``inference`` is the method the engine runs (``"nuts"``, ``"laplace"`` or
    ``"importance"``), never ``"auto"``; ``seed`` seeds the sampler's streams.
    """

    draws: int
    tune: int
    chains: int
    seed: int = 0
    target_accept: float = 0.9
    progressbar: bool = False
    inference: str = "nuts"

    def nuts(self) -> dict:
        """The keyword arguments of a NUTS run (everything but ``inference``)."""
        kwargs = asdict(self)
        del kwargs["inference"]
        return kwargs

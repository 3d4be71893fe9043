"""The Gibbs engine: models with several grouping factors, nested or crossed.

Lays the model of a :class:`~skhier._model.spec.ModelSpec` with ``factors`` out as
flat arrays for :func:`skhier._engines.gibbs.chain.run_chain` (the sampler and its
algebra are described there), runs the chains in threads and returns the
standardized draws: every draw of ``beta``, the SDs, correlations and noise SD;
each factor's effects as exact running moments over every draw plus the kept
joint draws (``store_draws``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skhier._data.weights import n_observations, weighted_rows
from skhier._model.spec import FactorTerm, design
from skhier._posterior.group_draws import kept_per_chain, kept_positions
from skhier._util.threads import stop_flag, thread_map

#: scale of the reference inverse-Wishart used by the covariance proposal
#: (standardized scale; it cancels in the acceptance ratio)
_PSI = 0.01


@dataclass
class Layout:
    """The flat arrays :func:`run_chain` reads (see its docstring)."""

    y: np.ndarray
    F: np.ndarray
    Z: np.ndarray
    codes: np.ndarray
    C: np.ndarray
    coff: np.ndarray
    M: np.ndarray
    moff: np.ndarray
    q: np.ndarray
    nlev: np.ndarray
    zoff: np.ndarray
    uoff: np.ndarray
    mdim: np.ndarray
    plev: np.ndarray
    loff: np.ndarray
    tree_f: np.ndarray
    toff: np.ndarray
    croff: np.ndarray
    M3: np.ndarray  # one-tree models: the innermost nodes' C'C, C'y, y'y, ancestors
    Cy: np.ndarray
    yy: np.ndarray
    anc: np.ndarray


def trees_of(factors):
    """Chains of nested factors, outer to inner (a crossed factor: a chain of one)."""
    children = {i: [j for j, f in enumerate(factors) if f.parent == i] for i in range(len(factors))}
    out = []
    for i, f in enumerate(factors):
        if f.parent >= 0:
            continue
        chain = [i]
        while children[chain[-1]]:
            chain.append(children[chain[-1]][0])
        out.append(chain)
    return out


def _offsets(sizes):
    return np.r_[0, np.cumsum(sizes)].astype(np.int64)


def build_layout(X, y, codes, spec, scaling, weights=None) -> Layout:
    """The standardized design and the tree layout of the factors of ``spec``
    (``weights``: Gaussian rows' frequency weights, each row scaled by their root)."""
    from skhier._engines.gibbs.base import node_cy, node_stats

    F, _, ys = design(X, y, spec, scaling)
    factors = spec.factors
    n_rows = X.shape[0]
    ones = np.ones((n_rows, 1))
    Zs = [
        np.hstack([ones, X[:, list(f.slope_idx)] / scaling.x_scale[list(f.slope_idx)]])
        for f in factors
    ]
    F, ys, *Zs = weighted_rows(weights, F, ys, *Zs)
    q = np.array([f.n_random for f in factors], dtype=np.int64)
    nlev = np.array([f.n_levels for f in factors], dtype=np.int64)
    trees = trees_of(factors)
    mdim = np.zeros(len(factors), dtype=np.int64)
    for chain in trees:
        m = F.shape[1]
        for f in chain:
            m += q[f]
            mdim[f] = m
    Cs = [np.hstack([F] + [Zs[f] for f in chain]) for chain in trees]
    M = [np.zeros(0)] * len(factors)
    for chain, Ct in zip(trees, Cs, strict=True):
        f_in = chain[-1]
        M[f_in] = node_stats(Ct, codes[:, f_in], nlev[f_in]).ravel()
    plev = []
    for i, f in enumerate(factors):
        parent = np.full(f.n_levels, -1, dtype=np.int64)
        if f.parent >= 0:
            parent[codes[:, i]] = codes[:, f.parent]
        plev.append(parent)
    one_tree = {"M3": np.zeros((0, 0, 0)), "Cy": np.zeros((0, 0)), "yy": np.zeros(0)}
    one_tree["anc"] = np.zeros((0, 0), dtype=np.int64)
    if len(trees) == 1:
        chain, f_in = trees[0], trees[0][-1]
        m = int(mdim[f_in])
        one_tree["M3"] = M[f_in].reshape(-1, m, m)
        one_tree["Cy"], one_tree["yy"] = node_cy(Cs[0], ys, codes[:, f_in], nlev[f_in])
        anc = np.zeros((nlev[f_in], len(chain)), dtype=np.int64)
        anc[codes[:, f_in]] = codes[:, chain]
        one_tree["anc"] = anc
    return Layout(
        y=np.ascontiguousarray(ys),
        F=np.ascontiguousarray(F),
        Z=np.ascontiguousarray(np.hstack(Zs)),
        codes=np.ascontiguousarray(codes, dtype=np.int64),
        C=np.ascontiguousarray(np.hstack(Cs)),
        coff=_offsets([c.shape[1] for c in Cs]),
        M=np.concatenate(M),
        moff=_offsets([len(m) for m in M]),
        q=q,
        nlev=nlev,
        zoff=_offsets(q),
        uoff=_offsets(nlev * q),
        mdim=mdim,
        plev=np.concatenate(plev),
        loff=_offsets(nlev),
        tree_f=np.array([f for chain in trees for f in chain], dtype=np.int64),
        toff=_offsets([len(chain) for chain in trees]),
        croff=_offsets(q * q),
        **one_tree,
    )


def marginal_tries(lay) -> int:
    """Collapsed Metropolis steps per sweep of a one-tree model.

    Each costs one pass over every level (about what the sweep's block draw costs),
    so they are spent where they are cheap: up to 4 per sweep, as many as fit in
    ``_MARGINAL_LEVELS`` levels' worth of work, none beyond that.  Designs with few
    levels are also where the SDs are weakly identified and the effects follow them
    slowly; with many levels the interweaving steps suffice (the convergence
    diagnostics say when they do not)."""
    if len(lay.toff) != 2:
        return 0
    return int(min(4, _MARGINAL_LEVELS // int(lay.nlev.sum())))


#: see :func:`marginal_tries`
_MARGINAL_LEVELS = 5000


def fit_gibbs(X, y, codes, spec, scaling, *, config, rng, store_draws="auto", offset=None,
              weights=None):  # fmt: skip
    """Sample the model of ``spec`` (with ``factors``); standardized draws as a dict.

    A binary ``spec.likelihood`` runs the Pólya-Gamma augmented chain with the
    log-odds ``offset + F beta + Z u`` (``offset``: one value per row; ``y`` the
    share of successes of each row, ``weights`` its whole-number trials).
    ``weights``: the rows' frequency weights (None: each row once)."""
    from skhier._engines.gibbs.chain import run_chain

    augment = spec.likelihood == "bernoulli"
    lay = build_layout(X, y, codes, spec, scaling, None if augment else weights)
    n_chains, n_draws = int(config.chains), int(config.draws)
    n_tune = int(config.tune)
    n_effects = int(lay.uoff[-1])
    n_kept = kept_per_chain(store_draws, n_chains, n_draws, n_effects, 1)
    kept = kept_positions(n_draws, n_kept)
    kept_pos = np.full(n_draws, -1, dtype=np.int64)
    kept_pos[kept] = np.arange(len(kept))
    p = lay.F.shape[1]
    n_tau = int(lay.zoff[-1])
    out = {
        "beta": np.zeros((n_chains, n_draws, p)),
        "s": np.zeros((n_chains, n_draws)),
        "tau": np.zeros((n_chains, n_draws, n_tau)),
        "corr": np.zeros((n_chains, n_draws, int(lay.croff[-1]))),
        "u": np.zeros((n_chains, len(kept), n_effects)),
        "usum": np.zeros((n_chains, n_effects)),
        "ucross": np.zeros((n_chains, int((lay.nlev * lay.q * lay.q).sum()))),
    }
    beta_prec = 1.0 / spec.beta_prior_sd**2
    rates = np.concatenate([np.full(f.n_random, 1.0 / spec.prior_group_sd) for f in spec.factors])
    correlated = np.array([f.correlated for f in spec.factors], dtype=np.bool_)
    rngs = rng.spawn(n_chains)  # one generator per chain
    tries = marginal_tries(lay)

    if augment:  # the unscaled design; each chain rewrites its own working copies
        trials = np.ones(len(y)) if weights is None else weights
        kappa = trials * (np.asarray(y, dtype=np.float64) - 0.5)
        off = np.asarray(offset, dtype=np.float64)
        aug = (kappa, np.rint(trials).astype(np.int64), off, lay.F, lay.Z, lay.C)
    else:
        aug = (np.zeros(0), np.zeros(0, np.int64), np.zeros(0), *(np.zeros((0, 0)),) * 3)
    n_obs = n_observations(weights, len(lay.y))
    priors = (rates, 1.0 / spec.prior_noise_sd, float(spec.prior_corr_eta), correlated, _PSI,
              n_obs)  # fmt: skip
    fallback = None
    if config.inference == "importance":  # nested Gaussian models: no chain at all
        fallback = "importance sampling needs Gaussian noise and nested (or one) factors"
        if not augment and len(lay.toff) == 2:
            from skhier._engines.gibbs import tree_importance

            data = (lay.y, lay.Z, lay.codes, lay.C, lay.coff, lay.M, lay.moff, lay.q, lay.nlev,
                    lay.zoff, lay.uoff, lay.mdim, lay.plev, lay.loff, lay.tree_f, lay.toff,
                    beta_prec)  # fmt: skip
            outs = [out[k] for k in ("beta", "s", "tau", "corr", "u", "usum", "ucross")]
            info = tree_importance.sample(
                lay, data, priors, (lay.M3, lay.Cy, lay.yy, lay.anc), spec, config, rng,
                outs, kept_pos,
            )  # fmt: skip
            if info is not None and info["pareto_k"] <= tree_importance.K_HAT_MAX:
                result = _split_factors(out, lay, spec, n_chains * n_draws, kept)
                result["inference"] = info
                return result
            fallback = (
                "the Laplace fit failed" if info is None
                else f"importance sampling's pareto_k {info['pareto_k']:.2f} > 0.7"
            )  # fmt: skip

    def chain(c):
        w = _working_copies(lay) if augment else lay
        data = (w.y, w.Z, lay.codes, w.C, lay.coff, w.M, lay.moff, lay.q, lay.nlev, lay.zoff,
                lay.uoff, lay.mdim, lay.plev, lay.loff, lay.tree_f, lay.toff, beta_prec)
        outs = tuple(out[k][c] for k in ("beta", "s", "tau", "corr", "u", "usum", "ucross"))
        run_chain(
            rngs[c], n_tune, kept_pos, data, w.F, lay.croff, priors,
            (w.M3, w.Cy, w.yy, lay.anc), outs, tries, augment, aug, stop,
        )  # fmt: skip

    import os

    stop = stop_flag()
    thread_map(chain, range(n_chains), os.cpu_count() or 1, stop)
    result = _split_factors(out, lay, spec, n_chains * n_draws, kept)
    if fallback is not None:
        result["inference"] = {"method": "gibbs", "fallback": fallback}
    return result


def _working_copies(lay):
    """The arrays a Pólya-Gamma chain rewrites each sweep (its own copies)."""
    from dataclasses import replace

    names = ("y", "F", "Z", "C", "M", "M3", "Cy", "yy")
    return replace(lay, **{k: getattr(lay, k).copy() for k in names})


def _split_factors(out, lay, spec, n_total, kept):
    """Per-factor draws and moments from the flat chain outputs."""
    n_chains = out["beta"].shape[0]
    usum = out["usum"].sum(axis=0) / n_total
    ucross = out["ucross"].sum(axis=0) / n_total
    xoff = _offsets(lay.nlev * lay.q * lay.q)
    factors = []
    for f, term in enumerate(spec.factors):
        q, L = int(lay.q[f]), int(lay.nlev[f])
        mean = usum[lay.uoff[f] : lay.uoff[f + 1]].reshape(L, q)
        second = ucross[xoff[f] : xoff[f + 1]].reshape(L, q, q)
        corr = out["corr"][:, :, lay.croff[f] : lay.croff[f + 1]].reshape(
            out["corr"].shape[:2] + (q, q)
        )
        corr[..., np.arange(q), np.arange(q)] = 1.0  # exactly (the kernel's is 1 +- 1e-16)
        factors.append(
            {
                "tau": out["tau"][:, :, lay.zoff[f] : lay.zoff[f + 1]],
                "corr": corr if term.correlated and q > 1 else None,
                "u": out["u"][:, :, lay.uoff[f] : lay.uoff[f + 1]].reshape(
                    n_chains, len(kept), L, q
                ),
                "mean": mean,
                "cov": second - mean[:, :, None] * mean[:, None, :],
            }
        )
    shape = out["s"].shape
    return {
        "beta": out["beta"],
        "s": out["s"],
        "factors": factors,
        "kept": kept,
        "diverging": np.zeros(shape, dtype=bool),
        "max_treedepth": np.zeros(shape, dtype=bool),
        "inference": {"method": "gibbs"},
    }


def fit_gibbs_one(X, y, codes, n_groups, spec, scaling, *, config, rng, offset=None,
                  weights=None):  # fmt: skip
    """One grouping factor through the Gibbs engine, as the collapsed engine's draws
    (for cross-checking the two, and the binary models' engine): every draw of the
    group effects."""
    from dataclasses import replace

    term = FactorTerm("group", spec.slope_idx, n_groups, -1, spec.correlated)
    out = fit_gibbs(
        X, y, codes[:, None], replace(spec, factors=(term,)), scaling,
        config=config, rng=rng, store_draws="all", offset=offset, weights=weights,
    )  # fmt: skip
    fac = out["factors"][0]
    return {
        "beta": out["beta"],
        "u": fac["u"],
        "tau": fac["tau"],
        "s": out["s"],
        "corr": fac["corr"],
        "diverging": out["diverging"],
        "max_treedepth": out["max_treedepth"],
        "inference": out["inference"],
    }

"""The collapsed algebra against dense linear algebra, and its sampler density."""

import numpy as np
import pytest
from scipy import stats as st

from skhier._engines.collapsed.engine import log_density
from skhier._engines.collapsed.kernels import cov_chol, cov_chols
from skhier._engines.collapsed.reference import (
    diagonal_chol,
    draw_conditional,
    log_marginal,
    sufficient_stats,
)
from skhier._model.spec import ModelSpec


def _problem(rng, n=40, n_groups=5, p=3, q=2):
    codes = rng.integers(0, n_groups, n)
    X = rng.normal(size=(n, p - 1))
    F = np.column_stack([np.ones(n), X])
    Z = F[:, :q] + 0.3
    y = rng.normal(size=n)
    return F, Z, y, codes


def _dense_cov(F, Z, codes, n_groups, tau, s, prior_sd, corr=None):
    n, q = Z.shape
    ZD = np.zeros((n, n_groups * q))
    for i in range(n):
        ZD[i, codes[i] * q : (codes[i] + 1) * q] = Z[i]
    sigma = np.diag(tau**2) if corr is None else np.outer(tau, tau) * corr
    D = np.kron(np.eye(n_groups), sigma)
    return s**2 * np.eye(n) + ZD @ D @ ZD.T + F @ np.diag(prior_sd**2) @ F.T, ZD, D


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_marginal_matches_dense_mvn(seed):
    rng = np.random.default_rng(seed)
    F, Z, y, codes = _problem(rng, q=1 + seed % 3)
    stats = sufficient_stats(F, Z, y, codes, 5, chunk_size=7)
    q = Z.shape[1]
    tau = rng.uniform(0.1, 2.0, size=(3, q))
    s = rng.uniform(0.3, 2.0, size=3)
    prior_sd = np.array([2.0, 1.5, 1.0])
    got = log_marginal(stats, diagonal_chol(tau), s, prior_sd)
    # correlated effects: a full covariance from random correlation parameters
    theta = np.column_stack([np.log(tau), rng.normal(0, 0.8, size=(3, q * (q - 1) // 2))])
    chol = cov_chols(theta, q, True, 2.0)
    got_full = log_marginal(stats, chol, s, prior_sd)
    for k in range(3):
        V, _, _ = _dense_cov(F, Z, codes, 5, tau[k], s[k], prior_sd)
        want = st.multivariate_normal(np.zeros(len(y)), V).logpdf(y)
        assert got[k] == pytest.approx(want, rel=1e-10)
        corr = (chol[k] @ chol[k].T) / np.outer(tau[k], tau[k])
        V, _, _ = _dense_cov(F, Z, codes, 5, tau[k], s[k], prior_sd, corr)
        want = st.multivariate_normal(np.zeros(len(y)), V).logpdf(y)
        assert got_full[k] == pytest.approx(want, rel=1e-10)


def test_sufficient_stats_chunking_is_exact(rng):
    F, Z, y, codes = _problem(rng)
    a = sufficient_stats(F, Z, y, codes, 5, chunk_size=3)
    b = sufficient_stats(F, Z, y, codes, 5)
    for name in ("n", "zz", "zw", "ww"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-12)


@pytest.mark.parametrize("correlated", [False, True])
@pytest.mark.parametrize(
    "seed, p, slopes", [(0, 3, (0,)), (1, 3, (0, 1)), (2, 2, ()), (3, 4, (2,))]
)
def test_sampler_density_matches_reference_and_gradient_is_exact(seed, p, slopes, correlated):
    rng = np.random.default_rng(seed)
    q = 1 + len(slopes)
    F, Z, y, codes = _problem(rng, p=p, q=q)
    stats = sufficient_stats(F, Z, y, codes, 5)
    spec = ModelSpec(p - 1, slopes, 2.0, 1.5, 0.7, 1.3, "collapsed", "centered", correlated, 1.7)
    m = spec.n_corr
    rates = spec.sd_prior_rates
    prior_sd = spec.beta_prior_sd
    for x in rng.normal(-0.3, 0.7, size=(3, q + m + 1)):
        value, grad = log_density(x, stats, spec)
        chol = np.zeros((q, q))
        log_corr_prior = cov_chol(x[: q + m], q, correlated, 1.7, chol)
        ref = log_marginal(stats, chol[None], np.exp(x[-1:]), prior_sd)[0]
        const = 0.5 * (stats.n_obs * np.log(2 * np.pi) + 2 * np.log(prior_sd).sum())
        sds = np.r_[x[:q], x[-1]]
        logprior = np.sum(sds - rates * np.exp(sds)) + log_corr_prior
        assert value == pytest.approx(ref + const + logprior, rel=1e-12)
        eps = 1e-6
        fd = [
            (log_density(x + eps * e, stats, spec)[0] - log_density(x - eps * e, stats, spec)[0])
            / (2 * eps)
            for e in np.eye(q + m + 1)
        ]
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("q, eta", [(2, 2.0), (3, 1.0), (3, 2.0), (4, 3.5)])
def test_correlation_prior_is_lkj_with_the_exact_jacobian(q, eta):
    """log p(y) = (eta - 1) log det R(y) + log|det dR/dy| + const: the LKJ density of
    the correlation matrix times the Jacobian of y -> its off-diagonal entries."""
    rng = np.random.default_rng(q)
    m = q * (q - 1) // 2
    low = np.tril_indices(q, -1)

    def corr(y):
        c = np.zeros((q, q))
        cov_chol(np.r_[np.zeros(q), y], q, True, eta, c)
        return c @ c.T

    diffs = []
    for y in rng.normal(0, 0.7, size=(6, m)):
        c = np.zeros((q, q))
        lp = cov_chol(np.r_[np.zeros(q), y], q, True, eta, c)
        R = c @ c.T
        np.testing.assert_allclose(np.diag(R), 1.0, rtol=1e-12)
        h = 1e-6
        jac = np.column_stack(
            [(corr(y + h * e)[low] - corr(y - h * e)[low]) / (2 * h) for e in np.eye(m)]
        )
        want = (eta - 1) * np.linalg.slogdet(R)[1] + np.linalg.slogdet(jac)[1]
        diffs.append(lp - want)
    np.testing.assert_allclose(diffs, diffs[0], atol=1e-6)


@pytest.mark.parametrize("q", [1, 2, 3, 5])
@pytest.mark.parametrize("correlated", [True, False])
def test_covariance_jacobian_equals_its_complex_step(q, correlated):
    """cov_chol_grad (the hand-written chain rule through C(theta) the GLM density's
    gradient uses) equals the complex-step derivative of lp + sum(g * C)."""
    from skhier._numba.linalg import cov_chol_grad

    rng = np.random.default_rng(q + 10 * correlated)
    m = q * (q - 1) // 2 if correlated else 0
    for _ in range(3):
        theta = rng.normal(0, 0.8, size=q + m)
        g_c = np.tril(rng.normal(size=(q, q)))
        chol = np.zeros((q, q))
        cov_chol(theta, q, correlated, 1.7, chol)
        got = np.zeros(q + m)
        cov_chol_grad(theta, q, correlated, 1.7, chol, g_c, got)
        want = np.empty(q + m)
        for t in range(q + m):
            tc = theta.astype(complex)
            tc[t] += 1e-20j
            cc = np.zeros((q, q), dtype=complex)
            lp = cov_chol(tc, q, correlated, 1.7, cc)
            want[t] = (lp.imag + np.sum(g_c * cc.imag)) / 1e-20
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_conditional_draws_match_dense_gaussian_posterior():
    """Given (tau, s), (beta, u) | y is Gaussian: compare draws with the dense answer."""
    rng = np.random.default_rng(7)
    F, Z, y, codes = _problem(rng, n=30, n_groups=3, p=2, q=2)
    stats = sufficient_stats(F, Z, y, codes, 3)
    tau, s, prior_sd = np.array([0.8, 0.5]), 0.7, np.array([2.0, 1.5])
    _, ZD, D = _dense_cov(F, Z, codes, 3, tau, s, prior_sd)
    design = np.hstack([F, ZD])
    prior_prec = np.diag(np.r_[1 / prior_sd**2, 1 / np.diag(D)])
    cov = np.linalg.inv(design.T @ design / s**2 + prior_prec)
    mean = cov @ design.T @ y / s**2
    n_draws = 40_000
    beta, u = draw_conditional(
        stats, diagonal_chol(np.tile(tau, (n_draws, 1))), np.full(n_draws, s), prior_sd, rng
    )
    draws = np.hstack([beta, u.reshape(n_draws, -1)])
    se = np.sqrt(np.diag(cov) / n_draws)
    assert np.all(np.abs(draws.mean(0) - mean) < 5 * se)
    np.testing.assert_allclose(np.cov(draws, rowvar=False), cov, atol=0.03 * np.abs(cov).max())


def test_vectorized_diagnostics_match_arviz():
    import arviz as az

    from skhier._posterior.diagnostics import rhat_ess

    rng = np.random.default_rng(0)
    x = np.empty((4, 400, 3))
    for j, phi in enumerate([0.0, 0.8, 0.97]):
        e = rng.standard_normal((4, 400))
        for t in range(1, 400):
            e[:, t] = phi * e[:, t - 1] + np.sqrt(1 - phi**2) * e[:, t]
        x[:, :, j] = e
    x[1, :, 2] += 0.5  # one chain off: r_hat must flag it
    r_hat, ess = rhat_ess(x)
    for j in range(3):
        assert r_hat[j] == pytest.approx(float(az.rhat(x[:, :, j])), rel=1e-10)
        assert ess[j] == pytest.approx(float(az.ess(x[:, :, j], method="bulk")), rel=2e-3)
    assert r_hat[2] > 1.05


def _draw_problem(rng, q=2, p=3, n_draws=50):
    F, Z, y, codes = _problem(rng, n=60, n_groups=6, p=p, q=q)
    stats = sufficient_stats(F, Z, y, codes, 6)
    m = q * (q - 1) // 2
    theta = np.column_stack(
        [np.log(rng.uniform(0.2, 1.5, size=(n_draws, q))), rng.normal(size=(n_draws, m))]
    )
    chol = cov_chols(theta, q, True, 2.0)  # correlated effects
    s = rng.uniform(0.4, 1.5, size=n_draws)
    return stats, chol, s


def test_numba_conditional_draws_equal_numpy_reference():
    """Pass 1, fed the reference's standard normals, gives the reference's draws of
    beta; pass 2 gives the reference's algebra for the group effects given beta,
    with the normals its Generator draws group by group, draw by draw."""
    from skhier._engines.collapsed.draw import group_kernel_for, population_kernel_for
    from skhier._engines.collapsed.reference import _group_factors, _solve_upper

    stats, chol, s = _draw_problem(np.random.default_rng(3))
    prior_sd = np.array([2.0, 1.5, 1.5])
    beta_ref = draw_conditional(stats, chol, s, prior_sd, np.random.default_rng(9))[0]
    e_beta = np.random.default_rng(9).standard_normal((50, 3, 1))[..., 0]
    beta, u = np.empty((50, 3)), np.empty((6, 2, 50))
    population_kernel_for(2, 4)(stats.zz, stats.zw, stats.ww, prior_sd, chol, s, e_beta, beta)
    np.testing.assert_allclose(beta, beta_ref, rtol=1e-9, atol=1e-12)
    args = (stats.zz, stats.zw, _sigma_inv(chol), 1 / s**2, beta)
    group_kernel_for(2, 4)(*args, np.random.default_rng(4), u, 0)
    e_u = np.random.default_rng(4).standard_normal((6, 50, 2)).transpose(1, 0, 2)
    lg, h = _group_factors(stats, chol, s)
    hb = h[..., 3] - np.einsum("sgqa,sa->sgq", h[..., :3], beta)
    want = _solve_upper(np.swapaxes(lg, -1, -2), (hb + e_u)[..., None])[..., 0]
    np.testing.assert_allclose(u.transpose(2, 0, 1), want, rtol=1e-9, atol=1e-12)


def _sigma_inv(chol):
    inv = np.linalg.inv(chol)
    return np.ascontiguousarray(np.swapaxes(inv, -1, -2) @ inv)


def test_group_draws_come_in_blocks_independent_of_threads(monkeypatch):
    """The group effects come a block of groups at a time; their random numbers do
    not depend on the number of threads."""
    from skhier._engines.collapsed import draw as _kernels_draw

    stats, chol, s = _draw_problem(np.random.default_rng(4), n_draws=300)
    beta = _kernels_draw.draw_population(stats, chol, s, np.full(3, 2.0), np.random.default_rng(1))
    blocks = list(
        _kernels_draw.group_draws_in_chunks(
            stats, chol, s, beta, np.random.default_rng(2), 8 * 300 * 2 * 4
        )
    )
    assert [start for start, _ in blocks] == [0, 4]
    assert [u.shape for _, u in blocks] == [(4, 2, 300), (2, 2, 300)]
    monkeypatch.setattr(_kernels_draw, "_n_threads", lambda: 1)
    serial = _kernels_draw.group_draws_in_chunks(
        stats, chol, s, beta, np.random.default_rng(2), 8 * 300 * 2 * 4
    )
    for (_, a), (_, b) in zip(blocks, serial, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("q, p", [(1, 2), (2, 2), (4, 4), (3, 5)])
def test_draws_of_each_shape_class_equal_the_general_ones(q, p):
    """The exact conditional draws are compiled per shape class (sizes fixed):
    each must agree with the general (runtime-size) kernels to rounding."""
    from skhier._engines.collapsed.draw import (
        _kernels_of_class,
        group_kernel_for,
        population_kernel_for,
    )

    rng = np.random.default_rng(q + 10 * p)
    F, Z, y, codes = _problem(rng, n=90, n_groups=7, p=p, q=q)
    stats = sufficient_stats(F, Z, y, codes, 7)
    m = q * (q - 1) // 2
    chol = cov_chols(rng.normal(-0.3, 0.5, size=(20, q + m)), q, True, 2.0)
    s = rng.uniform(0.4, 1.5, size=20)
    args = (stats.zz, stats.zw, stats.ww, np.full(p, 2.0), chol, s)
    e_beta = rng.normal(size=(20, p))
    general = _kernels_of_class(0, 0)
    got, want = np.empty((20, p)), np.empty((20, p))
    assert not population_kernel_for(q, p + 1)(*args, e_beta, got).any()
    assert not general[0](*args, e_beta, want).any()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    got_u, want_u = np.empty((7, q, 20)), np.empty((7, q, 20))
    args = (stats.zz, stats.zw, _sigma_inv(chol), 1 / s**2, got)
    group_kernel_for(q, p + 1)(*args, np.random.default_rng(1), got_u, 0)
    general[1](*args, np.random.default_rng(1), want_u, 0)
    np.testing.assert_allclose(got_u, want_u, rtol=1e-10, atol=1e-12)


def test_failed_draws_are_redone_by_the_reference(monkeypatch):
    """Draws of beta whose P is numerically indefinite are redone by the numpy
    reference (which floors P's eigenvalues), after the kernel's normals."""
    from skhier._engines.collapsed import draw as _kernels_draw

    stats, chol, s = _draw_problem(np.random.default_rng(5), p=4)
    prior_sd = np.full(4, 2.0)
    real = _kernels_draw.population_kernel_for(2, 5)

    def flaky(*args):  # draws with s > 1.3 "fail"
        return real(*args) | (args[5] > 1.3)

    monkeypatch.setattr(_kernels_draw, "population_kernel_for", lambda q, pp1: flaky)
    beta = _kernels_draw.draw_population(stats, chol, s, prior_sd, np.random.default_rng(9))
    ref = np.random.default_rng(9)
    e_beta = ref.standard_normal((50, 4))
    want = np.empty((50, 4))
    real(stats.zz, stats.zw, stats.ww, prior_sd, chol, s, e_beta, want)
    idx = np.flatnonzero(s > 1.3)
    want[idx] = draw_conditional(stats, chol[idx], s[idx], prior_sd, ref)[0]
    assert len(idx) > 0
    np.testing.assert_array_equal(beta, want)


@pytest.mark.parametrize("correlated", [False, True])
def test_native_and_python_callback_samplers_agree(correlated):
    """The numba C callback and nutpie's public Python-callback fallback sample the
    same density with the same seed, so they produce the same draws.  (This also
    catches a stale numba cache: the C callback's cache is keyed on its own module,
    not on the kernels it calls.)"""
    from skhier._engines.collapsed.engine import _sample_nutpie

    rng = np.random.default_rng(4)
    F, Z, y, codes = _problem(rng, n=60, n_groups=6, p=3, q=3)
    stats = sufficient_stats(F, Z, y, codes, 6)
    spec = ModelSpec(2, (0, 1), 10.0, 1.5, 1.0, 1.0, "collapsed", "centered", correlated)
    kwargs = dict(draws=100, tune=100, chains=2, seed=3, target_accept=0.8, progressbar=False)
    native = _sample_nutpie(stats, spec, **kwargs)[0]
    python = _sample_nutpie(stats, spec, native=False, **kwargs)[0]
    np.testing.assert_allclose(native, python, rtol=1e-8)


@pytest.mark.parametrize("correlated", [False, True])
@pytest.mark.parametrize("q, p", [(1, 1), (1, 3), (2, 2), (2, 4), (3, 3), (4, 4), (3, 5), (5, 5)])
def test_specialized_group_passes_equal_the_general_ones(q, p, correlated):
    """The density's passes over the groups are compiled for a few fixed (q, p):
    each must agree with the general (runtime-size) pass to rounding."""
    from skhier._engines.collapsed.grad import _P1_00, _P2_00, group_pass1, group_pass2
    from skhier._engines.collapsed.kernels import _precision

    rng = np.random.default_rng(10 * q + p)
    F, Z, y, codes = _problem(rng, n=80, n_groups=7, p=p + 1, q=q)
    stats = sufficient_stats(F[:, :p], Z, y, codes, 7)
    m = q * (q - 1) // 2 if correlated else 0
    chol = np.zeros((q, q))
    cov_chol(rng.normal(-0.3, 0.5, size=q + m), q, correlated, 2.0, chol)
    sigma_inv = np.empty((q, q))
    _precision(chol, sigma_inv)
    args = (stats.zz, stats.zw, stats.ww, sigma_inv, 1.7)
    got, want = group_pass1(*args), _P1_00(*args)
    assert got[1] == pytest.approx(want[1], rel=1e-10)
    for a, b in zip(got[::2], want[::2], strict=True):  # g, A
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12 * np.abs(b).max())
    beta, lp_inv = rng.normal(size=p), np.tril(rng.normal(size=(p, p)))
    su_got, su_want = got[2].copy(), want[2].copy()
    group_pass2(got[3], beta, lp_inv, su_got)
    _P2_00(want[3], beta, lp_inv, su_want)
    np.testing.assert_allclose(np.tril(su_got), np.tril(su_want), rtol=1e-10)


@pytest.mark.parametrize("q, p", [(2, 2), (1, 3)])
def test_density_of_a_shape_class_equals_the_runtime_dispatch(q, p):
    from skhier._engines.collapsed.kernels import density_for, log_density_and_grad

    rng = np.random.default_rng(q * p)
    F, Z, y, codes = _problem(rng, n=60, n_groups=6, p=p, q=q)
    stats = sufficient_stats(F, Z, y, codes, 6)
    x = rng.normal(-0.3, 0.4, size=q + q * (q - 1) // 2 + 1)
    args = (x, 60.0, stats.zz, stats.zw, stats.ww, np.full(p, 2.0), np.ones(q + 1), True, 2.0)
    got, want = density_for(q, p + 1)(*args), log_density_and_grad(*args)
    assert got[0] == pytest.approx(want[0], rel=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("correlated", [False, True])
@pytest.mark.parametrize("q, p", [(1, 2), (2, 2), (3, 3), (3, 5)])
def test_value_only_density_equals_the_full_density(q, p, correlated):
    """Importance weights use the density's value alone (one pass, no gradient)."""
    from skhier._engines.collapsed.kernels import density_for, value_for

    rng = np.random.default_rng(q * p)
    F, Z, y, codes = _problem(rng, n=80, n_groups=7, p=p, q=q)
    stats = sufficient_stats(F, Z, y, codes, 7)
    m = q * (q - 1) // 2 if correlated else 0
    rest = (np.full(p, 2.0), np.ones(q + 1), correlated, 2.0)
    for _ in range(3):
        x = rng.normal(-0.3, 0.5, size=q + m + 1)
        args = (x, 80.0, stats.zz, stats.zw, stats.ww, *rest)
        assert value_for(q, p + 1)(*args) == pytest.approx(
            density_for(q, p + 1)(*args)[0], rel=1e-12
        )

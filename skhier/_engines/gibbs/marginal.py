"""numba kernels of the Gibbs engine's collapsed step for one-tree models.

When the factors form one tree (one factor, or factors nested in each other),
the marginal likelihood of the variance parameters ``theta`` - every group
effect and ``beta`` integrated out - comes out of the same upward pass that
draws them (:func:`skhier._engines.gibbs.tree._tree_block`, mode 1).  A random-walk
Metropolis step on ``theta`` from that marginal (its proposal covariance learned
during burn-in, then frozen) moves the SDs, correlations and noise SD without
waiting for the group effects to follow: the coupling that slows any sampler
of ``(theta, u)`` when groups are small and the SDs weakly identified is gone.

``theta`` per factor is ``(log tau_0..tau_{q-1}, y_1..y_m)`` (the correlations'
unconstrained parameters of :func:`skhier._numba.linalg.cov_chol`, for
correlated effects), then ``log s``.
"""

from __future__ import annotations

import numpy as np

from skhier._engines.gibbs.base import _chol, _crossprod, _gram, _lower_inverse
from skhier._numba.linalg import _njit, cov_chol


@_njit
def theta_offsets(q, correlated):
    out = np.zeros(q.shape[0] + 1, dtype=np.int64)
    for f in range(q.shape[0]):
        m = q[f] * (q[f] - 1) // 2 if correlated[f] and q[f] > 1 else 0
        out[f + 1] = out[f] + q[f] + m
    return out


@_njit
def theta_of(tau, corr, s, q, zoff, croff, correlated, thoff, theta):
    """``theta`` of the current ``(tau, R, s)`` (the inverse of :func:`apply_theta`)."""
    for f in range(q.shape[0]):
        qf = q[f]
        for k in range(qf):
            theta[thoff[f] + k] = np.log(tau[zoff[f] + k])
        if not (correlated[f] and qf > 1):
            continue
        r = np.zeros((qf, qf))
        for a in range(qf):
            for b in range(qf):
                r[a, b] = corr[croff[f] + a * qf + b]
        lo = np.zeros((qf, qf))
        _chol(r, qf, lo)
        k = thoff[f] + qf
        for i in range(1, qf):
            sum_sqs = 0.0
            for j in range(i):
                z = lo[i, j] / np.sqrt(max(1.0 - sum_sqs, 1e-300))
                z = min(max(z, -1.0 + 1e-12), 1.0 - 1e-12)
                theta[k] = np.arctanh(z)
                k += 1
                sum_sqs += lo[i, j] * lo[i, j]
    theta[thoff[q.shape[0]]] = np.log(s)


@_njit
def apply_theta(theta, q, zoff, croff, correlated, thoff, nlev, rates, s_rate, eta, tau, corr,
                sinv):  # fmt: skip
    """``(tau, R, Sigma^-1)`` of every factor from ``theta``; returns ``(lp, s)`` with
    ``lp`` the log prior of ``theta`` (its Jacobians included) plus the group
    effects' normalizing terms ``-n_f log|Sigma_f| / 2``."""
    lp = 0.0
    for f in range(q.shape[0]):
        qf = q[f]
        cc = np.zeros((qf, qf))
        lp += cov_chol(theta[thoff[f] : thoff[f + 1]], qf, correlated[f] and qf > 1, eta, cc)
        logdet = 0.0
        for k in range(qf):
            t = np.exp(theta[thoff[f] + k])
            tau[zoff[f] + k] = t
            lp += theta[thoff[f] + k] - rates[zoff[f] + k] * t
            logdet += 2.0 * np.log(cc[k, k])
        lp -= 0.5 * nlev[f] * logdet
        sig = _gram(cc, qf)
        inv = _lower_inverse(cc, qf)
        prec = _crossprod(inv, inv, qf)  # Sigma^-1 = C^-T C^-1
        for a in range(qf):
            for b in range(qf):
                corr[croff[f] + a * qf + b] = sig[a, b] / np.sqrt(sig[a, a] * sig[b, b])
                sinv[croff[f] + a * qf + b] = prec[a, b]
    x = theta[thoff[q.shape[0]]]
    s = np.exp(x)
    return lp + x - s_rate * s, s


@_njit
def propose(rng, theta, chol_prop, scale, out):
    """``out = theta + scale * chol_prop @ z``."""
    n = theta.shape[0]
    z = np.empty(n)
    for i in range(n):
        z[i] = rng.standard_normal()
    for i in range(n):
        acc = 0.0
        for j in range(i + 1):
            acc += chol_prop[i, j] * z[j]
        out[i] = theta[i] + scale * acc


@_njit
def adapt(theta, count, mean, m2, chol_prop):
    """Welford's running mean and covariance of ``theta`` over burn-in; every 100
    sweeps from 200 on, the proposal's Cholesky factor becomes the covariance's."""
    n = theta.shape[0]
    count += 1
    delta = theta - mean
    for i in range(n):
        mean[i] += delta[i] / count
    for i in range(n):
        for j in range(n):
            m2[i, j] += delta[i] * (theta[j] - mean[j])
    if count >= 200 and count % 100 == 0:
        cov = m2 / (count - 1)
        for i in range(n):
            cov[i, i] += 1e-8 + 1e-4 * cov[i, i]
        _chol(cov, n, chol_prop)
    return count

"""Exact prior double sums of kernel values over a structure's environments (eV²).

The prior variance of a structure's energy is δ² Σ_{e,e'} k(q_e, q_e') over all pairs of its
environments of one channel, and that of an atom's local energy the same sum over the atom's
own environments. Both are computed without an (n_envs × n_envs) matrix: per atom the groups
are small; for the total, the pair kernel f(r) f(r') exp(-(r - r')²/2θ²) on distances is
summed in linear time by the positive series exp(v v') = Σ_n (v v')^n / n! (v = (r - c)/θ,
c the middle of the distances, truncated where its remainder is below 1e-18 of every term),
and other kernels by blocks of rows of bounded memory.
"""
import math

import numpy as np

from . import _prior_sums_kernels as kernels
from ..gp.kernels import (CutoffSquaredExponential, NormalizedDotProduct, SquaredExponential,
                      cosine_cutoff)

# entries of a kernel block evaluated at once in the blocked double sums (memory bound)
BLOCK_ENTRIES = 4 * 2 ** 20


def local_priors(term, environments, n_atoms):
    """δ² Σ_{e,e' of atom i, same channel} k(q_e, q_e') for every atom, (n_atoms,) eV²."""
    kernel = term.kernel_
    centres = environments.center_atoms
    features = environments.features
    priors = np.zeros(n_atoms)
    if len(centres) == 0:
        return priors
    counts = np.bincount(centres, minlength=n_atoms)
    if counts.max() == 1:  # one environment per atom (SOAP, ACSF): the kernel's diagonal
        priors[centres] = _self_covariance(kernel, features)
    elif isinstance(kernel, CutoffSquaredExponential) and features.shape[1] == 1:
        order = np.argsort(centres, kind="stable")
        starts = np.zeros(n_atoms + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        kernels.pair_local_priors(starts, order, np.ascontiguousarray(features[:, 0]),
                                  np.ascontiguousarray(environments.channels), float(kernel.theta),
                                  float(kernel.cutoff), float(kernel.transition_width), priors)
    else:
        order = np.argsort(centres, kind="stable")
        bounds = np.searchsorted(centres[order], np.arange(n_atoms + 1))
        for atom in range(n_atoms):
            envs = order[bounds[atom]: bounds[atom + 1]]
            if len(envs) == 0:
                continue
            values = kernel.covariance(features[envs], features[envs])
            channels = environments.channels[envs]
            priors[atom] = np.where(channels[:, None] == channels[None, :], values, 0.0).sum()
    return term.delta_ ** 2 * priors


def _self_covariance(kernel, features):
    """k(q_e, q_e) of every environment."""
    if isinstance(kernel, NormalizedDotProduct):
        norms = np.linalg.norm(features, axis=1)
        return np.where(norms > 0.0, 1.0, 0.0)
    if isinstance(kernel, SquaredExponential):
        return np.ones(len(features))
    if isinstance(kernel, CutoffSquaredExponential) and features.shape[1] == 1:
        values, _ = cosine_cutoff(features[:, 0], kernel.cutoff, kernel.transition_width)
        return values ** 2
    return np.array([kernel.covariance(f[None], f[None])[0, 0] for f in features])


def total_prior(term, environments):
    """δ² Σ_{e,e' of the same channel} k(q_e, q_e') over the whole structure, eV²."""
    kernel = term.kernel_
    features = environments.features
    total = 0.0
    for channel in np.unique(environments.channels):
        envs = np.flatnonzero(environments.channels == channel)
        if isinstance(kernel, CutoffSquaredExponential) and features.shape[1] == 1:
            total += _pair_total(kernel, np.ascontiguousarray(features[envs, 0]))
        else:
            total += _blocked_total(kernel, features[envs])
    return term.delta_ ** 2 * total


def _series_terms(spread):
    """Terms N of exp(y) = Σ_n y^n/n! for |y| ≤ spread such that e^(2 spread) spread^N / N!
    (the remainder relative to the smallest kernel value it enters) is below 1e-18."""
    if spread <= 0.0:
        return 1
    n = 1
    log_spread = math.log(spread)
    while 2.0 * spread + n * log_spread - math.lgamma(n + 1) > math.log(1e-18):
        n += 1
    return n + 1


def _pair_total(kernel, distances):
    if len(distances) == 0:
        return 0.0
    low, high = float(distances.min()), float(distances.max())
    centre = 0.5 * (low + high)
    half_width = 0.5 * (high - low) / float(kernel.theta)
    n_terms = _series_terms(half_width ** 2)
    moments = np.zeros(n_terms)
    kernels.pair_series_moments(distances, centre, float(kernel.theta), float(kernel.cutoff),
                                float(kernel.transition_width), n_terms, moments)
    return float(np.dot(moments, moments))


def _blocked_total(kernel, features):
    total = 0.0
    rows = max(1, BLOCK_ENTRIES // max(1, len(features)))
    for first in range(0, len(features), rows):
        total += float(kernel.covariance(features[first: first + rows], features).sum())
    return total

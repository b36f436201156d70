"""numba kernels of the prior double sums (``gapfit.prior_sums``) and of the neighbourhood
sums of the cheap force score (``gapfit.uncertainty.local``).

Plain arrays in and out.
"""
import numpy as np
from numba import njit


@njit(cache=True)
def _cosine_cutoff_value(distance, cutoff, transition_width):
    start = cutoff - transition_width
    x = (distance - start) / transition_width
    if x <= 0.0:
        return 1.0
    if x >= 1.0:
        return 0.0
    return 0.5 * (1.0 + np.cos(np.pi * x))


@njit(cache=True)
def pair_local_priors(group_starts, order, distances, channels, theta, cutoff, transition_width,
                      out):
    """out[g] = Σ_{a,b in group g, same channel} f(r_a) f(r_b) exp(-(r_a - r_b)² / 2θ²).

    Groups are the pair environments of one atom: order[group_starts[g]: group_starts[g + 1]]
    indexes ``distances`` (Å) and ``channels``; f is GAP's cosine cutoff.
    """
    inverse_theta2 = 1.0 / (theta * theta)
    for g in range(len(group_starts) - 1):
        first = group_starts[g]
        last = group_starts[g + 1]
        total = 0.0
        for a in range(first, last):
            ea = order[a]
            ra = distances[ea]
            fa = _cosine_cutoff_value(ra, cutoff, transition_width)
            if fa == 0.0:
                continue
            total += fa * fa
            for b in range(a + 1, last):
                eb = order[b]
                if channels[eb] != channels[ea]:
                    continue
                rb = distances[eb]
                fb = _cosine_cutoff_value(rb, cutoff, transition_width)
                difference = ra - rb
                total += 2.0 * fa * fb * np.exp(-0.5 * difference * difference * inverse_theta2)
        out[g] = total


@njit(cache=True)
def neighbourhood_sums(values, centers, neighbors, out):
    """out[i] = values[i] + Σ_{pairs (i, j')} values[j]: each atom and its neighbour images."""
    for i in range(values.shape[0]):
        out[i] = values[i]
    for p in range(centers.shape[0]):
        out[centers[p]] += values[neighbors[p]]


@njit(cache=True)
def pair_series_moments(distances, centre, theta, cutoff, transition_width, n_terms, out):
    """out[n] += Σ_p f(r_p) exp(-v_p²/2) v_p^n / sqrt(n!) with v_p = (r_p - centre) / θ.

    Then Σ_{p,p'} f(r_p) f(r_p') exp(-(r_p - r_p')²/2θ²) = Σ_n out[n]² up to the truncation
    of exp(v v') = Σ_n (v v')^n / n! after ``n_terms`` terms (the caller bounds it).
    """
    inverse_theta = 1.0 / theta
    for p in range(distances.shape[0]):
        f = _cosine_cutoff_value(distances[p], cutoff, transition_width)
        if f == 0.0:
            continue
        v = (distances[p] - centre) * inverse_theta
        term = f * np.exp(-0.5 * v * v)
        out[0] += term
        for n in range(1, n_terms):
            term *= v / np.sqrt(n)
            out[n] += term

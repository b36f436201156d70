"""numba kernels for Behler–Parrinello atom-centred symmetry functions (G1–G5).

Plain arrays in, plain arrays out; one prange iteration per centre, writing
only that centre's feature row and pair rows.

Layout of a feature row (dscribe 2.1's order), with S species sorted by atomic
number and n_rad = 1 + n_g2 + n_g3, n_ang = n_g4 + n_g5:
  for each neighbour species s: [G1, G2(eta, R_s)..., G3(kappa)...] at s * n_rad;
  for each species pair a >= b: [G4..., G5...] at S * n_rad + (a(a+1)/2 + b) * n_ang.
The angular functions (G4 first, then G5) arrive as indices into their distinct
Gaussian exponents ``etas`` and distinct shapes ``shapes`` = (zeta, lambda,
2^(1-zeta)), so that a triple evaluates each distinct exponential and power once.

Each pair p of centre i holds the vector D_p = r_j' - r_i (Å). The functions:
  f(r) = (cos(pi r / r_cut) + 1) / 2 for r <= r_cut, else 0,
  G1 = sum_j f(r_ij),   G2 = sum_j exp(-eta (r_ij - R_s)^2) f(r_ij),
  G3 = sum_j cos(kappa r_ij) f(r_ij),
  G4 = sum_{j<k} 2^(1-zeta) (1 + lambda cos t)^zeta exp(-eta (r_ij^2 + r_ik^2 + r_jk^2))
       f(r_ij) f(r_ik) f(r_jk),
  G5 = sum_{j<k} 2^(1-zeta) (1 + lambda cos t)^zeta exp(-eta (r_ij^2 + r_ik^2)) f(r_ij) f(r_ik),
where t is the angle between D_j and D_k.

A triple term T depends on D_j and D_k only through r_j, r_k, r_jk and cos t,
so its gradients are ∂T/∂D_j = u_j D_j + v D_k and ∂T/∂D_k = u_k D_k + v D_j;
the kernels compute the three scalars (u_j, u_k, v) per parameter set.
"""
import math

import numpy as np
from numba import njit, prange


@njit(cache=True)
def cutoff_function(distance, r_cut):
    """Cosine cutoff f(r) and df/dr (per Å), zero beyond ``r_cut``."""
    if distance > r_cut:
        return 0.0, 0.0
    phase = math.pi * distance / r_cut
    return 0.5 * (math.cos(phase) + 1.0), -0.5 * math.pi / r_cut * math.sin(phase)


@njit(cache=True)
def pair_channel_offset(species_a, species_b, n_species, n_radial, n_angular):
    """Column where the angular block of the species pair (a, b) starts."""
    high = max(species_a, species_b)
    low = min(species_a, species_b)
    return n_species * n_radial + ((high * (high + 1)) // 2 + low) * n_angular


@njit(cache=True)
def _power(base, exponent):
    """base ** exponent, by repeated multiplication for small whole exponents (zeta = 1, 2, 4
    are the common ones) and by pow otherwise."""
    whole = int(exponent)
    if whole == exponent and 0 <= whole <= 32:
        result = 1.0
        for _ in range(whole):
            result *= base
        return result
    return base ** exponent


@njit(cache=True)
def _angular_factor(cos_angle, zeta, lam, scale):
    """scale (1 + lambda cos t)^zeta and its derivative with respect to cos t
    (scale = 2^(1-zeta))."""
    base = 1.0 + lam * cos_angle
    if base < 0.0:  # only rounding brings it below zero when |lambda| <= 1
        base = 0.0
    scaled_power = scale * _power(base, zeta - 1.0)
    return scaled_power * base, scaled_power * zeta * lam


@njit(cache=True)
def _centre_geometry(vectors, start, stop, r_cut, etas):
    """Per-neighbour distance, cutoff, its slope and exp(-eta r^2) for each distinct eta."""
    n_neighbours = stop - start
    distances = np.empty(n_neighbours)
    cutoffs = np.empty(n_neighbours)
    cutoff_slopes = np.empty(n_neighbours)
    gaussians = np.empty((n_neighbours, etas.shape[0]))
    for j in range(n_neighbours):
        vector = vectors[start + j]
        distance = math.sqrt(vector[0] ** 2 + vector[1] ** 2 + vector[2] ** 2)
        distances[j] = distance
        cutoffs[j], cutoff_slopes[j] = cutoff_function(distance, r_cut)
        for e in range(etas.shape[0]):
            gaussians[j, e] = math.exp(-etas[e] * distance * distance)
    return distances, cutoffs, cutoff_slopes, gaussians


@njit(cache=True)
def _radial_terms(distance, cutoff, cutoff_slope, g2, g3, values, slopes):
    """Values of G1, G2..., G3... for one neighbour and their derivatives d/dr (per Å)."""
    values[0] = cutoff
    slopes[0] = cutoff_slope
    column = 1
    for a in range(g2.shape[0]):
        eta, shift = g2[a, 0], g2[a, 1]
        gaussian = math.exp(-eta * (distance - shift) ** 2)
        values[column] = gaussian * cutoff
        slopes[column] = gaussian * (cutoff_slope - 2.0 * eta * (distance - shift) * cutoff)
        column += 1
    for a in range(g3.shape[0]):
        kappa = g3[a]
        values[column] = math.cos(kappa * distance) * cutoff
        slopes[column] = (math.cos(kappa * distance) * cutoff_slope
                          - kappa * math.sin(kappa * distance) * cutoff)
        column += 1


@njit(cache=True)
def _triple_setup(vectors, start, j, k, distances, r_cut, etas, shapes, n_g4, factors,
                  jk_gaussians):
    """Shared quantities of the triple (centre, j, k): fills ``factors[s]`` with the angular
    factor and its cos-derivative per shape and ``jk_gaussians[e]`` = exp(-eta_e r_jk^2);
    returns cos t, r_jk (Å), f(r_jk), f'(r_jk) and whether G4 terms are non-zero."""
    d_j = vectors[start + j]
    d_k = vectors[start + k]
    dot = d_j[0] * d_k[0] + d_j[1] * d_k[1] + d_j[2] * d_k[2]
    cos_angle = dot / (distances[j] * distances[k])
    r_jk = math.sqrt((d_k[0] - d_j[0]) ** 2 + (d_k[1] - d_j[1]) ** 2 + (d_k[2] - d_j[2]) ** 2)
    cutoff_jk, slope_jk = cutoff_function(r_jk, r_cut)
    for s in range(shapes.shape[0]):
        factors[s, 0], factors[s, 1] = _angular_factor(cos_angle, shapes[s, 0], shapes[s, 1],
                                                       shapes[s, 2])
    with_g4 = n_g4 > 0 and cutoff_jk > 0.0
    if with_g4:
        for e in range(etas.shape[0]):
            jk_gaussians[e] = math.exp(-etas[e] * r_jk * r_jk)
    return cos_angle, r_jk, cutoff_jk, slope_jk, with_g4


@njit(cache=True)
def _triple_term(factor, factor_slope, gaussian, eta, eta_jk, cos_angle, r_j, r_k, f_j, f_k,
                 s_j, s_k, r_jk, f_jk, s_jk):
    """Value T = factor gaussian f_j f_k f_jk of one angular term and its gradient scalars
    (u_j, u_k, v).

    ``gaussian`` is the full exponential, eta the exponent on r_j^2 and r_k^2, eta_jk the one
    on r_jk^2 (0 for G5, with f_jk = 1, s_jk = 0); f, s are cutoff values and slopes (per Å).
    """
    value = factor * gaussian * f_j * f_k * f_jk
    angle_part = factor_slope * gaussian * f_j * f_k * f_jk
    # r_jk = |D_k - D_j| pulls along D_j - D_k: +D_j in u_j, -D_k in v
    jk_part = factor * gaussian * f_j * f_k * s_jk / r_jk if s_jk != 0.0 else 0.0
    radial_part = 2.0 * (eta + eta_jk) * value
    u_j = (-angle_part * cos_angle / (r_j * r_j) - radial_part
           + factor * gaussian * s_j * f_k * f_jk / r_j + jk_part)
    u_k = (-angle_part * cos_angle / (r_k * r_k) - radial_part
           + factor * gaussian * f_j * s_k * f_jk / r_k + jk_part)
    v = angle_part / (r_j * r_k) + 2.0 * eta_jk * value - jk_part
    return value, u_j, u_k, v


@njit(cache=True)
def _centre_features(start, stop, vectors, pair_species, n_species, r_cut, g2, g3, etas,
                     shapes, angular_index, n_g4, row):
    """Add the symmetry functions of one centre (pairs start:stop) into ``row``."""
    n_radial = 1 + g2.shape[0] + g3.shape[0]
    n_angular = angular_index.shape[0]
    distances, cutoffs, slopes, gaussians = _centre_geometry(vectors, start, stop, r_cut, etas)
    values = np.empty(n_radial)
    radial_slopes = np.empty(n_radial)
    for j in range(stop - start):
        _radial_terms(distances[j], cutoffs[j], slopes[j], g2, g3, values, radial_slopes)
        column = pair_species[start + j] * n_radial
        for c in range(n_radial):
            row[column + c] += values[c]
    if n_angular == 0:
        return
    factors = np.empty((shapes.shape[0], 2))
    jk_gaussians = np.empty(etas.shape[0])
    for j in range(stop - start):
        for k in range(j + 1, stop - start):
            cos_angle, r_jk, cutoff_jk, slope_jk, with_g4 = _triple_setup(
                vectors, start, j, k, distances, r_cut, etas, shapes, n_g4, factors,
                jk_gaussians)
            column = pair_channel_offset(pair_species[start + j], pair_species[start + k],
                                         n_species, n_radial, n_angular)
            cutoff_product = cutoffs[j] * cutoffs[k]
            for a in range(n_angular):
                e, s = angular_index[a, 0], angular_index[a, 1]
                term = factors[s, 0] * gaussians[j, e] * gaussians[k, e] * cutoff_product
                if a < n_g4:
                    if not with_g4:
                        continue
                    term *= jk_gaussians[e] * cutoff_jk
                row[column + a] += term


@njit(cache=True)
def _centre_features_and_gradients(start, stop, vectors, pair_species, n_species, r_cut, g2,
                                   g3, etas, shapes, angular_index, n_g4, row, pair_gradients):
    """Features of one centre into ``row`` and ∂row/∂D_p into pair_gradients[start:stop]."""
    n_radial = 1 + g2.shape[0] + g3.shape[0]
    n_angular = angular_index.shape[0]
    distances, cutoffs, slopes, gaussians = _centre_geometry(vectors, start, stop, r_cut, etas)
    values = np.empty(n_radial)
    radial_slopes = np.empty(n_radial)
    for j in range(stop - start):
        _radial_terms(distances[j], cutoffs[j], slopes[j], g2, g3, values, radial_slopes)
        column = pair_species[start + j] * n_radial
        for c in range(n_radial):
            row[column + c] += values[c]
            for x in range(3):
                pair_gradients[start + j, x, column + c] = (
                    radial_slopes[c] * vectors[start + j, x] / distances[j])
    if n_angular == 0:
        return
    factors = np.empty((shapes.shape[0], 2))
    jk_gaussians = np.empty(etas.shape[0])
    for j in range(stop - start):
        d_j = vectors[start + j]
        r_j, f_j, s_j = distances[j], cutoffs[j], slopes[j]
        for k in range(j + 1, stop - start):
            d_k = vectors[start + k]
            r_k, f_k, s_k = distances[k], cutoffs[k], slopes[k]
            cos_angle, r_jk, cutoff_jk, slope_jk, with_g4 = _triple_setup(
                vectors, start, j, k, distances, r_cut, etas, shapes, n_g4, factors,
                jk_gaussians)
            column = pair_channel_offset(pair_species[start + j], pair_species[start + k],
                                         n_species, n_radial, n_angular)
            for a in range(n_angular):
                e, s = angular_index[a, 0], angular_index[a, 1]
                gaussian = gaussians[j, e] * gaussians[k, e]
                if a < n_g4:
                    if not with_g4:
                        continue
                    gaussian *= jk_gaussians[e]
                    eta_jk, f_jk, s_jk = etas[e], cutoff_jk, slope_jk
                else:
                    eta_jk, f_jk, s_jk = 0.0, 1.0, 0.0
                value, u_j, u_k, v = _triple_term(
                    factors[s, 0], factors[s, 1], gaussian, etas[e], eta_jk, cos_angle, r_j,
                    r_k, f_j, f_k, s_j, s_k, r_jk, f_jk, s_jk)
                row[column + a] += value
                for x in range(3):
                    pair_gradients[start + j, x, column + a] += u_j * d_j[x] + v * d_k[x]
                    pair_gradients[start + k, x, column + a] += u_k * d_k[x] + v * d_j[x]


@njit(cache=True)
def _centre_backward(start, stop, vectors, pair_species, n_species, r_cut, g2, g3, etas,
                     shapes, angular_index, n_g4, upstream, d_energy_d_vectors):
    """sum_f upstream[f] ∂q_f/∂D_p for the pairs start:stop of one centre, in place."""
    n_radial = 1 + g2.shape[0] + g3.shape[0]
    n_angular = angular_index.shape[0]
    distances, cutoffs, slopes, gaussians = _centre_geometry(vectors, start, stop, r_cut, etas)
    values = np.empty(n_radial)
    radial_slopes = np.empty(n_radial)
    for j in range(stop - start):
        _radial_terms(distances[j], cutoffs[j], slopes[j], g2, g3, values, radial_slopes)
        column = pair_species[start + j] * n_radial
        slope = 0.0
        for c in range(n_radial):
            slope += upstream[column + c] * radial_slopes[c]
        for x in range(3):
            d_energy_d_vectors[start + j, x] = slope * vectors[start + j, x] / distances[j]
    if n_angular == 0:
        return
    factors = np.empty((shapes.shape[0], 2))
    jk_gaussians = np.empty(etas.shape[0])
    for j in range(stop - start):
        d_j = vectors[start + j]
        r_j, f_j, s_j = distances[j], cutoffs[j], slopes[j]
        for k in range(j + 1, stop - start):
            d_k = vectors[start + k]
            r_k, f_k, s_k = distances[k], cutoffs[k], slopes[k]
            cos_angle, r_jk, cutoff_jk, slope_jk, with_g4 = _triple_setup(
                vectors, start, j, k, distances, r_cut, etas, shapes, n_g4, factors,
                jk_gaussians)
            column = pair_channel_offset(pair_species[start + j], pair_species[start + k],
                                         n_species, n_radial, n_angular)
            sum_u_j = 0.0
            sum_u_k = 0.0
            sum_v = 0.0
            for a in range(n_angular):
                weight = upstream[column + a]
                if weight == 0.0:
                    continue
                e, s = angular_index[a, 0], angular_index[a, 1]
                gaussian = gaussians[j, e] * gaussians[k, e]
                if a < n_g4:
                    if not with_g4:
                        continue
                    gaussian *= jk_gaussians[e]
                    eta_jk, f_jk, s_jk = etas[e], cutoff_jk, slope_jk
                else:
                    eta_jk, f_jk, s_jk = 0.0, 1.0, 0.0
                value, u_j, u_k, v = _triple_term(
                    factors[s, 0], factors[s, 1], gaussian, etas[e], eta_jk, cos_angle, r_j,
                    r_k, f_j, f_k, s_j, s_k, r_jk, f_jk, s_jk)
                sum_u_j += weight * u_j
                sum_u_k += weight * u_k
                sum_v += weight * v
            for x in range(3):
                d_energy_d_vectors[start + j, x] += sum_u_j * d_j[x] + sum_v * d_k[x]
                d_energy_d_vectors[start + k, x] += sum_u_k * d_k[x] + sum_v * d_j[x]


@njit(cache=True, parallel=True)
def acsf_features(offsets, vectors, pair_species, n_species, r_cut, g2, g3, etas, shapes,
                  angular_index, n_g4, n_features):
    """Symmetry functions of every centre: (n_centres, n_features).

    offsets : (n_centres + 1,) CSR offsets of each centre's pairs in ``vectors``.
    vectors : (n_pairs, 3) D = r_j' - r_i in Å, all with 0 < |D| (pairs beyond r_cut add 0).
    pair_species : (n_pairs,) species index (0..n_species-1) of each neighbour.
    g2 : (n_g2, 2) eta (Å^-2), R_s (Å). g3 : (n_g3,) kappa (Å^-1).
    etas : (n_etas,) distinct angular exponents (Å^-2).
    shapes : (n_shapes, 3) distinct (zeta, lambda, 2^(1-zeta)).
    angular_index : (n_g4 + n_g5, 2) int64, (eta index, shape index) of each angular
        function, the first n_g4 of them G4.
    """
    n_centres = offsets.shape[0] - 1
    features = np.zeros((n_centres, n_features))
    for i in prange(n_centres):
        _centre_features(offsets[i], offsets[i + 1], vectors, pair_species, n_species, r_cut,
                         g2, g3, etas, shapes, angular_index, n_g4, features[i])
    return features


@njit(cache=True, parallel=True)
def acsf_features_and_gradients(offsets, vectors, pair_species, n_species, r_cut, g2, g3, etas,
                                shapes, angular_index, n_g4, n_features):
    """Features (n_centres, n_features) and pair gradients (n_pairs, 3, n_features):
    pair_gradients[p] = ∂q_centre/∂D_p per Å (arguments as in ``acsf_features``)."""
    n_centres = offsets.shape[0] - 1
    features = np.zeros((n_centres, n_features))
    pair_gradients = np.zeros((vectors.shape[0], 3, n_features))
    for i in prange(n_centres):
        _centre_features_and_gradients(offsets[i], offsets[i + 1], vectors, pair_species,
                                       n_species, r_cut, g2, g3, etas, shapes, angular_index,
                                       n_g4, features[i], pair_gradients)
    return features, pair_gradients


@njit(cache=True, parallel=True)
def acsf_backward(offsets, vectors, pair_species, n_species, r_cut, g2, g3, etas, shapes,
                  angular_index, n_g4, d_energy_d_features):
    """Vector-Jacobian product: (n_pairs, 3) with row p = sum_f dE/dq[i, f] ∂q[i, f]/∂D_p
    for the centre i owning pair p (eV/Å when dE/dq is in eV per feature unit)."""
    n_centres = offsets.shape[0] - 1
    d_energy_d_vectors = np.zeros((vectors.shape[0], 3))
    for i in prange(n_centres):
        _centre_backward(offsets[i], offsets[i + 1], vectors, pair_species, n_species, r_cut,
                         g2, g3, etas, shapes, angular_index, n_g4, d_energy_d_features[i],
                         d_energy_d_vectors)
    return d_energy_d_vectors

"""numba kernels of QUIP's SOAP (equispaced-Gaussian radial basis): features, pair
gradients and the vector-Jacobian product (∂E/∂q → ∂E/∂pair vector) used for forces.

The expansion (conventions in /work/notes/quip_descriptor_facts.md, set up in
``quip_soap.py``): a neighbour at d (|d| = r < r_c) adds to channel a = (species s, n)

    c[lm, a] += f(r) sum_k W[n, k] exp(-(r - r_k)^2 / (2 sigma^2)) beta_k^l G_l(beta_k r) r^l Y_lm(d_hat)

with beta_k = r_k / sigma^2 and G_l(x) = exp(-x) i_l(x) / x^l (i_l the modified spherical
Bessel function), so that the product is exp(-(r^2 + r_k^2) / (2 sigma^2)) i_l(r r_k / sigma^2)
Y_lm. r^l Y_lm are real solid harmonics (``_soap_kernels.solid_harmonics``). Pairs are
sorted by centre, CSR offsets; a pair vector is r_j' - r_i in Å. Per centre, per-neighbour
arrays keep the neighbour index q last so that sums over neighbours are BLAS products;
centres are split into contiguous blocks and a block writes only its own rows.
"""
import numpy as np
from numba import njit, prange

from . import _soap_kernels as soap_kernels

# Below this argument the two highest G_l come from their power series and the rest from
# the (stable, subtraction-free) downward recurrence; above it the upward recurrence from
# closed forms is accurate to ~1e-16 for l <= 20.
_SERIES_LIMIT = 40.0

FEATURES = 0
FEATURES_AND_GRADIENTS = 1
BACKWARD = 2


@njit(cache=True)
def _bessel_series(l, x):
    """G_l(x) = exp(-x) i_l(x) / x^l from the power series sum_t (x^2/2)^t / (t! (2l+2t+1)!!)."""
    double_factorial = 1.0
    for t in range(3, 2 * l + 2, 2):
        double_factorial *= t
    y = 0.5 * x * x
    term = 1.0 / double_factorial
    total = term
    for t in range(1, 1000):
        term *= y / (t * (2.0 * l + 2.0 * t + 1.0))
        total += term
        if term < 1e-17 * total:
            break
    return np.exp(-x) * total


@njit(cache=True)
def scaled_bessel(x, big_l, out):
    """out[l] = G_l(x) = exp(-x) i_l(x) / x^l for l = 0..big_l (big_l >= 1), x >= 0.

    G_{l-1} = x^2 G_{l+1} + (2l + 1) G_l downward (no cancellation) from series values,
    or, for large x, G_{l+1} = (G_{l-1} - (2l + 1) G_l) / x^2 upward from
    G_0 = (1 - e^{-2x}) / (2x) and G_1 = (x (1 + e^{-2x}) - (1 - e^{-2x})) / (2 x^3).
    """
    if x < _SERIES_LIMIT:
        out[big_l] = _bessel_series(big_l, x)
        out[big_l - 1] = _bessel_series(big_l - 1, x)
        x2 = x * x
        for l in range(big_l - 1, 0, -1):
            out[l - 1] = x2 * out[l + 1] + (2.0 * l + 1.0) * out[l]
    else:
        e2 = np.exp(-2.0 * x)
        x2 = x * x
        out[0] = (1.0 - e2) / (2.0 * x)
        out[1] = (x * (1.0 + e2) - (1.0 - e2)) / (2.0 * x2 * x)
        for l in range(1, big_l):
            out[l + 1] = (out[l - 1] - (2.0 * l + 1.0) * out[l]) / x2


@njit(cache=True)
def cosine_cutoff(r, cutoff, width):
    """QUIP's cutoff f(r) and df/dr (Å^-1): 1 up to cutoff - width, a half cosine to 0 at
    cutoff, 0 beyond."""
    if r >= cutoff:
        return 0.0, 0.0
    start = cutoff - width
    if r <= start:
        return 1.0, 0.0
    phase = np.pi * (r - start) / width
    return 0.5 * (1.0 + np.cos(phase)), -0.5 * np.pi / width * np.sin(phase)


@njit(cache=True)
def _max_pairs(offsets):
    largest = 0
    for i in range(offsets.shape[0] - 1):
        largest = max(largest, offsets[i + 1] - offsets[i])
    return largest


@njit(cache=True)
def _workspace(l_max, n_max, n_channels, max_pairs):
    """Per-block buffers sized for max_pairs neighbours (flat ones are reshaped per centre so
    that the per-centre arrays are contiguous): 0 geometry (x, y, z, r^2, r, f, df/dr),
    1 radial f R[l, n, q], 2 its r-derivative, 3 harmonics, 4 harmonic gradients,
    5 harmonic work arrays, 6 coefficients c[lm, a], 7 Bessel values, 8 primitive radial
    R[l, k], 9 primitive derivative, 10 species-masked f R[l] (n_max, count), 11 partial
    coefficients (n_max, 2l+1)."""
    size = max(max_pairs, 1)
    n_lm = (l_max + 1) * (l_max + 1)
    n_ln = (l_max + 1) * n_max
    return (np.empty((7, size)), np.empty(n_ln * size), np.empty(n_ln * size),
            np.empty(n_lm * size), np.empty(3 * n_lm * size),
            soap_kernels.harmonic_workspace(l_max, size), np.zeros((n_lm, n_channels)),
            np.empty(l_max + 2), np.empty((l_max + 1, n_max)), np.empty((l_max + 1, n_max)),
            np.empty(n_max * size), np.empty(n_max * (2 * l_max + 1)))


@njit(cache=True)
def _expand_centre(start, stop, self_species, vectors, pair_species, l_max, n_max, n_species,
                   basis, with_gradients, workspace):
    """Coefficients c[lm, a] (a = s n_max + n) of one centre into workspace[6], keeping
    geometry, f R, d(f R)/dr and the solid harmonics of its neighbours in the workspace."""
    centres, transform, beta, sigma, cutoff, width, centre_term, all_species, norms, \
        recurrence = basis
    geometry, radial_flat, slope_flat, harm_flat, harm_grad_flat, harm_work, coeffs, \
        bessel, primitive, primitive_slope, masked_flat, part = workspace
    count = stop - start
    radial = radial_flat[:(l_max + 1) * n_max * count].reshape((l_max + 1, n_max, count))
    slope = slope_flat[:(l_max + 1) * n_max * count].reshape((l_max + 1, n_max, count))
    inverse_two_sigma2 = 0.5 / (sigma * sigma)
    for q in range(count):
        p = start + q
        x = vectors[p, 0]
        y = vectors[p, 1]
        z = vectors[p, 2]
        r2 = x * x + y * y + z * z
        r = np.sqrt(r2)
        f, df = cosine_cutoff(r, cutoff, width)
        geometry[0, q] = x
        geometry[1, q] = y
        geometry[2, q] = z
        geometry[3, q] = r2
        geometry[4, q] = r
        geometry[5, q] = f
        geometry[6, q] = df
        for k in range(n_max):
            b = beta[k]
            scaled_bessel(r * b, l_max + 1, bessel)
            gauss = np.exp(-(r - centres[k]) ** 2 * inverse_two_sigma2)
            gauss_slope = -(r - centres[k]) / (sigma * sigma)
            power = gauss
            for l in range(l_max + 1):
                value = power * bessel[l]
                primitive[l, k] = value
                if with_gradients:
                    primitive_slope[l, k] = (gauss_slope * value
                                             + power * b * (r * b * bessel[l + 1] - bessel[l]))
                power *= b
        for l in range(l_max + 1):
            for n in range(n_max):
                total = 0.0
                total_slope = 0.0
                for k in range(n_max):
                    total += transform[n, k] * primitive[l, k]
                    if with_gradients:
                        total_slope += transform[n, k] * primitive_slope[l, k]
                radial[l, n, q] = f * total
                slope[l, n, q] = df * total + f * total_slope
    n_lm = (l_max + 1) * (l_max + 1)
    harmonics = harm_flat[:n_lm * count].reshape((n_lm, count))
    harmonic_gradients = harm_grad_flat[:3 * n_lm * count].reshape((3, n_lm, count))
    soap_kernels.solid_harmonics(geometry[0], geometry[1], geometry[2], geometry[3], count,
                                 l_max, norms, recurrence, harmonics, harmonic_gradients,
                                 with_gradients, harm_work)
    coeffs[:] = 0.0
    masked = masked_flat[:n_max * count].reshape((n_max, count))
    for s in range(n_species):
        present = False
        for q in range(count):
            if pair_species[start + q] == s:
                present = True
                break
        if not present:
            continue
        for l in range(l_max + 1):
            width_l = 2 * l + 1
            for n in range(n_max):
                for q in range(count):
                    masked[n, q] = radial[l, n, q] if pair_species[start + q] == s else 0.0
            block = part[:n_max * width_l].reshape((n_max, width_l))
            np.dot(masked, harmonics[l * l:(l + 1) * (l + 1)].T, block)
            for n in range(n_max):
                for m in range(width_l):
                    coeffs[l * l + m, s * n_max + n] += block[n, m]
    for s in range(n_species):
        if s == self_species or all_species:
            for n in range(n_max):
                coeffs[0, s * n_max + n] += centre_term[n]


@njit(cache=True)
def _power_spectrum(coeffs, l_max, n_channels, dense, out):
    """QUIP's order: channel b outer, a <= b inner, l innermost; sqrt(2) for a != b and
    1/sqrt(2l+1). Fills dense[l, a, b] = sum_m c[lm, a] c[lm, b] and the packed out[:-1];
    returns |out[:-1]|."""
    for l in range(l_max + 1):
        rows = coeffs[l * l:(l + 1) * (l + 1)]
        np.dot(rows.T, rows, dense[l])
    f = 0
    total = 0.0
    for b in range(n_channels):
        for a in range(b + 1):
            factor = np.sqrt(2.0) if a != b else 1.0
            for l in range(l_max + 1):
                value = factor / np.sqrt(2.0 * l + 1.0) * dense[l, a, b]
                out[f] = value
                total += value * value
                f += 1
    return np.sqrt(total)


@njit(cache=True)
def _finish_features(row, norm, normalise, sigma0):
    """Unit length (if normalise), then the trailing covariance_sigma0 element."""
    size = row.shape[0] - 1
    if normalise and norm > 0.0:
        for f in range(size):
            row[f] /= norm
    row[size] = sigma0


@njit(cache=True)
def _features_of_centres(first, last, offsets, vectors, pair_species, centre_species, l_max,
                         n_max, n_species, basis, normalise, sigma0, features):
    n_channels = n_species * n_max
    workspace = _workspace(l_max, n_max, n_channels, max(_max_pairs(offsets), 1))
    dense = np.empty((l_max + 1, n_channels, n_channels))
    for i in range(first, last):
        _expand_centre(offsets[i], offsets[i + 1], centre_species[i], vectors, pair_species,
                       l_max, n_max, n_species, basis, False, workspace)
        norm = _power_spectrum(workspace[6], l_max, n_channels, dense, features[i])
        _finish_features(features[i], norm, normalise, 1.0 * sigma0)


@njit(cache=True)
def _gradients_of_centres(first, last, offsets, vectors, pair_species, centre_species, l_max,
                          n_max, n_species, basis, normalise, sigma0, features,
                          pair_gradients):
    n_channels = n_species * n_max
    n_lm = (l_max + 1) * (l_max + 1)
    max_pairs = max(_max_pairs(offsets), 1)
    workspace = _workspace(l_max, n_max, n_channels, max_pairs)
    dense = np.empty((l_max + 1, n_channels, n_channels))
    projection_flat = np.empty(4 * (l_max + 1) * n_channels * max_pairs)
    cross = np.empty((3, l_max + 1, n_max, n_channels))
    size = features.shape[1] - 1
    d_power = np.empty((3, size))
    for i in range(first, last):
        start = offsets[i]
        count = offsets[i + 1] - start
        _expand_centre(start, offsets[i + 1], centre_species[i], vectors, pair_species,
                       l_max, n_max, n_species, basis, True, workspace)
        norm = _power_spectrum(workspace[6], l_max, n_channels, dense, features[i])
        if count == 0:
            _finish_features(features[i], norm, normalise, 1.0 * sigma0)
            continue
        harmonics = workspace[3][:n_lm * count].reshape((n_lm, count))
        harmonic_gradients = workspace[4][:3 * n_lm * count].reshape((3, n_lm, count))
        coeffs = workspace[6]
        projections = projection_flat[:4 * (l_max + 1) * n_channels * count].reshape(
            (4, l_max + 1, n_channels, count))
        for l in range(l_max + 1):
            rows = coeffs[l * l:(l + 1) * (l + 1)]
            np.dot(rows.T, harmonics[l * l:(l + 1) * (l + 1)], projections[0, l])
            for a in range(3):
                np.dot(rows.T, harmonic_gradients[a, l * l:(l + 1) * (l + 1)],
                       projections[1 + a, l])
        radial = workspace[1][:(l_max + 1) * n_max * count].reshape((l_max + 1, n_max, count))
        slope = workspace[2][:(l_max + 1) * n_max * count].reshape((l_max + 1, n_max, count))
        geometry = workspace[0]
        for q in range(count):
            s = pair_species[start + q]
            p = start + q
            if s < 0:
                pair_gradients[p, :, :] = 0.0
                continue
            r = geometry[4, q]
            inverse_r = 1.0 / r if r > 0.0 else 0.0
            # cross[alpha, l, n, b] = d c[l m, (s, n)] / d d_alpha contracted with c[l m, b]
            for a in range(3):
                u = geometry[a, q] * inverse_r
                for l in range(l_max + 1):
                    for n in range(n_max):
                        radial_slope = slope[l, n, q] * u
                        radial_value = radial[l, n, q]
                        for b in range(n_channels):
                            cross[a, l, n, b] = (radial_slope * projections[0, l, b, q]
                                                 + radial_value * projections[1 + a, l, b, q])
            low = s * n_max
            high = low + n_max
            f = 0
            for b in range(n_channels):
                for a_ch in range(b + 1):
                    factor = np.sqrt(2.0) if a_ch != b else 1.0
                    for l in range(l_max + 1):
                        scale = factor / np.sqrt(2.0 * l + 1.0)
                        for a in range(3):
                            value = 0.0
                            if low <= a_ch < high:
                                value += cross[a, l, a_ch - low, b]
                            if low <= b < high:
                                value += cross[a, l, b - low, a_ch]
                            d_power[a, f] = scale * value
                        f += 1
            if normalise and norm > 0.0:
                for a in range(3):
                    dot = 0.0
                    for g in range(size):
                        dot += features[i, g] * d_power[a, g]
                    dot /= norm * norm
                    for g in range(size):
                        pair_gradients[p, a, g] = (d_power[a, g] - features[i, g] * dot) / norm
            else:
                for a in range(3):
                    for g in range(size):
                        pair_gradients[p, a, g] = d_power[a, g]
            for a in range(3):
                pair_gradients[p, a, size] = 0.0
        _finish_features(features[i], norm, normalise, 1.0 * sigma0)


@njit(cache=True)
def _coefficient_adjoint(d_energy_d_features, packed, norm, coeffs, l_max, n_channels,
                         normalise, d_power, weights, adjoint):
    """adjoint[lm, a] = ∂E/∂c[lm, a] given ∂E/∂q of one centre; ``packed`` is the
    unnormalised power spectrum."""
    size = packed.shape[0]
    if normalise and norm > 0.0:
        dot = 0.0
        for f in range(size):
            dot += packed[f] * d_energy_d_features[f]
        dot /= norm * norm
        for f in range(size):
            d_power[f] = (d_energy_d_features[f] - packed[f] * dot) / norm
    else:
        for f in range(size):
            d_power[f] = d_energy_d_features[f]
    f = 0
    for b in range(n_channels):
        for a in range(b + 1):
            for l in range(l_max + 1):
                scale = 1.0 / np.sqrt(2.0 * l + 1.0)
                if a != b:
                    value = np.sqrt(2.0) * scale * d_power[f]
                    weights[l, a, b] = value
                    weights[l, b, a] = value
                else:
                    weights[l, a, a] = 2.0 * scale * d_power[f]
                f += 1
    for l in range(l_max + 1):
        rows = coeffs[l * l:(l + 1) * (l + 1)]
        np.dot(rows, weights[l], adjoint[l * l:(l + 1) * (l + 1)])


@njit(cache=True)
def _backward_of_centres(first, last, offsets, vectors, pair_species, centre_species, l_max,
                         n_max, n_species, basis, normalise, d_energy_d_features,
                         d_energy_d_vectors):
    n_channels = n_species * n_max
    n_lm = (l_max + 1) * (l_max + 1)
    max_pairs = max(_max_pairs(offsets), 1)
    workspace = _workspace(l_max, n_max, n_channels, max_pairs)
    dense = np.empty((l_max + 1, n_channels, n_channels))
    size = d_energy_d_features.shape[1] - 1
    packed = np.empty(size + 1)
    d_power = np.empty(size)
    weights = np.zeros((l_max + 1, n_channels, n_channels))
    adjoint = np.empty((n_lm, n_channels))
    species_adjoint = np.empty((n_species, n_lm, n_max))
    folded_flat = np.empty(4 * n_max * max_pairs)
    sums_flat = np.empty(4 * max_pairs)
    for i in range(first, last):
        start = offsets[i]
        count = offsets[i + 1] - start
        if count == 0:
            continue
        _expand_centre(start, offsets[i + 1], centre_species[i], vectors, pair_species,
                       l_max, n_max, n_species, basis, True, workspace)
        coeffs = workspace[6]
        norm = _power_spectrum(coeffs, l_max, n_channels, dense, packed)
        _coefficient_adjoint(d_energy_d_features[i], packed[:size], norm, coeffs, l_max,
                             n_channels, normalise, d_power, weights, adjoint)
        for s in range(n_species):
            for lm in range(n_lm):
                for n in range(n_max):
                    species_adjoint[s, lm, n] = adjoint[lm, s * n_max + n]
        harmonics = workspace[3][:n_lm * count].reshape((n_lm, count))
        harmonic_gradients = workspace[4][:3 * n_lm * count].reshape((3, n_lm, count))
        radial = workspace[1][:(l_max + 1) * n_max * count].reshape((l_max + 1, n_max, count))
        slope = workspace[2][:(l_max + 1) * n_max * count].reshape((l_max + 1, n_max, count))
        geometry = workspace[0]
        folded = folded_flat[:4 * n_max * count].reshape((4, n_max, count))
        sums = sums_flat[:4 * count].reshape((4, count))
        sums[:] = 0.0
        for s in range(n_species):
            present = False
            for q in range(count):
                if pair_species[start + q] == s:
                    present = True
                    break
            if not present:
                continue
            for l in range(l_max + 1):
                rows = species_adjoint[s, l * l:(l + 1) * (l + 1)]
                np.dot(rows.T, harmonics[l * l:(l + 1) * (l + 1)], folded[0])
                for a in range(3):
                    np.dot(rows.T, harmonic_gradients[a, l * l:(l + 1) * (l + 1)],
                           folded[1 + a])
                for q in range(count):
                    if pair_species[start + q] != s:
                        continue
                    for n in range(n_max):
                        sums[0, q] += slope[l, n, q] * folded[0, n, q]
                        sums[1, q] += radial[l, n, q] * folded[1, n, q]
                        sums[2, q] += radial[l, n, q] * folded[2, n, q]
                        sums[3, q] += radial[l, n, q] * folded[3, n, q]
        for q in range(count):
            r = geometry[4, q]
            inverse_r = 1.0 / r if r > 0.0 else 0.0
            for a in range(3):
                d_energy_d_vectors[start + q, a] = (geometry[a, q] * inverse_r * sums[0, q]
                                                    + sums[1 + a, q])


@njit(cache=True)
def _block_starts(n_items, n_blocks):
    starts = np.empty(n_blocks + 1, dtype=np.int64)
    for block in range(n_blocks + 1):
        starts[block] = (block * n_items) // n_blocks
    return starts


@njit(cache=True, parallel=True)
def quip_soap_kernel(mode, offsets, vectors, pair_species, centre_species, l_max, n_max,
                     n_species, basis, normalise, sigma0, n_blocks, features, pair_gradients,
                     d_energy_d_features, d_energy_d_vectors):
    """The one parallel entry point.

    FEATURES: features (n_centres, dim) of every centre (rows of ``offsets``).
    FEATURES_AND_GRADIENTS: also pair_gradients (n_pairs, 3, dim) = ∂q_centre/∂r_image
        (per Å).
    BACKWARD: d_energy_d_vectors (n_pairs, 3) = ∂E/∂(pair vector) in eV/Å from
        d_energy_d_features (n_centres, dim) in eV per feature unit.
    pair_species[p] < 0 marks a neighbour that does not contribute (species not listed).
    ``basis`` = (r_k, W, beta_k, sigma, cutoff, transition width, centre term per n,
    central_reference_all_species, harmonic norms, harmonic recurrence).
    """
    n_centres = offsets.shape[0] - 1
    n_blocks = min(n_blocks, n_centres)
    if n_blocks == 0:
        return
    starts = _block_starts(n_centres, n_blocks)
    for block in prange(n_blocks):
        first = starts[block]
        last = starts[block + 1]
        if mode == FEATURES:
            _features_of_centres(first, last, offsets, vectors, pair_species, centre_species,
                                 l_max, n_max, n_species, basis, normalise, sigma0, features)
        elif mode == FEATURES_AND_GRADIENTS:
            _gradients_of_centres(first, last, offsets, vectors, pair_species, centre_species,
                                  l_max, n_max, n_species, basis, normalise, sigma0, features,
                                  pair_gradients)
        else:
            _backward_of_centres(first, last, offsets, vectors, pair_species, centre_species,
                                 l_max, n_max, n_species, basis, normalise,
                                 d_energy_d_features, d_energy_d_vectors)

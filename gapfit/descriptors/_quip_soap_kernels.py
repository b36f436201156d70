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

from . import _kernel_blocks as blocks
from . import _soap_kernels as soap_kernels
from .numerics import cosine_cutoff_scalar, exp_of_nonpositive

# Terms of the power series of G_l kept in the reciprocal table (enough for x up to ~200).
_SERIES_TERMS = 600

FEATURES = 0
FEATURES_AND_GRADIENTS = 1
BACKWARD = 2


@njit(cache=True)
def series_reciprocals(big_l):
    """1 / (t (2l + 2t + 1)) for l = big_l - 1, big_l (rows 0, 1) and t = 1..600 (column t),
    and the (2l+1)!! of both, for ``scaled_bessel``'s power series."""
    table = np.zeros((2, _SERIES_TERMS + 1))
    double_factorials = np.ones(2)
    for row in range(2):
        l = big_l - 1 + row
        for t in range(3, 2 * l + 2, 2):
            double_factorials[row] *= t
        for t in range(1, _SERIES_TERMS + 1):
            table[row, t] = 1.0 / (t * (2.0 * l + 2.0 * t + 1.0))
    return table, double_factorials


@njit(cache=True)
def upward_threshold(big_l):
    """Smallest x (from tests against 40-digit values) beyond which the upward recurrence of
    G_0..G_big_l is accurate to a few ulp."""
    return 0.3 * big_l * big_l + 2.0


@njit(cache=True)
def _bessel_series(row, x, reciprocals, double_factorials):
    """exp(x) G_l(x) from sum_t (x^2/2)^t / (t! (2l+3)(2l+5)...(2l+2t+1)) / (2l+1)!!."""
    y = 0.5 * x * x
    term = 1.0
    total = 1.0
    for t in range(1, _SERIES_TERMS + 1):
        term *= y * reciprocals[row, t]
        total += term
        if term < 1e-17 * total:
            break
    return total / double_factorials[row]


@njit(cache=True)
def scaled_bessel(x, big_l, out, reciprocals, double_factorials, threshold):
    """out[l] = G_l(x) = exp(-x) i_l(x) / x^l for l = 0..big_l (big_l >= 1), 0 <= x <~ 200.

    Below ``threshold`` (``upward_threshold``) the two highest come from their power series
    (``series_reciprocals``) and the rest from G_{l-1} = x^2 G_{l+1} + (2l + 1) G_l
    downward (no cancellation); above it G_{l+1} = (G_{l-1} - (2l + 1) G_l) / x^2 upward
    from G_0 = (1 - e^{-2x}) / (2x) and G_1 = (x (1 + e^{-2x}) - (1 - e^{-2x})) / (2 x^3).
    """
    x2 = x * x
    if x < threshold:
        scale = np.exp(-x)
        out[big_l] = scale * _bessel_series(1, x, reciprocals, double_factorials)
        out[big_l - 1] = scale * _bessel_series(0, x, reciprocals, double_factorials)
        for l in range(big_l - 1, 0, -1):
            out[l - 1] = x2 * out[l + 1] + (2.0 * l + 1.0) * out[l]
    else:
        e2 = np.exp(-2.0 * x)
        inverse_x2 = 1.0 / x2
        out[0] = (1.0 - e2) / (2.0 * x)
        out[1] = (x * (1.0 + e2) - (1.0 - e2)) * 0.5 * inverse_x2 / x
        for l in range(1, big_l):
            out[l + 1] = (out[l - 1] - (2.0 * l + 1.0) * out[l]) * inverse_x2


@njit(cache=True)
def scaled_bessel_batch(xs, count, big_l, out, reciprocals, double_factorials, threshold,
                        work):
    """out[l, q] = G_l(xs[q]) for l = 0..big_l and q < count, as ``scaled_bessel`` but with
    the power series run over all arguments at once (independent chains pipeline and
    vectorise). ``work`` is a (5, >= count) float64 array."""
    half_x2 = work[0]
    term_low = work[1]
    total_low = work[2]
    term_high = work[3]
    total_high = work[4]
    any_series = False
    for q in range(count):
        x = xs[q]
        below = x < threshold
        any_series = any_series or below
        half_x2[q] = 0.5 * x * x if below else 0.0
        term_low[q] = 1.0
        total_low[q] = 1.0
        term_high[q] = 1.0
        total_high[q] = 1.0
    if any_series:
        for t in range(1, _SERIES_TERMS + 1):
            low = reciprocals[0, t]
            high = reciprocals[1, t]
            for q in range(count):
                term_low[q] *= half_x2[q] * low
                total_low[q] += term_low[q]
                term_high[q] *= half_x2[q] * high
                total_high[q] += term_high[q]
            if t % 4 == 0:
                converged = True
                for q in range(count):
                    if term_low[q] >= 1e-17 * total_low[q]:
                        converged = False
                if converged:
                    break
        for q in range(count):
            scale = np.exp(-xs[q])
            out[big_l, q] = scale * total_high[q] / double_factorials[1]
            out[big_l - 1, q] = scale * total_low[q] / double_factorials[0]
        for l in range(big_l - 1, 0, -1):
            for q in range(count):
                out[l - 1, q] = xs[q] * xs[q] * out[l + 1, q] + (2.0 * l + 1.0) * out[l, q]
    for q in range(count):
        x = xs[q]
        if x >= threshold:
            e2 = np.exp(-2.0 * x)
            inverse_x2 = 1.0 / (x * x)
            out[0, q] = (1.0 - e2) / (2.0 * x)
            out[1, q] = (x * (1.0 + e2) - (1.0 - e2)) * 0.5 * inverse_x2 / x
            for l in range(1, big_l):
                out[l + 1, q] = (out[l - 1, q] - (2.0 * l + 1.0) * out[l, q]) * inverse_x2


@njit(cache=True)
def _workspace(l_max, n_max, n_channels, max_pairs):
    """Per-block buffers sized for max_pairs neighbours (flat ones are reshaped per centre so
    that the per-centre arrays are contiguous): 0 geometry (x, y, z, r^2, r, f, df/dr),
    1 radial f R[l, n, q], 2 its r-derivative, 3 harmonics, 4 harmonic gradients,
    5 harmonic work arrays, 6 coefficients c[lm, a], 7 Bessel values G_l (l_max+2, q) and
    8 work rows, 8 primitive radial R[l, k, q], 9 its derivative, 10 species-masked f R[l]
    (n_max, count), 11 partial coefficients (n_max, 2l+1), 12 series reciprocals,
    13 the upward-recurrence threshold."""
    size = max(max_pairs, 1)
    n_lm = (l_max + 1) * (l_max + 1)
    n_ln = (l_max + 1) * n_max
    return (np.empty((7, size)), np.empty(n_ln * size), np.empty(n_ln * size),
            np.empty(n_lm * size), np.empty(3 * n_lm * size),
            soap_kernels.harmonic_workspace(l_max, size), np.zeros((n_lm, n_channels)),
            np.empty((l_max + 2) * size + 8 * size), np.empty((l_max + 1) * n_max * size),
            np.empty((l_max + 1) * n_max * size),
            np.empty(n_max * size), np.empty(n_max * (2 * l_max + 1)),
            series_reciprocals(l_max + 1), upward_threshold(l_max + 1))


@njit(cache=True)
def _centre_views(workspace, count, l_max, n_max):
    """The current centre's arrays in the workspace, as ``_expand_centre`` left them:
    geometry (7, q), f R[l, n, q], d(f R)/dr[l, n, q], harmonics (n_lm, q) and their
    gradients (3, n_lm, q), for its count neighbours."""
    n_lm = (l_max + 1) * (l_max + 1)
    n_ln = (l_max + 1) * n_max
    return (workspace[0], workspace[1][:n_ln * count].reshape((l_max + 1, n_max, count)),
            workspace[2][:n_ln * count].reshape((l_max + 1, n_max, count)),
            workspace[3][:n_lm * count].reshape((n_lm, count)),
            workspace[4][:3 * n_lm * count].reshape((3, n_lm, count)))


@njit(cache=True)
def _has_species(pair_species, start, count, species):
    """Whether any of the count neighbours from pair ``start`` on has the given species."""
    for q in range(count):
        if pair_species[start + q] == species:
            return True
    return False


@njit(cache=True)
def _expand_centre(start, stop, self_species, vectors, pair_species, l_max, n_max, n_species,
                   basis, with_gradients, workspace):
    """Coefficients c[lm, a] (a = s n_max + n) of one centre into workspace[6], keeping
    geometry, f R, d(f R)/dr and the solid harmonics of its neighbours in the workspace."""
    centres, transform, beta, sigma, cutoff, width, centre_term, all_species, norms, \
        recurrence = basis
    geometry, _, _, _, _, harm_work, coeffs, bessel, primitive, primitive_slope, masked_flat, \
        part, series, threshold = workspace
    reciprocals, double_factorials = series
    count = stop - start
    _, radial, slope, harmonics, harmonic_gradients = _centre_views(workspace, count, l_max, n_max)
    inverse_sigma2 = 1.0 / (sigma * sigma)
    blocks.pair_geometry(vectors, start, count, geometry)
    for q in range(count):
        f, df = cosine_cutoff_scalar(geometry[4, q], cutoff, width)
        geometry[5, q] = f
        geometry[6, q] = df
    big_l = l_max + 1
    values = bessel[:(big_l + 1) * count].reshape((big_l + 1, count))
    extra = bessel[(big_l + 1) * count:(big_l + 9) * count].reshape((8, count))
    arguments = extra[5]
    gauss = extra[6]
    gauss_slope = extra[7]
    prim = primitive[:(l_max + 1) * n_max * count].reshape((l_max + 1, n_max, count))
    prim_slope = primitive_slope[:(l_max + 1) * n_max * count].reshape((l_max + 1, n_max, count))
    for k in range(n_max):
        b = beta[k]
        centre = centres[k]
        for q in range(count):
            r = geometry[4, q]
            arguments[q] = r * b
            gauss[q] = -0.5 * (r - centre) * (r - centre) * inverse_sigma2
            gauss_slope[q] = -(r - centre) * inverse_sigma2
        exp_of_nonpositive(gauss, gauss, extra[0], count)
        scaled_bessel_batch(arguments, count, big_l, values, reciprocals, double_factorials,
                            threshold, extra)
        power = 1.0
        for l in range(l_max + 1):
            for q in range(count):
                prim[l, k, q] = gauss[q] * power * values[l, q]
            if with_gradients:
                for q in range(count):
                    prim_slope[l, k, q] = (gauss_slope[q] * prim[l, k, q] + gauss[q] * power * b
                                           * (arguments[q] * values[l + 1, q] - values[l, q]))
            power *= b
    for l in range(l_max + 1):
        np.dot(transform, prim[l], radial[l])
        if with_gradients:
            np.dot(transform, prim_slope[l], slope[l])
            for n in range(n_max):
                for q in range(count):
                    slope[l, n, q] = geometry[6, q] * radial[l, n, q] + geometry[5, q] * slope[l, n, q]
        for n in range(n_max):
            for q in range(count):
                radial[l, n, q] *= geometry[5, q]
    soap_kernels.solid_harmonics(geometry[0], geometry[1], geometry[2], geometry[3], count,
                                 l_max, norms, recurrence, harmonics, harmonic_gradients,
                                 with_gradients, harm_work)
    coeffs[:] = 0.0
    masked = masked_flat[:n_max * count].reshape((n_max, count))
    for s in range(n_species):
        if not _has_species(pair_species, start, count, s):
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
    workspace = _workspace(l_max, n_max, n_channels, max(blocks.max_pairs(offsets), 1))
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
    max_pairs = max(blocks.max_pairs(offsets), 1)
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
        geometry, radial, slope, harmonics, harmonic_gradients = _centre_views(
            workspace, count, l_max, n_max)
        coeffs = workspace[6]
        projections = projection_flat[:4 * (l_max + 1) * n_channels * count].reshape(
            (4, l_max + 1, n_channels, count))
        for l in range(l_max + 1):
            rows = coeffs[l * l:(l + 1) * (l + 1)]
            np.dot(rows.T, harmonics[l * l:(l + 1) * (l + 1)], projections[0, l])
            for a in range(3):
                np.dot(rows.T, harmonic_gradients[a, l * l:(l + 1) * (l + 1)],
                       projections[1 + a, l])
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
    max_pairs = max(blocks.max_pairs(offsets), 1)
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
        geometry, radial, slope, harmonics, harmonic_gradients = _centre_views(
            workspace, count, l_max, n_max)
        folded = folded_flat[:4 * n_max * count].reshape((4, n_max, count))
        sums = sums_flat[:4 * count].reshape((4, count))
        sums[:] = 0.0
        for s in range(n_species):
            if not _has_species(pair_species, start, count, s):
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
    starts = blocks.centre_blocks(offsets, n_blocks)
    for block in prange(starts.shape[0] - 1):
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

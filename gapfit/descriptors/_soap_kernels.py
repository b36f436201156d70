"""numba kernels of the GTO SOAP power spectrum: features, pair gradients and the
vector-Jacobian product (∂E/∂q → ∂E/∂pair vector) used for forces.

Kernels take plain arrays (and tuples of them). Pairs are sorted by centre and given as
CSR offsets (pairs of centre i are offsets[i]:offsets[i+1]); a pair vector is r_j' - r_i
in Å. ``basis`` = (a, b, norms, recurrence, ps_prefactors, a*b) from ``_soap_basis``:
exponents a[l, k] (Å^-2), radial prefactors b[l, k, n], harmonic normalisation
norms[l, |m|], Legendre recurrence coefficients, power-spectrum prefactors[l] and the
slope prefactors a[l, k] b[l, k, n]. ``weighting`` = (kind, (r0, c, m, d), has_w0, w0,
weight of the centre atom itself).

Within one centre every per-neighbour quantity is stored with the neighbour index q last
(exps[l, k, q], harmonics[lm, q], ...), so that loops over the neighbours vectorise (sums
over them with reassociation allowed, ``REASSOCIATE``). For MD the FEATURES pass keeps every
pair's exps and harmonics and BACKWARD reads them back; the gradient of Σ_lm v_lm r^l Y_lm is
formed from the harmonics of degree l - 1 (``_soap_basis.harmonic_lowering``). Coefficients are
c[species, lm, n] with lm = l*l + l + m, m = -l..l. Centres are split into contiguous
blocks; a block writes only the rows of its own centres and their pairs.
"""
import numpy as np
from numba import njit, prange

from . import _kernel_blocks as blocks
from .numerics import REASSOCIATE, cosine_cutoff_scalar, exp_of_nonpositive

WEIGHT_NONE = 0
WEIGHT_POLY = 1
WEIGHT_POW = 2
WEIGHT_EXP = 3
WEIGHT_COSINE = 4


@njit(cache=True)
def weight_and_derivative(r, weighting):
    """Density weight w(r) and dw/dr (Å^-1) of a neighbour at distance r (Å).

    An atom exactly on the centre gets w0 when one is given (dscribe's rule).
    """
    kind, params, has_w0, w0, _ = weighting
    if has_w0 and r == 0.0:
        return w0, 0.0
    r0 = params[0]
    c = params[1]
    m = params[2]
    d = params[3]
    if kind == WEIGHT_POLY:
        if r > r0:
            return 0.0, 0.0
        x = r / r0
        base = 1.0 + 2.0 * x * x * x - 3.0 * x * x
        if m == 1.0:  # the default; pow(base, 1) is base, pow(base, 0) is 1
            return c * base, c * (6.0 * x * x - 6.0 * x) / r0
        w = c * base**m
        if m == 0.0:
            return w, 0.0
        return w, c * m * base ** (m - 1.0) * (6.0 * x * x - 6.0 * x) / r0
    if kind == WEIGHT_POW:
        x = r / r0
        denominator = d + x**m
        dw = 0.0
        if r > 0.0:
            dw = -c * m * x ** (m - 1.0) / r0 / (denominator * denominator)
        return c / denominator, dw
    if kind == WEIGHT_COSINE:
        # c inside r0 - d, a half cosine from c down to 0 over the last d Å before r0
        value, slope = cosine_cutoff_scalar(r, r0, d)
        return c * value, c * slope
    if kind == WEIGHT_EXP:
        decay = np.exp(-r / r0)
        denominator = d + decay
        return c / denominator, c * decay / r0 / (denominator * denominator)
    return 1.0, 0.0


@njit(cache=True)
def harmonic_workspace(l_max, max_points):
    """Work arrays of ``solid_harmonics`` for up to max_points points."""
    size = max(max_points, 1)
    return (np.zeros((l_max + 1, l_max + 1, size)), np.zeros((l_max + 1, l_max + 1, size)),
            np.zeros((l_max + 1, l_max + 1, size)), np.empty((l_max + 1, size)),
            np.empty((l_max + 1, size)))


@njit(cache=True)
def solid_harmonics(xs, ys, zs, squared_radii, count, l_max, norms, recurrence, values,
                    gradients, with_gradients, workspace):
    """Real solid harmonics r^l Y_lm(r_hat) (Å^l) of points i < count into
    values[l*l + l + m, i] and, if with_gradients, their Cartesian gradients into
    gradients[a, l*l + l + m, i].

    r^l Y_lm = norm_l|m| Q_l^|m|(z, r^2) {Re, Im}(x + i y)^|m| with Q from the Legendre
    recurrence (l - m) Q_l = (2l - 1) z Q_{l-1} - (l + m - 1) r^2 Q_{l-2}, started from
    Q_m^m = (2m - 1)!!; dq_z and dq_rho hold ∂Q/∂z at fixed r^2 and ∂Q/∂(r^2) at fixed z.
    """
    q, dq_z, dq_rho, real, imag = workspace
    for i in range(count):
        real[0, i] = 1.0
        imag[0, i] = 0.0
    for m in range(1, l_max + 1):
        for i in range(count):
            real[m, i] = xs[i] * real[m - 1, i] - ys[i] * imag[m - 1, i]
            imag[m, i] = xs[i] * imag[m - 1, i] + ys[i] * real[m - 1, i]
    double_factorial = 1.0
    for m in range(l_max + 1):
        if m > 0:
            double_factorial *= 2.0 * m - 1.0
        next_diagonal = (2.0 * m + 1.0) * double_factorial
        for i in range(count):
            q[m, m, i] = double_factorial
            dq_z[m, m, i] = 0.0
            dq_rho[m, m, i] = 0.0
        if m < l_max:
            for i in range(count):
                q[m + 1, m, i] = next_diagonal * zs[i]
                dq_z[m + 1, m, i] = next_diagonal
                dq_rho[m + 1, m, i] = 0.0
        for l in range(m + 2, l_max + 1):
            c1 = recurrence[0, l, m]
            c2 = recurrence[1, l, m]
            for i in range(count):
                q[l, m, i] = c1 * zs[i] * q[l - 1, m, i] - c2 * squared_radii[i] * q[l - 2, m, i]
            if with_gradients:
                for i in range(count):
                    dq_z[l, m, i] = (c1 * (q[l - 1, m, i] + zs[i] * dq_z[l - 1, m, i])
                                     - c2 * squared_radii[i] * dq_z[l - 2, m, i])
                    dq_rho[l, m, i] = (c1 * zs[i] * dq_rho[l - 1, m, i]
                                       - c2 * (q[l - 2, m, i]
                                               + squared_radii[i] * dq_rho[l - 2, m, i]))
    for l in range(l_max + 1):
        centre = l * l + l
        norm = norms[l, 0]
        for i in range(count):
            values[centre, i] = norm * q[l, 0, i]
        if with_gradients:
            for i in range(count):
                scaled_rho = 2.0 * norm * dq_rho[l, 0, i]
                gradients[0, centre, i] = xs[i] * scaled_rho
                gradients[1, centre, i] = ys[i] * scaled_rho
                gradients[2, centre, i] = norm * dq_z[l, 0, i] + zs[i] * scaled_rho
        for m in range(1, l + 1):
            norm = norms[l, m]
            for i in range(count):
                value = norm * q[l, m, i]
                values[centre + m, i] = value * real[m, i]
                values[centre - m, i] = value * imag[m, i]
            if with_gradients:
                for i in range(count):
                    value = norm * q[l, m, i]
                    scaled_rho = 2.0 * norm * dq_rho[l, m, i]
                    gx = xs[i] * scaled_rho
                    gy = ys[i] * scaled_rho
                    gz = norm * dq_z[l, m, i] + zs[i] * scaled_rho
                    real_lower = m * real[m - 1, i]
                    imag_lower = m * imag[m - 1, i]
                    gradients[0, centre + m, i] = gx * real[m, i] + value * real_lower
                    gradients[1, centre + m, i] = gy * real[m, i] - value * imag_lower
                    gradients[2, centre + m, i] = gz * real[m, i]
                    gradients[0, centre - m, i] = gx * imag[m, i] + value * imag_lower
                    gradients[1, centre - m, i] = gy * imag[m, i] + value * real_lower
                    gradients[2, centre - m, i] = gz * imag[m, i]


@njit(cache=True)
def _centre_workspace(n_species, l_max, n_max, max_pairs):
    """Buffers for one block of centres, sized for max_pairs neighbours:
    0 geometry (x, y, z, r^2, r), 1 weights (w, dw/dr, per-species mask), 2 exp arguments,
    3 exps, 4 scratch, 5 harmonics, 6 harmonic gradients, 7 harmonic work arrays,
    8 partial sums, 9 coefficients, 10 neighbours per species. The flat buffers are
    reshaped per centre so that the per-centre arrays are contiguous (for BLAS)."""
    size = max(max_pairs, 1)
    n_lm = (l_max + 1) * (l_max + 1)
    n_lk = (l_max + 1) * n_max
    return (np.empty((5, size)), np.empty((3, size)), np.empty(n_lk * size),
            np.empty(n_lk * size), np.empty(n_lk * size), np.empty(n_lm * size),
            np.empty(3 * n_lm * size), harmonic_workspace(l_max, size),
            np.empty((n_species, n_lm, n_max)), np.empty((n_species, n_lm, n_max)),
            np.zeros(n_species, dtype=np.int64))


@njit(cache=True)
def _exps(workspace, count, l_max, n_max):
    """exps[l, k, q] = exp(a[l, k] r_q^2) of the current centre, (l_max+1, n_max, count)."""
    return workspace[3][:(l_max + 1) * n_max * count].reshape((l_max + 1, n_max, count))


@njit(cache=True)
def _harmonics(workspace, count, l_max):
    """Solid harmonics (n_lm, count) and their gradients (3, n_lm, count) of the centre."""
    n_lm = (l_max + 1) * (l_max + 1)
    return (workspace[5][:n_lm * count].reshape((n_lm, count)),
            workspace[6][:3 * n_lm * count].reshape((3, n_lm, count)))


@njit(cache=True)
def _species_mask(workspace, pair_species, start, count, species):
    """workspace[1][2, q] = 1 for neighbours of the given species, else 0."""
    mask = workspace[1][2]
    for q in range(count):
        mask[q] = 1.0 if pair_species[start + q] == species else 0.0
    return mask


@njit(cache=True)
def _power_spectrum(coeffs, ps_prefactors, l_max, n_max, n_species, gram, out):
    """dscribe's feature order: species pairs s1 <= s2, then l, then (n <= n') for s1 == s2
    or all (n, n') for s1 < s2. ``gram`` (n_max, n_max) is work space: per species pair and
    l the whole matrix Σ_m c[s1, lm, n] c[s2, lm, n'] is summed row by row (vectorised over
    n'), then the features are read off it."""
    f = 0
    for s1 in range(n_species):
        for s2 in range(s1, n_species):
            same = s1 == s2
            for l in range(l_max + 1):
                gram[:] = 0.0
                for lm in range(l * l, (l + 1) * (l + 1)):
                    for n in range(n_max):
                        c = coeffs[s1, lm, n]
                        for n2 in range(n_max):
                            gram[n, n2] += c * coeffs[s2, lm, n2]
                prefactor = ps_prefactors[l]
                for n in range(n_max):
                    for n2 in range(n if same else 0, n_max):
                        out[f] = prefactor * gram[n, n2]
                        f += 1


@njit(cache=True)
def _pair_weights(start, count, vectors, pair_species, weighting, workspace):
    """Geometry (workspace[0]), weights w and dw/dr (workspace[1][0:2]) and per-species
    neighbour counts (workspace[10]) of one centre's pairs start:start+count."""
    geometry, weights, counts = workspace[0], workspace[1], workspace[10]
    counts[:] = 0
    blocks.pair_geometry(vectors, start, count, geometry)
    for q in range(count):
        w, dw = weight_and_derivative(geometry[4, q], weighting)
        weights[0, q] = w
        weights[1, q] = dw
        counts[pair_species[start + q]] += 1


@njit(cache=True)
def _exps_and_harmonics(count, l_max, n_max, basis, workspace, exps, harmonics,
                        with_gradients):
    """exps[l, k, q] = exp(a[l, k] r_q^2) and the solid harmonics harmonics[lm, q] of the
    current centre's pairs (geometry from ``_pair_weights``), into the flat arrays ``exps``
    (>= (l_max+1) n_max count) and ``harmonics`` (>= (l_max+1)^2 count); with_gradients
    also puts the harmonics' gradients (3, n_lm, count) into workspace[6]."""
    exponents, _, norms, recurrence, _, _ = basis
    geometry, arguments, scratch = workspace[0], workspace[2], workspace[4]
    for l in range(l_max + 1):
        for k in range(n_max):
            exponent = exponents[l, k]
            row = (l * n_max + k) * count
            for q in range(count):
                arguments[row + q] = exponent * geometry[3, q]
    exp_of_nonpositive(arguments, exps, scratch, (l_max + 1) * n_max * count)
    n_lm = (l_max + 1) * (l_max + 1)
    solid_harmonics(geometry[0], geometry[1], geometry[2], geometry[3], count, l_max, norms,
                    recurrence, harmonics[:n_lm * count].reshape((n_lm, count)),
                    workspace[6][:3 * n_lm * count].reshape((3, n_lm, count)), with_gradients,
                    workspace[7])


@njit(cache=True, fastmath=REASSOCIATE)
def _contract_exps_and_harmonics(start, count, self_species, pair_species, n_species, l_max,
                                 n_max, basis, weighting, workspace, exps, harmonics):
    """c[s, lm, n] (workspace[9]) of one centre from its pairs' weights, exps and solid
    harmonics (``_pair_weights``, ``_exps_and_harmonics``), plus the centre's own Gaussian
    when it has a species index (>= 0). Sums over neighbours are vectorised dot products."""
    _, prefactors, norms, _, _, _ = basis
    weights, scratch, partial, coeffs, counts = (workspace[1], workspace[4], workspace[8],
                                                 workspace[9], workspace[10])
    n_lm = (l_max + 1) * (l_max + 1)
    radial_terms = exps[:(l_max + 1) * n_max * count].reshape((l_max + 1, n_max, count))
    values = harmonics[:n_lm * count].reshape((n_lm, count))
    weighted = scratch[:(l_max + 1) * n_max * count].reshape((l_max + 1, n_max, count))
    coeffs[:] = 0.0
    for s in range(n_species):
        if counts[s] == 0:
            continue
        mask = _species_mask(workspace, pair_species, start, count, s)
        for q in range(count):
            mask[q] *= weights[0, q]
        for l in range(l_max + 1):
            for k in range(n_max):
                for q in range(count):
                    weighted[l, k, q] = radial_terms[l, k, q] * mask[q]
        for l in range(l_max + 1):
            for lm in range(l * l, (l + 1) * (l + 1)):
                # four radial indices at a time share each harmonic's load
                k = 0
                while k + 4 <= n_max:
                    total0 = 0.0
                    total1 = 0.0
                    total2 = 0.0
                    total3 = 0.0
                    for q in range(count):
                        value = values[lm, q]
                        total0 += value * weighted[l, k, q]
                        total1 += value * weighted[l, k + 1, q]
                        total2 += value * weighted[l, k + 2, q]
                        total3 += value * weighted[l, k + 3, q]
                    partial[s, lm, k] = total0
                    partial[s, lm, k + 1] = total1
                    partial[s, lm, k + 2] = total2
                    partial[s, lm, k + 3] = total3
                    k += 4
                while k < n_max:
                    total0 = 0.0
                    for q in range(count):
                        total0 += values[lm, q] * weighted[l, k, q]
                    partial[s, lm, k] = total0
                    k += 1
        for l in range(l_max + 1):
            for lm in range(l * l, (l + 1) * (l + 1)):
                for k in range(n_max):
                    part = partial[s, lm, k]
                    for n in range(n_max):
                        coeffs[s, lm, n] += prefactors[l, k, n] * part
    if self_species >= 0:
        # the centre's own Gaussian: only l = 0 survives at r = 0
        scale = weighting[4] * norms[0, 0]
        for k in range(n_max):
            for n in range(n_max):
                coeffs[self_species, 0, n] += scale * prefactors[0, k, n]


@njit(cache=True)
def _expand_into(start, stop, self_species, vectors, pair_species, n_species, l_max, n_max,
                 basis, weighting, workspace, exps, harmonics, with_gradients=False):
    """Coefficients c[s, lm, n] of one centre into workspace[9], its pairs' exps and solid
    harmonics into ``exps`` and ``harmonics`` (see ``_exps_and_harmonics``)."""
    count = stop - start
    _pair_weights(start, count, vectors, pair_species, weighting, workspace)
    _exps_and_harmonics(count, l_max, n_max, basis, workspace, exps, harmonics, with_gradients)
    _contract_exps_and_harmonics(start, count, self_species, pair_species, n_species, l_max,
                                 n_max, basis, weighting, workspace, exps, harmonics)


@njit(cache=True)
def _features_of_centres(first, last, offsets, vectors, pair_species, centre_species, n_species,
                         l_max, n_max, basis, weighting, features, kept_coefficients, kept_exps,
                         kept_harmonics):
    """Power spectra of centres first:last. With a non-empty kept_coefficients
    (n_centres, n_species, n_lm, n_max) their expansion coefficients are kept there, and the
    pairs' exps and solid harmonics in kept_exps (n_pairs (l_max+1) n_max) and
    kept_harmonics (n_pairs n_lm), each centre's pairs one contiguous [l, k, q] / [lm, q]
    block, for ``_backward_of_centres``."""
    workspace = _centre_workspace(n_species, l_max, n_max, blocks.max_pairs(offsets))
    gram = np.empty((n_max, n_max))
    keep = kept_coefficients.shape[0] > 0
    n_lk = (l_max + 1) * n_max
    n_lm = (l_max + 1) * (l_max + 1)
    for i in range(first, last):
        start = offsets[i]
        stop = offsets[i + 1]
        if keep:
            exps = kept_exps[start * n_lk: stop * n_lk]
            harmonics = kept_harmonics[start * n_lm: stop * n_lm]
        else:
            exps = workspace[3]
            harmonics = workspace[5]
        _expand_into(start, stop, centre_species[i], vectors, pair_species, n_species, l_max,
                     n_max, basis, weighting, workspace, exps, harmonics)
        _power_spectrum(workspace[9], basis[4], l_max, n_max, n_species, gram, features[i])
        if keep:
            kept_coefficients[i] = workspace[9]


@njit(cache=True)
def _radial_and_slope(workspace, count, basis, l_max, n_max, radial, slope):
    """radial[l, n, q] = w R_ln(r_q) and slope[l, n, q] = d(w R_ln)/dr at r_q, with
    R_ln = sum_k b[l, k, n] exp(a[l, k] r^2)."""
    _, prefactors, _, _, _, slope_prefactors = basis
    geometry, weights = workspace[0], workspace[1]
    radial_terms = _exps(workspace, count, l_max, n_max)
    for l in range(l_max + 1):
        np.dot(prefactors[l].T, radial_terms[l], radial[l])
        np.dot(slope_prefactors[l].T, radial_terms[l], slope[l])
        for n in range(n_max):
            for q in range(count):
                value = radial[l, n, q]
                w = weights[0, q]
                slope[l, n, q] = weights[1, q] * value + 2.0 * geometry[4, q] * w * slope[l, n, q]
                radial[l, n, q] = w * value


@njit(cache=True)
def _pair_feature_gradient(unit, species, radial, slope, projections, ps_prefactors,
                           n_species, l_max, n_max, out):
    """out (3, n_features) = ∂q/∂r_neighbour for one neighbour of species `species` in
    direction `unit`, from its radial[l, n], slope[l, n] and the projections[s, t, l, n] of
    the partner coefficients on its Y_lm (t = 0) and ∂Y_lm/∂x_a (t = 1 + a).

    ∂c[species, lm, n]/∂x_a = u_a slope[l, n] Y_lm + radial[l, n] ∂Y_lm/∂x_a, so ∂c itself
    is never stored.
    """
    ux = unit[0]
    uy = unit[1]
    uz = unit[2]
    f = 0
    for s1 in range(n_species):
        for s2 in range(s1, n_species):
            moves_first = s1 == species
            moves_second = s2 == species
            same = s1 == s2
            if not moves_first and not moves_second:
                size = (l_max + 1) * (n_max * (n_max + 1) // 2 if same else n_max * n_max)
                out[:, f:f + size] = 0.0
                f += size
                continue
            for l in range(l_max + 1):
                prefactor = ps_prefactors[l]
                along_first = projections[s1, 0, l]
                along_second = projections[s2, 0, l]
                gx_first = projections[s1, 1, l]
                gy_first = projections[s1, 2, l]
                gz_first = projections[s1, 3, l]
                gx_second = projections[s2, 1, l]
                gy_second = projections[s2, 2, l]
                gz_second = projections[s2, 3, l]
                slope_l = slope[l]
                radial_l = radial[l]
                for n in range(n_max):
                    # terms where c[s1, ., n] moves (partner c[s2, ., n2]) ...
                    first_slope = slope_l[n] if moves_first else 0.0
                    first_radial = radial_l[n] if moves_first else 0.0
                    # ... and where c[s2, ., n2] moves (partner c[s1, ., n])
                    second_along = along_first[n] if moves_second else 0.0
                    second_gx = gx_first[n] if moves_second else 0.0
                    second_gy = gy_first[n] if moves_second else 0.0
                    second_gz = gz_first[n] if moves_second else 0.0
                    for n2 in range(n if same else 0, n_max):
                        radial_term = first_slope * along_second[n2] + second_along * slope_l[n2]
                        out[0, f] = prefactor * (ux * radial_term + first_radial * gx_second[n2]
                                                 + second_gx * radial_l[n2])
                        out[1, f] = prefactor * (uy * radial_term + first_radial * gy_second[n2]
                                                 + second_gy * radial_l[n2])
                        out[2, f] = prefactor * (uz * radial_term + first_radial * gz_second[n2]
                                                 + second_gz * radial_l[n2])
                        f += 1


@njit(cache=True)
def _gradients_of_centres(first, last, offsets, vectors, pair_species, centre_species,
                          n_species, l_max, n_max, basis, weighting, features, pair_gradients):
    max_pairs = max(blocks.max_pairs(offsets), 1)
    n_lk = (l_max + 1) * n_max
    workspace = _centre_workspace(n_species, l_max, n_max, max_pairs)
    coeffs = workspace[9]
    gram = np.empty((n_max, n_max))
    radial_buffer = np.empty(n_lk * max_pairs)
    slope_buffer = np.empty(n_lk * max_pairs)
    projection_buffer = np.empty(n_species * 4 * n_lk * max_pairs)
    pair_radial = np.empty((l_max + 1, n_max))
    pair_slope = np.empty((l_max + 1, n_max))
    pair_projections = np.empty((n_species, 4, l_max + 1, n_max))
    unit = np.empty(3)
    for i in range(first, last):
        start = offsets[i]
        count = offsets[i + 1] - start
        _expand_into(start, offsets[i + 1], centre_species[i], vectors, pair_species, n_species,
                     l_max, n_max, basis, weighting, workspace, workspace[3], workspace[5], True)
        _power_spectrum(coeffs, basis[4], l_max, n_max, n_species, gram, features[i])
        if count == 0:
            continue
        radial = radial_buffer[:n_lk * count].reshape((l_max + 1, n_max, count))
        slope = slope_buffer[:n_lk * count].reshape((l_max + 1, n_max, count))
        _radial_and_slope(workspace, count, basis, l_max, n_max, radial, slope)
        harmonics, harmonic_gradients = _harmonics(workspace, count, l_max)
        projections = projection_buffer[:n_species * 4 * n_lk * count].reshape(
            (n_species, 4, l_max + 1, n_max, count))
        for s in range(n_species):
            for l in range(l_max + 1):
                block_rows = slice(l * l, (l + 1) * (l + 1))
                partner = coeffs[s, block_rows].T
                np.dot(partner, harmonics[block_rows], projections[s, 0, l])
                for a in range(3):
                    np.dot(partner, harmonic_gradients[a, block_rows],
                           projections[s, 1 + a, l])
        geometry = workspace[0]
        for q in range(count):
            inverse_r = 1.0 / geometry[4, q] if geometry[4, q] > 0.0 else 0.0
            for a in range(3):
                unit[a] = geometry[a, q] * inverse_r
            for l in range(l_max + 1):
                for n in range(n_max):
                    pair_radial[l, n] = radial[l, n, q]
                    pair_slope[l, n] = slope[l, n, q]
            for s in range(n_species):
                for t in range(4):
                    for l in range(l_max + 1):
                        for n in range(n_max):
                            pair_projections[s, t, l, n] = projections[s, t, l, n, q]
            _pair_feature_gradient(unit, pair_species[start + q], pair_radial, pair_slope,
                                   pair_projections, basis[4], n_species, l_max, n_max,
                                   pair_gradients[start + q])


@njit(cache=True)
def _coefficient_adjoint(d_energy_d_features, coeffs, ps_prefactors, l_max, n_max, n_species,
                         adjoint, pair_weights):
    """adjoint[s, lm, n] = ∂E/∂c[s, lm, n] given ∂E/∂q of one centre. For each species pair
    and l the feature weights form an n_max × n_max matrix W (``pair_weights``, work space;
    symmetrised when both species are the same), and ∂E/∂c[s1, lm] = W c[s2, lm],
    ∂E/∂c[s2, lm] += Wᵀ c[s1, lm]."""
    adjoint[:] = 0.0
    f = 0
    for s1 in range(n_species):
        for s2 in range(s1, n_species):
            same = s1 == s2
            for l in range(l_max + 1):
                prefactor = ps_prefactors[l]
                for n in range(n_max):
                    if same:
                        pair_weights[n, n] = 2.0 * prefactor * d_energy_d_features[f]
                        f += 1
                        for n2 in range(n + 1, n_max):
                            weight = prefactor * d_energy_d_features[f]
                            pair_weights[n, n2] = weight
                            pair_weights[n2, n] = weight
                            f += 1
                    else:
                        for n2 in range(n_max):
                            pair_weights[n, n2] = prefactor * d_energy_d_features[f]
                            f += 1
                if same:  # W symmetric: ∂E/∂c[s, lm, n] = Σ_n2 W[n2, n] c[s, lm, n2]
                    for lm in range(l * l, (l + 1) * (l + 1)):
                        for n2 in range(n_max):
                            c = coeffs[s2, lm, n2]
                            for n in range(n_max):
                                adjoint[s1, lm, n] += pair_weights[n2, n] * c
                    continue
                for lm in range(l * l, (l + 1) * (l + 1)):
                    for n in range(n_max):
                        total = 0.0
                        c = coeffs[s1, lm, n]
                        for n2 in range(n_max):
                            total += pair_weights[n, n2] * coeffs[s2, lm, n2]
                            adjoint[s2, lm, n2] += pair_weights[n, n2] * c
                        adjoint[s1, lm, n] += total


@njit(cache=True)
def _fold_adjoint(adjoint, species, basis, l_max, n_max, folded, folded_slope):
    """folded[lm, k] = sum_n ∂E/∂c[species, lm, n] b[l, k, n] and folded_slope[lm, k] =
    sum_n ∂E/∂c[species, lm, n] a[l, k] b[l, k, n]."""
    _, prefactors, _, _, _, slope_prefactors = basis
    for l in range(l_max + 1):
        for lm in range(l * l, (l + 1) * (l + 1)):
            row = adjoint[species, lm]
            for k in range(n_max):
                total = 0.0
                total_slope = 0.0
                for n in range(n_max):
                    total += row[n] * prefactors[l, k, n]
                    total_slope += row[n] * slope_prefactors[l, k, n]
                folded[lm, k] = total
                folded_slope[lm, k] = total_slope


@njit(cache=True, fastmath=REASSOCIATE)
def _backward_of_centres(first, last, offsets, vectors, pair_species, centre_species,
                         n_species, l_max, n_max, basis, weighting, lowering,
                         d_energy_d_features, d_energy_d_vectors, kept_coefficients, kept_exps,
                         kept_harmonics):
    """∂E/∂(pair vector) of the pairs of centres first:last. With a non-empty
    kept_coefficients the coefficients, exps and solid harmonics are read from what
    ``_features_of_centres`` kept (same pairs); otherwise each centre is expanded again.

    Per neighbour q of species s: v[lm] = sum_n ∂E/∂c[s, lm, n] R_ln(r_q) (R without the
    weight) and its slope give the radial part; the angular part Σ_lm w v[lm] ∇(r^l Y_lm)
    is formed from the harmonics one degree lower (``lowering``, see
    ``_soap_basis.harmonic_lowering``), so no harmonic gradient is computed.
    """
    n_lm = (l_max + 1) * (l_max + 1)
    n_lk = (l_max + 1) * n_max
    max_pairs = max(blocks.max_pairs(offsets), 1)
    workspace = _centre_workspace(n_species, l_max, n_max, max_pairs)
    geometry, weights = workspace[0], workspace[1]
    lowering_offsets, axes, targets, lowering_coefficients = lowering
    adjoint = np.empty((n_species, n_lm, n_max))
    pair_weights = np.empty((n_max, n_max))
    folded = np.empty((n_lm, n_max))
    folded_slope = np.empty((n_lm, n_max))
    per_pair = np.empty((5, max_pairs))
    value_row, slope_row, value_weight, slope_weight, moved_weight = (
        per_pair[0], per_pair[1], per_pair[2], per_pair[3], per_pair[4])
    sums = np.empty((4, max_pairs))
    kept = kept_coefficients.shape[0] > 0
    for i in range(first, last):
        start = offsets[i]
        stop = offsets[i + 1]
        count = stop - start
        if count == 0:
            continue
        if kept:
            _pair_weights(start, count, vectors, pair_species, weighting, workspace)
            exps = kept_exps[start * n_lk: stop * n_lk]
            harmonics = kept_harmonics[start * n_lm: stop * n_lm]
            coeffs = kept_coefficients[i]
        else:
            exps = workspace[3]
            harmonics = workspace[5]
            _expand_into(start, stop, centre_species[i], vectors, pair_species, n_species,
                         l_max, n_max, basis, weighting, workspace, exps, harmonics)
            coeffs = workspace[9]
        _coefficient_adjoint(d_energy_d_features[i], coeffs, basis[4], l_max, n_max,
                             n_species, adjoint, pair_weights)
        radial_terms = exps[:n_lk * count].reshape((l_max + 1, n_max, count))
        values_of = harmonics[:n_lm * count].reshape((n_lm, count))
        sums[:, :count] = 0.0
        for s in range(n_species):
            if workspace[10][s] == 0:
                continue
            mask = _species_mask(workspace, pair_species, start, count, s)
            _fold_adjoint(adjoint, s, basis, l_max, n_max, folded, folded_slope)
            for q in range(count):
                value_weight[q] = weights[1, q] * mask[q]
                slope_weight[q] = 2.0 * geometry[4, q] * weights[0, q] * mask[q]
                moved_weight[q] = weights[0, q] * mask[q]
            for l in range(l_max + 1):
                for lm in range(l * l, (l + 1) * (l + 1)):
                    # v[lm, q] and its slope, four radial indices at a time, then at once
                    # their share of the radial sum and of the angular part
                    value_row[:count] = 0.0
                    slope_row[:count] = 0.0
                    k = 0
                    while k + 4 <= n_max:
                        f0 = folded[lm, k]
                        f1 = folded[lm, k + 1]
                        f2 = folded[lm, k + 2]
                        f3 = folded[lm, k + 3]
                        g0 = folded_slope[lm, k]
                        g1 = folded_slope[lm, k + 1]
                        g2 = folded_slope[lm, k + 2]
                        g3 = folded_slope[lm, k + 3]
                        for q in range(count):
                            e0 = radial_terms[l, k, q]
                            e1 = radial_terms[l, k + 1, q]
                            e2 = radial_terms[l, k + 2, q]
                            e3 = radial_terms[l, k + 3, q]
                            value_row[q] += f0 * e0 + f1 * e1 + f2 * e2 + f3 * e3
                            slope_row[q] += g0 * e0 + g1 * e1 + g2 * e2 + g3 * e3
                        k += 4
                    while k < n_max:
                        f0 = folded[lm, k]
                        g0 = folded_slope[lm, k]
                        for q in range(count):
                            value_row[q] += f0 * radial_terms[l, k, q]
                            slope_row[q] += g0 * radial_terms[l, k, q]
                        k += 1
                    for q in range(count):
                        sums[0, q] += ((value_weight[q] * value_row[q]
                                        + slope_weight[q] * slope_row[q]) * values_of[lm, q])
                        value_row[q] *= moved_weight[q]
                    # the angular part w v[lm] ∇(r^l Y_lm): harmonics one degree lower
                    for t in range(lowering_offsets[lm], lowering_offsets[lm + 1]):
                        row = sums[1 + axes[t]]
                        target = values_of[targets[t]]
                        c = lowering_coefficients[t]
                        for q in range(count):
                            row[q] += c * value_row[q] * target[q]
        for q in range(count):
            r = geometry[4, q]
            radial_sum = sums[0, q] / r if r > 0.0 else 0.0
            for a in range(3):
                d_energy_d_vectors[start + q, a] = geometry[a, q] * radial_sum + sums[1 + a, q]


FEATURES = 0
FEATURES_AND_GRADIENTS = 1
BACKWARD = 2


@njit(cache=True, parallel=True)
def soap_kernel(mode, offsets, vectors, pair_species, centre_species, n_species, l_max, n_max,
                basis, weighting, lowering, n_blocks, features, pair_gradients,
                d_energy_d_features, d_energy_d_vectors, kept_coefficients, kept_exps,
                kept_harmonics):
    """The one parallel entry point (a single prange keeps numba's compile time down):

    FEATURES: fills features (n_centres, n_features) with the power spectrum of every centre;
        a non-empty kept_coefficients (n_centres, n_species, n_lm, n_max) receives the
        expansion coefficients c[s, lm, n] as well (for a later BACKWARD).
    FEATURES_AND_GRADIENTS: also fills pair_gradients (n_pairs, 3, n_features) with
        ∂q_centre/∂r_neighbour (feature units per Å).
    BACKWARD: fills d_energy_d_vectors (n_pairs, 3) with ∂E/∂(pair vector) in eV/Å given
        d_energy_d_features = ∂E/∂q (n_centres, n_features); with a non-empty
        kept_coefficients (as FEATURES left them, same pairs) the expansion is not redone.
    Arrays a mode does not use may be empty. Centres are split into n_blocks contiguous
    blocks; each block writes only its own centres' and pairs' rows.
    """
    starts = blocks.centre_blocks(offsets, n_blocks)
    for block in prange(starts.shape[0] - 1):
        first = starts[block]
        last = starts[block + 1]
        if mode == FEATURES:
            _features_of_centres(first, last, offsets, vectors, pair_species, centre_species,
                                 n_species, l_max, n_max, basis, weighting, features,
                                 kept_coefficients, kept_exps, kept_harmonics)
        elif mode == FEATURES_AND_GRADIENTS:
            _gradients_of_centres(first, last, offsets, vectors, pair_species, centre_species,
                                  n_species, l_max, n_max, basis, weighting, features,
                                  pair_gradients)
        else:
            _backward_of_centres(first, last, offsets, vectors, pair_species, centre_species,
                                 n_species, l_max, n_max, basis, weighting, lowering,
                                 d_energy_d_features, d_energy_d_vectors, kept_coefficients,
                                 kept_exps, kept_harmonics)

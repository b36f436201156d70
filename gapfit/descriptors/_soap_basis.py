"""Position-independent set-up of the GTO SOAP expansion (dscribe's ``rbf="gto"``).

The radial basis is g_nl(r) = sum_k beta_lnk r^l exp(-alpha_lk r^2), Löwdin-orthonormalised
on [0, inf) with weight r^2; every number here is computed once per descriptor object.

Expanding a neighbour density w exp(-eta |r - r_j|^2) (eta = 1 / (2 sigma^2)) on
g_nl(r) Y_lm(r_hat) gives, after the analytic radial integral,

    c_nlm = pi^(3/2) sum_j w_j sum_k b_lnk exp(a_lk r_j^2) r_j^l Y_lm(r_hat_j),
    a_lk = -alpha_lk / (1 + alpha_lk / eta),
    b_lnk = eta^(-3/2) beta_lnk (1 + alpha_lk / eta)^(-(l + 3/2)),

and the power spectrum p_nn'l = pi sqrt(8 / (2l + 1)) sum_m c_nlm c_n'lm. The kernels work
with the coefficients without the pi^(3/2), so their power-spectrum prefactor is
pi^4 sqrt(8 / (2l + 1)).
"""
import math

import numpy as np
from scipy.linalg import inv, sqrtm
from scipy.special import gamma

# r^l exp(-alpha r^2) of basis k equals this at its own radius (dscribe's choice).
GTO_DECAY_THRESHOLD = 1e-3
# The neighbour search radius is r_cut plus the distance at which a Gaussian of width
# sigma decays to this fraction, so that atoms just outside r_cut still contribute.
CUTOFF_PADDING_THRESHOLD = 1e-3


def cutoff_padding(sigma):
    """Distance (Å) added to r_cut for the neighbour search."""
    return sigma * math.sqrt(-2.0 * math.log(CUTOFF_PADDING_THRESHOLD))


def gto_exponents_and_orthonormalisation(r_cut, n_max, l_max):
    """GTO exponents alpha (l_max+1, n_max) in Å^-2 and Löwdin matrices beta
    (l_max+1, n_max, n_max) that make the primitive r^l exp(-alpha r^2) orthonormal.

    The n_max decay radii are evenly spaced between 1 Å and r_cut; the exponent of
    basis k at angular momentum l makes r^l exp(-alpha r^2) equal the threshold at its
    radius. beta = S^(-1/2) with the overlap S_kk' = Gamma(l + 3/2) / (2 (alpha_k +
    alpha_k')^(l + 3/2)).
    """
    radii = np.linspace(1.0, r_cut, n_max)
    alphas = np.zeros((l_max + 1, n_max))
    betas = np.zeros((l_max + 1, n_max, n_max))
    for l in range(l_max + 1):
        alpha_l = -np.log(GTO_DECAY_THRESHOLD / np.power(radii, l)) / radii**2
        exponent_sums = alpha_l[:, None] + alpha_l[None, :]
        overlap = 0.5 * gamma(l + 1.5) * exponent_sums ** (-l - 1.5)
        # S is ill-conditioned (cond up to ~1e9 at n_max = 8); the same numerical route as dscribe
        # (scipy's inv, then sqrtm) keeps beta, and so the features, equal to ~1e-12.
        inverse_sqrt = sqrtm(inv(overlap))
        if np.iscomplexobj(inverse_sqrt):
            raise ValueError(
                f"SOAP GTO basis with r_cut={r_cut}, n_max={n_max}: the overlap matrix at "
                f"l={l} is not positive definite in floating point; lower n_max or raise r_cut"
            )
        alphas[l] = alpha_l
        betas[l] = inverse_sqrt
    return alphas, betas


def radial_integral_factors(alphas, betas, sigma):
    """(a, b): exponents a[l, k] (l_max+1, n_max) in Å^-2 and prefactors b[l, k, n]
    (l_max+1, n_max, n_max, note the order) of the smeared-atom radial integral, so that
    sum_k b[l, k, n] exp(a[l, k] r^2) r^l is the radial part of c_nlm (without pi^(3/2))
    for a neighbour at distance r."""
    eta = 1.0 / (2.0 * sigma**2)
    l_max = alphas.shape[0] - 1
    ratio = 1.0 / (1.0 + alphas / eta)
    exponents = -alphas * ratio
    powers = np.array([ratio[l] ** (l + 1.5) for l in range(l_max + 1)])
    prefactors = eta**-1.5 * betas * powers[:, None, :]
    return np.ascontiguousarray(exponents), np.ascontiguousarray(prefactors.transpose(0, 2, 1))


def slope_prefactors(exponents, prefactors):
    """a[l, k] b[l, k, n]: with them d/dr sum_k b exp(a r^2) = 2 r sum_k (a b) exp(a r^2)."""
    return np.ascontiguousarray(exponents[:, :, None] * prefactors)


def real_harmonic_norms(l_max):
    """Normalisation (l_max+1, l_max+1) of the real spherical harmonics, indexed [l, |m|]:
    sqrt((2 - delta_m0) (2l + 1) / (4 pi) (l - m)! / (l + m)!)."""
    norms = np.zeros((l_max + 1, l_max + 1))
    for l in range(l_max + 1):
        for m in range(l + 1):
            ratio = math.factorial(l - m) / math.factorial(l + m)
            norms[l, m] = math.sqrt((2.0 if m > 0 else 1.0) * (2 * l + 1) / (4.0 * math.pi) * ratio)
    return norms


def harmonic_recurrence(l_max):
    """Coefficients (2, l_max+1, l_max+1) of the Legendre recurrence used for the solid
    harmonics, [0, l, m] = (2l - 1) / (l - m) and [1, l, m] = (l + m - 1) / (l - m) for
    l >= m + 2 (zero elsewhere), so that the kernels never divide."""
    coefficients = np.zeros((2, l_max + 1, l_max + 1))
    for m in range(l_max + 1):
        for l in range(m + 2, l_max + 1):
            coefficients[0, l, m] = (2 * l - 1) / (l - m)
            coefficients[1, l, m] = (l + m - 1) / (l - m)
    return coefficients


def power_spectrum_prefactors(l_max):
    """pi^4 sqrt(8 / (2l + 1)) for l = 0..l_max (see the module docstring)."""
    return np.array([math.pi**4 * math.sqrt(8.0 / (2 * l + 1)) for l in range(l_max + 1)])


def harmonic_lowering(l_max, n_points=64, seed=0):
    """The gradient of every real solid harmonic as a sum of those one degree lower:
    ∂_a (r^l Y_lm) = sum_m' C[a, lm, (l-1)m'] r^(l-1) Y_(l-1)m' (the derivative of a harmonic
    polynomial of degree l is one of degree l - 1), so that a backward pass that has kept the
    harmonics forms Σ_lm v_lm ∇(r^l Y_lm) without their gradients.

    Returns (offsets, axes, targets, coefficients), one entry per non-zero C (|C| > 1e-12 of
    the largest), grouped by source lm = l*l + l + m: the entries of source lm are
    offsets[lm]:offsets[lm + 1] ((l_max+1)² + 1 offsets), each with its axis a (0 x, 1 y,
    2 z), target index of (l-1)m', and C (Å^0; both sides carry the same norms as
    ``_soap_kernels.solid_harmonics``).
    The coefficients are solved for by least squares on random points and checked there.
    """
    from ._soap_kernels import harmonic_workspace, solid_harmonics

    n_lm = (l_max + 1) ** 2
    points = np.random.default_rng(seed).normal(size=(n_points, 3))
    xs, ys, zs = (np.ascontiguousarray(points[:, a]) for a in range(3))
    values = np.empty((n_lm, n_points))
    gradients = np.empty((3, n_lm, n_points))
    solid_harmonics(xs, ys, zs, xs * xs + ys * ys + zs * zs, n_points, l_max,
                    real_harmonic_norms(l_max), harmonic_recurrence(l_max), values, gradients,
                    True, harmonic_workspace(l_max, n_points))
    axes, sources, targets, coefficients = [], [], [], []
    for l in range(1, l_max + 1):
        lower = values[(l - 1) ** 2: l * l]
        for a in range(3):
            block = gradients[a, l * l: (l + 1) * (l + 1)]
            solution = np.linalg.lstsq(lower.T, block.T, rcond=None)[0].T  # (2l+1, 2l-1)
            residual = np.abs(solution @ lower - block).max()
            if residual > 1e-9 * max(np.abs(block).max(), 1.0):
                raise RuntimeError(f"solid harmonic gradients at l={l} are not spanned by "
                                   f"degree {l - 1} (residual {residual:.1e})")
            solution[np.abs(solution) < 1e-12 * np.abs(solution).max()] = 0.0
            for row, column in zip(*np.nonzero(solution)):
                axes.append(a)
                sources.append(l * l + row)
                targets.append((l - 1) ** 2 + column)
                coefficients.append(solution[row, column])
    sources = np.array(sources, dtype=np.int64)
    order = np.argsort(sources, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(sources, minlength=n_lm))])
    return (offsets.astype(np.int64), np.array(axes, dtype=np.int64)[order],
            np.array(targets, dtype=np.int64)[order],
            np.array(coefficients, dtype=np.float64)[order])

"""Linear algebra of the sparse GP (projected process / DTC): factorise, combine, solve.

The coefficients α minimise ||Σ^{-1/2}(y - A α)||² + αᵀ K_MM α. We never form
the normal matrix AᵀΣ⁻¹A + K_MM: its condition number is the square of the
stacked system's, and with force sigmas of 0.05 eV/Å against a jitter of 1e-8
it exceeds what Cholesky in double precision can resolve. Instead every chunk
of rows is reduced to the R factor of a QR decomposition of [Σ^{-1/2}A | Σ^{-1/2}y];
R factors combine exactly by a QR of their stack (a tall-skinny QR), which is
a map over chunks followed by a reduction, and the prior enters as the rows
[Lᵀ | 0] with K_MM = L Lᵀ.

An R factor of k rows and n = M+1 columns is kept *lean*: upper trapezoidal with
min(k, n) rows. A chunk's energy factor has about ten rows and its virial factor
about sixty, so padding them to n × n (as gapfit did until 0.1) held two nearly
empty n² arrays per chunk in the reduction; lean pieces are stacked and
re-factorised while they have fewer than n rows, and only then become n × n
triangles. Square factors (model files written before) are lean factors too.
"""
import numpy as np
from scipy.linalg import solve_triangular
from scipy.linalg.lapack import dtpqrt

_TPQRT_BLOCK = 64


def is_upper_trapezoidal(block):
    """Whether a (k, n) block with k ≤ n has only zeros below its diagonal (an R factor
    as ``combine_factors`` keeps it). Checked row by row: no k × k temporary."""
    rows, columns = block.shape
    return rows <= columns and not any(block[i, :i].any() for i in range(1, rows))


def lean_factor(rows):
    """Upper-trapezoidal R, (min(k, n), n), with RᵀR = rowsᵀrows for a (k, n) block of rows:
    an R factor passes through unchanged, any other block is reduced by a QR."""
    rows = np.asarray(rows, dtype=np.float64)
    if is_upper_trapezoidal(rows):
        return rows
    return np.linalg.qr(rows, mode="r")


def square_factor(factor):
    """A lean R factor (k, n), k ≤ n, padded with zero rows to (n, n) (same RᵀR)."""
    rows, size = factor.shape
    if rows == size:
        return factor
    if rows > size:
        raise ValueError(f"an R factor has at most as many rows as columns, got {factor.shape}")
    padded = np.zeros((size, size))
    padded[:rows] = factor
    return padded


def weighted_factor(rows, targets, sigmas):
    """Lean R factor (min(n, M+1), M+1) of [rows/σ | targets/σ]; rows (n, M), targets and
    sigmas (n,) in the units of the targets (eV, eV/Å or eV for virials)."""
    size = rows.shape[1] + 1
    if rows.shape[0] == 0:
        return np.zeros((0, size))
    weights = 1.0 / np.asarray(sigmas, dtype=np.float64)
    stacked = np.empty((rows.shape[0], size))
    np.multiply(rows, weights[:, None], out=stacked[:, :-1])
    stacked[:, -1] = targets * weights
    return np.linalg.qr(stacked, mode="r")


def combine_factors(factors):
    """Lean R factor of the stack of several blocks of rows, in order (the reduction step).

    Each block is an R factor (any number of rows up to its columns) or any other block of
    rows (reduced by a QR first); None entries are skipped. The result has min(total rows,
    n) rows: it is the n × n triangle once the blocks hold at least n rows together. Blocks
    whose rows together fall short of n are merged by a QR of their stack; otherwise by
    LAPACK's triangular-pentagonal QR (dtpqrt), which skips the known zeros: about 2.5×
    cheaper than a dense QR of two triangles for M = 1,000, and cheaper still when one of
    them is a short trapezoid.
    """
    blocks = [lean_factor(f) for f in factors if f is not None]
    if not blocks:
        raise ValueError("no R factors to combine")
    result = blocks[0]
    for block in blocks[1:]:
        result = merge_factors(result, block)
    return result


def merge_factors(top, bottom):
    """Lean R factor of [top; bottom], both lean R factors with the same columns."""
    size = top.shape[1]
    if bottom.shape[1] != size:
        raise ValueError(f"R factors of {size} and {bottom.shape[1]} columns cannot be combined")
    if bottom.shape[0] == 0:
        return top
    if top.shape[0] == 0:
        return bottom
    if top.shape[0] + bottom.shape[0] < size:
        return np.linalg.qr(np.vstack([top, bottom]), mode="r")
    if top.shape[0] < bottom.shape[0]:  # the taller one becomes the triangle (same RᵀR)
        top, bottom = bottom, top
    return _merge_into_triangle(top, bottom)


def _merge_into_triangle(top, trapezoid):
    """R (n, n) of the QR of [top; trapezoid]: top (k₁, n) and trapezoid (k₂, n) lean R
    factors with k₁ + k₂ ≥ n. LAPACK's dtpqrt with an l = k₂ pentagon; it works in place on
    our own Fortran-ordered copies (top padded to n × n), so a merge holds about two n²
    arrays beside its inputs, not five."""
    size = top.shape[1]
    triangle = np.zeros((size, size), order="F")
    triangle[: top.shape[0]] = top
    below = np.array(trapezoid, dtype=np.float64, order="F", copy=True)
    merged, _, _, info = dtpqrt(below.shape[0], min(_TPQRT_BLOCK, size), triangle, below,
                                overwrite_a=True, overwrite_b=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"dtpqrt failed (info {info})")
    for column in range(size - 1):  # dtpqrt leaves the strict lower part alone: keep it zero
        merged[column + 1:, column] = 0.0
    return merged


def combine_factor_dicts(dicts):
    """Combine {target kind: R factor} dictionaries key by key (lean factors)."""
    keys = sorted({k for d in dicts for k in d})
    return {k: combine_factors([d[k] for d in dicts if k in d]) for k in keys}


def prior_factor(sparse_covariance, jitter, relative=True):
    """Rows [Lᵀ | 0], (M, M+1), with K_MM + j·I = L Lᵀ (eV²), j = jitter·max(diag K_MM)
    (``relative``) or j = jitter in eV² (gap_fit's ``sparse_jitter``).

    The jitter keeps the Cholesky factorisation defined when sparse points nearly
    coincide; the relative one does not depend on the scale of the deltas.
    """
    size = sparse_covariance.shape[0]
    scale = max(float(np.max(np.diag(sparse_covariance))), 1e-300) if relative else 1.0
    regularised = sparse_covariance + jitter * scale * np.eye(size)
    lower = np.linalg.cholesky(regularised)
    factor = np.zeros((size, size + 1))
    factor[:, :size] = lower.T
    return factor


def total_factor(data_factors, prior):
    """The square (M+1, M+1) R factor of the data R factors and the prior rows together."""
    return square_factor(combine_factors(list(data_factors) + [prior]))


def solve(data_factors, prior):
    """Coefficients α and the total R factor from data R factors and the prior rows.

    Returns (alpha (M,), R (M+1, M+1)); R[:M, :M]ᵀ R[:M, :M] = K_MM + AᵀΣ⁻¹A is the
    posterior precision of α, R[:M, M] = Q^T Σ^{-1/2} y and R[M, M]² the
    weighted residual plus prior penalty.
    """
    total = total_factor(data_factors, prior)
    size = total.shape[0] - 1
    r11 = total[:size, :size]
    diagonal = np.abs(np.diag(r11))
    if diagonal.min() <= 1e-14 * diagonal.max():
        raise np.linalg.LinAlgError("the sparse GP system is singular: increase sparse_jitter")
    alpha = solve_triangular(r11, total[:size, size], lower=False)
    return alpha, total

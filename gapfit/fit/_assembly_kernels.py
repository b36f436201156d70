"""numba kernels that contract kernel gradients with descriptor gradients into design rows.

Plain arrays in and out. Notation: for pair p of environment e = pair_envs[p],
g_p = ∂q_e/∂r_p (3 × d); the derivative of k(q_e, s_m) with respect to the
pair vector is P[p, a, m] = A[e, m] * proj[p, a, m] + B[e, m] * gq[p, a], with
proj = g_p · s_m and gq = g_p · q_e (see ``gapfit.gp.kernels``).
"""
import numpy as np
from numba import njit, prange

_COLUMN_BLOCK = 16


@njit(cache=True)
def _n_column_blocks(n_cols):
    """How many blocks of _COLUMN_BLOCK columns cover n_cols (the parallel kernels' tasks)."""
    return (n_cols + _COLUMN_BLOCK - 1) // _COLUMN_BLOCK


@njit(cache=True)
def _column_block(block, n_cols):
    """(start, stop) columns of a block."""
    start = block * _COLUMN_BLOCK
    return start, min(start + _COLUMN_BLOCK, n_cols)


@njit(parallel=True, cache=True)
def add_force_rows(out, col0, proj, gq, factor_sparse, factor_self, pair_envs,
                   target_rows, target_ptr, target_pairs, target_signs,
                   values=None, cutoff_gradients=None):
    """out[row, a, col0 + m] += sign * P[p, a, m] for every (row, p, sign) target.

    Targets are grouped by row (CSR: target_ptr over target_pairs/target_signs),
    so each prange iteration writes a distinct row. Environments weighted by a
    covariance cutoff f_e pass ``factor_sparse``/``factor_self`` already times f_e,
    and ``values`` (the unweighted K[e, m]) with ``cutoff_gradients`` (w[p] =
    ∂f_e/∂r_p, 1/Å): P gains K[e, m] w[p, a]. Left out (None), numba compiles the
    plain kernel without that term.
    """
    n_cols = proj.shape[2]
    for t in prange(target_rows.shape[0]):
        row = target_rows[t]
        for k in range(target_ptr[t], target_ptr[t + 1]):
            p = target_pairs[k]
            sign = target_signs[k]
            e = pair_envs[p]
            for a in range(3):
                g = gq[p, a]
                if cutoff_gradients is not None:
                    w = cutoff_gradients[p, a]
                for m in range(n_cols):
                    d = factor_sparse[e, m] * proj[p, a, m] + factor_self[e, m] * g
                    if values is not None:
                        d += values[e, m] * w
                    out[row, a, col0 + m] += sign * d


@njit(parallel=True, cache=True)
def add_virial_rows(out, col0, proj, gq, factor_sparse, factor_self, pair_envs,
                    pair_vectors, pair_configs, values=None, cutoff_gradients=None):
    """out[c, v, col0 + m] += virial (Voigt xx,yy,zz,yz,xz,xy) of every pair of config c.

    The virial is W = -Σ_p P_p ⊗ D_p, symmetrised. Parallel over column blocks.
    ``values`` and ``cutoff_gradients`` (covariance-cutoff weights) as in
    ``add_force_rows``.
    """
    n_cols = proj.shape[2]
    for block in prange(_n_column_blocks(n_cols)):
        start, stop = _column_block(block, n_cols)
        for p in range(proj.shape[0]):
            e = pair_envs[p]
            c = pair_configs[p]
            dx = pair_vectors[p, 0]
            dy = pair_vectors[p, 1]
            dz = pair_vectors[p, 2]
            if cutoff_gradients is not None:
                wx = cutoff_gradients[p, 0]
                wy = cutoff_gradients[p, 1]
                wz = cutoff_gradients[p, 2]
            for m in range(start, stop):
                fs = factor_sparse[e, m]
                fq = factor_self[e, m]
                px = fs * proj[p, 0, m] + fq * gq[p, 0]
                py = fs * proj[p, 1, m] + fq * gq[p, 1]
                pz = fs * proj[p, 2, m] + fq * gq[p, 2]
                if values is not None:
                    k = values[e, m]
                    px += k * wx
                    py += k * wy
                    pz += k * wz
                col = col0 + m
                out[c, 0, col] -= px * dx
                out[c, 1, col] -= py * dy
                out[c, 2, col] -= pz * dz
                out[c, 3, col] -= 0.5 * (py * dz + pz * dy)
                out[c, 4, col] -= 0.5 * (px * dz + pz * dx)
                out[c, 5, col] -= 0.5 * (px * dy + py * dx)


@njit(parallel=True, cache=True)
def add_grouped_rows(out, col0, values, groups):
    """out[groups[i], col0 + m] += values[i, m]; parallel over column blocks."""
    n_cols = values.shape[1]
    for block in prange(_n_column_blocks(n_cols)):
        start, stop = _column_block(block, n_cols)
        for i in range(values.shape[0]):
            g = groups[i]
            for m in range(start, stop):
                out[g, col0 + m] += values[i, m]


def force_targets(pair_envs, pair_neighbors, env_atoms, row_offset):
    """CSR of force-row targets: each pair pushes -P onto its neighbour, +P onto its centre.

    Returns (target_rows, target_ptr, target_pairs, target_signs), rows shifted
    by ``row_offset`` (the first atom of the structure within the chunk).
    """
    n_pairs = len(pair_envs)
    rows = np.concatenate([pair_neighbors, env_atoms[pair_envs]]) + row_offset
    pairs = np.concatenate([np.arange(n_pairs), np.arange(n_pairs)])
    signs = np.concatenate([-np.ones(n_pairs), np.ones(n_pairs)])
    order = np.argsort(rows, kind="stable")
    rows, pairs, signs = rows[order], pairs[order], signs[order]
    unique_rows, starts = np.unique(rows, return_index=True)
    ptr = np.append(starts, len(rows)).astype(np.int64)
    return unique_rows.astype(np.int64), ptr, pairs.astype(np.int64), signs

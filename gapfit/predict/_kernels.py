"""numba kernels of the prediction path: kernel-to-energy contractions and the scatter of
pair gradients into forces and the virial.

Plain arrays in and out; the Python side (``gapfit.predict.predictor``) chooses them.
"""
import numpy as np
from numba import njit, prange

from ..descriptors.numerics import REASSOCIATE, cosine_cutoff_scalar, exp_of_nonpositive


# pairs whose exponentials ``cutoff_squared_exponential_energies`` computes at once
PAIR_CHUNK = 512


# rows of ``dot_product_energies`` that one parallel task handles with one scratch buffer
ROWS_PER_TASK = 64


@njit(cache=True, fastmath=REASSOCIATE)
def _dot_product_row(row, inverse_norm, coefficients, zeta, cosines, powers, rows, i, scale):
    """One environment of ``dot_product_energies``: returns E_i; ``cosines`` and ``powers``
    are scratch of length M (the loops over sparse points vectorise)."""
    n_sparse = row.shape[0]
    for m in range(n_sparse):
        cosines[m] = row[m] * inverse_norm
        powers[m] = 1.0
    for _ in range(zeta - 1):
        for m in range(n_sparse):
            powers[m] *= cosines[m]
    energy = 0.0
    for m in range(n_sparse):
        weighted = coefficients[m] * powers[m]
        energy += weighted * cosines[m]
        row[m] = zeta * weighted * inverse_norm
    if rows.shape[0] > 0:
        for m in range(n_sparse):
            rows[i, m] = scale * (powers[m] * cosines[m])
    return energy


@njit(cache=True, parallel=True)
def dot_product_energies(projections, norms, coefficients, zeta, energies, rows, scale):
    """Local energies of the normalised dot-product kernel, and its weights for ∂E/∂q.

    projections : (n_envs, M) q_i · ŝ_m on entry (features times unit sparse points);
        overwritten with w_im = ζ α_m c_im^(ζ-1) / |q_i|, so that
        ∂E_i/∂q_i = Σ_m w_im ŝ_m - ζ E_i q_i / |q_i|² (eV per feature unit).
    norms : (n_envs,) |q_i| (zero-norm environments use 1, as ``kernels`` does).
    coefficients : (M,) α_m δ² in eV. zeta : positive integer.
    energies : (n_envs,) output, E_i = Σ_m α_m δ² c_im^ζ with c_im = q̂_i · ŝ_m (eV).
    rows : (n_envs, M) output of the kernel rows rows[i, m] = scale c_im^ζ (eV with
        scale = δ²: the local-energy design rows of ``gapfit.uncertainty.local``), or an
        empty (0, 0) array when they are not wanted (then ``scale`` is unused).
    """
    n_envs, n_sparse = projections.shape
    n_tasks = (n_envs + ROWS_PER_TASK - 1) // ROWS_PER_TASK
    for task in prange(n_tasks):
        cosines = np.empty(n_sparse)
        powers = np.empty(n_sparse)
        for i in range(task * ROWS_PER_TASK, min((task + 1) * ROWS_PER_TASK, n_envs)):
            inverse_norm = 1.0 / norms[i] if norms[i] > 0.0 else 1.0
            energies[i] = _dot_product_row(projections[i], inverse_norm, coefficients, zeta,
                                           cosines, powers, rows, i, scale)


@njit(cache=True)
def cutoff_squared_exponential_energies(distances, sparse_distances, weights, theta, cutoff,
                                        transition_width, energies, d_energy_d_distances):
    """Pair energies E_p = f(r_p) Σ_m a_m exp(-(r_p - x_m)² / 2θ²) and dE_p/dr_p (eV/Å).

    distances : (n_pairs,) r_p in Å; sparse_distances : (M,) x_m in Å;
    weights : (M,) a_m = α_m δ² f(x_m) in eV; f is GAP's cosine cutoff.
    """
    inverse_theta2 = 1.0 / (theta * theta)
    n_sparse = sparse_distances.shape[0]
    n_pairs = distances.shape[0]
    # the exponentials of PAIR_CHUNK pairs at a time, in one vectorised call
    chunk = min(PAIR_CHUNK, n_pairs)
    arguments = np.empty(chunk * n_sparse)
    gaussians = np.empty(chunk * n_sparse)
    scratch = np.empty(chunk * n_sparse)
    cutoffs = np.empty((chunk, 2))
    for first in range(0, n_pairs, PAIR_CHUNK):
        last = min(first + PAIR_CHUNK, n_pairs)
        count = 0
        for p in range(first, last):
            r = distances[p]
            f, df = cosine_cutoff_scalar(r, cutoff, transition_width)
            cutoffs[p - first, 0] = f
            cutoffs[p - first, 1] = df
            if f == 0.0:
                continue
            for m in range(n_sparse):
                difference = r - sparse_distances[m]
                arguments[count + m] = -0.5 * difference * difference * inverse_theta2
            count += n_sparse
        exp_of_nonpositive(arguments, gaussians, scratch, count)
        offset = 0
        for p in range(first, last):
            f = cutoffs[p - first, 0]
            if f == 0.0:
                energies[p] = 0.0
                d_energy_d_distances[p] = 0.0
                continue
            r = distances[p]
            total = 0.0
            slope = 0.0
            for m in range(n_sparse):
                term = weights[m] * gaussians[offset + m]
                total += term
                slope -= term * (r - sparse_distances[m]) * inverse_theta2
            offset += n_sparse
            energies[p] = f * total
            d_energy_d_distances[p] = cutoffs[p - first, 1] * total + f * slope


@njit(cache=True)
def add_cutoff_squared_exponential_rows(distances, sparse_distances, row_weights, theta, cutoff,
                                        transition_width, row_of_pair, rows):
    """rows[row_of_pair[p], m] += f(r_p) b_m exp(-(r_p - x_m)² / 2θ²) with b_m = δ² f(x_m):
    the pair kernel rows summed per atom (eV), as ``cutoff_squared_exponential_energies``."""
    inverse_theta2 = 1.0 / (theta * theta)
    n_sparse = sparse_distances.shape[0]
    arguments = np.empty(n_sparse)
    gaussians = np.empty(n_sparse)
    scratch = np.empty(n_sparse)
    for p in range(distances.shape[0]):
        r = distances[p]
        f, _ = cosine_cutoff_scalar(r, cutoff, transition_width)
        if f == 0.0:
            continue
        for m in range(n_sparse):
            difference = r - sparse_distances[m]
            arguments[m] = -0.5 * difference * difference * inverse_theta2
        exp_of_nonpositive(arguments, gaussians, scratch, n_sparse)
        row = row_of_pair[p]
        for m in range(n_sparse):
            rows[row, m] += f * row_weights[m] * gaussians[m]


@njit(cache=True)
def add_forces_and_virial(centers, neighbors, vectors, gradients, forces, virial):
    """Scatter ∂E/∂(pair vector) g_p (eV/Å) into forces (eV/Å) and the virial (eV).

    For the pair vector D_p = r_neighbour - r_centre: F_centre += g_p, F_neighbour -= g_p,
    virial -= g_p ⊗ D_p (summed, not yet symmetrised).
    """
    for p in range(centers.shape[0]):
        i = centers[p]
        j = neighbors[p]
        for a in range(3):
            g = gradients[p, a]
            forces[i, a] += g
            forces[j, a] -= g
            for b in range(3):
                virial[a, b] -= g * vectors[p, b]


@njit(cache=True)
def add_local_energies(center_atoms, env_energies, local_energies):
    """local_energies[center_atoms[e]] += env_energies[e] (eV)."""
    for e in range(center_atoms.shape[0]):
        local_energies[center_atoms[e]] += env_energies[e]

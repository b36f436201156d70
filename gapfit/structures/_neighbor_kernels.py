"""numba kernel of the neighbour-list reuse: pair vectors of stored pairs, kept within a cutoff.

Plain arrays in and out; ``gapfit.neighbors.SkinNeighborList`` calls it on every MD step.
"""
from numba import njit


@njit(cache=True)
def pair_vectors_within(positions, centers, neighbors, shift_vectors, squared_cutoff,
                        kept_centers, kept_neighbors, vectors):
    """Pair vectors r_j - r_i + shift (Å) of the stored pairs whose squared length is below
    ``squared_cutoff`` (Å²), in order; returns how many were kept (the first rows of the
    outputs).

    positions (n_atoms, 3); centers, neighbors (n_pairs,) int64; shift_vectors (n_pairs, 3)
    the cell shifts S @ cell in Å; outputs sized n_pairs.
    """
    kept = 0
    for p in range(centers.shape[0]):
        i = centers[p]
        j = neighbors[p]
        x = (positions[j, 0] - positions[i, 0]) + shift_vectors[p, 0]
        y = (positions[j, 1] - positions[i, 1]) + shift_vectors[p, 1]
        z = (positions[j, 2] - positions[i, 2]) + shift_vectors[p, 2]
        if x * x + y * y + z * z < squared_cutoff:
            kept_centers[kept] = i
            kept_neighbors[kept] = j
            vectors[kept, 0] = x
            vectors[kept, 1] = y
            vectors[kept, 2] = z
            kept += 1
    return kept

"""numba set-up that the CSR descriptor kernels share: the centre blocks of a parallel pass,
the size of the per-block buffers and the geometry rows of one centre's pairs (pairs sorted
by centre, centre i owns pairs offsets[i]:offsets[i+1])."""
import numba
import numpy as np
from numba import njit


def blocks_per_pass():
    """How many blocks of centres a parallel pass asks for: a few per numba thread, so that
    uneven neighbour counts still balance."""
    return 8 * numba.get_num_threads()


@njit(cache=True)
def centre_blocks(offsets, n_blocks):
    """Start offsets of b = min(n_blocks, n_centres) contiguous, nearly equal blocks of the
    centres of ``offsets`` (b + 1 entries; b = 0 when there is nothing to split); a parallel
    pass runs ``prange(len(starts) - 1)`` and block k does centres starts[k]:starts[k+1]."""
    n_items = offsets.shape[0] - 1
    n_blocks = max(min(n_blocks, n_items), 0)
    starts = np.zeros(n_blocks + 1, dtype=np.int64)
    for block in range(1, n_blocks + 1):
        starts[block] = (block * n_items) // n_blocks
    return starts


@njit(cache=True)
def max_pairs(offsets):
    """The most pairs any one centre of ``offsets`` has (0 without centres)."""
    largest = 0
    for i in range(offsets.shape[0] - 1):
        largest = max(largest, offsets[i + 1] - offsets[i])
    return largest


@njit(cache=True)
def pair_geometry(vectors, start, count, geometry):
    """geometry[0:5, q] = x, y, z (Å), r² (Å²), r (Å) of pair vector start + q, q < count."""
    for q in range(count):
        p = start + q
        x = vectors[p, 0]
        y = vectors[p, 1]
        z = vectors[p, 2]
        r_squared = x * x + y * y + z * z
        geometry[0, q] = x
        geometry[1, q] = y
        geometry[2, q] = z
        geometry[3, q] = r_squared
        geometry[4, q] = np.sqrt(r_squared)

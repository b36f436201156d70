"""Neighbour lists with periodic images, as flat pair arrays.

Every pair (i, j') is listed from both ends (a full list); j' is an image of
atom j and the pair vector is r_j' - r_i in Å. ``SkinNeighborList`` keeps one list
across MD steps (a Verlet list) and only recomputes its pair vectors.
"""
from dataclasses import dataclass

import numpy as np

from . import _neighbor_kernels as kernels

try:  # vesin is a fast C++ cell list; ASE's pure-numpy list is the fallback
    from vesin import NeighborList as _VesinNeighborList
except ImportError:  # pragma: no cover - exercised only without vesin
    _VesinNeighborList = None


@dataclass
class NeighborList:
    """Pairs within a cutoff, sorted by centre atom.

    Attributes
    ----------
    centers : (n_pairs,) int64, index of the centre atom i.
    neighbors : (n_pairs,) int64, index of the neighbour atom j (the atom
        in the cell that owns the image j').
    vectors : (n_pairs, 3) float64, r_j' - r_i in Å.
    distances : (n_pairs,) float64, |r_j' - r_i| in Å.
    n_atoms : number of atoms in the structure.
    """

    centers: np.ndarray
    neighbors: np.ndarray
    vectors: np.ndarray
    distances: np.ndarray
    n_atoms: int


def _cell_for_search(atoms):
    """Cell and periodic flags to hand to the neighbour search."""
    pbc = np.asarray(atoms.pbc, dtype=bool)
    cell = np.asarray(atoms.cell.array, dtype=np.float64)
    if not pbc.any():
        cell = np.zeros((3, 3))
    return cell, pbc


def _search(atoms, cutoff):
    """Pairs (i, j, integer cell shifts S) within ``cutoff`` Å, sorted by centre; the pair
    vector is r_j - r_i + S @ cell."""
    positions = np.ascontiguousarray(atoms.positions, dtype=np.float64)
    cell, pbc = _cell_for_search(atoms)
    for axis in range(3):
        if pbc[axis] and np.linalg.norm(cell[axis]) == 0.0:
            raise ValueError(f"periodic along axis {axis} but the cell vector is zero")
    if len(atoms) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros((0, 3), dtype=np.int64)
    if _VesinNeighborList is not None and (pbc.all() or not pbc.any()):
        search = _VesinNeighborList(cutoff=float(cutoff), full_list=True, sorted=True)
        i, j, shifts = search.compute(points=positions, box=cell, periodic=bool(pbc.all()),
                                      quantities="ijS")
    else:
        from ase.neighborlist import neighbor_list
        i, j, shifts = neighbor_list("ijS", atoms, float(cutoff))
        order = np.lexsort((j, i))
        i, j, shifts = i[order], j[order], shifts[order]
    return (np.ascontiguousarray(i, dtype=np.int64), np.ascontiguousarray(j, dtype=np.int64),
            np.ascontiguousarray(shifts, dtype=np.int64))


def _pair_vectors(positions, cell, centers, neighbors, shifts):
    """r_j - r_i + S @ cell (Å) and their lengths for every pair."""
    vectors = positions[neighbors] - positions[centers]
    if shifts.any():
        vectors += shifts @ cell
    return vectors, np.sqrt(np.einsum("pa,pa->p", vectors, vectors))


def build_neighbor_list(atoms, cutoff):
    """Full neighbour list of ``atoms`` within ``cutoff`` Å (periodic images included).

    Raises ValueError when a periodic direction has no cell vector.
    """
    centers, neighbors, shifts = _search(atoms, cutoff)
    vectors, distances = _pair_vectors(np.asarray(atoms.positions, dtype=np.float64),
                                       np.asarray(atoms.cell.array, dtype=np.float64),
                                       centers, neighbors, shifts)
    return NeighborList(centers, neighbors, vectors, distances, len(atoms))


class SkinNeighborList:
    """A neighbour list kept across MD steps (a Verlet list with a skin).

    The search runs at ``cutoff + skin`` Å; later calls only recompute the pair vectors
    of the stored pairs (with their stored cell shifts) and keep those within ``cutoff``.
    That is exact while no atom has moved more than skin / 2 since the search (no pair
    can then have come from beyond cutoff + skin), and the cell, periodicity and atomic
    numbers are unchanged; otherwise the search runs again.

    Attributes
    ----------
    cutoff, skin : Å.
    n_searches : int, how many full searches ran (for tests and diagnostics).
    """

    def __init__(self, cutoff, skin=0.5):
        if skin < 0:
            raise ValueError(f"skin must be >= 0 Å, got {skin}")
        self.cutoff = float(cutoff)
        self.skin = float(skin)
        self.n_searches = 0
        self._reference = None  # positions, cell, pbc, numbers at the last search
        self._pairs = None  # centres, neighbours, cell shifts (S @ cell, Å) within cutoff + skin

    def _is_valid_for(self, atoms, positions, cell):
        if self._reference is None:
            return False
        ref_positions, ref_cell, ref_pbc, ref_numbers = self._reference
        if (len(positions) != len(ref_positions) or not np.array_equal(cell, ref_cell)
                or not np.array_equal(atoms.pbc, ref_pbc)
                or not np.array_equal(atoms.numbers, ref_numbers)):
            return False
        if len(positions) == 0:
            return True
        moved = positions - ref_positions
        largest = np.max(np.einsum("ia,ia->i", moved, moved))
        return largest < (0.5 * self.skin) ** 2

    def get(self, atoms):
        """NeighborList of ``atoms`` within ``cutoff`` Å (pairs sorted by centre)."""
        positions = np.array(atoms.positions, dtype=np.float64)
        cell = np.array(atoms.cell.array, dtype=np.float64)
        if not self._is_valid_for(atoms, positions, cell):
            centers, neighbors, shifts = _search(atoms, self.cutoff + self.skin)
            # the cell is fixed while the list is reused: its shift vectors are too
            shift_vectors = np.ascontiguousarray(shifts @ cell if shifts.any()
                                                 else np.zeros(shifts.shape))
            self._pairs = (centers, neighbors, shift_vectors)
            self._reference = (positions, cell, np.array(atoms.pbc), np.array(atoms.numbers))
            self.n_searches += 1
        centers, neighbors, shift_vectors = self._pairs
        n_pairs = len(centers)
        kept_centers = np.empty(n_pairs, dtype=np.int64)
        kept_neighbors = np.empty(n_pairs, dtype=np.int64)
        vectors = np.empty((n_pairs, 3))
        # a margin on the squared cutoff; the exact test is on the lengths computed below
        kept = kernels.pair_vectors_within(positions, centers, neighbors, shift_vectors,
                                           (self.cutoff * (1.0 + 1e-9)) ** 2, kept_centers,
                                           kept_neighbors, vectors)
        vectors = vectors[:kept]
        distances = np.sqrt(np.einsum("pa,pa->p", vectors, vectors))
        return within(NeighborList(kept_centers[:kept], kept_neighbors[:kept], vectors,
                                   distances, len(atoms)), self.cutoff)


def within(neighbor_list, cutoff):
    """The pairs of ``neighbor_list`` closer than ``cutoff`` Å (order kept)."""
    if neighbor_list.distances.size and neighbor_list.distances.max() < cutoff:
        return neighbor_list
    keep = neighbor_list.distances < cutoff
    return NeighborList(neighbor_list.centers[keep], neighbor_list.neighbors[keep],
                        neighbor_list.vectors[keep], neighbor_list.distances[keep],
                        neighbor_list.n_atoms)

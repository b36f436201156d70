"""Neighbour lists with periodic images, as flat pair arrays.

Every pair (i, j') is listed from both ends (a full list); j' is an image of
atom j and the pair vector is r_j' - r_i in Å.
"""
from dataclasses import dataclass

import numpy as np

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

    def pair_offsets(self):
        """CSR offsets: pairs of centre i are ``offsets[i]:offsets[i + 1]``."""
        counts = np.bincount(self.centers, minlength=self.n_atoms)
        offsets = np.zeros(self.n_atoms + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return offsets


def _cell_for_search(atoms):
    """Cell and periodic flags to hand to the neighbour search."""
    pbc = np.asarray(atoms.pbc, dtype=bool)
    cell = np.asarray(atoms.cell.array, dtype=np.float64)
    if not pbc.any():
        cell = np.zeros((3, 3))
    return cell, pbc


def build_neighbor_list(atoms, cutoff):
    """Full neighbour list of ``atoms`` within ``cutoff`` Å (periodic images included).

    Raises ValueError when a periodic direction has no cell vector.
    """
    cutoff = float(cutoff)
    positions = np.ascontiguousarray(atoms.positions, dtype=np.float64)
    cell, pbc = _cell_for_search(atoms)
    for axis in range(3):
        if pbc[axis] and np.linalg.norm(cell[axis]) == 0.0:
            raise ValueError(f"periodic along axis {axis} but the cell vector is zero")
    if len(atoms) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return NeighborList(empty, empty, np.zeros((0, 3)), np.zeros(0), 0)
    if _VesinNeighborList is not None and (pbc.all() or not pbc.any()):
        search = _VesinNeighborList(cutoff=cutoff, full_list=True, sorted=True)
        i, j, vectors = search.compute(points=positions, box=cell, periodic=bool(pbc.all()),
                                       quantities="ijD")
    else:
        from ase.neighborlist import neighbor_list
        i, j, vectors = neighbor_list("ijD", atoms, cutoff)
        order = np.lexsort((j, i))
        i, j, vectors = i[order], j[order], vectors[order]
    i = np.ascontiguousarray(i, dtype=np.int64)
    j = np.ascontiguousarray(j, dtype=np.int64)
    vectors = np.ascontiguousarray(vectors, dtype=np.float64)
    distances = np.sqrt(np.einsum("pa,pa->p", vectors, vectors))
    return NeighborList(i, j, vectors, distances, len(atoms))


def within(neighbor_list, cutoff):
    """The pairs of ``neighbor_list`` closer than ``cutoff`` Å (order kept)."""
    if neighbor_list.distances.size and neighbor_list.distances.max() < cutoff:
        return neighbor_list
    keep = neighbor_list.distances < cutoff
    return NeighborList(neighbor_list.centers[keep], neighbor_list.neighbors[keep],
                        neighbor_list.vectors[keep], neighbor_list.distances[keep],
                        neighbor_list.n_atoms)

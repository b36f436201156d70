"""Fixed physical baselines a GAP adds to its sparse-GP terms, and the training data's shortest
interatomic distances they (and the extrapolation warning) are built on.

``ZBL`` is the Ziegler–Biersack–Littmark screened-Coulomb repulsion, switched off smoothly at
the shortest distance of each species pair in the training data: it is exactly zero wherever
the data are, so the GP fits the labels minus the baseline (the fit subtracts it, predictions
add it back) and the baseline alone holds atoms apart where there are no data. It has no
sparse points, coefficients or uncertainty.

ZBL pair energy (J. F. Ziegler, J. P. Biersack, U. Littmark, The Stopping and Range of Ions in
Solids, 1985): E(r) = e²/(4πε0) Z_i Z_j φ(r/a) / r, a = 0.46850 Å / (Z_i^0.23 + Z_j^0.23),
φ(x) = 0.18175 e^(−3.1998x) + 0.50986 e^(−0.94229x) + 0.28022 e^(−0.4029x) + 0.02817 e^(−0.20162x).
"""
import numpy as np
from sklearn.base import BaseEstimator, clone

from . import _baseline_kernels as kernels
from ..structures.neighbors import build_neighbor_list

# pairs are searched this far (Å) for the shortest training distances; a species pair never
# closer than this in the training data gets this value
SHORTEST_SEARCH_RADIUS = 5.0


def pair_key(z_i, z_j):
    """The (smaller, larger) atomic-number key of a species pair."""
    z_i, z_j = int(z_i), int(z_j)
    return (z_i, z_j) if z_i <= z_j else (z_j, z_i)


def shortest_distances(atoms, radius=SHORTEST_SEARCH_RADIUS):
    """{(Z_i, Z_j): shortest distance (Å)} of the species pairs of ``atoms`` closer than
    ``radius`` Å (periodic images included)."""
    nl = build_neighbor_list(atoms, radius)
    if nl.distances.size == 0:
        return {}
    numbers = np.asarray(atoms.numbers)
    low = np.minimum(numbers[nl.centers], numbers[nl.neighbors])
    high = np.maximum(numbers[nl.centers], numbers[nl.neighbors])
    found = {}
    for z_low, z_high in set(zip(low.tolist(), high.tolist())):
        members = (low == z_low) & (high == z_high)
        found[(z_low, z_high)] = float(nl.distances[members].min())
    return found


def merge_shortest(a, b):
    """Pairwise minimum of two shortest_distances results (a map-reduce step)."""
    merged = dict(a)
    for key, distance in b.items():
        merged[key] = min(distance, merged.get(key, np.inf))
    return merged


def complete_shortest(found, species, radius=SHORTEST_SEARCH_RADIUS):
    """{(Z_i, Z_j): Å} for every pair of ``species``: pairs absent from ``found`` get ``radius``."""
    species = sorted(int(z) for z in species)
    return {(z_i, z_j): float(min(found.get((z_i, z_j), radius), radius))
            for index, z_i in enumerate(species) for z_j in species[index:]}


class PairTable:
    """A value per species pair as a dense (n_species, n_species) array for the kernels."""

    def __init__(self, values, n_columns=None):
        """values : {(Z_i, Z_j): float or (n_columns,) array}."""
        species = sorted({z for key in values for z in key})
        self.species_index = np.full(119, 0, dtype=np.int64)
        self.species_index[species] = np.arange(len(species))
        shape = (len(species), len(species)) + (() if n_columns is None else (n_columns,))
        self.table = np.zeros(shape)
        for (z_i, z_j), value in values.items():
            a, b = self.species_index[z_i], self.species_index[z_j]
            self.table[a, b] = self.table[b, a] = value
        self.species = species


class Contact:
    """The pair furthest inside the training data's shortest distance of its species pair."""

    def __init__(self, atom_i, atom_j, distance, shortest, symbols):
        self.atom_i, self.atom_j = atom_i, atom_j
        self.distance = distance  # Å
        self.shortest = shortest  # Å, the training data's shortest for this species pair
        self.symbols = symbols  # e.g. "Mo-Mo"


class ContactCheck:
    """Finds pairs closer than the shortest training distance of their species pair.

    shortest : {(Z_i, Z_j): Å} for every pair of the model's species (``GAP.shortest_distances_``).
    """

    def __init__(self, shortest):
        self.shortest = dict(shortest)
        self._table = PairTable(self.shortest)

    def closest_below(self, atoms, neighbor_list):
        """Contact of the most compressed pair of ``neighbor_list`` (any cutoff at least the
        largest shortest distance), or None when no pair is closer than the training data."""
        from ase.data import chemical_symbols
        numbers = np.ascontiguousarray(atoms.numbers, dtype=np.int64)
        pair = kernels.most_compressed_pair(neighbor_list.centers, neighbor_list.neighbors,
                                            neighbor_list.distances, numbers,
                                            self._table.species_index, self._table.table)
        if pair < 0:
            return None
        i, j = int(neighbor_list.centers[pair]), int(neighbor_list.neighbors[pair])
        key = pair_key(numbers[i], numbers[j])
        return Contact(min(i, j), max(i, j), float(neighbor_list.distances[pair]),
                       self.shortest[key], "-".join(chemical_symbols[z] for z in key))


class ZBL(BaseEstimator):
    """Ziegler–Biersack–Littmark screened-Coulomb pair repulsion, switched off at the
    training data's shortest distance of each species pair (a fixed baseline).

    Parameters
    ----------
    inner_fraction : float in (0, 1). Below inner_fraction × r_min the forces are the full
        ZBL forces (the energy is ZBL shifted by a constant); between there and r_min, the
        shortest training distance of the pair, a polynomial switch (LAMMPS' pair_style zbl)
        brings energy, force and the force's derivative to zero at r_min; beyond r_min the
        baseline is exactly zero. The switched energy falls and its repulsive force grows
        monotonically as r decreases, for any inner fraction (ZBL's third derivative is
        negative and the switch's second derivative lies between 0 and −ZBL''(r_min)).

    ``build(shortest)`` with {(Z_i, Z_j): r_min Å} sets the fitted ``outer_radii_``,
    ``inner_radii_`` and the kernel table; ``GAP.fit`` does that with the shortest
    distances it surveys.
    """

    def __init__(self, inner_fraction=0.5):
        self.inner_fraction = inner_fraction

    def build(self, shortest):
        fraction = self.inner_fraction
        if not isinstance(fraction, (int, float)) or not 0.0 < float(fraction) < 1.0:
            raise ValueError(f"ZBL inner_fraction must be a number between 0 and 1 (exclusive), "
                             f"got {fraction!r}")
        self.outer_radii_ = {pair_key(*key): float(r) for key, r in shortest.items()}
        if any(not r > 0.0 for r in self.outer_radii_.values()):
            raise ValueError(f"ZBL outer radii must be positive, got {self.outer_radii_}")
        self.inner_radii_ = {key: float(fraction) * r for key, r in self.outer_radii_.items()}
        self._pairs = PairTable({key: self._row(key) for key in self.outer_radii_},
                                kernels.N_COLUMNS)
        return self

    def _row(self, key):
        """Kernel parameters of one species pair (see ``_baseline_kernels``)."""
        z_i, z_j = key
        coulomb_zz = kernels.COULOMB * z_i * z_j
        screening = kernels.ZBL_LENGTH / (z_i ** kernels.ZBL_POWER + z_j ** kernels.ZBL_POWER)
        outer, inner = self.outer_radii_[key], self.inner_radii_[key]
        energy, first, second = kernels.zbl_derivatives(outer, coulomb_zz, screening)
        width = outer - inner
        switch_a = (width * second - 3.0 * first) / width ** 2
        switch_b = (2.0 * first - width * second) / width ** 3
        switch_c = -energy - switch_a / 3.0 * width ** 3 - switch_b / 4.0 * width ** 4
        row = np.zeros(kernels.N_COLUMNS)
        row[[kernels.ZZ, kernels.SCREENING, kernels.INNER, kernels.OUTER, kernels.SWITCH_A,
             kernels.SWITCH_B, kernels.SWITCH_C]] = (coulomb_zz, screening, inner, outer,
                                                     switch_a, switch_b, switch_c)
        return row

    @property
    def cutoff(self):
        """Largest outer radius (Å): pairs farther apart never contribute."""
        return max(self.outer_radii_.values())

    def pair_energy(self, z_i, z_j, distances):
        """(energies eV, dE/dr eV/Å) of the switched pair at ``distances`` (Å)."""
        key = pair_key(z_i, z_j)
        if key not in self.outer_radii_:
            raise ValueError(f"ZBL has no species pair {key}; it was built for {sorted(self.outer_radii_)}")
        table = self._pairs
        row = np.ascontiguousarray(table.table[table.species_index[key[0]],
                                               table.species_index[key[1]]])
        distances = np.ascontiguousarray(np.atleast_1d(distances), dtype=np.float64)
        energies, slopes = np.empty_like(distances), np.empty_like(distances)
        kernels.pair_energies(distances, row, energies, slopes)
        return energies, slopes

    def add_to(self, atoms, neighbor_list, local_energies, forces, virial):
        """Add the baseline's local energies (eV), forces (eV/Å) and virial (eV, 3×3, not
        symmetrised) of ``atoms`` for a full neighbour list reaching at least ``cutoff``.
        Returns the number of pair listings inside an outer radius."""
        unknown = set(np.unique(atoms.numbers).tolist()) - set(self._pairs.species)
        if unknown:
            raise ValueError(f"ZBL baseline has no species {sorted(unknown)} "
                             f"(built for {self._pairs.species})")
        return kernels.add_pair_baseline(
            neighbor_list.centers, neighbor_list.neighbors,
            np.ascontiguousarray(neighbor_list.vectors, dtype=np.float64),
            neighbor_list.distances, np.ascontiguousarray(atoms.numbers, dtype=np.int64),
            self._pairs.species_index, self._pairs.table, local_energies, forces, virial)

    def predict(self, atoms):
        """(local energies eV, forces eV/Å, virial eV 3×3 symmetric) of the baseline alone."""
        n_atoms = len(atoms)
        local_energies, forces, virial = np.zeros(n_atoms), np.zeros((n_atoms, 3)), np.zeros((3, 3))
        self.add_to(atoms, build_neighbor_list(atoms, self.cutoff), local_energies, forces, virial)
        return local_energies, forces, 0.5 * (virial + virial.T)


def make_repulsion(setting, shortest):
    """The fitted baseline of a ``GAP(repulsion=...)`` setting: "zbl" (``ZBL()``), a ``ZBL``
    (cloned), or None / False / "none" (no baseline, returns None; a TOML settings file has
    no None: ``repulsion = false``). shortest : {(Z_i, Z_j): Å}."""
    if setting is None or setting is False or (isinstance(setting, str) and setting.lower() == "none"):
        return None
    if isinstance(setting, str) and setting.lower() == "zbl":
        return ZBL().build(shortest)
    if isinstance(setting, ZBL):
        return clone(setting).build(shortest)
    raise ValueError(f"repulsion must be 'zbl', a gapfit.ZBL, or None / false / 'none' (off), "
                     f"not {setting!r}")

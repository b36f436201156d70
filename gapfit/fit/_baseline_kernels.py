"""numba kernels of the fixed pair baselines: the switched ZBL pair energy and its scatter into
local energies, forces and the virial, and the search for pairs closer than the training data.

Plain arrays in and out; the Python side (``gapfit.baselines``) builds the per-pair tables.
"""
import numpy as np
from numba import njit

# Ziegler-Biersack-Littmark universal screening function phi(x) = sum_k c_k exp(-d_k x)
ZBL_COEFFICIENTS = np.array([0.18175, 0.50986, 0.28022, 0.02817])
ZBL_EXPONENTS = np.array([3.1998, 0.94229, 0.40290, 0.20162])
# a = ZBL_LENGTH / (Z_i^0.23 + Z_j^0.23), Å
ZBL_LENGTH = 0.46850
ZBL_POWER = 0.23
# e² / (4π ε0) in eV·Å
COULOMB = 14.399645

# columns of a pair table row
ZZ, SCREENING, INNER, OUTER, SWITCH_A, SWITCH_B, SWITCH_C = range(7)
N_COLUMNS = 7


@njit(cache=True)
def zbl_derivatives(r, coulomb_zz, screening):
    """Unswitched ZBL energy (eV) and its first and second derivatives in r (eV/Å, eV/Å²).

    E = coulomb_zz φ(r / a) / r with coulomb_zz = e²/(4πε0) Z_i Z_j (eV·Å), a = screening (Å).
    """
    x = r / screening
    phi = 0.0
    d_phi = 0.0
    dd_phi = 0.0
    for k in range(4):
        term = ZBL_COEFFICIENTS[k] * np.exp(-ZBL_EXPONENTS[k] * x)
        phi += term
        d_phi -= ZBL_EXPONENTS[k] * term
        dd_phi += ZBL_EXPONENTS[k] * ZBL_EXPONENTS[k] * term
    d_phi /= screening
    dd_phi /= screening * screening
    energy = coulomb_zz * phi / r
    first = coulomb_zz * (d_phi / r - phi / (r * r))
    second = coulomb_zz * (dd_phi / r - 2.0 * d_phi / (r * r) + 2.0 * phi / (r * r * r))
    return energy, first, second


@njit(cache=True)
def switched_zbl(r, row):
    """Switched ZBL pair energy (eV) and dE/dr (eV/Å) for one pair-table row.

    E = ZBL(r) + S(r) below the outer radius r_c and 0 beyond, with S = C below the inner
    radius r_1 and S = A/3 (r - r_1)³ + B/4 (r - r_1)⁴ + C between: energy, force and
    dForce/dr all vanish at r_c (the switching of LAMMPS' pair_style zbl).
    """
    if r >= row[OUTER]:
        return 0.0, 0.0
    energy, first, _ = zbl_derivatives(r, row[ZZ], row[SCREENING])
    energy += row[SWITCH_C]
    if r > row[INNER]:
        t = r - row[INNER]
        energy += t * t * t * (row[SWITCH_A] / 3.0 + row[SWITCH_B] / 4.0 * t)
        first += t * t * (row[SWITCH_A] + row[SWITCH_B] * t)
    return energy, first


@njit(cache=True)
def pair_energies(distances, row, energies, slopes):
    """switched_zbl of every distance (Å) into energies (eV) and slopes dE/dr (eV/Å)."""
    for p in range(distances.shape[0]):
        energies[p], slopes[p] = switched_zbl(distances[p], row)


@njit(cache=True)
def add_pair_baseline(centers, neighbors, vectors, distances, numbers, species_index, table,
                      local_energies, forces, virial):
    """Add the switched ZBL of a full neighbour list (every pair listed from both ends).

    Each listing gives half the pair energy to its centre; g = ½ dE/dr D/|D| for the pair
    vector D = r_neighbour - r_centre: F_centre += g, F_neighbour -= g, virial -= g ⊗ D
    (eV, not yet symmetrised). table : (n_species, n_species, N_COLUMNS); species_index :
    atomic number -> row of table. Returns the number of listings inside an outer radius.
    """
    active = 0
    for p in range(centers.shape[0]):
        i = centers[p]
        j = neighbors[p]
        row = table[species_index[numbers[i]], species_index[numbers[j]]]
        r = distances[p]
        if r >= row[OUTER]:
            continue
        active += 1
        energy, slope = switched_zbl(r, row)
        local_energies[i] += 0.5 * energy
        scale = 0.5 * slope / r
        for a in range(3):
            g = scale * vectors[p, a]
            forces[i, a] += g
            forces[j, a] -= g
            for b in range(3):
                virial[a, b] -= g * vectors[p, b]
    return active


@njit(cache=True)
def most_compressed_pair(centers, neighbors, distances, numbers, species_index, shortest):
    """Index of the pair whose distance is the smallest fraction of its species pair's
    shortest training distance ``shortest`` (n_species, n_species, Å), among those below
    it; -1 when no pair is closer than the training data."""
    best = -1
    best_ratio = 1.0
    for p in range(centers.shape[0]):
        limit = shortest[species_index[numbers[centers[p]]], species_index[numbers[neighbors[p]]]]
        ratio = distances[p] / limit
        if ratio < best_ratio:
            best_ratio = ratio
            best = p
    return best

"""Checks of structures and reference labels before a fit or a prediction.

Errors name the configuration by its position in the list: "configuration 12: forces contain NaN".
"""
from typing import NamedTuple

import numpy as np
from ase import Atom, Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers, chemical_symbols

from .io import labels as reference_labels
from .neighbors import build_neighbor_list


class Labels(NamedTuple):
    """Reference labels of a list of structures, as the fit needs them."""

    energies: np.ndarray  # (n_configurations,) eV
    forces: list  # (N_i, 3) eV/Å per configuration, None where absent
    stresses: list  # (6,) eV/Å³ Voigt, ASE sign, per configuration, None where absent


def _non_finite(values):
    """"NaN" or "inf" if ``values`` hold one (NaN named first), else None."""
    values = np.asarray(values, dtype=np.float64)
    if np.isnan(values).any():
        return "NaN"
    if np.isinf(values).any():
        return "inf"
    return None


def _atomic_numbers(species):
    """Atomic numbers of species given as symbols or numbers."""
    numbers = set()
    for item in species:
        if isinstance(item, str):
            if item not in atomic_numbers:
                raise ValueError(f"unknown chemical symbol {item!r} in species")
            numbers.add(atomic_numbers[item])
        else:
            numbers.add(int(item))
    return numbers


def _as_list(atoms_list):
    if isinstance(atoms_list, Atoms):
        raise ValueError("expected a list of Atoms, got a single Atoms (wrap it in a list)")
    structures = list(atoms_list)
    if not structures:
        raise ValueError("no configurations given (empty list)")
    return structures


def _check_type(index, atoms):
    if isinstance(atoms, Atoms):
        return
    hint = " (an Atom: pass a list of Atoms, not one Atoms)" if isinstance(atoms, Atom) else ""
    raise ValueError(f"configuration {index}: expected an ase.Atoms, got "
                     f"{type(atoms).__module__}.{type(atoms).__name__}{hint}")


def _check_geometry(index, atoms):
    """Finite positions and cell; periodic directions spanned by independent cell vectors."""
    if len(atoms) == 0:
        raise ValueError(f"configuration {index}: has no atoms")
    problem = _non_finite(atoms.positions)
    if problem:
        raise ValueError(f"configuration {index}: positions contain {problem}")
    cell = atoms.cell.array
    problem = _non_finite(cell)
    if problem:
        raise ValueError(f"configuration {index}: cell contains {problem}")
    periodic = np.flatnonzero(atoms.pbc)
    for axis in periodic:
        if np.linalg.norm(cell[axis]) == 0.0:
            raise ValueError(f"configuration {index}: periodic along axis {axis} but cell vector "
                             f"{axis} is zero")
    if periodic.size:
        singular = np.linalg.svd(cell[periodic], compute_uv=False)
        if singular[-1] <= 1e-8 * singular[0]:
            raise ValueError(f"configuration {index}: the periodic cell vectors {periodic.tolist()} "
                             "are linearly dependent (degenerate cell)")


def _check_species(index, atoms, known):
    unknown = sorted(set(atoms.numbers.tolist()) - known)
    if unknown:
        names = ", ".join(chemical_symbols[z] for z in unknown)
        known_names = ", ".join(chemical_symbols[z] for z in sorted(known))
        raise ValueError(f"configuration {index}: species {names} not among the known species "
                         f"({known_names})")


def _check_distances(index, atoms, min_distance):
    neighbors = build_neighbor_list(atoms, min_distance)
    close = np.flatnonzero(neighbors.distances < min_distance)
    if close.size == 0:
        return
    pair = close[np.argmin(neighbors.distances[close])]
    i, j = int(neighbors.centers[pair]), int(neighbors.neighbors[pair])
    distance = neighbors.distances[pair]
    if i == j:
        raise ValueError(f"configuration {index}: atom {i} is {distance:.3f} Å from its own periodic "
                         f"image (closer than min_distance={min_distance} Å; cell too small)")
    raise ValueError(f"configuration {index}: atoms {min(i, j)} and {max(i, j)} overlap, "
                     f"{distance:.3f} Å apart (closer than min_distance={min_distance} Å)")


def check_structures(atoms_list, species=None, min_distance=0.5):
    """Raise ValueError on the first structure that cannot be fitted or predicted.

    Parameters
    ----------
    atoms_list : list of ase.Atoms.
    species : symbols or atomic numbers a model knows, or None to accept any.
    min_distance : Å; atoms (or periodic images) closer than this are reported as
        overlapping. None or 0 skips the check.

    Checks: a non-empty list of Atoms, each with atoms, finite positions and
    cell, independent non-zero cell vectors along its periodic directions, known
    species and no overlapping atoms.
    """
    structures = _as_list(atoms_list)
    known = None if species is None else _atomic_numbers(species)
    for index, atoms in enumerate(structures):
        _check_type(index, atoms)
        _check_geometry(index, atoms)
        if known is not None:
            _check_species(index, atoms, known)
        if min_distance:
            _check_distances(index, atoms, float(min_distance))


def _missing(atoms, what):
    """Why a configuration has no reference ``what``: the hint to append to the error."""
    calc = atoms.calc
    if calc is None:
        return (f"no reference {what} (no calculator attached; labels are read from a "
                "SinglePointCalculator, e.g. by gapfit.io.read)")
    if not isinstance(calc, SinglePointCalculator):
        return (f"no reference {what} (the attached {type(calc).__name__} calculator is not "
                "reference data; labels are read from a SinglePointCalculator only)")
    return f"no reference {what}"


def _check_forces(index, atoms, forces):
    if forces.shape != (len(atoms), 3):
        raise ValueError(f"configuration {index}: forces have shape {forces.shape}, expected "
                         f"({len(atoms)}, 3)")
    problem = _non_finite(forces)
    if problem:
        raise ValueError(f"configuration {index}: forces contain {problem}")


def _check_stress(index, atoms, stress):
    if stress.shape != (6,):
        raise ValueError(f"configuration {index}: stress has shape {stress.shape}, expected (6,)")
    problem = _non_finite(stress)
    if problem:
        raise ValueError(f"configuration {index}: stress contains {problem}")
    if not atoms.pbc.all():
        raise ValueError(f"configuration {index}: has a stress but is not periodic in all three "
                         f"directions (pbc={atoms.pbc.tolist()})")


def check_labels(atoms_list, need_forces=True):
    """Reference labels of every configuration, checked; raise ValueError on the first problem.

    Labels come from each Atoms' SinglePointCalculator (``gapfit.structures.io.labels``).
    Every configuration needs a finite energy; forces are required when
    ``need_forces`` and checked (shape (N, 3), finite) wherever present; a
    stress must be finite and belong to a structure periodic in 3D.

    Returns ``Labels(energies (n,) eV, forces [(N, 3) eV/Å or None], stresses
    [(6,) eV/Å³ or None])``.
    """
    structures = _as_list(atoms_list)
    energies = np.empty(len(structures))
    forces_list, stresses = [], []
    for index, atoms in enumerate(structures):
        _check_type(index, atoms)
        energy, forces, stress = reference_labels(atoms)
        if energy is None:
            raise ValueError(f"configuration {index}: {_missing(atoms, 'energy')}")
        problem = _non_finite(energy)
        if problem:
            raise ValueError(f"configuration {index}: energy is {problem}")
        if forces is None and need_forces:
            raise ValueError(f"configuration {index}: {_missing(atoms, 'forces')}; to fit without "
                             "forces use --no-forces (fit_forces = false, GAP(fit_forces=False))")
        if forces is not None:
            _check_forces(index, atoms, forces)
        if stress is not None:
            _check_stress(index, atoms, stress)
        energies[index] = energy
        forces_list.append(forces)
        stresses.append(stress)
    return Labels(energies, forces_list, stresses)

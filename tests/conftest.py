"""Shared fixtures: small EMT-labelled structures made on the fly, and the mlearn data location."""
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

MLEARN = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlearn"


def label_with_emt(atoms):
    """Attach EMT energy, forces and stress as reference labels (SinglePointCalculator)."""
    atoms.calc = EMT()
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    stress = atoms.get_stress() if atoms.pbc.all() else None
    results = {"energy": energy, "forces": forces}
    if stress is not None:
        results["stress"] = stress
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def make_cu_structures(n, seed, repeat=(2, 2, 2), rattle=0.1, strain=0.03, symbols=None):
    """n rattled, strained fcc Cu (or alloy) cells with EMT labels."""
    rng = np.random.default_rng(seed)
    structures = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(repeat)
        if symbols is not None:
            atoms.set_chemical_symbols(rng.choice(symbols, size=len(atoms)))
        deformation = np.eye(3) + strain * rng.standard_normal((3, 3))
        atoms.set_cell(atoms.cell.array @ deformation, scale_atoms=True)
        atoms.positions += rattle * rng.standard_normal(atoms.positions.shape)
        structures.append(label_with_emt(atoms))
    return structures


def finite_difference_forces(model, atoms, step=1e-4, atoms_to_check=3):
    """-dE/dr (eV/Å) of the first atoms by central differences of model.predict_structure."""
    forces = np.zeros((atoms_to_check, 3))
    for i in range(atoms_to_check):
        for axis in range(3):
            shifted = atoms.copy()
            shifted.positions[i, axis] += step
            plus = model.predict_structure(shifted).energy
            shifted.positions[i, axis] -= 2 * step
            minus = model.predict_structure(shifted).energy
            forces[i, axis] = -(plus - minus) / (2 * step)
    return forces


def checked_backward(backward, environments, upstream):
    """Check that a descriptor's backward result (pair_envs, pair_neighbors, pair_vectors,
    ∂E/∂D) lists the pair rows of ``environments`` (computed with gradients) in their order;
    return (∂E/∂D, the pair gradients contracted with ``upstream`` = ∂E/∂q), which a correct
    backward makes equal."""
    pair_envs, pair_neighbors, pair_vectors, d_energy_d_vectors = backward
    np.testing.assert_array_equal(pair_envs, environments.pair_envs)
    np.testing.assert_array_equal(pair_neighbors, environments.pair_neighbors)
    np.testing.assert_array_equal(pair_vectors, environments.pair_vectors)
    contracted = np.einsum("pxf,pf->px", environments.pair_gradients,
                           upstream[environments.pair_envs])
    return d_energy_d_vectors, contracted


def strain_derivative(function, atoms, step):
    """Central differences d function(strained atoms) / d eps[a, b], shape (3, 3) + the
    shape of ``function``'s value, where the cell (atoms scaled with it) is (1 + eps) cell."""
    derivative = None
    for a in range(3):
        for b in range(3):
            values = []
            for sign in (1, -1):
                strain = np.eye(3)
                strain[a, b] += sign * step
                strained = atoms.copy()
                strained.set_cell(atoms.cell.array @ strain.T, scale_atoms=True)
                values.append(np.asarray(function(strained), dtype=np.float64))
            if derivative is None:
                derivative = np.zeros((3, 3) + values[0].shape)
            derivative[a, b] = (values[0] - values[1]) / (2 * step)
    return derivative


def finite_difference_stress(model, atoms, step=1e-5):
    """Symmetric strain derivative of the energy over the volume (eV/Å³, Voigt order)."""
    derivative = strain_derivative(lambda strained: model.predict_structure(strained).energy,
                                   atoms, step)
    stress = 0.5 * (derivative + derivative.T) / atoms.get_volume()
    return stress.flat[[0, 4, 8, 5, 2, 1]]


@pytest.fixture(scope="session")
def cu_train():
    return make_cu_structures(12, seed=1)


@pytest.fixture(scope="session")
def cu_test():
    return make_cu_structures(4, seed=2)


@pytest.fixture(scope="session")
def mlearn_dir():
    if not MLEARN.is_dir():
        pytest.skip(f"mlearn DFT data not found at {MLEARN} (it lives in the project's shared/ folder)")
    return MLEARN

"""The GAP estimator: physics of its predictions and scikit-learn conformance.

Fast checks use a 2-body model (numba kernels, full fit and prediction path);
the SOAP recipe is exercised in test_fit_soap.py.
"""
import pickle

import numpy as np
import pytest
from ase.build import bulk
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV

import gapfit
from gapfit.evaluate.errors import scorer

from conftest import (finite_difference_forces, finite_difference_stress, label_with_emt,
                      make_cu_structures)


def pair_model(**kwargs):
    return gapfit.GAP(terms=[gapfit.TwoBody(n_sparse=15, theta=1.0)], random_state=0, **kwargs)


@pytest.fixture(scope="module")
def fitted(cu_train):
    return pair_model().fit(cu_train)


def test_forces_are_minus_the_energy_gradient(fitted, cu_test):
    atoms = cu_test[0]
    analytic = fitted.predict_structure(atoms).forces[:3]
    numeric = finite_difference_forces(fitted, atoms)
    assert np.abs(analytic - numeric).max() < 1e-6 * np.abs(analytic).max() + 1e-7


def test_stress_is_the_strain_derivative(fitted, cu_test):
    atoms = cu_test[1].copy()
    atoms.calc = gapfit.GAPCalculator(fitted)
    analytic = atoms.get_stress()
    numeric = finite_difference_stress(fitted, atoms)
    assert np.abs(analytic - numeric).max() < 1e-6 * np.abs(analytic).max() + 1e-8


def test_energy_invariant_under_rotation_translation_permutation(fitted, cu_test):
    from scipy.spatial.transform import Rotation
    atoms = cu_test[2]
    reference = fitted.predict_structure(atoms)
    rotation = Rotation.from_rotvec([0.3, -1.1, 0.7]).as_matrix()
    moved = atoms.copy()
    moved.set_cell(atoms.cell.array @ rotation.T)
    moved.positions = atoms.positions @ rotation.T + (0.3, -1.1, 2.0)
    order = np.random.default_rng(0).permutation(len(atoms))
    permuted = atoms[order]
    energies = fitted.predict([moved, permuted])
    assert np.allclose(energies, reference.energy, rtol=0, atol=1e-9 * len(atoms))
    assert np.allclose(fitted.predict_structure(moved).forces, reference.forces @ rotation.T, atol=1e-8)
    assert np.allclose(fitted.predict_structure(permuted).forces, reference.forces[order], atol=1e-8)


def rotated_with_labels(atoms, rotation):
    """A rigidly rotated copy whose energy, forces and stress labels rotate with it."""
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.stress import full_3x3_to_voigt_6_stress, voigt_6_to_full_3x3_stress
    moved = atoms.copy()
    moved.set_cell(atoms.cell.array @ rotation.T, scale_atoms=True)
    stress = rotation @ voigt_6_to_full_3x3_stress(atoms.get_stress()) @ rotation.T
    moved.calc = SinglePointCalculator(moved, energy=atoms.get_potential_energy(),
                                       forces=atoms.get_forces() @ rotation.T,
                                       stress=full_3x3_to_voigt_6_stress(stress))
    return moved


def test_fit_does_not_depend_on_the_orientation_of_the_training_cells(cu_train, fitted):
    """The virial misfit is the tensor's squared norm (as gap_fit's nine components), not a
    sum over six Voigt numbers, which would weigh shear differently in a rotated frame."""
    from scipy.spatial.transform import Rotation
    rotations = Rotation.from_rotvec(np.random.default_rng(3).normal(size=(len(cu_train), 3)))
    rotated = [rotated_with_labels(atoms, rotation)
               for atoms, rotation in zip(cu_train, rotations.as_matrix())]
    refitted = pair_model().fit(rotated)
    np.testing.assert_allclose(refitted.terms_[0].sparse_points_, fitted.terms_[0].sparse_points_,
                               rtol=1e-10)
    # equal up to rounding (2e-7 of the largest weight here; 5e-2 with a six-number virial misfit)
    assert np.abs(refitted.alpha_ - fitted.alpha_).max() < 1e-5 * np.abs(fitted.alpha_).max()
    assert np.allclose(refitted.predict(cu_train), fitted.predict(cu_train), rtol=0, atol=1e-6)


def test_supercell_energy_is_a_multiple_of_the_cell_energy(fitted):
    cell = label_with_emt(bulk("Cu", "fcc", a=3.62, cubic=True))
    cell.positions[1] += (0.05, -0.02, 0.03)
    supercell = cell.repeat((2, 3, 1))
    energies = fitted.predict([cell, supercell])
    assert np.isclose(energies[1], 6 * energies[0], rtol=1e-10)


def test_fit_is_reproducible_and_accurate_enough(cu_train, cu_test, fitted):
    again = pair_model().fit(cu_train)
    assert np.allclose(again.alpha_, fitted.alpha_)
    errors = gapfit.metrics.evaluate(fitted, cu_test)
    # a pair potential cannot reproduce EMT exactly: compare with knowing nothing
    reference_forces = np.concatenate([atoms.get_forces().ravel() for atoms in cu_test])
    per_atom = np.array([atoms.get_potential_energy() / len(atoms) for atoms in cu_test])
    assert errors["forces"]["mae"] < 0.2 * np.mean(np.abs(reference_forces))
    assert errors["energy"]["mae"] < 0.8 * np.mean(np.abs(per_atom - per_atom.mean()))


def test_unfitted_model_raises(cu_test):
    with pytest.raises(NotFittedError):
        pair_model().predict(cu_test)


def test_scikit_learn_conventions(fitted, cu_train, cu_test):
    model = pair_model(force_sigma=0.1)
    assert model.get_params()["force_sigma"] == 0.1
    model.set_params(force_sigma=0.2)
    assert model.force_sigma == 0.2
    copy = clone(fitted)
    assert not hasattr(copy, "alpha_")
    assert copy.get_params()["terms"][0].get_params() == fitted.terms[0].get_params()
    restored = pickle.loads(pickle.dumps(fitted))
    assert np.allclose(restored.predict(cu_test), fitted.predict(cu_test))


def test_grid_search_over_atoms(cu_train):
    # a force sigma of 100 eV/Å leaves the forces out of the fit: cross-validated force
    # errors must find the 0.02 eV/Å model better, and the search must pick it
    search = GridSearchCV(pair_model(), {"force_sigma": [100.0, 0.02]}, cv=3,
                          scoring=scorer("force_rmse"))
    search.fit(cu_train)
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores)) and np.all(scores < 0)
    assert scores[1] > scores[0]
    assert search.best_params_["force_sigma"] == 0.02


def test_save_load_round_trip(fitted, cu_test, tmp_path):
    path = tmp_path / "cu.gap"
    fitted.save(path)
    loaded = gapfit.load(path)
    assert np.array_equal(loaded.predict(cu_test), fitted.predict(cu_test))
    assert np.array_equal(loaded.predict_structure(cu_test[0]).forces,
                          fitted.predict_structure(cu_test[0]).forces)
    assert [p.name for p in tmp_path.iterdir()] == ["cu.gap"]  # no temporary file left behind


def test_corrupted_model_file_is_refused(fitted, tmp_path):
    path = tmp_path / "cu.gap"
    fitted.save(path)
    data = bytearray(path.read_bytes())
    # a byte of an array's values (.npz stores them uncompressed); a flipped byte elsewhere
    # may fall where zip readers never look (a local header's CRC copy)
    start = bytes(data).find(fitted.factor_.tobytes(order="A"))  # in its memory order
    assert start > 0
    data[start + fitted.factor_.nbytes // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(gapfit.ModelFileError):
        gapfit.load(path)
    (tmp_path / "truncated.gap").write_bytes(bytes(data[:100]))
    with pytest.raises(gapfit.ModelFileError):
        gapfit.load(tmp_path / "truncated.gap")


def test_failed_save_keeps_the_old_file(fitted, tmp_path, monkeypatch):
    path = tmp_path / "cu.gap"
    fitted.save(path)
    before = path.read_bytes()

    def broken_savez(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(KeyboardInterrupt):
        fitted.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["cu.gap"]


def test_bad_training_data_names_the_configuration(cu_train):
    broken = [atoms.copy() for atoms in cu_train[:4]]
    for atoms, original in zip(broken, cu_train[:4]):
        atoms.calc = original.calc
    bad = broken[2]
    forces = bad.get_forces().copy()
    forces[0, 0] = np.nan
    from ase.calculators.singlepoint import SinglePointCalculator
    bad.calc = SinglePointCalculator(bad, energy=bad.get_potential_energy(), forces=forces)
    with pytest.raises(ValueError, match="configuration 2"):
        pair_model().fit(broken)


def test_unknown_species_at_prediction(fitted):
    gold = label_with_emt(bulk("Au", "fcc", a=4.08, cubic=True))
    with pytest.raises(ValueError, match="Au"):
        fitted.predict([gold])


def test_alloy_supercell_and_permutation_of_unlike_atoms():
    train = make_cu_structures(6, seed=5, symbols=["Cu", "Au"])
    model = pair_model().fit(train)
    atoms = train[0]
    order = np.random.default_rng(3).permutation(len(atoms))
    assert np.isclose(model.predict([atoms[order]])[0], model.predict([atoms])[0], atol=1e-9)
    assert set(model.e0_) == {29, 79}

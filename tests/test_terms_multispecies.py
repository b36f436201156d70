"""Models with several species and several descriptor terms (TwoBody + SOAP, TwoBody + ACSF).

Physics of an ACSF model (forces, stress, invariances, supercells, model files) on a small
Cu–Au alloy made on the fly, then end-to-end fits on the EMT alloy sets in ``data/``
(two and three species) with SOAP and with ACSF, their per-species sparse sets and e0,
and the error for a species the model never saw.
"""
import copy
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from scipy.spatial.transform import Rotation

import gapfit

from conftest import make_cu_structures
from test_model import finite_difference_forces, finite_difference_stress

DATA = Path(__file__).resolve().parents[1] / "data"
CU, AG, AU = 29, 47, 79


def tiny_soap(n_sparse):
    return gapfit.SOAP(r_cut=4.5, n_max=4, l_max=3, n_sparse=n_sparse)


def two_body_plus(term):
    return gapfit.GAP(terms=[gapfit.TwoBody(n_sparse=10), term], random_state=0)


@pytest.fixture(scope="module")
def alloy_train():
    return make_cu_structures(6, seed=11, symbols=["Cu", "Au"])


@pytest.fixture(scope="module")
def alloy_test():
    return make_cu_structures(2, seed=12, symbols=["Cu", "Au"])


@pytest.fixture(scope="module")
def acsf_model(alloy_train):
    return two_body_plus(gapfit.ACSF(r_cut=4.5, n_sparse=60)).fit(alloy_train)


# ------------------------------------------------------------------ physics of an ACSF model
def test_acsf_forces_are_minus_the_energy_gradient(acsf_model, alloy_test):
    atoms = alloy_test[0]
    analytic = acsf_model.predict_structure(atoms).forces[:3]
    numeric = finite_difference_forces(acsf_model, atoms)
    assert np.abs(analytic).max() > 1e-2  # the check below is not vacuous
    assert np.abs(analytic - numeric).max() < 1e-6 * np.abs(analytic).max()


def test_acsf_stress_is_the_strain_derivative(acsf_model, alloy_test):
    atoms = alloy_test[1].copy()
    atoms.calc = gapfit.GAPCalculator(acsf_model)
    analytic = atoms.get_stress()
    numeric = finite_difference_stress(acsf_model, atoms)
    assert np.abs(analytic).max() > 1e-4
    assert np.abs(analytic - numeric).max() < 1e-6 * np.abs(analytic).max()


def test_acsf_energy_invariant_under_rotation_and_translation(acsf_model, alloy_test):
    atoms = alloy_test[0]
    reference = acsf_model.predict_structure(atoms)
    rotation = Rotation.from_rotvec([0.4, -0.9, 1.3]).as_matrix()
    moved = atoms.copy()
    moved.set_cell(atoms.cell.array @ rotation.T)
    moved.positions = atoms.positions @ rotation.T + (1.7, -0.4, 0.9)
    prediction = acsf_model.predict_structure(moved)
    assert np.isclose(prediction.energy, reference.energy, rtol=0, atol=1e-9 * len(atoms))
    assert np.allclose(prediction.forces, reference.forces @ rotation.T, atol=1e-8)


def test_acsf_energy_invariant_under_permutations(acsf_model, alloy_test):
    atoms = alloy_test[1]
    reference = acsf_model.predict_structure(atoms)
    rng = np.random.default_rng(4)
    copper = np.flatnonzero(atoms.numbers == CU)
    like = np.arange(len(atoms))
    like[copper] = rng.permutation(copper)                 # Cu atoms among themselves
    unlike = rng.permutation(len(atoms))                   # all atoms, labels travel with them
    assert (atoms.numbers[unlike] != atoms.numbers).any()
    for order in (like, unlike):
        permuted = acsf_model.predict_structure(atoms[order])
        assert np.isclose(permuted.energy, reference.energy, rtol=0, atol=1e-9 * len(atoms))
        assert np.allclose(permuted.forces, reference.forces[order], atol=1e-8)
    # swapping the labels of a Cu and an Au atom (positions kept) is a different structure
    swapped = atoms.copy()
    i, j = copper[0], np.flatnonzero(atoms.numbers == AU)[0]
    swapped.numbers[[i, j]] = swapped.numbers[[j, i]]
    assert abs(acsf_model.predict_structure(swapped).energy - reference.energy) > 1e-4


def test_acsf_supercell_energy_is_a_multiple_of_the_cell_energy(acsf_model):
    cell = bulk("Cu", "fcc", a=3.75, cubic=True)
    cell.numbers[[1, 3]] = AU
    cell.positions[2] += (0.06, -0.03, 0.02)
    supercell = cell.repeat((2, 1, 3))
    cell_prediction = acsf_model.predict_structure(cell)
    super_prediction = acsf_model.predict_structure(supercell)
    assert np.isclose(super_prediction.energy, 6 * cell_prediction.energy, rtol=1e-10)
    assert np.allclose(super_prediction.forces, np.tile(cell_prediction.forces, (6, 1)), atol=1e-9)


def test_acsf_model_file_round_trip(acsf_model, alloy_test, tmp_path):
    path = tmp_path / "cuau_acsf.gap"
    acsf_model.save(path)
    loaded = gapfit.load(path)
    acsf = loaded.terms_[1]
    assert np.array_equal(acsf.feature_scale_, acsf_model.terms_[1].feature_scale_)
    assert np.array_equal(loaded.predict(alloy_test), acsf_model.predict(alloy_test))
    for atoms in alloy_test:
        assert np.array_equal(loaded.predict_structure(atoms).forces,
                              acsf_model.predict_structure(atoms).forces)
    stresses = []
    for model in (acsf_model, loaded):
        atoms = alloy_test[0].copy()
        atoms.calc = gapfit.GAPCalculator(model)
        stresses.append(atoms.get_stress())
    assert np.array_equal(*stresses)


def test_acsf_features_are_standardised_by_the_training_spread(acsf_model, alloy_train):
    term = acsf_model.terms_[1]
    from gapfit.structures.neighbors import build_neighbor_list
    features = np.concatenate([
        term.descriptor_.compute(atoms, build_neighbor_list(atoms, term.neighbor_cutoff)).features
        for atoms in alloy_train])
    spread = features.std(axis=0)
    varying = spread > 1e-8
    assert varying.sum() > 0.8 * len(spread)
    assert np.allclose(spread[varying], 1.0, rtol=1e-8)


# ------------------------------------------------------------- end-to-end multi-species fits
def read_data(name, train_stride, test_stride):
    """Every train_stride-th training and test_stride-th test configuration (the files are
    grouped by config_type, so a stride samples all of them)."""
    train = gapfit.io.read(DATA / f"{name}_train.xyz")
    test = gapfit.io.read(DATA / f"{name}_test.xyz")
    return train[::train_stride], test[::test_stride]


def baseline_errors(train, test):
    """MAEs of knowing nothing: the training mean energy per atom, zero forces and stress."""
    mean = np.mean([a.get_potential_energy() / len(a) for a in train])
    energy = np.mean([abs(a.get_potential_energy() / len(a) - mean) for a in test])
    forces = np.mean(np.abs(np.concatenate([a.get_forces().ravel() for a in test])))
    stress = np.mean(np.abs(np.concatenate([a.get_stress() for a in test])))
    return energy, forces, stress


FITS = {
    # (data set, species, descriptor): (train stride, test stride)
    ("cuau", (CU, AU), "soap"): (3, 2),            # 20 training, 10 test configurations
    ("cuau", (CU, AU), "acsf"): (3, 2),
    ("cuagau", (CU, AG, AU), "soap"): (2, 2),      # 20 training, 8 test configurations
    ("cuagau", (CU, AG, AU), "acsf"): (2, 2),
}


@pytest.mark.parametrize("name, species, descriptor", list(FITS), ids=lambda v: str(v))
def test_multispecies_fit_end_to_end(name, species, descriptor):
    train, test = read_data(name, *FITS[(name, species, descriptor)])
    n_sparse = 30 * len(species)
    term = tiny_soap(n_sparse) if descriptor == "soap" else gapfit.ACSF(r_cut=4.5, n_sparse=n_sparse)
    model = two_body_plus(term).fit(train)

    assert model.species_ == list(species)
    assert set(model.e0_) == set(species)
    # one sparse set per centre species for the many-body term, per species pair for 2-body
    many_body = model.terms_[1]
    assert set(many_body.channel_columns_) == set(species)
    counts = {z: stop - start for z, (start, stop) in many_body.channel_columns_.items()}
    assert sum(counts.values()) == n_sparse and min(counts.values()) >= 5
    for z, (start, stop) in many_body.channel_columns_.items():
        assert (many_body.sparse_channels_[start:stop] == z).all()
    pairs = {min(a, b) * 1000 + max(a, b) for a in species for b in species}
    assert set(model.terms_[0].channel_columns_) == pairs

    errors = gapfit.metrics.evaluate(model, test)
    energy_baseline, force_baseline, stress_baseline = baseline_errors(train, test)
    # measured ratios: energy 0.02-0.12, forces 0.06-0.12, stress 0.04-0.09
    assert errors["energy"]["mae"] < 0.25 * energy_baseline
    assert errors["forces"]["mae"] < 0.2 * force_baseline
    assert errors["stress"]["mae"] < 0.2 * stress_baseline


def test_e0_per_species():
    train, _ = read_data("cuau", 10, 20)
    model = gapfit.GAP(terms=[gapfit.TwoBody(n_sparse=10)], e0={"Cu": -0.5, "Au": 0.7},
                       random_state=0).fit(train)
    assert model.e0_ == {CU: -0.5, AU: 0.7}
    # an atom without neighbours has no pairs: only its own species' e0 remains
    for symbol, energy in (("Cu", -0.5), ("Au", 0.7)):
        lone = Atoms(symbol, positions=[(5.0, 5.0, 5.0)], cell=[10.0, 10.0, 10.0], pbc=False)
        assert model.predict([lone])[0] == pytest.approx(energy, abs=1e-12)
    # in an alloy every atom carries the e0 of its species
    atoms = train[1]
    shifted = copy.deepcopy(model)
    shifted.e0_ = {CU: -0.5 + 1.0, AU: 0.7 - 3.0}
    difference = shifted.predict([atoms])[0] - model.predict([atoms])[0]
    counts = {z: int(np.sum(atoms.numbers == z)) for z in (CU, AU)}
    assert min(counts.values()) > 0
    assert difference == pytest.approx(1.0 * counts[CU] - 3.0 * counts[AU], abs=1e-9)

    average = gapfit.GAP(terms=[gapfit.TwoBody(n_sparse=10)], random_state=0).fit(train)
    per_atom = sum(a.get_potential_energy() for a in train) / sum(map(len, train))
    assert average.e0_ == pytest.approx({CU: per_atom, AU: per_atom}, abs=1e-12)
    with pytest.raises(ValueError, match="no value for atomic numbers"):
        gapfit.GAP(terms=[gapfit.TwoBody(n_sparse=10)], e0={"Cu": -0.5}).fit(train)


def test_species_the_model_never_saw_is_named(acsf_model, alloy_test):
    silver = alloy_test[0].copy()
    silver.numbers[5] = AG
    known = r"configuration 1: species Ag not among the known species \(Cu, Au\)"
    with pytest.raises(ValueError, match=known):
        acsf_model.predict([alloy_test[1], silver])
    with pytest.raises(ValueError, match="Ag"):
        acsf_model.predict_forces([silver])
    silver.calc = gapfit.GAPCalculator(acsf_model)
    with pytest.raises(ValueError, match="Ag"):
        silver.get_potential_energy()

"""The fused SOAP pass of the MD path (``SOAPDescriptor.forward`` / ``backward_from``): the
same features, vector-Jacobian product, forces and virial as the pair-gradient route
(``compute(gradients=True)``), and forces and stress equal to finite differences."""
import numpy as np
import pytest
from ase.build import bulk

import gapfit
from gapfit.descriptors.soap import SOAPDescriptor
from gapfit.structures.neighbors import build_neighbor_list
from gapfit.predict.predictor import StructurePredictor, TermPredictor

from conftest import (checked_backward, finite_difference_forces, finite_difference_stress,
                      make_cu_structures)

SPECIES = ["Cu", "Au"]


def two_species_cell(seed=3):
    """A strained, rattled periodic fcc cell of 32 atoms, Cu and Au at random."""
    rng = np.random.default_rng(seed)
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat(2)
    atoms.set_chemical_symbols(rng.choice(SPECIES, size=len(atoms)))
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.02 * rng.standard_normal((3, 3))),
                   scale_atoms=True)
    atoms.positions += 0.1 * rng.standard_normal(atoms.positions.shape)
    return atoms


def relative_error(ours, reference):
    return np.abs(ours - reference).max() / np.abs(reference).max()


@pytest.mark.parametrize("weighting", [None, {"function": "poly", "r0": 4.0, "c": 1.0, "m": 2}],
                         ids=["unweighted", "poly"])
def test_forward_and_backward_from_equal_compute_with_gradients(weighting):
    atoms = two_species_cell()
    descriptor = SOAPDescriptor(SPECIES, r_cut=4.0, n_max=4, l_max=4, weighting=weighting)
    pairs = build_neighbor_list(atoms, descriptor.cutoff)
    reference = descriptor.compute(atoms, pairs, gradients=True)
    environments, state = descriptor.forward(atoms, pairs)
    np.testing.assert_array_equal(environments.center_atoms, reference.center_atoms)
    np.testing.assert_array_equal(environments.channels, reference.channels)
    assert relative_error(environments.features, reference.features) < 1e-13
    # every centre has neighbours of both species, so both species' blocks are exercised
    assert (environments.features != 0).all(axis=0).any()

    upstream = np.random.default_rng(1).standard_normal(reference.features.shape)
    d_energy_d_vectors, contracted = checked_backward(descriptor.backward_from(state, upstream),
                                                      reference, upstream)
    assert relative_error(d_energy_d_vectors, contracted) < 1e-12
    # and the unfused backward, which redoes the expansion, agrees as well
    assert relative_error(d_energy_d_vectors, descriptor.backward(atoms, pairs, upstream)[3]) \
        < 1e-12

    with pytest.raises(ValueError, match="d_energy_d_features has shape"):
        descriptor.backward_from(state, upstream[:, :-1])


@pytest.fixture(scope="module")
def alloy_model():
    """2-body + SOAP (ζ = 4, the dedicated dot-product contraction) on EMT Cu-Au."""
    train = make_cu_structures(8, seed=5, symbols=SPECIES)
    model = gapfit.GAP(terms=[gapfit.TwoBody(cutoff=4.0, n_sparse=8),
                              gapfit.SOAP(r_cut=4.0, n_max=4, l_max=3, n_sparse=30)],
                       energy_sigma=0.001, force_sigma=0.03, virial_sigma=0.02, random_state=0)
    return model.fit(train)


def pair_gradient_route(predictor, atoms):
    """Local energies, forces and virial through compute(gradients=True): the pair gradients
    contracted with ∂E/∂q, then scattered (no backward at all)."""
    n_atoms = len(atoms)
    local_energies = np.zeros(n_atoms)
    forces = np.zeros((n_atoms, 3))
    virial = np.zeros((3, 3))
    pairs = build_neighbor_list(atoms, predictor.cutoff)
    for term_predictor in predictor.term_predictors:
        environments = term_predictor.descriptor.compute(atoms, pairs, gradients=True)
        energies, d_energy_d_features = term_predictor.energies_and_gradients(environments)
        np.add.at(local_energies, environments.center_atoms, energies)
        gradient = np.einsum("pxf,pf->px", environments.pair_gradients,
                             d_energy_d_features[environments.pair_envs])
        centres = environments.center_atoms[environments.pair_envs]
        np.add.at(forces, centres, gradient)
        np.subtract.at(forces, environments.pair_neighbors, gradient)
        virial -= gradient.T @ environments.pair_vectors
    return local_energies, forces, 0.5 * (virial + virial.T)


def test_fused_predictor_equals_the_pair_gradient_route_and_finite_differences(alloy_model):
    atoms = two_species_cell(seed=7)
    predictor = StructurePredictor.from_model(alloy_model, skin=0.3)
    soap = predictor.term_predictors[1]
    assert isinstance(soap, TermPredictor) and soap._contract == soap._dot_product
    prediction = predictor.predict(atoms)
    e0 = alloy_model.e0_
    local_energies, forces, virial = pair_gradient_route(predictor, atoms)
    local_energies += np.array([e0[z] for z in atoms.numbers])
    assert relative_error(prediction.local_energies, local_energies) < 1e-12
    assert relative_error(prediction.forces, forces) < 1e-11
    assert relative_error(prediction.virial, virial) < 1e-11
    assert np.abs(prediction.forces).max() > 0.05  # a cell with forces worth comparing

    numeric = finite_difference_forces(alloy_model, atoms, step=1e-4, atoms_to_check=4)
    np.testing.assert_allclose(prediction.forces[:4], numeric, rtol=0, atol=2e-6)
    stress = -prediction.virial / atoms.get_volume()
    numeric_stress = finite_difference_stress(alloy_model, atoms)
    np.testing.assert_allclose(stress.flat[[0, 4, 8, 5, 2, 1]], numeric_stress, rtol=0,
                               atol=2e-7)

    # a reused neighbour list (skin) after a small move gives the fresh-search results
    moved = atoms.copy()
    moved.positions += 0.01 * np.random.default_rng(2).standard_normal(moved.positions.shape)
    reused = predictor.predict(moved)
    assert predictor.neighbor_list.n_searches == 1
    fresh = StructurePredictor.from_model(alloy_model).predict(moved)
    # (the two lists may order a centre's pairs differently: equal up to round-off)
    assert relative_error(reused.forces, fresh.forces) < 1e-11
    assert relative_error(reused.virial, fresh.virial) < 1e-11


@pytest.mark.parametrize("repeat", [1, 2], ids=["one_atom_own_images", "two_atoms"])
def test_pair_term_evaluated_once_per_pair_equals_every_environment(alloy_model, repeat):
    # the MD path evaluates the 2-body term once per unordered pair (atoms that see their
    # own periodic images included) and must give what every ordered environment gives
    rng = np.random.default_rng(repeat)
    atoms = bulk("Cu", "fcc", a=3.7).repeat((repeat, 1, 1))
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.03 * rng.standard_normal((3, 3))),
                   scale_atoms=True)
    atoms.positions += 0.05 * rng.standard_normal(atoms.positions.shape)
    if repeat == 2:
        atoms.symbols[1] = "Au"
    predictor = StructurePredictor.from_model(alloy_model)
    pair_term = predictor.term_predictors[0]
    assert pair_term._contract == pair_term._pair_distance
    pairs = build_neighbor_list(atoms, predictor.cutoff)
    half = len(pair_term.descriptor.unordered_pairs(atoms, pairs)[0])
    assert 2 * half == (pairs.distances < pair_term.descriptor.cutoff).sum() > 0
    prediction = predictor.predict(atoms)
    local_energies, forces, virial = pair_gradient_route(predictor, atoms)
    local_energies += np.array([alloy_model.e0_[z] for z in atoms.numbers])
    assert relative_error(prediction.local_energies, local_energies) < 1e-12
    assert relative_error(prediction.virial, virial) < 1e-11
    np.testing.assert_allclose(prediction.forces, forces, rtol=0,
                               atol=1e-11 * np.abs(virial).max())

"""ACSF descriptor: values against dscribe, analytic gradients against finite differences,
the backward path against the pair gradients, and symmetry invariances."""
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from gapfit.descriptors.acsf import ACSFDescriptor, default_angular_params, default_g2_params
from gapfit.structures.neighbors import build_neighbor_list

from conftest import checked_backward, strain_derivative

R_CUT = 4.0
G3_PARAMS = [0.8, 2.1]


def rattled_cell(symbols, repeat, seed, rattle=0.15, strain=0.04):
    """A wrapped, rattled, strained (triclinic) fcc cell with the given chemical symbols."""
    rng = np.random.default_rng(seed)
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(repeat)
    atoms.set_chemical_symbols(rng.choice(symbols, size=len(atoms)))
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + strain * rng.standard_normal((3, 3))),
                   scale_atoms=True)
    atoms.positions += rattle * rng.standard_normal(atoms.positions.shape)
    atoms.wrap()
    return atoms


def small_primitive_cell():
    """Two atoms in a small triclinic cell: r_cut reaches several cells in every direction."""
    atoms = bulk("Mo", "bcc", a=3.15)  # primitive bcc, 1 atom, non-orthogonal cell
    atoms = atoms.repeat((2, 1, 1))
    atoms.positions[1] += [0.11, -0.07, 0.05]
    atoms.wrap()
    return atoms


def ethanol():
    atoms = molecule("CH3CH2OH")
    atoms.positions += np.random.default_rng(4).normal(scale=0.05, size=atoms.positions.shape)
    return atoms


SYSTEMS = {
    "primitive-Mo": (small_primitive_cell, ["Mo"]),
    "rattled-Cu-supercell": (lambda: rattled_cell(["Cu"], (2, 2, 2), seed=1), ["Cu"]),
    "CuAu-alloy": (lambda: rattled_cell(["Cu", "Au"], (1, 1, 2), seed=2), ["Au", "Cu"]),
    "CuAgAu-alloy": (lambda: rattled_cell(["Cu", "Ag", "Au"], (1, 1, 2), seed=3),
                     ["Cu", "Ag", "Au"]),
    "ethanol": (ethanol, ["H", "C", "O"]),
}


def descriptor_for(species, g3=False):
    return ACSFDescriptor(species, r_cut=R_CUT, g3_params=G3_PARAMS if g3 else ())


def environments(descriptor, atoms, gradients=False):
    return descriptor.compute(atoms, build_neighbor_list(atoms, descriptor.cutoff),
                              gradients=gradients)


@pytest.mark.parametrize("name", sorted(SYSTEMS))
@pytest.mark.parametrize("g3", [False, True])
def test_features_equal_dscribe(name, g3):
    make_atoms, species = SYSTEMS[name]
    atoms = make_atoms()
    descriptor = descriptor_for(species, g3=g3)
    env = environments(descriptor, atoms)
    reference = descriptor.to_dscribe(periodic=bool(atoms.pbc.any())).create(atoms)
    assert env.features.shape == reference.shape == (len(atoms), descriptor.n_features)
    assert np.abs(reference).max() > 1.0  # neighbours were found
    np.testing.assert_allclose(env.features, reference, rtol=1e-10,
                               atol=1e-14 * np.abs(reference).max())
    np.testing.assert_array_equal(env.channels, atoms.numbers)
    np.testing.assert_array_equal(env.center_atoms, np.arange(len(atoms)))


def test_user_parameters_and_feature_count():
    descriptor = ACSFDescriptor(["O", "H"], r_cut=3.5, g2_params=[[0.5, 1.0], [2.0, 0.0]],
                                g4_params=[], g5_params=[[0.1, 2.0, -1.0]], g3_params=[1.5])
    np.testing.assert_array_equal(descriptor.species, [1, 8])
    assert descriptor.cutoff == 3.5
    assert descriptor.n_features == 2 * (1 + 2 + 1) + 3 * 1
    assert descriptor.n_features == descriptor.to_dscribe().get_number_of_features()
    atoms = molecule("H2O") + Atoms("O", positions=[[10.0, 0.0, 0.0]])  # last one isolated
    reference = descriptor.to_dscribe().create(atoms)
    env = environments(descriptor, atoms, gradients=True)
    np.testing.assert_allclose(env.features, reference, rtol=1e-10)
    assert not env.features[3].any() and 3 not in env.pair_envs and 3 not in env.pair_neighbors


def test_default_parameters_follow_the_cutoff():
    g2 = default_g2_params(6.0)
    assert g2.shape == (8, 2)
    np.testing.assert_allclose(g2[:, 1], np.arange(1, 9) * 6.0 / 9)
    np.testing.assert_allclose(g2[:, 0], 0.5 / (6.0 / 9) ** 2)
    angular = default_angular_params(6.0)
    assert angular.shape == (8, 3)
    assert set(angular[:, 2]) == {-1.0, 1.0} and set(angular[:, 1]) == {1.0, 4.0}
    descriptor = ACSFDescriptor(["Mo"], r_cut=6.0)
    assert descriptor.n_features == 1 + 8 + 16


def test_unknown_species_are_named():
    with pytest.raises(ValueError, match="Xy"):
        ACSFDescriptor(["Cu", "Xy"])
    atoms = Atoms("CuZn", positions=[[0, 0, 0], [2.5, 0, 0]])
    descriptor = ACSFDescriptor(["Cu"], r_cut=R_CUT)
    with pytest.raises(ValueError, match="Zn"):
        environments(descriptor, atoms)
    with pytest.raises(ValueError, match="zeta"):
        ACSFDescriptor(["Cu"], g4_params=[[0.1, 0.5, 1.0]])


def test_wider_neighbor_list_gives_the_same_result():
    atoms = rattled_cell(["Cu", "Au"], (1, 1, 2), seed=5)
    descriptor = descriptor_for(["Cu", "Au"])
    narrow = environments(descriptor, atoms, gradients=True)
    wide = descriptor.compute(atoms, build_neighbor_list(atoms, R_CUT + 1.5), gradients=True)
    assert len(wide.pair_envs) == len(narrow.pair_envs)
    np.testing.assert_allclose(wide.features, narrow.features, rtol=1e-12)
    # pair order may differ between the two lists: compare per-atom derivatives
    np.testing.assert_allclose(position_derivatives(wide, len(atoms)),
                               position_derivatives(narrow, len(atoms)), rtol=0, atol=1e-12)


def position_derivatives(env, n_atoms):
    """Dense ∂q_e/∂r_a (n_envs, n_atoms, 3, n_features) from the pair arrays (centre term
    is minus the sum over the centre's pairs)."""
    dense = np.zeros((env.n_envs, n_atoms, 3, env.features.shape[1]))
    for p, (e, j) in enumerate(zip(env.pair_envs, env.pair_neighbors)):
        dense[e, j] += env.pair_gradients[p]
        dense[e, env.center_atoms[e]] -= env.pair_gradients[p]
    return dense


GRADIENT_SYSTEMS = ["primitive-Mo", "CuAu-alloy", "ethanol"]


@pytest.mark.parametrize("name", GRADIENT_SYSTEMS)
def test_gradients_equal_finite_differences(name):
    make_atoms, species = SYSTEMS[name]
    atoms = make_atoms()
    descriptor = descriptor_for(species, g3=True)
    env = environments(descriptor, atoms, gradients=True)
    np.testing.assert_allclose(env.features, environments(descriptor, atoms).features,
                               rtol=1e-13)
    analytic = position_derivatives(env, len(atoms))
    step = 1e-5
    numeric = np.zeros_like(analytic)
    for atom in range(len(atoms)):
        for axis in range(3):
            shifted = []
            for sign in (1, -1):
                moved = atoms.copy()
                moved.positions[atom, axis] += sign * step
                shifted.append(environments(descriptor, moved).features)
            numeric[:, atom, axis] = (shifted[0] - shifted[1]) / (2 * step)
    assert np.abs(analytic).max() > 0.1
    np.testing.assert_allclose(analytic, numeric, rtol=0, atol=1e-6 * np.abs(numeric).max())


@pytest.mark.parametrize("name", ["primitive-Mo", "CuAgAu-alloy"])
def test_strain_derivative_equals_finite_differences(name):
    make_atoms, species = SYSTEMS[name]
    atoms = make_atoms()
    descriptor = descriptor_for(species)
    env = environments(descriptor, atoms, gradients=True)
    # a strain eps maps every pair vector D to (1 + eps) D
    analytic = np.zeros((env.n_envs, 3, 3, descriptor.n_features))
    np.add.at(analytic, env.pair_envs,
              np.einsum("pak,pb->pabk", env.pair_gradients, env.pair_vectors))
    numeric = strain_derivative(lambda strained: environments(descriptor, strained).features,
                                atoms, step=1e-6)
    for a in range(3):
        for b in range(3):
            np.testing.assert_allclose(analytic[:, a, b], numeric[a, b], rtol=0,
                                       atol=1e-6 * np.abs(numeric[a, b]).max() + 1e-9)


@pytest.mark.parametrize("name", ["rattled-Cu-supercell", "CuAgAu-alloy", "ethanol"])
def test_backward_equals_contracted_pair_gradients(name):
    make_atoms, species = SYSTEMS[name]
    atoms = make_atoms()
    descriptor = descriptor_for(species, g3=True)
    nl = build_neighbor_list(atoms, descriptor.cutoff)
    env = descriptor.compute(atoms, nl, gradients=True)
    upstream = np.random.default_rng(7).standard_normal(env.features.shape)
    upstream[0] = 0.0  # a centre that contributes nothing
    d_energy, expected = checked_backward(descriptor.backward(atoms, nl, upstream), env, upstream)
    np.testing.assert_allclose(d_energy, expected, rtol=1e-10,
                               atol=1e-12 * np.abs(expected).max())
    with pytest.raises(ValueError, match="shape"):
        descriptor.backward(atoms, nl, upstream[:, :-1])


@pytest.mark.parametrize("name", ["CuAgAu-alloy", "ethanol"])
def test_rotation_and_translation_invariance(name):
    make_atoms, species = SYSTEMS[name]
    atoms = make_atoms()
    descriptor = descriptor_for(species)
    reference = environments(descriptor, atoms).features
    moved = atoms.copy()
    moved.rotate(37.0, (1.0, -2.0, 0.5), center=(0.3, 0.1, -0.2), rotate_cell=True)
    moved.translate([1.7, -0.4, 2.9])
    np.testing.assert_allclose(environments(descriptor, moved).features, reference,
                               rtol=1e-10, atol=1e-12)


def test_permutation_invariance():
    atoms = rattled_cell(["Cu", "Ag", "Au"], (1, 1, 2), seed=3)
    descriptor = descriptor_for(["Cu", "Ag", "Au"])
    reference = environments(descriptor, atoms).features
    # unlike atoms move together with their labels: rows follow the permutation
    order = np.random.default_rng(11).permutation(len(atoms))
    permuted = atoms[order]
    np.testing.assert_allclose(environments(descriptor, permuted).features, reference[order],
                               rtol=1e-12, atol=1e-12)
    # two like atoms swap positions: their rows swap, the others do not change
    like = np.flatnonzero(atoms.numbers == atoms.numbers[0])[:2]
    swapped = atoms.copy()
    swapped.positions[like] = atoms.positions[like[::-1]]
    expected = reference.copy()
    expected[like] = reference[like[::-1]]
    np.testing.assert_allclose(environments(descriptor, swapped).features, expected,
                               rtol=1e-12, atol=1e-12)
    # swapping the labels of two unlike atoms does change their neighbours' features
    unlike = [like[0], np.flatnonzero(atoms.numbers != atoms.numbers[0])[0]]
    relabelled = atoms.copy()
    relabelled.numbers[unlike] = atoms.numbers[unlike[::-1]]
    assert not np.allclose(environments(descriptor, relabelled).features, reference)

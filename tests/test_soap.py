"""SOAP descriptor: features against dscribe, analytic gradients against dscribe's and
against finite differences, the backward (vector-Jacobian) path against the pair
gradients, symmetry invariances, and the numba building blocks against slow references."""
import math

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from scipy.special import eval_legendre

from gapfit.descriptors import _soap_basis, _soap_kernels
from gapfit.descriptors.soap import SOAPDescriptor
from gapfit.structures.neighbors import build_neighbor_list

from conftest import checked_backward

POLY = {"function": "poly", "r0": 4.0, "c": 1.0, "m": 2}


def relative_error(values, reference):
    return np.abs(values - reference).max() / np.abs(reference).max()


def features(descriptor, atoms, gradients=False):
    return descriptor.compute(atoms, build_neighbor_list(atoms, descriptor.cutoff), gradients)


def dscribe_features(descriptor, atoms):
    return descriptor.to_dscribe(periodic=bool(atoms.pbc.any())).create(atoms)


def rattled_bcc(repeat, seed, rattle=0.1, symbols=("Mo",)):
    rng = np.random.default_rng(seed)
    atoms = bulk("Mo", "bcc", a=3.16, cubic=True).repeat(repeat)
    atoms.set_chemical_symbols(rng.choice(list(symbols), size=len(atoms)))
    atoms.positions += rattle * rng.standard_normal(atoms.positions.shape)
    atoms.wrap()
    return atoms


def dense_gradients(environments, n_atoms):
    """(n_envs, n_atoms, 3, n_features) from the sparse pair gradients, with the centre's
    own derivative as minus the sum over its neighbours."""
    n_features = environments.features.shape[1]
    dense = np.zeros((environments.n_envs, n_atoms, 3, n_features))
    for env, neighbor, gradient in zip(environments.pair_envs, environments.pair_neighbors,
                                       environments.pair_gradients):
        dense[env, neighbor] += gradient
        dense[env, environments.center_atoms[env]] -= gradient
    return dense


def central_differences(create, atoms, atom_indices, step=1e-5):
    """∂q/∂r_k by central differences of ``create(atoms)`` for k in atom_indices:
    (n_envs, len(atom_indices), 3, n_features)."""
    columns = []
    for k in atom_indices:
        per_axis = []
        for axis in range(3):
            shifted = []
            for sign in (1.0, -1.0):
                moved = atoms.copy()
                moved.positions[k, axis] += sign * step
                shifted.append(create(moved))
            per_axis.append((shifted[0] - shifted[1]) / (2.0 * step))
        columns.append(np.stack(per_axis, axis=1))
    return np.stack(columns, axis=1)


def assert_no_pair_near_cutoff(atoms, cutoff, margin=1e-3):
    """Finite differences across the hard neighbour cutoff would be meaningless."""
    pairs = build_neighbor_list(atoms, cutoff + 2 * margin)
    assert np.all(np.abs(pairs.distances - cutoff) > margin)


# --- values against dscribe --------------------------------------------------------------

STRUCTURES = {
    "bcc_cubic_2_atoms": lambda: bulk("Mo", "bcc", a=3.16, cubic=True),
    "bcc_rattled_54": lambda: rattled_bcc((3, 3, 3), seed=1),
    "fcc_primitive_1_atom": lambda: bulk("Cu", "fcc", a=3.6),
    "molecule": lambda: molecule("CH3CH2OH"),
    "molecule_with_isolated_atom": lambda: Atoms("H2O", positions=[[0, 0, 0], [0.9, 0, 0],
                                                                   [20.0, 0, 0]]),
    "two_species_cell": lambda: rattled_bcc((2, 2, 1), seed=2, symbols=("Mo", "Nb")),
    "three_species_cell": lambda: rattled_bcc((2, 2, 1), seed=3, symbols=("Mo", "Nb", "W")),
}
SPECIES = {"molecule": ["H", "C", "O"], "molecule_with_isolated_atom": ["O", "H"],
           "two_species_cell": ["Nb", "Mo"],
           "three_species_cell": [74, 41, 42]}


@pytest.mark.parametrize("weighting", [None, POLY], ids=["unweighted", "poly"])
@pytest.mark.parametrize("name", list(STRUCTURES))
def test_features_equal_dscribe(name, weighting):
    atoms = STRUCTURES[name]()
    species = SPECIES.get(name, [atoms.get_chemical_symbols()[0]])
    descriptor = SOAPDescriptor(species, r_cut=4.0, n_max=4, l_max=4, sigma=0.5,
                                weighting=weighting)
    environments = features(descriptor, atoms)
    reference = dscribe_features(descriptor, atoms)
    assert environments.features.shape == (len(atoms), descriptor.n_features)
    assert relative_error(environments.features, reference) < 1e-10
    np.testing.assert_array_equal(environments.center_atoms, np.arange(len(atoms)))
    np.testing.assert_array_equal(environments.channels, atoms.numbers)


@pytest.mark.parametrize("weighting", [
    {"function": "poly", "r0": 5.0, "c": 2.0, "m": 3, "w0": 0.5},
    {"function": "pow", "r0": 3.0, "c": 1.0, "d": 1.0, "m": 4},
    {"function": "exp", "r0": 1.0, "c": 1.0, "d": 0.5},
    {"w0": 0.0},
], ids=["poly_w0", "pow", "exp", "w0_only"])
def test_default_size_and_other_weightings_equal_dscribe(weighting):
    atoms = rattled_bcc((2, 2, 2), seed=4)
    descriptor = SOAPDescriptor(["Mo"], r_cut=5.0, n_max=8, l_max=6, sigma=0.5,
                                weighting=weighting)
    assert descriptor.n_features == descriptor.to_dscribe().get_number_of_features() == 252
    reference = dscribe_features(descriptor, atoms)
    assert relative_error(features(descriptor, atoms).features, reference) < 1e-10


def test_high_l_max_and_large_n_max_equal_dscribe():
    atoms = bulk("Cu", "fcc", a=3.6)
    descriptor = SOAPDescriptor(["Cu"], r_cut=6.0, n_max=10, l_max=12, sigma=0.4)
    reference = dscribe_features(descriptor, atoms)
    assert relative_error(features(descriptor, atoms).features, reference) < 1e-10


def test_cutoff_includes_dscribe_padding_and_longer_lists_are_cut():
    descriptor = SOAPDescriptor(["Mo"], r_cut=4.0, n_max=3, l_max=2, sigma=0.7)
    assert descriptor.cutoff == pytest.approx(4.0 + 0.7 * math.sqrt(-2.0 * math.log(1e-3)))
    atoms = rattled_bcc((2, 2, 2), seed=5)
    exact = descriptor.compute(atoms, build_neighbor_list(atoms, descriptor.cutoff), True)
    longer = descriptor.compute(atoms, build_neighbor_list(atoms, descriptor.cutoff + 1.5),
                                True)
    assert relative_error(longer.features, exact.features) < 1e-13
    assert len(longer.pair_envs) == len(exact.pair_envs)
    assert np.all(np.linalg.norm(longer.pair_vectors, axis=1) <= descriptor.cutoff)


def test_species_and_weighting_validation():
    descriptor = SOAPDescriptor(["Mo", 41], r_cut=4.0, n_max=3, l_max=2)
    np.testing.assert_array_equal(descriptor.species, [41, 42])
    atoms = bulk("Mo", "bcc", a=3.16, cubic=True)
    atoms[1].symbol = "Ta"
    with pytest.raises(ValueError, match="Ta"):
        features(descriptor, atoms)
    with pytest.raises(ValueError, match="Xx"):
        SOAPDescriptor(["Xx"])
    with pytest.raises(ValueError, match="r0"):
        SOAPDescriptor(["Mo"], weighting={"function": "poly", "c": 1.0, "m": 2})
    with pytest.raises(ValueError, match="r_cut"):
        SOAPDescriptor(["Mo"], r_cut=0.8)
    inferred = SOAPDescriptor(["Mo"], r_cut=None, n_max=3, l_max=2, weighting=POLY)
    assert inferred.r_cut == POLY["r0"]


COSINE = {"function": "cosine", "r0": 4.5, "c": 1.0, "d": 1.0}


def test_cosine_weight_is_one_then_a_half_cosine_then_zero():
    weighting = (_soap_kernels.WEIGHT_COSINE, np.array([4.5, 2.0, 0.0, 1.0]), False, 0.0, 0.0)
    radii = np.array([0.0, 1.0, 3.5, 3.7, 4.0, 4.3, 4.5, 5.0])
    values = np.array([_soap_kernels.weight_and_derivative(r, weighting)[0] for r in radii])
    taper = 2.0 * 0.5 * (1.0 + np.cos(np.pi * (radii - 3.5) / 1.0))
    expected = np.where(radii <= 3.5, 2.0, np.where(radii >= 4.5, 0.0, taper))
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-14)
    for r in (3.2, 3.6, 4.0, 4.45):
        slope = _soap_kernels.weight_and_derivative(r, weighting)[1]
        step = 1e-6
        numeric = (_soap_kernels.weight_and_derivative(r + step, weighting)[0]
                   - _soap_kernels.weight_and_derivative(r - step, weighting)[0]) / (2 * step)
        assert abs(slope - numeric) < 1e-8


def test_cosine_weighting_leaves_atoms_inside_the_taper_as_dscribe_unweighted():
    """Every pair closer than r0 - d has weight 1, so the features are dscribe's without a
    weighting, with the radial basis reaching r_cut (beyond r0, as SOAP(weighting="cosine")
    sets it up)."""
    cluster = Atoms("Mo3W", positions=[[0, 0, 0], [2.6, 0, 0], [0.4, 2.5, 0.3], [1.1, 0.9, 2.2]])
    cosine = SOAPDescriptor(["Mo", "W"], r_cut=6.5, n_max=5, l_max=4, sigma=0.5,
                            weighting={"function": "cosine", "r0": 5.0, "c": 1.0, "d": 1.0})
    assert cosine.cutoff == 5.0
    assert cluster.get_all_distances().max() < 4.0
    unweighted = SOAPDescriptor(["Mo", "W"], r_cut=6.5, n_max=5, l_max=4, sigma=0.5)
    assert relative_error(features(cosine, cluster).features,
                          dscribe_features(unweighted, cluster)) < 1e-10
    with pytest.raises(ValueError, match="cosine"):
        cosine.to_dscribe()


def test_cosine_weighting_validation_and_soap_term_set_up():
    with pytest.raises(ValueError, match="taper width"):
        SOAPDescriptor(["Mo"], weighting={"function": "cosine", "r0": 4.0, "c": 1.0, "d": 0.0})
    with pytest.raises(ValueError, match="taper width"):
        SOAPDescriptor(["Mo"], weighting={"function": "cosine", "r0": 4.0, "c": 1.0, "d": 5.0})
    import gapfit
    term = gapfit.SOAP(r_cut=4.5, sigma=0.4, weighting="cosine", transition_width=0.8).build([42])
    assert term.descriptor_.cutoff == 4.5                 # the weight is zero beyond r_cut
    assert term.descriptor_.r_cut == pytest.approx(4.5 + 5 * 0.4)   # the basis reaches farther
    assert term.descriptor_.weighting == {"function": "cosine", "r0": 4.5, "c": 1.0, "d": 0.8}
    poly = gapfit.SOAP(r_cut=4.5).build([42])
    assert poly.descriptor_.r_cut == 4.5 and poly.descriptor_.weighting["function"] == "poly"
    assert gapfit.SOAP(weighting="cosine", basis_r_cut=6.0).build([42]).descriptor_.r_cut == 6.0
    with pytest.raises(ValueError, match="unknown weighting 'cosin'"):
        gapfit.SOAP(weighting="cosin").build([42])


# --- gradients ---------------------------------------------------------------------------

def test_gradients_equal_dscribe_analytic_on_two_species_cluster():
    cluster = rattled_bcc((2, 2, 2), seed=6, symbols=("Mo", "W"))
    cluster.pbc = False
    cluster.cell = None
    descriptor = SOAPDescriptor(["Mo", "W"], r_cut=4.0, n_max=4, l_max=4, sigma=0.5)
    environments = features(descriptor, cluster, gradients=True)
    reference_gradients, reference_features = descriptor.to_dscribe().derivatives(
        cluster, method="analytical", attach=True)
    assert relative_error(environments.features, reference_features) < 1e-10
    assert relative_error(dense_gradients(environments, len(cluster)), reference_gradients) < 1e-9


@pytest.mark.parametrize("weighting", [None, {"function": "poly", "r0": 4.5, "c": 1.0, "m": 3}, COSINE],
                         ids=["unweighted", "poly", "cosine"])
def test_periodic_gradients_match_finite_differences(weighting):
    atoms = rattled_bcc((2, 2, 1), seed=7, symbols=("Mo", "Nb"))
    descriptor = SOAPDescriptor(["Mo", "Nb"], r_cut=4.5, n_max=4, l_max=4, sigma=0.5,
                                weighting=weighting)
    assert_no_pair_near_cutoff(atoms, descriptor.cutoff)
    environments = features(descriptor, atoms, gradients=True)
    analytic = dense_gradients(environments, len(atoms))
    moved_atoms = [0, 3]
    numeric = central_differences(lambda a: features(descriptor, a).features, atoms,
                                  moved_atoms)
    assert relative_error(analytic[:, moved_atoms], numeric) < 1e-7
    if weighting is COSINE:   # not in dscribe; make sure pairs sit inside the taper
        distances = build_neighbor_list(atoms, descriptor.cutoff).distances
        assert ((distances > 3.5) & (distances < 4.5)).sum() > 10
        return
    numeric_dscribe = central_differences(lambda a: dscribe_features(descriptor, a), atoms,
                                          moved_atoms[:1])
    assert relative_error(analytic[:, moved_atoms[:1]], numeric_dscribe) < 1e-7


def test_one_atom_cell_gradients_sum_over_images():
    """Every neighbour is an image of the centre itself: moving the atom moves them all
    together, so the total derivative vanishes while pair gradients do not."""
    atoms = bulk("Cu", "fcc", a=3.6)
    descriptor = SOAPDescriptor(["Cu"], r_cut=4.0, n_max=4, l_max=4)
    environments = features(descriptor, atoms, gradients=True)
    assert np.abs(environments.pair_gradients).max() > 1e-3
    total = dense_gradients(environments, 1)
    assert np.abs(total).max() < 1e-10 * np.abs(environments.pair_gradients).max()


@pytest.mark.parametrize("species_symbols", [("Mo",), ("Mo", "Nb", "W")])
@pytest.mark.parametrize("weighting", [None, POLY, COSINE], ids=["unweighted", "poly", "cosine"])
def test_backward_equals_contracted_pair_gradients(species_symbols, weighting):
    atoms = rattled_bcc((2, 2, 2), seed=8, symbols=species_symbols)
    descriptor = SOAPDescriptor(list(species_symbols), r_cut=4.0, n_max=5, l_max=5,
                                weighting=weighting)
    pairs = build_neighbor_list(atoms, descriptor.cutoff)
    environments = descriptor.compute(atoms, pairs, gradients=True)
    d_energy_d_features = np.random.default_rng(0).standard_normal(environments.features.shape)
    d_energy_d_vectors, reference = checked_backward(
        descriptor.backward(atoms, pairs, d_energy_d_features), environments, d_energy_d_features)
    assert relative_error(d_energy_d_vectors, reference) < 1e-10


# --- invariances -------------------------------------------------------------------------

def test_features_invariant_under_rotation_translation_and_permutation():
    rng = np.random.default_rng(9)
    cluster = Atoms("MoNbMoWMoNbW", positions=rng.uniform(-2.5, 2.5, size=(7, 3)))
    descriptor = SOAPDescriptor(["Mo", "Nb", "W"], r_cut=4.0, n_max=4, l_max=6)
    reference = features(descriptor, cluster).features

    rotation, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    moved = cluster.copy()
    moved.positions = cluster.positions @ rotation.T + np.array([3.0, -1.0, 7.5])
    np.testing.assert_allclose(features(descriptor, moved).features, reference, rtol=0,
                               atol=1e-12 * np.abs(reference).max())

    order = rng.permutation(len(cluster))
    permuted = cluster[order]
    np.testing.assert_allclose(features(descriptor, permuted).features, reference[order],
                               rtol=0, atol=1e-12 * np.abs(reference).max())

    periodic = rattled_bcc((2, 2, 2), seed=10)
    shifted = periodic.copy()
    shifted.positions += np.array([0.7, -1.3, 2.2])
    shifted.wrap()
    np.testing.assert_allclose(features(descriptor, shifted).features,
                               features(descriptor, periodic).features, rtol=0, atol=1e-12)


# --- building blocks against slow references ---------------------------------------------

def test_solid_harmonics_obey_addition_theorem_and_gradients():
    l_max, n_points = 8, 5
    rng = np.random.default_rng(11)
    norms = _soap_basis.real_harmonic_norms(l_max)
    recurrence = _soap_basis.harmonic_recurrence(l_max)
    workspace = _soap_kernels.harmonic_workspace(l_max, n_points)
    n_lm = (l_max + 1) ** 2

    def harmonics(points):
        values, gradients = np.empty((n_lm, len(points))), np.empty((3, n_lm, len(points)))
        xs, ys, zs = np.ascontiguousarray(points.T)
        _soap_kernels.solid_harmonics(xs, ys, zs, xs**2 + ys**2 + zs**2, len(points), l_max,
                                      norms, recurrence, values, gradients, True, workspace)
        return values, gradients

    points = rng.standard_normal((n_points, 3))
    values, gradients = harmonics(points)
    radii = np.linalg.norm(points, axis=1)
    for i, j in [(0, 1), (2, 3), (4, 4)]:
        cos_angle = points[i] @ points[j] / radii[i] / radii[j]
        for l in range(l_max + 1):
            block = slice(l * l, (l + 1) * (l + 1))
            expected = ((2 * l + 1) / (4 * np.pi) * eval_legendre(l, cos_angle)
                        * (radii[i] * radii[j]) ** l)
            assert values[block, i] @ values[block, j] == pytest.approx(expected, rel=1e-12,
                                                                        abs=1e-14)
    step = 1e-6
    for axis in range(3):
        offset = np.zeros(3)
        offset[axis] = step
        numeric = (harmonics(points + offset)[0] - harmonics(points - offset)[0]) / (2 * step)
        np.testing.assert_allclose(gradients[axis], numeric, rtol=1e-7, atol=1e-8)


def test_harmonic_lowering_gives_the_gradients_of_the_solid_harmonics():
    # the MD backward forms Σ v_lm ∇(r^l Y_lm) from the harmonics one degree lower
    l_max, n_points = 8, 7
    points = np.random.default_rng(5).standard_normal((n_points, 3)) * 2.0
    xs, ys, zs = np.ascontiguousarray(points.T)
    n_lm = (l_max + 1) ** 2
    values, gradients = np.empty((n_lm, n_points)), np.empty((3, n_lm, n_points))
    _soap_kernels.solid_harmonics(xs, ys, zs, xs**2 + ys**2 + zs**2, n_points, l_max,
                                  _soap_basis.real_harmonic_norms(l_max),
                                  _soap_basis.harmonic_recurrence(l_max), values, gradients,
                                  True, _soap_kernels.harmonic_workspace(l_max, n_points))
    offsets, axes, targets, coefficients = _soap_basis.harmonic_lowering(l_max)
    sources = np.repeat(np.arange(n_lm), np.diff(offsets))
    lowered = np.zeros_like(gradients)
    np.add.at(lowered, (axes, sources), coefficients[:, None] * values[targets])
    assert relative_error(lowered, gradients) < 1e-12
    assert len(axes) <= 5 * (n_lm - 1)  # sparse: ≤ 2 terms for x and y, 1 for z, per harmonic


def test_vectorised_exp_matches_numpy():
    arguments = np.concatenate([-np.logspace(-12, np.log10(700.0), 4000), [0.0, -1e-300]])
    out, scratch = np.empty_like(arguments), np.empty_like(arguments)
    _soap_kernels.exp_of_nonpositive(arguments, out, scratch, len(arguments))
    np.testing.assert_allclose(out, np.exp(arguments), rtol=4e-16, atol=0)


def test_gto_basis_is_orthonormal():
    """sum_kk' beta_nk beta_n'k' S_kk' = delta_nn' (the Löwdin construction)."""
    from scipy.special import gamma
    alphas, betas = _soap_basis.gto_exponents_and_orthonormalisation(5.0, 6, 3)
    for l in range(4):
        overlap = 0.5 * gamma(l + 1.5) * (alphas[l][:, None] + alphas[l][None, :]) ** (-l - 1.5)
        np.testing.assert_allclose(betas[l] @ overlap @ betas[l].T, np.eye(6), atol=1e-6)

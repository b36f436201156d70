"""QUIP's descriptors (soap, distance_2b, angle_3b) computed by gapfit.

Against quippy's ``Descriptor`` as a black box (skipped without quippy-ase) and, without
quippy, against finite differences (positions and strain), slow references and the
contraction of the pair gradients.
"""
import re
from types import SimpleNamespace

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from scipy.integrate import quad
from scipy.special import spherical_in

from gapfit.descriptors._quip_soap_kernels import (scaled_bessel, series_reciprocals,
                                                   upward_threshold)
from gapfit.descriptors.quip_angle import QuipAngle3bDescriptor
from gapfit.descriptors.quip_pair import QuipDistance2bDescriptor
from gapfit.descriptors.quip_soap import (QuipSOAPDescriptor, gaussian_centres,
                                          gaussian_overlap)
from gapfit.descriptors.quip_strings import descriptor_from_quip_string
from gapfit.structures.neighbors import build_neighbor_list

from conftest import checked_backward, strain_derivative

RTOL = 1e-8


def _cluster(symbols, seed, spread=1.6):
    rng = np.random.default_rng(seed)
    positions = rng.uniform(-spread, spread, (len(Atoms(symbols)), 3)) + 10.0
    return Atoms(symbols, positions=positions, cell=[20.0, 20.0, 20.0], pbc=False)


def _bcc_mo(cubic, seed=2):
    atoms = bulk("Mo", "bcc", a=3.15, cubic=cubic)
    atoms.rattle(0.05, seed=seed)
    return atoms


def _al_ti(seed=1):
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.numbers[1] = 22
    atoms.rattle(0.1, seed=seed)
    return atoms


def _water_like(seed=1):
    return _cluster("HHOHOOH", seed)


SOAP_CASES = [
    ("one species, cluster", lambda: _cluster("H6", 0),
     dict(species=None, cutoff=4.0, n_max=3, l_max=3, atom_sigma=0.5)),
    ("no central weight, not normalised, sigma0", lambda: _cluster("H6", 0),
     dict(species=None, cutoff=4.0, n_max=4, l_max=2, atom_sigma=0.5, central_weight=0.0,
          normalise=False, covariance_sigma0=0.2)),
    ("two species, all centres", _water_like,
     dict(species=[8, 1], cutoff=4.0, n_max=2, l_max=2, atom_sigma=0.5)),
    ("two species, Z=8, central weight", _water_like,
     dict(species=[8, 1], cutoff=4.0, n_max=4, l_max=5, atom_sigma=0.4, Z=8,
          central_weight=0.3, cutoff_transition_width=1.0)),
    ("central reference in every species", _water_like,
     dict(species=[1, 8], cutoff=4.0, n_max=3, l_max=2, atom_sigma=0.5,
          central_reference_all_species=True)),
    ("AlTi periodic, Z=13", _al_ti,
     dict(species=[13, 22], cutoff=5.0, n_max=6, l_max=4, atom_sigma=0.5, Z=13)),
    ("bcc Mo primitive cell, self images only", lambda: _bcc_mo(False),
     dict(species=["Mo"], cutoff=5.0, n_max=8, l_max=6, atom_sigma=0.5)),
    ("bcc Mo cubic cell, many images", lambda: _bcc_mo(True),
     dict(species=["Mo"], cutoff=5.5, n_max=5, l_max=8, atom_sigma=0.6,
          covariance_sigma0=0.01)),
]


def _quippy_descriptor(string):
    descriptors = pytest.importorskip(
        "quippy.descriptors", reason="quippy-ase (an optional test extra) is not installed")
    return descriptors.Descriptor(string)


def _keyed(centre, neighbour, vector):
    return (int(centre), int(neighbour), tuple(np.round(vector, 6)))


def _quippy_soap_rows(result, atoms, env_of_atom):
    """{(env, neighbour, rounded pair vector): ∂q/∂r_image} from quippy's gradient rows
    (the first row of every centre is the centre itself and is skipped)."""
    rows = {}
    seen = set()
    for row, (centre, atom) in enumerate(result["grad_index_0based"]):
        if centre not in seen:
            seen.add(centre)
            continue
        key = _keyed(env_of_atom[centre], atom, result["pos"][row] - atoms.positions[centre])
        rows[key] = result["grad_data"][row]
    return rows


@pytest.mark.parametrize("name, make_atoms, settings", SOAP_CASES, ids=[c[0] for c in SOAP_CASES])
def test_soap_equals_quippy_values_and_gradients(name, make_atoms, settings):
    atoms = make_atoms()
    descriptor = QuipSOAPDescriptor(**settings)
    reference = _quippy_descriptor(descriptor.quip_string())
    assert reference.dimensions() == descriptor.n_features
    assert reference.cutoff() == descriptor.cutoff
    result = reference.calc(atoms, grad=True)
    environments = descriptor.compute(atoms, build_neighbor_list(atoms, descriptor.cutoff),
                                      gradients=True)
    np.testing.assert_array_equal(environments.center_atoms, result["ci"] - 1)
    scale = np.abs(result["data"]).max()
    np.testing.assert_allclose(environments.features, result["data"], rtol=0,
                               atol=RTOL * scale)
    env_of_atom = {int(c): e for e, c in enumerate(environments.center_atoms)}
    expected = _quippy_soap_rows(result, atoms, env_of_atom)
    mine = {_keyed(e, j, d): g for e, j, d, g in zip(
        environments.pair_envs, environments.pair_neighbors, environments.pair_vectors,
        environments.pair_gradients)}
    assert set(mine) == set(expected)
    gradient_scale = np.abs(result["grad_data"]).max()
    worst = max(np.abs(mine[key] - expected[key]).max() for key in mine)
    assert worst <= RTOL * gradient_scale


def test_soap_channels_follow_the_centre_choice():
    atoms = _water_like()
    nl = build_neighbor_list(atoms, 4.0)
    wild = QuipSOAPDescriptor([8, 1], 4.0, 2, 2, 0.5).compute(atoms, nl)
    assert (wild.channels == 0).all() and len(wild.channels) == len(atoms)
    per_z = QuipSOAPDescriptor([8, 1], 4.0, 2, 2, 0.5, Z=[1, 8]).compute(atoms, nl)
    np.testing.assert_array_equal(per_z.channels, atoms.numbers)
    np.testing.assert_allclose(per_z.features, wild.features, rtol=1e-15)
    with pytest.raises(ValueError, match="centre species C"):
        QuipSOAPDescriptor([8, 1], 4.0, 2, 2, 0.5).compute(_cluster("HCO", 3), nl_for("HCO"))


def nl_for(symbols):
    return build_neighbor_list(_cluster(symbols, 3), 4.0)


def test_soap_refuses_bad_settings():
    with pytest.raises(ValueError, match="centre species Z=\\[6\\] not among species"):
        QuipSOAPDescriptor([8, 1], 4.0, 2, 2, 0.5, Z=6)
    with pytest.raises(ValueError, match="cutoff_transition_width"):
        QuipSOAPDescriptor(None, 4.0, 2, 2, 0.5, cutoff_transition_width=5.0)
    with pytest.raises(ValueError, match="lists a species twice"):
        QuipSOAPDescriptor([1, 1], 4.0, 2, 2, 0.5)


def test_scaled_bessel_matches_scipy():
    for big_l in (1, 2, 7, 9, 15):
        reciprocals, double_factorials = series_reciprocals(big_l)
        threshold = upward_threshold(big_l)
        out = np.empty(big_l + 1)
        for x in np.concatenate([[0.0, 1e-9, threshold * (1 - 1e-12), threshold],
                                 np.linspace(0.05, 150.0, 97)]):
            scaled_bessel(x, big_l, out, reciprocals, double_factorials, threshold)
            ls = np.arange(big_l + 1)
            if x == 0.0:
                expected = np.array([1.0 / np.prod(np.arange(1, 2 * l + 2, 2)) for l in ls])
            else:
                expected = np.exp(-x) * spherical_in(ls, x) / x**ls
            np.testing.assert_allclose(out, expected, rtol=1e-12, err_msg=f"x={x}")


def test_gaussian_overlap_is_the_half_line_integral():
    centres = gaussian_centres(4.0, 5, 0.45, 10.0)
    overlap = gaussian_overlap(centres, 0.45)
    for a in range(5):
        for b in range(5):
            middle = 0.5 * (centres[a] + centres[b])
            value = quad(lambda r: r * r * np.exp(-((r - centres[a]) ** 2 + (r - centres[b]) ** 2)
                                                  / (2 * 0.45**2)), 0, middle + 10.0,
                         points=[middle], epsabs=0, epsrel=1e-13, limit=200)[0]
            assert overlap[a, b] == pytest.approx(value, rel=1e-12, abs=1e-300)


def _pair_strain_energy(descriptor, atoms, upstream, weighted):
    """E = Σ_e (f_e) u_e·q_e and its analytic strain derivative Σ_p g_p ⊗ D_p."""
    nl = build_neighbor_list(atoms, descriptor.cutoff)
    environments = descriptor.compute(atoms, nl, gradients=True)
    features = environments.features
    if weighted:
        weight = environments.covariance_cutoff
        energy = np.sum(weight * np.einsum("ek,ek->e", upstream, features))
        _, _, vectors, gradient = descriptor.backward(
            atoms, nl, upstream * weight[:, None],
            d_energy_d_cutoff=np.einsum("ek,ek->e", upstream, features))
    else:
        energy = np.sum(upstream * features)
        _, _, vectors, gradient = descriptor.backward(atoms, nl, upstream)
    return energy, np.einsum("pa,pb->ab", gradient, vectors)


STRAIN_CASES = [
    ("soap bcc Mo", lambda: QuipSOAPDescriptor(["Mo"], 4.5, 4, 3, 0.5), lambda: _bcc_mo(True),
     False),
    ("soap AlTi", lambda: QuipSOAPDescriptor([13, 22], 4.5, 3, 3, 0.5, Z=[13, 22],
                                             central_weight=0.5), _al_ti, False),
    ("distance_2b", lambda: QuipDistance2bDescriptor(4.5, 1.0), _al_ti, True),
    ("angle_3b", lambda: QuipAngle3bDescriptor(4.0, 1.0, Z1=13), _al_ti, True),
]


@pytest.fixture(params=STRAIN_CASES, ids=[c[0] for c in STRAIN_CASES])
def case(request):
    """A STRAIN_CASES row, made: descriptor, atoms, weighted, the neighbour list and the
    environments with gradients."""
    _, make_descriptor, make_atoms, weighted = request.param
    descriptor, atoms = make_descriptor(), make_atoms()
    nl = build_neighbor_list(atoms, descriptor.cutoff)
    return SimpleNamespace(descriptor=descriptor, atoms=atoms, weighted=weighted, nl=nl,
                           environments=descriptor.compute(atoms, nl, gradients=True))


def test_strain_derivative_matches_finite_differences(case):
    descriptor, atoms, weighted = case.descriptor, case.atoms, case.weighted
    upstream = np.random.default_rng(5).normal(size=(case.environments.n_envs,
                                                     descriptor.n_features))
    _, analytic = _pair_strain_energy(descriptor, atoms, upstream, weighted)
    numeric = strain_derivative(
        lambda strained: _pair_strain_energy(descriptor, strained, upstream, weighted)[0],
        atoms, step=1e-6)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7 * np.abs(numeric).max())


def test_pair_gradients_match_finite_differences(case):
    """Moving atom k changes every q_e by Σ_p (δ_{j_p k} - δ_{centre_p k}) ∂q_e/∂r_image."""
    descriptor, atoms, environments = case.descriptor, case.atoms, case.environments
    moved_atom = 1
    centres = environments.center_atoms[environments.pair_envs]
    sign = ((environments.pair_neighbors == moved_atom).astype(float)
            - (centres == moved_atom).astype(float))
    analytic = np.zeros((environments.n_envs, 3, descriptor.n_features))
    np.add.at(analytic, environments.pair_envs, sign[:, None, None] * environments.pair_gradients)
    step = 1e-6
    for axis in range(3):
        shifted = []
        for delta in (step, -step):
            moved = atoms.copy()
            moved.positions[moved_atom, axis] += delta
            shifted.append(descriptor.compute(moved, build_neighbor_list(moved, descriptor.cutoff))
                           .features)
        numeric = (shifted[0] - shifted[1]) / (2 * step)
        np.testing.assert_allclose(analytic[:, axis], numeric, rtol=1e-5,
                                   atol=1e-7 * max(np.abs(numeric).max(), 1e-12))


def test_backward_is_the_contraction_of_the_pair_gradients(case):
    upstream = np.random.default_rng(7).normal(size=case.environments.features.shape)
    gradient, expected = checked_backward(case.descriptor.backward(case.atoms, case.nl, upstream),
                                          case.environments, upstream)
    np.testing.assert_allclose(gradient, expected, rtol=1e-12,
                               atol=1e-13 * np.abs(expected).max())


def _quippy_rows_per_descriptor(result, atoms, rows_per_descriptor):
    """{(centre, neighbour images and vectors...): (data, covariance cutoff, gradient rows,
    cutoff gradient rows)} for quippy's 2b (2 rows) and 3b (3 rows) descriptors."""
    table = {}
    # 'ii' (1-based) names the atoms of each descriptor, centre first; its gradient rows
    # follow in that order ('grad_index_0based' does not for distance_2b)
    members = np.asarray(result["ii"]) - 1
    for d in range(len(result["data"])):
        rows = range(rows_per_descriptor * d, rows_per_descriptor * (d + 1))
        centre = members[d, 0]
        key = (int(centre),) + tuple(
            _keyed(centre, atom, result["pos"][r] - result["pos"][rows[0]])[1:]
            for atom, r in zip(members[d, 1:], rows[1:]))
        table[key] = (result["data"][d], result["covariance_cutoff"][d],
                      result["grad_data"][list(rows[1:])],
                      result["grad_covariance_cutoff"][list(rows[1:])])
    return table


def _mine_per_environment(environments, rows_per_env):
    table = {}
    for e in range(environments.n_envs):
        rows = np.flatnonzero(environments.pair_envs == e)
        assert len(rows) == rows_per_env
        centre = environments.center_atoms[e]
        key = (int(centre),) + tuple(_keyed(centre, environments.pair_neighbors[r],
                                            environments.pair_vectors[r])[1:] for r in rows)
        table[key] = (environments.features[e], environments.covariance_cutoff[e],
                      environments.pair_gradients[rows],
                      environments.pair_cutoff_gradients[rows])
    return table


def _compare_tables(mine, expected):
    assert set(mine) == set(expected)
    for key, (features, weight, gradients, weight_gradients) in mine.items():
        ref_features, ref_weight, ref_gradients, ref_weight_gradients = expected[key]
        np.testing.assert_allclose(features, ref_features, rtol=RTOL)
        assert weight == pytest.approx(ref_weight, rel=RTOL, abs=1e-14)
        np.testing.assert_allclose(gradients, ref_gradients, rtol=RTOL, atol=1e-14)
        np.testing.assert_allclose(weight_gradients, ref_weight_gradients, rtol=RTOL,
                                   atol=1e-14)


def _assert_equals_quippy(descriptor, atoms, pair_rows):
    """Every environment of a 2b/3b descriptor (``pair_rows`` pair rows each) has the
    features, covariance cutoff and gradients of quippy's descriptor of the same string."""
    result = _quippy_descriptor(descriptor.quip_string()).calc(atoms, grad=True)
    environments = descriptor.compute(atoms, build_neighbor_list(atoms, descriptor.cutoff),
                                      gradients=True)
    # quippy lists the centre's gradient row too
    _compare_tables(_mine_per_environment(environments, pair_rows),
                    _quippy_rows_per_descriptor(result, atoms, pair_rows + 1))


PAIR_CASES = [
    ("cluster, any species", _water_like, dict(cutoff=4.0, cutoff_transition_width=1.0)),
    ("cluster, H-O", _water_like, dict(cutoff=4.0, Z1=1, Z2=8)),
    ("cluster, O-H, other order", _water_like, dict(cutoff=3.5, Z1=8, Z2=1)),
    ("cluster, H with any", _water_like, dict(cutoff=4.0, Z1=1)),
    ("periodic AlTi", _al_ti, dict(cutoff=5.0, cutoff_transition_width=0.8, Z1=13, Z2=22)),
    ("bcc Mo primitive, self images", lambda: _bcc_mo(False), dict(cutoff=5.0)),
]


@pytest.mark.parametrize("name, make_atoms, settings", PAIR_CASES, ids=[c[0] for c in PAIR_CASES])
def test_distance_2b_equals_quippy(name, make_atoms, settings):
    _assert_equals_quippy(QuipDistance2bDescriptor(**settings), make_atoms(), pair_rows=1)


ANGLE_CASES = [
    ("cluster, any species", _water_like, dict(cutoff=4.0, cutoff_transition_width=1.0)),
    ("cluster, O centre, H-O neighbours", _water_like, dict(cutoff=4.0, Z=8, Z1=1, Z2=8)),
    ("cluster, H-H neighbours", _water_like, dict(cutoff=3.0, Z1=1, Z2=1)),
    ("periodic AlTi, Ti centre", _al_ti, dict(cutoff=4.5, Z=22)),
    ("bcc Mo primitive, self images", lambda: _bcc_mo(False), dict(cutoff=3.5)),
]


@pytest.mark.parametrize("name, make_atoms, settings", ANGLE_CASES,
                         ids=[c[0] for c in ANGLE_CASES])
def test_angle_3b_equals_quippy(name, make_atoms, settings):
    _assert_equals_quippy(QuipAngle3bDescriptor(**settings), make_atoms(), pair_rows=2)


QUIP_STRINGS = [
    ("soap cutoff=5.0 n_max=4 l_max=3 atom_sigma=0.5 n_species=2 species_Z={13 22} Z=13 "
     "n_sparse=100 delta=0.1 covariance_type=dot_product zeta=4 add_species=F", _al_ti),
    ("soap cutoff=4 cutoff_transition_width=1.0 n_max=3 l_max=2 atom_gaussian_width=0.4 "
     "central_weight=0.5 covariance_sigma0=0.1 normalise=F xml_version=1426512068",
     _water_like),
    ("distance_2b cutoff=4.0 cutoff_transition_width=0.8 Z1=8 Z2=1 covariance_type=ard_se "
     "theta_uniform=1.0 n_sparse=20", _water_like),
    ("angle_3b cutoff=3.5 Z=8 Z1=1 Z2=8 delta=0.1", _water_like),
]


@pytest.mark.parametrize("string, make_atoms", QUIP_STRINGS, ids=[s[0].split()[0] + str(i)
                                                                  for i, s in enumerate(QUIP_STRINGS)])
def test_descriptor_from_quip_string_equals_quippy(string, make_atoms):
    atoms = make_atoms()
    descriptor = descriptor_from_quip_string(string)
    reference = _quippy_descriptor(string.split(" n_sparse")[0].split(" covariance_type")[0]
                                   .split(" delta")[0])
    result = reference.calc(atoms)
    environments = descriptor.compute(atoms, build_neighbor_list(atoms, descriptor.cutoff))
    assert environments.n_envs == len(result["data"])
    # the same multiset of descriptor vectors (2b/3b come in a different order)
    ours = environments.features[np.lexsort(environments.features.T[::-1])]
    theirs = result["data"][np.lexsort(result["data"].T[::-1])]
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=RTOL * np.abs(theirs).max())


def test_quip_string_round_trip():
    for descriptor in (QuipSOAPDescriptor([8, 1], 4.0, 3, 2, 0.45, cutoff_transition_width=0.7,
                                          central_weight=0.2, covariance_sigma0=0.1, Z=8,
                                          normalise=False),
                       QuipDistance2bDescriptor(4.5, 0.3, Z1=13, Z2=22),
                       QuipAngle3bDescriptor(3.0, 0.2, Z=22, Z1=13)):
        again = descriptor_from_quip_string(descriptor.quip_string())
        assert type(again) is type(descriptor)
        assert again.quip_string() == descriptor.quip_string()


@pytest.mark.parametrize("string, message", [
    ("soap_turbo l_max=8 alpha_max={8} rcut_hard=5", "descriptor 'soap_turbo' is not supported"),
    ("soap cutoff=5 n_max=4 l_max=3 atom_sigma=0.5 radial_basis=GTO", "radial_basis=GTO"),
    ("soap cutoff=5 n_max=4 l_max=3 atom_sigma=0.5 average=T", "average=True is not supported"),
    ("soap cutoff=5 n_max=4 l_max=3 atom_sigma=0.5 frobnicate=3", "frobnicate not supported"),
    ("soap cutoff=5 n_max=4 l_max=3 atom_sigma=0.5 n_species=2 species_Z={1}",
     "n_species=2 but species_Z lists 1"),
    ("distance_2b cutoff=5 only_intra=T", "only_intra=True is not supported"),
])
def test_descriptor_from_quip_string_refuses_what_it_cannot_represent(string, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        descriptor_from_quip_string(string)

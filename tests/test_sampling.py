"""gapfit.sampling: the requested kinds and counts, the geometry each kind promises, seeds."""
import collections

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from gapfit import sampling
from gapfit.descriptors.soap import SOAPDescriptor


@pytest.fixture(scope="module")
def cu():
    return bulk("Cu", "fcc", a=3.59, cubic=True).repeat((2, 2, 2))


@pytest.fixture(scope="module")
def small_soap():
    return SOAPDescriptor(["Cu"], r_cut=4.0, n_max=4, l_max=3)


def pool_of(cu, seed, **kwargs):
    settings = dict(n_rattled=3, n_volumetric=3, n_shear=2, n_vacancies=2, n_interstitials=2,
                    miller_indices=[(1, 0, 0), (1, 1, 1)], calculator=EMT(),
                    temperatures_K=(100.0, 600.0), n_md_per_temperature=2, random_state=seed)
    settings.update(kwargs)
    return sampling.candidate_pool(cu, **settings)


def test_pool_has_the_requested_kinds_and_counts(cu):
    pool = pool_of(cu, seed=3)
    counts = collections.Counter(atoms.info["config_type"] for atoms in pool)
    assert counts == {"rattled": 3, "volumetric": 3, "shear": 2, "vacancy": 2, "interstitial": 2,
                      "surface_100": 1, "surface_111": 1, "md_100K": 2, "md_600K": 2}
    assert all(atoms.calc is None for atoms in pool)
    sizes = {kind: {len(atoms) for atoms in pool if atoms.info["config_type"] == kind} for kind in counts}
    assert sizes["vacancy"] == {len(cu) - 1} and sizes["interstitial"] == {len(cu) + 1}
    assert sizes["rattled"] == sizes["shear"] == sizes["md_600K"] == {len(cu)}


def test_same_seed_same_structures_other_seed_other_structures(cu):
    few_md = dict(temperatures_K=(300.0,), n_md_per_temperature=1)
    first, again, other = (pool_of(cu, 7, **few_md), pool_of(cu, 7, **few_md),
                           pool_of(cu, 8, **few_md))
    assert len(first) == len(again) == len(other)
    for a, b in zip(first, again):
        assert a.info["config_type"] == b.info["config_type"]
        np.testing.assert_array_equal(a.positions, b.positions)
        np.testing.assert_array_equal(a.cell.array, b.cell.array)
        np.testing.assert_array_equal(a.numbers, b.numbers)
    moved = [not np.array_equal(a.positions, b.positions) for a, b in zip(first, other)
             if len(a) == len(b) and not a.info["config_type"].startswith("surface")]
    assert all(moved)


def test_strains_rattles_and_defects_have_the_promised_geometry(cu):
    volume = cu.get_volume()
    volumetric = sampling.volumetric_strained(cu, 5, max_strain=0.04)
    strains = [atoms.info["strain"] for atoms in volumetric]
    np.testing.assert_allclose(strains, np.linspace(-0.04, 0.04, 5))
    np.testing.assert_allclose([atoms.get_volume() / volume for atoms in volumetric],
                               (1 + np.array(strains)) ** 3, rtol=1e-12)

    for atoms in sampling.shear_strained(cu, 4, max_strain=0.03, random_state=0):
        voigt = atoms.info["strain"]
        assert np.all(voigt[:3] == 0) and np.all(np.abs(voigt[3:]) <= 0.03)
        assert abs(atoms.get_volume() / volume - 1) < 3 * 0.03 ** 2  # volume kept to first order
        np.testing.assert_allclose(np.linalg.solve(cu.cell.array, atoms.cell.array),
                                   np.linalg.solve(cu.cell.array, atoms.cell.array).T, atol=1e-12)

    rattled = sampling.rattled(cu, 2, stdev=0.1, random_state=0)
    displacement = rattled[0].positions - cu.positions
    assert 0.07 < displacement.std() < 0.13
    assert not np.allclose(rattled[0].positions, rattled[1].positions)

    removed = [tuple(atoms.info["removed"]) for atoms in sampling.vacancies(cu, 6, random_state=0)]
    assert len(set(removed)) == 6

    for atoms in sampling.interstitials(cu, 3, random_state=0):
        # the emptiest point of fcc is the octahedral site, a/2 = 1.80 Å from its neighbours
        assert 1.5 < atoms.info["nearest_distance"] <= 3.59 / 2 + 1e-9
        distances = atoms.get_distances(len(atoms) - 1, range(len(atoms) - 1), mic=True)
        assert distances.min() == pytest.approx(atoms.info["nearest_distance"])


def test_surfaces_are_slabs_with_vacuum_along_the_normal(cu):
    unit = bulk("Cu", "fcc", a=3.59, cubic=True)
    for slab in sampling.surfaces(unit, [(1, 0, 0), (1, 1, 0), (1, 1, 1)], layers=4, vacuum=6.0):
        normal = np.cross(slab.cell[0], slab.cell[1])
        normal /= np.linalg.norm(normal)
        heights = slab.positions @ normal
        thickness = abs(slab.cell[2] @ normal)
        assert thickness - (heights.max() - heights.min()) == pytest.approx(12.0, abs=1e-6)
        assert slab.pbc.all()
    with pytest.raises(ValueError, match="Miller"):
        sampling.surfaces(unit, [(0, 0, 0)])


def test_md_snapshots_get_hotter_with_temperature(cu):
    snapshots = sampling.md_snapshots(cu, EMT(), temperatures_K=(30.0, 900.0), n_per_temperature=3,
                                      interval=10, equilibration_steps=60, random_state=0)
    assert [atoms.info["config_type"] for atoms in snapshots] == ["md_30K"] * 3 + ["md_900K"] * 3
    times = [atoms.info["time_ps"] for atoms in snapshots[:3]]
    assert times == sorted(times) and len(set(times)) == 3

    def displacement(atoms):  # mean-square displacement from the ideal lattice, Å²
        delta = atoms.positions - cu.positions
        delta -= delta.mean(axis=0)
        return np.mean(np.sum(delta ** 2, axis=1))

    cold = np.mean([displacement(atoms) for atoms in snapshots[:3]])
    hot = np.mean([displacement(atoms) for atoms in snapshots[3:]])
    assert hot > 5 * cold


def test_farthest_point_keeps_distinct_structures_not_duplicates(cu, small_soap):
    base = cu.copy()
    distinct = (sampling.volumetric_strained(cu, 2, max_strain=0.05)
                + sampling.shear_strained(cu, 1, random_state=0) + sampling.vacancies(cu, 1, random_state=0))
    pool = [base.copy() for _ in range(5)] + distinct
    kept, indices = sampling.farthest_point(pool, 5, descriptor=small_soap, return_indices=True)
    assert len(kept) == 5 and len(set(indices.tolist())) == 5
    # four distinct structures plus one copy of the duplicated one: never two copies
    assert sum(int(i) < 5 for i in indices) == 1
    assert set(range(5, 9)) <= set(indices.tolist())
    again = sampling.farthest_point(pool, 5, descriptor=small_soap, return_indices=True)[1]
    np.testing.assert_array_equal(indices, again)


def test_farthest_point_indices_match_a_brute_force_greedy_choice():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(30, 4))
    chosen = sampling.farthest_point_indices(points, 6, first=0)
    expected = [0]
    for _ in range(5):
        distance = [min(np.linalg.norm(points[i] - points[j]) for j in expected) for i in range(30)]
        expected.append(int(np.argmax(distance)))
    assert chosen.tolist() == expected


def test_bad_requests_name_the_problem(cu):
    with pytest.raises(ValueError, match="cannot remove"):
        sampling.vacancies(bulk("Cu"), 1)
    with pytest.raises(ValueError, match="cannot keep"):
        sampling.farthest_point_indices(np.zeros((3, 2)), 4)
    with pytest.raises(ValueError, match="integer"):
        sampling.rattled(cu, -1)
    molecule = bulk("Cu")
    molecule.pbc = False
    with pytest.raises(ValueError, match="periodic"):
        sampling.volumetric_strained(molecule, 2)

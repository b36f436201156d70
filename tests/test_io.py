"""gapfit.io: extended XYZ round trips, label keys, virial → stress, mlearn JSON, data files."""
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from gapfit import io
from gapfit.structures import voigt
from gapfit.structures.neighbors import build_neighbor_list

DATA = Path(__file__).resolve().parents[1] / "data"


def emt_labelled(atoms, stress=True):
    """``atoms`` with EMT energy, forces (and stress) on a SinglePointCalculator."""
    atoms.calc = EMT()
    results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
    if stress:
        results["stress"] = atoms.get_stress()
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def strained_alloy(seed):
    rng = np.random.default_rng(seed)
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 2, 2))
    atoms.set_chemical_symbols(rng.choice(["Cu", "Au"], size=len(atoms)))
    strain = 0.03 * rng.standard_normal((3, 3))
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.5 * (strain + strain.T)), scale_atoms=True)
    atoms.positions += 0.1 * rng.standard_normal(atoms.positions.shape)
    return emt_labelled(atoms)


def assert_same_structure(read_back, original):
    assert read_back.get_chemical_symbols() == original.get_chemical_symbols()
    assert np.array_equal(read_back.positions, original.positions)
    assert np.array_equal(read_back.cell.array, original.cell.array)
    assert np.array_equal(read_back.pbc, original.pbc)
    for got, expected in zip(io.labels(read_back), io.labels(original)):
        if expected is None:
            assert got is None
        else:
            assert np.array_equal(got, expected)


# ----------------------------------------------------------------------------- write / read
def test_write_then_read_gives_identical_numbers(tmp_path):
    alloy = strained_alloy(0)
    alloy.info.update(config_type="md_300K", weight=0.25, note="two words")
    alloy.set_array("tags", np.arange(len(alloy)))
    alloy.set_momenta(np.random.default_rng(1).standard_normal((len(alloy), 3)))
    water = emt_labelled(molecule("H2O"), stress=False)  # no cell, no stress
    slab = emt_labelled(bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 1)), stress=False)
    slab.pbc = (True, True, False)
    unlabelled = bulk("Au", "fcc", a=4.1)
    originals = [alloy, water, slab, unlabelled]
    path = tmp_path / "round_trip.xyz"
    io.write(path, originals)

    read_back = io.read(path)
    assert len(read_back) == len(originals)
    for got, expected in zip(read_back, originals):
        assert_same_structure(got, expected)
    assert read_back[0].info == {"config_type": "md_300K", "weight": 0.25, "note": "two words"}
    assert np.array_equal(read_back[0].arrays["tags"], np.arange(len(alloy)))
    assert np.array_equal(read_back[0].get_momenta(), alloy.get_momenta())
    assert read_back[3].calc is None
    # labels are usable through ASE's own interface too
    assert np.array_equal(read_back[0].get_forces(), alloy.calc.results["forces"])


def test_write_twice_gives_the_same_file(tmp_path):
    structures = [strained_alloy(seed) for seed in range(3)]
    io.write(tmp_path / "a.xyz", structures)
    io.write(tmp_path / "b.xyz", io.read(tmp_path / "a.xyz"))
    assert (tmp_path / "a.xyz").read_text() == (tmp_path / "b.xyz").read_text()


def test_labels_come_from_a_single_point_calculator_only(tmp_path):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.05, seed=2)
    atoms.calc = EMT()
    assert io.labels(atoms) == (None, None, None)  # a model's predictions are not labels
    io.write(tmp_path / "emt.xyz", [atoms])
    assert io.labels(io.read(tmp_path / "emt.xyz")[0]) == (None, None, None)

    stress_matrix = np.array([[1.0, 0.6, 0.5], [0.6, 2.0, 0.4], [0.5, 0.4, 3.0]])
    atoms.calc = SinglePointCalculator(atoms, energy=-1.5, forces=np.ones((4, 3)), stress=stress_matrix)
    energy, forces, stress = io.labels(atoms)
    assert energy == -1.5 and forces.shape == (4, 3)
    assert np.array_equal(stress, [1.0, 2.0, 3.0, 0.4, 0.5, 0.6])  # Voigt xx yy zz yz xz xy


def test_voigt_conversions_are_inverse():
    vector = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    matrix = voigt.matrix_from_voigt(vector)
    assert matrix[1, 2] == 4.0 and matrix[0, 2] == 5.0 and matrix[0, 1] == 6.0
    assert np.array_equal(voigt.voigt_from_matrix(matrix), vector)


# ----------------------------------------------------------------------------- keys
GAP_STYLE = """2
Lattice="4 0 0 0 4 0 0 0 5" Properties=species:S:1:pos:R:3:dft_forces:R:3:forces:R:3 \
dft_energy=-3.5 energy=-1.0 dft_virial="1 0.5 0 0.5 2 0 0 0 3" config_type=bulk pbc="T T T"
Cu 0 0 0 0.1 0.2 0.3 9 9 9
Cu 2 2 2 -0.1 -0.2 -0.3 9 9 9
2
Lattice="4 0 0 0 4 0 0 0 5" Properties=species:S:1:pos:R:3:dft_forces:R:3 \
dft_energy=-3.6 config_type=strained pbc="T T T"
Cu 0 0 0 0.1 0.2 0.3
Cu 2 2 2.1 -0.1 -0.2 -0.3
"""


def test_explicit_keys_read_reference_labels_not_the_model_ones(tmp_path):
    path = tmp_path / "gap.xyz"
    path.write_text(GAP_STYLE)
    first = io.read(path, index=0, energy_key="dft_energy", forces_key="dft_forces",
                    virial_key="dft_virial")[0]
    energy, forces, stress = io.labels(first)
    assert energy == -3.5
    assert np.array_equal(forces, [[0.1, 0.2, 0.3], [-0.1, -0.2, -0.3]])
    # stress = -virial / volume, volume 4·4·5 = 80 Å³, Voigt xx yy zz yz xz xy
    assert np.allclose(stress, -np.array([1.0, 2.0, 3.0, 0.0, 0.0, 0.5]) / 80.0, rtol=0, atol=1e-15)
    assert first.info["config_type"] == "bulk"
    assert "dft_energy" not in first.info and "dft_forces" not in first.arrays

    # default keys: what ASE attached, here a model's energy and forces
    energy, forces, stress = io.labels(io.read(path)[0])
    assert energy == -1.0 and np.all(forces == 9.0) and stress is None


def test_explicit_standard_keys_are_found_after_ase_moved_them(tmp_path):
    structures = [strained_alloy(3)]
    io.write(tmp_path / "standard.xyz", structures)
    read_back = io.read(tmp_path / "standard.xyz", energy_key="energy", forces_key="forces",
                        stress_key="stress")
    assert_same_structure(read_back[0], structures[0])


@pytest.mark.parametrize("index", [":", "1:", 1, -1])
def test_missing_explicit_key_names_file_configuration_and_key(tmp_path, index):
    path = tmp_path / "gap.xyz"
    path.write_text(GAP_STYLE)
    with pytest.raises(ValueError) as error:
        io.read(path, index=index, energy_key="dft_energy", virial_key="dft_virial")
    message = str(error.value)
    assert str(path) in message and "configuration 1:" in message and "'dft_virial'" in message


def test_missing_default_keys_are_not_an_error(tmp_path):
    path = tmp_path / "gap.xyz"
    path.write_text(GAP_STYLE)
    second = io.read(path, index=1)[0]
    assert io.labels(second) == (None, None, None)
    assert "dft_energy" in second.info  # untouched when not asked for


def test_stress_and_virial_keys_are_exclusive(tmp_path):
    with pytest.raises(ValueError, match="stress_key or virial_key"):
        io.read(tmp_path / "any.xyz", stress_key="s", virial_key="v")


def emt_virial_file(tmp_path, atoms, form):
    """A file with EMT energy/forces and the virial (eV) in one of three layouts."""
    energy, forces, stress = io.labels(atoms)
    virial = -voigt.matrix_from_voigt(stress) * atoms.get_volume()
    plain = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell, pbc=True)
    plain.arrays["ref_forces"] = forces
    plain.info["ref_energy"] = energy
    if form == "3x3":
        plain.info["virial"] = virial  # ASE's special 3×3 key
    elif form == "9":
        plain.info["ref_virial"] = virial.ravel()
    else:
        plain.info["ref_virial"] = voigt.voigt_from_matrix(virial)
    path = tmp_path / f"virial_{form}.xyz"
    io.write(path, [plain])
    return path, "virial" if form == "3x3" else "ref_virial"


@pytest.mark.parametrize("form", ["3x3", "9", "6"])
def test_virial_becomes_the_stress_emt_computes(tmp_path, form):
    atoms = strained_alloy(4)
    path, key = emt_virial_file(tmp_path, atoms, form)
    read_back = io.read(path, energy_key="ref_energy", forces_key="ref_forces", virial_key=key)[0]
    stress = io.labels(read_back)[2]
    assert np.allclose(stress, atoms.calc.results["stress"], rtol=1e-12, atol=1e-15)


def test_default_virial_key_is_converted_too(tmp_path):
    atoms = strained_alloy(5)
    path, _ = emt_virial_file(tmp_path, atoms, "3x3")
    stress = io.labels(io.read(path)[0])[2]
    assert np.allclose(stress, atoms.calc.results["stress"], rtol=1e-12, atol=1e-15)


def test_virial_on_a_non_periodic_structure_is_an_error(tmp_path):
    path = tmp_path / "molecule.xyz"
    path.write_text('2\nProperties=species:S:1:pos:R:3 e=1.0 v="1 0 0 0 1 0 0 0 1" pbc="F F F"\n'
                    "H 0 0 0\nH 0 0 0.74\n")
    with pytest.raises(ValueError, match=r"configuration 0: virial key 'v'.*not periodic"):
        io.read(path, energy_key="e", virial_key="v")


def test_unreadable_file_error_names_the_file(tmp_path):
    path = tmp_path / "broken.xyz"
    path.write_text("3\ncomment\nCu 0 0 0\n")
    with pytest.raises(ValueError, match="broken.xyz"):
        io.read(path)


# ----------------------------------------------------------------------------- mlearn
@pytest.fixture(scope="module")
def mlearn_sets(mlearn_dir):
    return {element: io.read_mlearn(mlearn_dir / f"{element}_train.json") for element in ("Mo", "Si")}


def test_read_mlearn_mo_training_set(mlearn_dir, mlearn_sets):
    structures = mlearn_sets["Mo"]
    assert len(structures) == 194
    assert sum(len(atoms) for atoms in structures) == 10087
    assert Counter(atoms.info["config_type"] for atoms in structures) == {
        "AIMD-NVT": 108, "Elastic": 56, "Vacancy": 21, "Surface": 9}
    assert all(atoms.pbc.all() for atoms in structures)
    entries = json.loads((mlearn_dir / "Mo_train.json").read_text())
    for atoms, entry in zip(structures[::40], entries[::40]):
        energy, forces, stress = io.labels(atoms)
        assert energy == entry["outputs"]["energy"]
        assert np.array_equal(forces, entry["outputs"]["forces"])
        assert np.array_equal(atoms.cell.array, entry["structure"]["lattice"]["matrix"])
        # the diagonal needs no reordering: xx, yy, zz in both conventions
        assert np.allclose(stress[:3], -np.array(entry["outputs"]["virial_stress"][:3]) * io.KBAR)


def reference_volume(elastic):
    """Volume per atom (Å³) of the unstrained crystal: the median of the Elastic set, whose
    strains come in ± pairs around it and whose shears keep it."""
    return float(np.median([atoms.get_volume() / len(atoms) for atoms in elastic]))


@pytest.mark.parametrize("element", ["Mo", "Si"])
def test_mlearn_compressed_cells_have_negative_ase_stress(mlearn_sets, element):
    """Compressed → positive pressure → negative trace of the ASE stress (and the reverse)."""
    structures = mlearn_sets[element]
    elastic = [a for a in structures if a.info["config_type"] == "Elastic"]
    volume0 = reference_volume(elastic)
    checked = 0
    for atoms in elastic:
        change = atoms.get_volume() / len(atoms) / volume0 - 1.0
        if abs(change) < 0.01:  # shears keep the volume; second-order stresses only
            continue
        trace = io.labels(atoms)[2][:3].sum()
        assert np.sign(trace) == np.sign(change), (change, trace)
        checked += 1
    assert checked >= 20


def shear_strain(cell):
    """Off-diagonal (yz, xz, xy) of the symmetric small strain of a nearly cubic cell."""
    length = np.mean(np.linalg.norm(cell, axis=1))
    symmetric = 0.5 * (cell + cell.T) / length
    return np.array([symmetric[1, 2], symmetric[0, 2], symmetric[0, 1]])


@pytest.mark.parametrize("element", ["Mo", "Si"])
def test_mlearn_shear_stress_follows_the_shear_strain(mlearn_sets, element):
    """Cubic crystals: a yz (xz, xy) shear strain gives a yz (xz, xy) shear stress of the same sign."""
    checked = 0
    for atoms in mlearn_sets[element]:
        strain = shear_strain(atoms.cell.array)
        if atoms.info["config_type"] != "Elastic" or np.abs(strain).max() < 0.005:
            continue
        shear_stress = io.labels(atoms)[2][3:]
        component = np.argmax(np.abs(strain))
        assert np.argmax(np.abs(shear_stress)) == component
        assert np.sign(shear_stress[component]) == np.sign(strain[component])
        checked += 1
    assert checked >= 25  # three shear modes at several strains


def pair_basis(distances, cutoff=5.0):
    """Gaussians times a cosine cutoff, and their derivatives (eV per unit coefficient)."""
    centers = np.linspace(1.8, 4.8, 16)
    gauss = np.exp(-((distances[:, None] - centers) / 0.25) ** 2)
    smooth = 0.5 * (1 + np.cos(np.pi * distances / cutoff))
    d_smooth = -0.5 * np.pi / cutoff * np.sin(np.pi * distances / cutoff)
    d_gauss = -2 * gauss * (distances[:, None] - centers) / 0.25 ** 2
    return d_gauss * smooth[:, None] + gauss * d_smooth[:, None]


@pytest.mark.parametrize("element", ["Mo", "Si"])
def test_mlearn_md_shear_stresses_match_a_pair_model_fitted_to_forces(mlearn_sets, element):
    """The order of the off-diagonal stresses outside the Elastic group, checked physically.

    A pair potential fitted to the forces alone predicts shear stresses that
    correlate strongly with the labels when their components are in the right
    order (and not at all when yz and xz are swapped).
    """
    structures = [a for a in mlearn_sets[element] if a.info["config_type"] != "Elastic"][::2]
    force_rows, force_labels, stress_rows, stress_labels = [], [], [], []
    for atoms in structures:
        pairs = build_neighbor_list(atoms, 5.0)
        d_basis = pair_basis(pairs.distances)
        unit = pairs.vectors / pairs.distances[:, None]
        rows = np.zeros((len(atoms), 3, d_basis.shape[1]))
        np.add.at(rows, pairs.centers, unit[:, :, None] * d_basis[:, None, :])
        force_rows.append(rows.reshape(-1, d_basis.shape[1]))
        force_labels.append(io.labels(atoms)[1].ravel())
        # ASE stress = (1/V) ∂E/∂ε = (1/2V) Σ_pairs φ'(r) d_a d_b / r over the full list
        strain_derivative = 0.5 * np.einsum("pk,pa,pb->abk", d_basis, unit, pairs.vectors)
        stress_rows.append(strain_derivative[[1, 0], [2, 2]] / atoms.get_volume())  # yz, xz
        stress_labels.append(io.labels(atoms)[2][[3, 4]])
    coefficients = np.linalg.lstsq(np.vstack(force_rows), np.concatenate(force_labels), rcond=None)[0]
    predicted = np.array([rows @ coefficients for rows in stress_rows])
    labelled = np.array(stress_labels)
    for component in range(2):
        assert np.corrcoef(predicted[:, component], labelled[:, component])[0, 1] > 0.7
        assert abs(np.corrcoef(predicted[:, component], labelled[:, 1 - component])[0, 1]) < 0.3


def test_read_mlearn_order_can_be_forced(mlearn_dir, mlearn_sets):
    forced = io.read_mlearn(mlearn_dir / "Mo_train.json", virial_order="xx yy zz xy yz xz")
    default_stress, forced_stress = io.labels(mlearn_sets["Mo"][0])[2], io.labels(forced[0])[2]
    assert np.array_equal(forced_stress[[0, 1, 2, 3, 4, 5]], default_stress[[0, 1, 2, 4, 3, 5]])
    with pytest.raises(ValueError, match="six components"):
        io.read_mlearn(mlearn_dir / "Mo_train.json", virial_order="xx yy zz xy xy xz")


def test_read_mlearn_rejects_other_files(tmp_path):
    not_json = tmp_path / "structures.xyz"
    not_json.write_text("2\n\nH 0 0 0\nH 0 0 1\n")
    with pytest.raises(ValueError, match="structures.xyz: not an mlearn JSON file"):
        io.read_mlearn(not_json)
    a_dict = tmp_path / "dict.json"
    a_dict.write_text('{"structure": {}}')
    with pytest.raises(ValueError, match="dict.json: not an mlearn JSON file"):
        io.read_mlearn(a_dict)
    bad_entry = tmp_path / "bad.json"
    bad_entry.write_text('[{"structure": {"sites": [], "lattice": {"matrix": '
                         '[[1,0,0],[0,1,0],[0,0,1]]}}}]')
    with pytest.raises(ValueError, match=r"bad.json: configuration 0: .*'outputs'"):
        io.read_mlearn(bad_entry)


# ----------------------------------------------------------------------------- data files
DATA_SETS = {"cu": ((60, 20), {"Cu"}), "cuau": ((60, 20), {"Cu", "Au"}),
             "cuagau": ((40, 15), {"Cu", "Ag", "Au"})}
KINDS = {"md_300K", "md_800K", "md_1400K", "volumetric", "shear", "vacancy", "rattled"}


@pytest.mark.parametrize("system", sorted(DATA_SETS))
def test_project_data_files_hold_emt_labels(system):
    counts, species = DATA_SETS[system]
    for split, count in zip(("train", "test"), counts):
        structures = io.read(DATA / f"{system}_{split}.xyz")
        assert len(structures) == count
        assert {a.info["config_type"] for a in structures} == KINDS
        assert set().union(*(a.get_chemical_symbols() for a in structures)) == species
        for atoms in structures:
            expected_size = 31 if atoms.info["config_type"] == "vacancy" else 32
            assert len(atoms) == expected_size and atoms.pbc.all()
        # one configuration of each kind relabelled by EMT now
        for kind in sorted(KINDS):
            atoms = next(a for a in structures if a.info["config_type"] == kind)
            energy, forces, stress = io.labels(atoms)
            fresh = atoms.copy()
            fresh.calc = EMT()
            assert energy == pytest.approx(fresh.get_potential_energy(), abs=1e-9)
            assert np.abs(forces - fresh.get_forces()).max() <= 5.01e-5  # rounded to 1e-4 eV/Å
            assert np.allclose(stress, fresh.get_stress(), rtol=1e-9, atol=1e-12)


def test_compressed_data_cells_have_negative_stress():
    structures = io.read(DATA / "cu_train.xyz")
    volumetric = [a for a in structures if a.info["config_type"] == "volumetric"]
    volume0 = 3.59 ** 3 / 4  # Å³ per atom at EMT's lattice constant
    for atoms in volumetric:
        change = atoms.get_volume() / len(atoms) / volume0 - 1.0
        if abs(change) > 0.01:
            assert np.sign(io.labels(atoms)[2][:3].sum()) == np.sign(change)

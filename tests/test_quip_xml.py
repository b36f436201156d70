"""gap_fit XML models: reading, writing, and the prediction formula against quippy.

Models are fitted by gap_fit inside the tests on a few configurations of data/; features
come from quippy's own ``Descriptor`` (a black box, benchmarks/_quip_features.py),
everything else from the parsed record (``gapfit.quip_xml``) and ``gapfit.quip_kernels``.
The file-format and kernel tests need neither quippy nor gap_fit.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

from gapfit.gp.quip_kernels import QuipARDSE, QuipDotProduct, QuipPP, local_energies
from gapfit.model.quip_xml import (QuipCoordinate, QuipModel, QuipModelError, parse_descriptor_string,
                             read_gap_xml, write_gap_xml)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _quip_reference  # noqa: E402
from benchmarks._quip_features import (RECIPES, fit_gap_fit, fresh_structures,  # noqa: E402
                                       quippy_prediction, record_prediction)

needs_quip = pytest.mark.skipif(
    not _quip_reference.have_quip(),
    reason="quippy-ase (gap_fit, quippy) is not installed; it is an optional test extra: "
    "pip install quippy-ase",
)


@pytest.fixture(scope="module", params=list(RECIPES))
def fitted(request, tmp_path_factory):
    data_name, terms, extra = RECIPES[request.param]
    path = fit_gap_fit(tmp_path_factory.mktemp("gap_fit"), data_name, terms, extra)
    return request.param, data_name, path


def assert_same_prediction(ours, reference, rtol=1e-8):
    energy, forces, stress = ours
    ref_energy, ref_forces, ref_stress = reference
    assert abs(energy - ref_energy) <= rtol * abs(ref_energy), (energy, ref_energy)
    assert np.max(np.abs(forces - ref_forces)) <= rtol * np.max(np.abs(ref_forces))
    assert np.max(np.abs(stress - ref_stress)) <= rtol * np.max(np.abs(ref_stress))


# ---------------------------------------------------------------------------------------
# gap_fit models read and evaluated


@needs_quip
def test_gap_fit_model_read_and_evaluated_equals_quippy_potential(fitted):
    name, data_name, path = fitted
    model = read_gap_xml(path)
    assert model.coordinates
    for atoms in fresh_structures(data_name):
        assert_same_prediction(record_prediction(model, atoms), quippy_prediction(path, atoms))


@needs_quip
def test_gap_fit_records_what_was_asked(fitted):
    name, data_name, path = fitted
    model = read_gap_xml(path)
    by_name = {}
    for coordinate in model.coordinates:
        by_name.setdefault(coordinate.name, []).append(coordinate)
    species = (29, 79) if data_name == "cuau" else (29,)
    assert len(by_name["distance_2b"]) == len(species) * (len(species) + 1) // 2
    soap = by_name["soap"]
    assert sorted(int(c.settings["Z"]) for c in soap) == list(species)
    for coordinate in soap:
        assert coordinate.covariance_type == "dot_product" and coordinate.theta is None
        assert coordinate.signal_variance == pytest.approx(0.1)  # the file keeps δ, not δ²
    if name == "cuau 2b+soap":
        assert model.e0[29] == -0.25 and model.e0[79] == -0.75
    if name == "pp+mean+sigma0":
        kinds = {c.name: (c.covariance_type, c.signal_mean) for c in model.coordinates}
        assert kinds["distance_2b"] == ("pp", pytest.approx(0.2))
        assert kinds["angle_3b"] == ("pp", pytest.approx(0.05))
        assert all(c.sparse_points[:, -1] == pytest.approx(0.3) for c in soap)


@needs_quip
def test_written_model_loads_in_quippy_and_gives_the_record_numbers(fitted, tmp_path):
    name, data_name, path = fitted
    model = read_gap_xml(path)
    # change the record so the written file cannot be a copy of gap_fit's
    model.label = "GAP_written_by_gapfit"
    model.e0 = {z: value - 0.1 * z / 29 for z, value in model.e0.items() if value != 0.0}
    for index, coordinate in enumerate(model.coordinates):
        coordinate.label = f"GAP_written_by_gapfit{index + 1}"
        coordinate.alpha = coordinate.alpha * (1.0 + 0.1 * np.cos(np.arange(coordinate.n_sparse)))
    written = write_gap_xml(model, tmp_path / "exported.xml")
    for atoms in fresh_structures(data_name):
        ours = record_prediction(model, atoms)
        assert_same_prediction(quippy_prediction(written, atoms), ours)
    # the initialisation string LAMMPS pair_style quip passes (pair_coeff * * file "..." Z)
    assert_same_prediction(quippy_prediction(written, atoms, f"Potential xml_label={model.label}"),
                           ours)


@needs_quip
def test_gap_fit_model_export_read_export_is_byte_identical(fitted, tmp_path):
    name, data_name, path = fitted
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = write_gap_xml(read_gap_xml(path), tmp_path / "one" / "model.xml")
    second = write_gap_xml(read_gap_xml(first), tmp_path / "two" / "model.xml")
    names = sorted(p.name for p in first.parent.iterdir())
    assert names == sorted(p.name for p in second.parent.iterdir())
    assert len(names) == 1 + len(read_gap_xml(path).coordinates)
    for filename in names:
        assert (first.parent / filename).read_bytes() == (second.parent / filename).read_bytes()


# ---------------------------------------------------------------------------------------
# file format without quippy


def synthetic_model(rng=None):
    """A record with one coordinate of every supported kernel, random numbers."""
    rng = np.random.default_rng(0) if rng is None else rng
    soap = rng.normal(size=(6, 11))
    soap /= np.linalg.norm(soap, axis=1, keepdims=True)
    coordinates = [
        QuipCoordinate(
            label="M1", descriptor="distance_2b cutoff=4.0 covariance_type=ard_se Z1=29 Z2=29",
            name="distance_2b", settings={}, covariance_type="ard_se", signal_variance=0.5,
            signal_mean=0.1, zeta=None, theta=np.array([0.7]),
            sparse_points=rng.uniform(2, 4, size=(5, 1)), alpha=rng.normal(size=5),
            sparse_cutoff=rng.uniform(0.2, 1, size=5), permutations=np.array([[0]])),
        QuipCoordinate(
            label="M2", descriptor="angle_3b cutoff=3.0 covariance_type=pp Z=29 Z1=29 Z2=29",
            name="angle_3b", settings={}, covariance_type="pp", signal_variance=0.1,
            signal_mean=0.0, zeta=None, theta=np.array([1.9, 0.8, 5.1]),
            sparse_points=rng.uniform(0, 5, size=(4, 3)), alpha=rng.normal(size=4),
            sparse_cutoff=np.ones(4), permutations=np.array([[0, 1, 2]])),
        QuipCoordinate(
            label="M3", descriptor="soap n_max=2 l_max=1 cutoff=4.0 atom_sigma=0.5 n_species=1 "
            "Z=29 species_Z={29 }", name="soap", settings={}, covariance_type="dot_product",
            signal_variance=0.1, signal_mean=0.0, zeta=2.0, theta=None,
            sparse_points=np.hstack([soap[:, :-1], np.zeros((6, 1))]), alpha=rng.normal(size=6),
            sparse_cutoff=np.ones(6), permutations=np.array([[0]])),
    ]
    for coordinate in coordinates:
        coordinate.name, coordinate.settings = parse_descriptor_string(coordinate.descriptor)
    return QuipModel(label="GAP_synthetic", gap_version=1769700636, e0={29: -0.123456789},
                     coordinates=coordinates)


def test_write_read_keeps_every_number_exactly_and_rewrites_identical_bytes(tmp_path):
    model = synthetic_model()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    path = write_gap_xml(model, tmp_path / "a" / "m.xml")
    back = read_gap_xml(path)
    assert back.label == model.label and back.gap_version == model.gap_version
    assert back.e0[29] == model.e0[29] and back.e0[1] == 0.0 and len(back.e0) == 118
    for ours, theirs in zip(model.coordinates, back.coordinates):
        for field in ("label", "descriptor", "name", "covariance_type", "signal_variance",
                      "signal_mean", "zeta"):
            assert getattr(ours, field) == getattr(theirs, field), field
        assert theirs.settings == ours.settings
        for field in ("sparse_points", "alpha", "sparse_cutoff", "permutations"):
            np.testing.assert_array_equal(getattr(theirs, field), getattr(ours, field))
        if ours.theta is not None:
            np.testing.assert_array_equal(theirs.theta, ours.theta)
    again = write_gap_xml(back, tmp_path / "b" / "m.xml")
    for filename in sorted(p.name for p in path.parent.iterdir()):
        assert (path.parent / filename).read_bytes() == (again.parent / filename).read_bytes()
    # sparseX: one %.20e number a line, md5 in the XML
    sparse = (path.parent / "m.xml.sparseX.M3").read_text().splitlines()
    assert len(sparse) == 6 * 11 and all(len(line.split("e")[0]) == 22 for line in sparse
                                         if not line.startswith("-"))


def test_writing_is_atomic_a_failed_write_leaves_the_old_files(tmp_path):
    model = synthetic_model()
    path = write_gap_xml(model, tmp_path / "m.xml")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    broken = synthetic_model()
    broken.coordinates[2].alpha = broken.coordinates[2].alpha[:-1]  # inconsistent record
    with pytest.raises(ValueError, match="alpha"):
        write_gap_xml(broken, path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp files either


def _one_line_error(path, *fragments):
    with pytest.raises(QuipModelError) as caught:
        read_gap_xml(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def test_corrupted_sparse_file_is_an_md5_error_naming_the_file(tmp_path):
    path = write_gap_xml(synthetic_model(), tmp_path / "m.xml")
    sparse = tmp_path / "m.xml.sparseX.M1"
    text = sparse.read_text()
    sparse.write_text(text.replace(text[3], "9" if text[3] != "9" else "8", 1))
    _one_line_error(path, "md5", str(sparse))


def test_missing_sparse_file_is_an_error_naming_the_file(tmp_path):
    path = write_gap_xml(synthetic_model(), tmp_path / "m.xml")
    (tmp_path / "m.xml.sparseX.M2").unlink()
    _one_line_error(path, "missing", "m.xml.sparseX.M2")


@pytest.mark.parametrize("descriptor, construct", [
    ("soap_turbo l_max=8 alpha_max={8} rcut_hard=5.0", "soap_turbo"),
    ("bispectrum_so4 cutoff=4.0", "bispectrum_so4"),
    ("soap n_max=2 l_max=1 cutoff=4.0 atom_sigma=0.5 compress_file=c.dat Z=29", "compressed SOAP"),
    ("soap n_max=2 l_max=1 cutoff=4.0 atom_sigma=0.5 Z_mix=T Z=29", "compressed SOAP"),
])
def test_unsupported_descriptor_is_refused_naming_it(tmp_path, descriptor, construct):
    path = write_gap_xml(synthetic_model(), tmp_path / "m.xml")
    text = path.read_text()
    original = synthetic_model().coordinates[2].descriptor
    path.write_text(text.replace(original, descriptor))
    _one_line_error(path, construct)


def test_unsupported_kernel_core_potential_and_glue_are_refused(tmp_path):
    path = write_gap_xml(synthetic_model(), tmp_path / "m.xml")
    text = path.read_text()
    path.write_text(text.replace('covariance_type="2"', 'covariance_type="3"'))
    _one_line_error(path, "bond_real_space")
    path.write_text(text.replace('covariance_type="2"', 'covariance_type="7"'))
    _one_line_error(path, "covariance_type=7")
    path.write_text(text.replace('do_core="F"', 'do_core="T"'))
    _one_line_error(path, "core potential")
    glue = text.replace('init_args="IP GAP label=GAP_synthetic"',
                        'init_args="Sum init_args_pot1={IP Glue} init_args_pot2={IP GAP '
                        'label=GAP_synthetic}"')
    path.write_text(glue)
    _one_line_error(path, "IP Glue")
    path.write_text(text.replace("</GAP_synthetic>", '<Glue_params n_types="1"/>\n</GAP_synthetic>'))
    _one_line_error(path, "Glue_params")
    _one_line_error(tmp_path / "absent.xml", "not found")
    path.write_text(text[: len(text) // 2])  # truncated
    _one_line_error(path, "not a readable XML")
    path.write_text(text.replace('<sparseX i="2" ', '<sparseX '))
    _one_line_error(path, "no 'i' attribute")


# ---------------------------------------------------------------------------------------
# kernels: gradients by finite differences, and the forms quippy uses


@pytest.mark.parametrize("index", [0, 1, 2])
def test_local_energy_gradients_match_finite_differences(index):
    coordinate = synthetic_model().coordinates[index]
    rng = np.random.default_rng(index)
    d = coordinate.dimensions
    features = coordinate.sparse_points[rng.integers(0, coordinate.n_sparse, 4)] + 0.2 * rng.normal(
        size=(4, d))
    cutoffs = rng.uniform(0.3, 1.0, size=4)
    energies, d_features, d_cutoffs = local_energies(coordinate, features, cutoffs, gradient=True)
    step = 1e-6
    for axis in range(d):
        shift = np.zeros(d)
        shift[axis] = step
        numeric = (local_energies(coordinate, features + shift, cutoffs)
                   - local_energies(coordinate, features - shift, cutoffs)) / (2 * step)
        np.testing.assert_allclose(d_features[:, axis], numeric, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(d_cutoffs * cutoffs, energies, rtol=1e-12)


def test_kernel_forms():
    rng = np.random.default_rng(1)
    q, s = rng.normal(size=(3, 4)), rng.normal(size=(5, 4))
    theta = np.array([0.5, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(QuipDotProduct(3).values(q, s), (q @ s.T) ** 3)
    ard = QuipARDSE(theta)
    expected = np.exp(-0.5 * (((q[:, None] - s[None]) / theta) ** 2).sum(-1))
    np.testing.assert_allclose(ard.values(ard.prepare_features(q), ard.prepare_sparse(s)), expected)
    wide = 2.0 * theta + 1.0  # some pairs inside the support, some outside
    pp = QuipPP(wide, 4)  # j = 4 // 2 + 2 = 4
    r = np.sqrt((((q[:, None] - s[None]) / wide) ** 2).sum(-1))
    values = pp.values(pp.prepare_features(q), pp.prepare_sparse(s))
    np.testing.assert_allclose(values, np.maximum(1 - r, 0) ** 5 * (5 * r + 1))
    assert np.all(values[r >= 1] == 0.0) and np.any(r < 1) and np.any(r >= 1)
    np.testing.assert_allclose(pp.values(np.zeros((1, 4)), np.zeros((1, 4))), 1.0)


def test_covariance_on_raw_vectors_is_symmetric_with_unit_diagonal_where_expected():
    rng = np.random.default_rng(2)
    points = rng.normal(size=(6, 3))
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    theta = np.array([0.8, 1.5, 2.5])
    for kernel, vectors in ((QuipDotProduct(2), unit), (QuipARDSE(theta), points),
                            (QuipPP(3 * theta, 3), points)):
        matrix = kernel.sparse_covariance(vectors)
        np.testing.assert_allclose(matrix, matrix.T, rtol=1e-13)
        np.testing.assert_allclose(np.diag(matrix), 1.0, rtol=1e-13)
        np.testing.assert_allclose(kernel.covariance(vectors[:2], vectors), matrix[:2], rtol=1e-13)
        assert np.all(np.linalg.eigvalsh(matrix) > -1e-12)  # a covariance: positive semidefinite

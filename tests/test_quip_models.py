"""gap_fit models run by gapfit, and gapfit models run by quippy (issue 13).

* models fitted by gap_fit inside the test (benchmarks/_quip_features.RECIPES: 2b + soap,
  2b + 3b + soap, two species, pp kernels with signal means and covariance_sigma0), read by
  ``gapfit.load``, predict what quippy's ``Potential`` predicts on fresh structures;
* models fitted by gapfit with QUIP terms, written by ``GAP.save_xml``, give in quippy what
  they give in gapfit; export → load → export is byte-identical;
* the refusals through ``gapfit.load`` and ``save_xml`` are one-line errors.
The quippy tests skip when quippy-ase is absent; the file-format tests do not need it.
"""
import shutil
import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest

import gapfit
from gapfit.cli.commands import main
from gapfit.model.quip_xml import QuipModelError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _quip_reference  # noqa: E402
from benchmarks._quip_features import (DATA, RECIPES, fit_gap_fit,  # noqa: E402
                                       fresh_structures, quippy_prediction)

needs_quip = pytest.mark.skipif(
    not _quip_reference.have_quip(),
    reason="quippy-ase (gap_fit, quippy) is not installed; it is an optional test extra: "
    "pip install quippy-ase")


def gapfit_prediction(model, atoms):
    atoms = atoms.copy()
    atoms.calc = gapfit.GAPCalculator(model)
    return atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()


def assert_same(ours, reference, rtol=1e-8):
    (energy, forces, stress), (ref_energy, ref_forces, ref_stress) = ours, reference
    assert abs(energy - ref_energy) <= rtol * abs(ref_energy), (energy, ref_energy)
    assert np.max(np.abs(forces - ref_forces)) <= rtol * np.max(np.abs(ref_forces))
    assert np.max(np.abs(stress - ref_stress)) <= rtol * np.max(np.abs(ref_stress))


@pytest.fixture(scope="module", params=list(RECIPES))
def gap_fit_model(request, tmp_path_factory):
    data_name, terms, extra = RECIPES[request.param]
    path = fit_gap_fit(tmp_path_factory.mktemp("gap_fit"), data_name, terms, extra,
                       n_configurations=6)
    return request.param, data_name, path


# ------------------------------------------------------------------ gap_fit models in gapfit
@needs_quip
def test_gap_fit_model_loaded_by_gapfit_predicts_what_quippy_predicts(gap_fit_model):
    name, data_name, path = gap_fit_model
    model = gapfit.load(path)
    assert isinstance(model, gapfit.GAP)
    assert model.species_ == ([29, 79] if data_name == "cuau" else [29])
    structures = fresh_structures(data_name)
    for atoms in structures:
        assert_same(gapfit_prediction(model, atoms), quippy_prediction(path, atoms))
    energies = model.predict(structures)
    assert energies == pytest.approx([quippy_prediction(path, a)[0] for a in structures],
                                     rel=1e-8)


@needs_quip
def test_gap_fit_model_in_the_cli_and_without_uncertainty(gap_fit_model, tmp_path, capsys):
    name, data_name, path = gap_fit_model
    test_file = tmp_path / "test.xyz"
    shutil.copy(DATA / f"{data_name}_test.xyz", test_file)
    assert main(["eval", str(path), str(test_file), "--json", str(tmp_path / "e.json")]) == 0
    assert (tmp_path / "e.json").is_file()
    model = gapfit.load(path)
    labelled = ase.io.read(test_file, index=":2")
    forces = [atoms.get_forces() for atoms in labelled]
    predicted = [quippy_prediction(path, atoms)[1] for atoms in labelled]
    rmse = np.sqrt(np.mean(np.concatenate([(f - p).ravel() ** 2 for f, p in zip(forces, predicted)])))
    assert model.score(labelled) == pytest.approx(-rmse, rel=1e-8)
    with pytest.raises(ValueError, match="carries no posterior covariance"):
        model.predict_variances(fresh_structures(data_name)[:1])
    assert main(["md", str(path), str(test_file), "--index", "0", "--ensemble", "nve",
                 "--steps", "4", "--interval", "2", "--seed", "1",
                 "-o", str(tmp_path / "md.xyz"), "--log", str(tmp_path / "md.log")]) == 0
    frames = ase.io.read(tmp_path / "md.xyz", index=":")
    assert len(frames) >= 2
    assert_same(gapfit_prediction(model, frames[-1]), quippy_prediction(path, frames[-1]))
    assert main(["export", str(path), "-o", str(tmp_path / "again.xml")]) == 0
    for atoms in fresh_structures(data_name)[:1]:
        assert_same(quippy_prediction(tmp_path / "again.xml", atoms),
                    quippy_prediction(path, atoms), rtol=1e-12)


# ------------------------------------------------------------------ gapfit models in quippy
def gapfit_quip_terms(three_body):
    # gapfit's own TwoBody is distance_2b with ard_se: it is written as such
    terms = [gapfit.QuipDistance2b(cutoff=4.0, delta=0.5, n_sparse=10) if three_body
             else gapfit.TwoBody(cutoff=4.0, n_sparse=10)]
    if three_body:
        terms.append(gapfit.QuipAngle3b(cutoff=3.0, covariance_type="pp", theta=[3.0, 2.0, 3.0],
                                        signal_mean=0.05, delta=0.1, n_sparse=12))
    terms.append(gapfit.QuipSOAP(cutoff=4.0, n_max=3, l_max=2, zeta=2, delta=0.1,
                                 covariance_sigma0=0.2, n_sparse=20))
    return terms


@pytest.fixture(scope="module", params=[("cu", True), ("cuau", False)],
                ids=["cu 2b+3b+soap", "cuau 2b+soap"])
def gapfit_model(request, tmp_path_factory):
    data_name, three_body = request.param
    train = ase.io.read(DATA / f"{data_name}_train.xyz", index=":6")
    # gap_fit XML holds no ZBL baseline: an exported model is fitted without one
    model = gapfit.GAP(terms=gapfit_quip_terms(three_body), random_state=0,
                       repulsion=None).fit(train)
    path = model.save_xml(tmp_path_factory.mktemp("export") / "model.xml")
    return data_name, model, path


@needs_quip
def test_gapfit_model_exported_runs_in_quippy_with_the_same_numbers(gapfit_model):
    data_name, model, path = gapfit_model
    for atoms in fresh_structures(data_name):
        ours = gapfit_prediction(model, atoms)
        assert_same(quippy_prediction(path, atoms), ours)
    label = gapfit.load(path).quip_label_
    assert_same(quippy_prediction(path, atoms, f"Potential xml_label={label}"), ours)


def test_export_load_export_is_byte_identical_and_predicts_the_same(gapfit_model, tmp_path):
    data_name, model, path = gapfit_model
    loaded = gapfit.load(path)
    again = loaded.save_xml(tmp_path / "model.xml")
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == sorted(p.name for p in again.parent.iterdir())
    for name in names:
        assert (path.parent / name).read_bytes() == (again.parent / name).read_bytes(), name
    for atoms in fresh_structures(data_name):
        ours, read = gapfit_prediction(model, atoms), gapfit_prediction(loaded, atoms)
        assert_same(read, ours, rtol=1e-12)


def test_quip_terms_forces_and_stress_are_derivatives_of_the_energy(gapfit_model):
    data_name, model, _ = gapfit_model
    atoms = fresh_structures(data_name)[0]
    energy, forces, stress = gapfit_prediction(model, atoms)
    step = 1e-5
    for index in range(3):
        for axis in range(3):
            shifted = []
            for sign in (1, -1):
                moved = atoms.copy()
                moved.positions[index, axis] += sign * step
                shifted.append(gapfit_prediction(model, moved)[0])
            assert -(shifted[0] - shifted[1]) / (2 * step) == pytest.approx(
                forces[index, axis], abs=1e-6 * max(1.0, np.abs(forces).max()))
    strained = []
    for sign in (1, -1):
        moved = atoms.copy()
        deformation = np.eye(3)
        deformation[0, 1] = deformation[1, 0] = sign * step
        moved.set_cell(atoms.cell @ deformation, scale_atoms=True)
        strained.append(gapfit_prediction(model, moved)[0])
    # xy Voigt component: dE/dε_xy with ε symmetric counts both off-diagonal entries
    assert (strained[0] - strained[1]) / (4 * step) / atoms.get_volume() == pytest.approx(
        stress[5], abs=1e-6 * np.abs(stress).max())


def test_quip_terms_survive_the_gapfit_model_file(gapfit_model, tmp_path):
    data_name, model, _ = gapfit_model
    model.save(tmp_path / "model.gap")
    loaded = gapfit.load(tmp_path / "model.gap")
    for atoms in fresh_structures(data_name)[:1]:
        assert_same(gapfit_prediction(loaded, atoms), gapfit_prediction(model, atoms),
                    rtol=1e-12)
    assert main(["export", str(tmp_path / "model.gap"), "-o", str(tmp_path / "m.xml")]) == 0
    assert gapfit.load(tmp_path / "m.xml").alpha_ == pytest.approx(model.alpha_, rel=1e-15)


# --------------------------------------------------------------------------------- refusals
def copy_model(path, target):
    target.mkdir()
    for source in path.parent.iterdir():
        shutil.copy(source, target / source.name)
    return target / path.name


def one_line(error):
    text = str(error.value)
    assert "\n" not in text
    return text


def test_load_refuses_corrupted_missing_and_unsupported(gapfit_model, tmp_path):
    _, _, path = gapfit_model
    corrupted = copy_model(path, tmp_path / "corrupted")
    sparse = sorted(corrupted.parent.glob("*.sparseX.*"))[0]
    sparse.write_text(sparse.read_text().replace("e", "E", 1))
    with pytest.raises(QuipModelError, match="md5") as error:
        gapfit.load(corrupted)
    assert str(corrupted) in one_line(error)

    missing = copy_model(path, tmp_path / "missing")
    sorted(missing.parent.glob("*.sparseX.*"))[-1].unlink()
    with pytest.raises(QuipModelError, match="missing") as error:
        gapfit.load(missing)
    one_line(error)

    for old, new, message in [("<descriptor>soap ", "<descriptor>soap_turbo ", "soap_turbo"),
                              ("<descriptor>soap ", "<descriptor>soap radial_basis=GTO ",
                               "radial_basis=GTO"),
                              ("<descriptor>distance_2b ", "<descriptor>distance_2b only_intra=T ",
                               "only_intra"),
                              ('init_args="IP GAP', 'init_args="IP Glue', "IP Glue")]:
        edited = copy_model(path, tmp_path / message.replace("=", "_"))
        edited.write_text(edited.read_text().replace(old, new, 1))
        with pytest.raises(QuipModelError, match=message) as error:
            gapfit.load(edited)
        assert str(edited) in one_line(error)


def test_save_xml_refuses_terms_gap_fit_cannot_hold(tmp_path):
    train = ase.io.read(DATA / "cu_train.xyz", index=":3")
    model = gapfit.GAP(terms=[gapfit.TwoBody(cutoff=4.0, n_sparse=5),
                              gapfit.ACSF(r_cut=3.0, n_sparse=10)], random_state=0,
                       repulsion=None).fit(train)
    with pytest.raises(ValueError, match=r"term 1 \(ACSF\)") as error:
        model.save_xml(tmp_path / "model.xml")
    one_line(error)
    assert not (tmp_path / "model.xml").exists()
    with_repulsion = gapfit.GAP(terms=[gapfit.TwoBody(cutoff=4.0, n_sparse=5)],
                                random_state=0).fit(train)
    with pytest.raises(ValueError, match="repulsion=None"):
        with_repulsion.save_xml(tmp_path / "model.xml")
    assert not (tmp_path / "model.xml").exists()


# -------------------------------------------------------------------------------- posterior
def test_quip_dot_product_force_covariance_is_the_mixed_second_derivative():
    from gapfit.gp.quip_kernels import QuipDotProduct
    rng = np.random.default_rng(3)
    kernel = QuipDotProduct(3.0)
    q_a, q_b = rng.normal(size=(2, 5)), rng.normal(size=(3, 5))
    j_a, j_b = rng.normal(size=(2, 3, 5)), rng.normal(size=(3, 3, 5))
    result = kernel.gradient_covariance(q_a, j_a, q_b, j_b)
    step = 1e-4
    for a, i, b, j in [(0, 0, 0, 0), (1, 2, 2, 1), (0, 1, 1, 2)]:
        values = []
        for s_a in (1, -1):
            for s_b in (1, -1):
                values.append(kernel.covariance(q_a[a:a + 1] + s_a * step * j_a[a, i],
                                                q_b[b:b + 1] + s_b * step * j_b[b, j])[0, 0])
        numeric = (values[0] - values[1] - values[2] + values[3]) / (4 * step ** 2)
        assert result[a, i, b, j] == pytest.approx(numeric, rel=1e-6)


def test_posterior_of_quip_models_where_it_is_defined(gapfit_model):
    data_name, model, _ = gapfit_model
    structures = fresh_structures(data_name)[:1]
    if data_name == "cuau":  # TwoBody + QuipSOAP: both have a prior covariance
        variance = model.predict_variances(structures)[0]
        assert variance.energy > 0 and np.all(variance.forces >= 0)
        assert np.isfinite(variance.forces).all()
    else:  # angle_3b weighted by covariance cutoffs
        with pytest.raises(ValueError, match="not implemented"):
            model.predict_variances(structures)



def refitted_with_sparse_points_of(path, structures, virial_weighting, jitter_relative):
    """The gap_fit model at ``path`` with its coefficients solved again by gapfit for the
    data ``structures``, keeping its terms, sparse points and e0; sigmas 0.002 eV/atom,
    0.05 eV/Å, 0.05 eV/atom and jitter 1e-8 (those fit_gap_fit gives gap_fit)."""
    from gapfit.fit import training
    from gapfit.fit.noise import NoiseModel
    from gapfit.gp import linalg
    model = gapfit.load(path)
    model.set_params(sparse_jitter=1e-8, sparse_jitter_relative=jitter_relative)
    model.noise_ = NoiseModel(0.002, 0.05, 0.05, virial_weighting=virial_weighting)
    chunks = training.chunks_of_structures(structures, 10_000)
    model.data_factors_ = linalg.combine_factor_dicts(
        [training.factors(model.terms_, model.target_settings(), chunk) for chunk in chunks])
    return model.solve_coefficients()


@needs_quip
def test_gapfit_fit_with_gap_fits_sparse_points_gives_gap_fits_model(gap_fit_model):
    """The comparison of the fits alone: same descriptors, same sparse points, same sigmas.
    With gap_fit's conventions (each Voigt virial component weighed with the virial sigma,
    the jitter in eV²) gapfit's solve predicts what gap_fit's model predicts; with gapfit's
    defaults (nine tensor components, relative jitter) it is another fit."""
    name, data_name, path = gap_fit_model
    structures = ase.io.read(DATA / f"{data_name}_train.xyz", index=":6")
    fresh = fresh_structures(data_name)

    def predictions(model):
        return np.concatenate([np.r_[p.energy, p.forces.ravel()]
                               for p in map(model.predict_structure, fresh)])

    reference = predictions(gapfit.load(path))
    scale = np.abs(reference).max()
    as_gap_fit = predictions(refitted_with_sparse_points_of(path, structures, "voigt", False))
    as_gapfit = predictions(refitted_with_sparse_points_of(path, structures, "tensor", True))
    assert np.abs(as_gap_fit - reference).max() <= 1e-7 * scale
    assert np.abs(as_gapfit - reference).max() > 1e-5 * scale

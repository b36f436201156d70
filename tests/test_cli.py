"""The ``gapfit`` command, driven in subprocesses on data/, and the library pieces behind it.

Models here are tiny (a few sparse points) so every fit takes about a second;
each subprocess costs about two seconds of imports.
"""
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.build import bulk

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
TINY_FIT = ["--terms", "twobody", "soap", "--twobody", "n_sparse=8", "--soap", "n_max=3", "l_max=2",
            "n_sparse=30", "r_cut=4.0", "--seed", "0"]


def gapfit_command(*args, cwd, expect=0):
    """Run ``python -m gapfit.cli ARGS`` in ``cwd``; check its exit status; return the process."""
    env = dict(os.environ, MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    process = subprocess.run([sys.executable, "-m", "gapfit.cli", *map(str, args)], cwd=cwd, env=env,
                             capture_output=True, text=True, timeout=600)
    assert process.returncode == expect, (process.returncode, process.stdout, process.stderr)
    return process


def assert_one_line_error(process, *fragments):
    assert process.returncode == 1
    assert "Traceback" not in process.stderr
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1, process.stderr
    assert "error:" in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def tiny_model(workdir):
    """A 2-body + small SOAP model fitted by ``gapfit fit`` on data/cu_train.xyz."""
    process = gapfit_command("fit", DATA / "cu_train.xyz", *TINY_FIT, "-o", "tiny.gap", cwd=workdir)
    return workdir / "tiny.gap", process


def reference_and_prediction(model, atoms):
    """Reference labels read by ASE itself, and the model's own prediction for ``atoms``."""
    prediction = model.predict_structure(atoms)
    virial_stress = -prediction.virial / atoms.get_volume()
    predicted_stress = virial_stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    return ((atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()),
            (prediction.energy, prediction.forces, predicted_stress))


# ----------------------------------------------------------------------------- fit
def test_fit_writes_a_model_with_the_requested_settings(tiny_model):
    import gapfit
    path, process = tiny_model
    model = gapfit.load(path)
    twobody, soap = model.terms_
    assert (type(twobody).__name__, type(soap).__name__) == ("TwoBody", "SOAP")
    assert (twobody.n_sparse, soap.n_max, soap.l_max, soap.n_sparse, soap.r_cut) == (8, 3, 2, 30, 4.0)
    assert soap.n_sparse_points == 30 and model.random_state == 0
    assert "read 60 configurations (1910 atoms)" in process.stderr


def test_settings_file_flags_override_and_print_settings_reproduce_the_fit(workdir):
    import gapfit
    folder = workdir / "settings"
    folder.mkdir()
    train = os.path.relpath(DATA / "cu_train.xyz", folder)  # relative to the settings file
    (folder / "fit.toml").write_text(
        f'train = ["{train}"]\noutput = "from_file.gap"\n\n[gap]\nenergy_sigma = 0.003\n'
        'random_state = 1\n\n[[terms]]\ntype = "TwoBody"\ncutoff = 4.5\nn_sparse = 12\n')
    # run from another folder: the training path is still found; flags override the file
    flags = ["-c", folder / "fit.toml", "--twobody", "n_sparse=6", "--seed", "7", "--force-sigma", "0.04"]
    gapfit_command("fit", *flags, "-o", "a.gap", cwd=workdir)
    model = gapfit.load(workdir / "a.gap")
    term = model.terms_[0]
    assert len(model.terms_) == 1 and (term.cutoff, term.n_sparse) == (4.5, 6)
    assert (model.energy_sigma, model.force_sigma, model.random_state) == (0.003, 0.04, 7)

    printed = gapfit_command("fit", *flags, "--print-settings", cwd=workdir).stdout
    settings = tomllib.loads(printed)
    assert settings["terms"] == [{**term.get_params(), "type": "TwoBody"}]
    assert settings["gap"]["random_state"] == 7 and settings["gap"]["energy_sigma"] == 0.003
    (workdir / "printed.toml").write_text(printed)
    gapfit_command("fit", "-c", "printed.toml", "-o", "b.gap", cwd=workdir)
    again = gapfit.load(workdir / "b.gap")
    np.testing.assert_array_equal(again.alpha_, model.alpha_)
    np.testing.assert_array_equal(again.terms_[0].sparse_points_, term.sparse_points_)


def test_settings_validation_names_the_problem(tmp_path):
    from gapfit.cli import settings as fs
    with pytest.raises(ValueError, match=r"\[gap\] has unknown setting 'energy_sigm'"):
        fs.validate_settings({"gap": {"energy_sigm": 0.1}}, source="x.toml")
    with pytest.raises(ValueError, match=r"terms\[1\]: unknown term type 'soup'"):
        fs.validate_settings({"terms": [{"type": "TwoBody"}, {"type": "soup"}]})
    with pytest.raises(ValueError, match=r"terms\[0\] \(SOAP\) has unknown setting 'nmax'"):
        fs.validate_settings({"terms": [{"type": "soap", "nmax": 3}]})
    broken = tmp_path / "broken.toml"
    broken.write_text("[gap\nenergy_sigma = 1")
    with pytest.raises(ValueError, match="broken.toml: not a valid TOML settings file"):
        fs.read_settings(broken)
    assert [fs.parse_value(v) for v in ("3", "0.5", "true", "cur", '"poly"', "[1, 2]")] == \
        [3, 0.5, True, "cur", "poly", [1, 2]]
    # defaults written out, read back, give the same estimator parameters
    explicit = fs.explicit_settings({"terms": [{"type": "SOAP", "n_max": 4}], "gap": {"e0": {"Cu": -0.1}}})
    rebuilt = fs.build_model(tomllib.loads(fs.to_toml(explicit)))
    original = fs.build_model(explicit)
    assert rebuilt.terms[0].get_params() == original.terms[0].get_params()
    assert rebuilt.e0 == {"Cu": -0.1} and rebuilt.terms[0].n_max == 4


def test_yaml_settings_are_read_like_toml(tmp_path):
    pytest.importorskip("yaml")
    from gapfit.cli import settings as fs
    (tmp_path / "fit.yaml").write_text("train: [a.xyz]\ngap: {random_state: 3}\n"
                                       "terms:\n  - {type: twobody, n_sparse: 5}\n")
    settings = fs.read_settings(tmp_path / "fit.yaml")
    assert settings["train"] == [str(tmp_path / "a.xyz")]
    model = fs.build_model(settings)
    assert model.random_state == 3 and model.terms[0].n_sparse == 5


# ----------------------------------------------------------------------------- eval
def test_eval_json_table_and_plots_match_errors_computed_here(tiny_model, workdir):
    import gapfit
    from ase.units import GPa
    from matplotlib.image import imread
    path, _ = tiny_model
    process = gapfit_command("eval", path, DATA / "cu_test.xyz", "--json", "errors.json",
                             "--plots", "plots", cwd=workdir)
    result = json.loads((workdir / "errors.json").read_text())

    model = gapfit.load(path)
    structures = ase.io.read(DATA / "cu_test.xyz", index=":")
    pairs = {"energy": ([], []), "forces": ([], []), "stress": ([], [])}
    by_group = {}
    for atoms in structures:
        (energy, forces, stress), (e_pred, f_pred, s_pred) = reference_and_prediction(model, atoms)
        for key, ref, pred in (("energy", energy / len(atoms), e_pred / len(atoms)),
                               ("forces", forces, f_pred), ("stress", stress, s_pred)):
            pairs[key][0].append(np.ravel(ref))
            pairs[key][1].append(np.ravel(pred))
        by_group.setdefault(atoms.info["config_type"], []).append(energy / len(atoms) - e_pred / len(atoms))
    scale = {"energy": 1e3, "forces": 1e3, "stress": 1 / GPa}
    for key, (ref, pred) in pairs.items():
        ref, pred = np.concatenate(ref), np.concatenate(pred)
        error = pred - ref
        expected = {"n": ref.size, "mae": np.abs(error).mean() * scale[key],
                    "rmse": np.sqrt((error ** 2).mean()) * scale[key],
                    "r2": 1 - (error ** 2).sum() / ((ref - ref.mean()) ** 2).sum()}
        for name, value in expected.items():
            assert result["all"][key][name] == pytest.approx(value, rel=1e-9), (key, name)
    assert result["n_configurations"] == 20
    assert set(result["by_config_type"]) == set(by_group)
    for group, errors in by_group.items():
        stats = result["by_config_type"][group]["energy"]
        assert stats["n"] == len(errors)
        assert stats["mae"] == pytest.approx(1e3 * np.mean(np.abs(errors)), rel=1e-9)

    # the printed table holds the same numbers
    all_row = next(line for line in process.stdout.splitlines() if line.startswith("all "))
    numbers = [float(token) for token in all_row.replace("|", " ").split()[1:]]
    assert numbers[0] == 20
    assert numbers[1] == pytest.approx(result["all"]["energy"]["mae"], abs=1e-3)
    assert numbers[5] == pytest.approx(result["all"]["forces"]["rmse"], abs=1e-2)

    for name in ("parity_energy", "parity_forces", "parity_stress", "force_errors"):
        png = workdir / "plots" / f"{name}.png"
        assert png.stat().st_size > 10_000, name
        image = imread(png)
        colours = np.unique(image[..., :3].reshape(-1, 3), axis=0)
        assert len(colours) > 50, name  # axes, points, text: not a blank canvas


def test_eval_rejects_species_the_model_does_not_know(tiny_model, workdir):
    path, _ = tiny_model
    process = gapfit_command("eval", path, DATA / "cuau_test.xyz", cwd=workdir, expect=1)
    assert_one_line_error(process, "cuau_test.xyz", "configuration 0", "Au")


# ----------------------------------------------------------------------------- md
def read_log(path):
    lines = Path(path).read_text().splitlines()
    names = lines[1][1:].split()
    table = np.loadtxt(path, comments="#", ndmin=2)
    return {name: table[:, i] for i, name in enumerate(names)}


def test_md_nve_conserves_energy_and_logs_the_model_energies(tiny_model, workdir):
    import gapfit
    path, _ = tiny_model
    process = gapfit_command("md", path, DATA / "cu_test.xyz", "--index", "1", "--ensemble", "nve",
                             "--steps", "40", "--timestep", "1", "--temperature", "500",
                             "--interval", "10", "--seed", "3", "-o", "nve.xyz", "--log", "nve.log",
                             cwd=workdir)
    assert "NVE MD, 32 atoms" in process.stdout
    assert "step/s" not in process.stderr  # no progress bar when standard error is not a terminal
    log = read_log(workdir / "nve.log")
    np.testing.assert_array_equal(log["step"], [0, 10, 20, 30, 40])
    np.testing.assert_allclose(log["time_ps"], log["step"] * 1e-3)
    np.testing.assert_allclose(log["total_eV"], log["potential_eV"] + log["kinetic_eV"], atol=2e-6)
    assert log["temperature_K"][0] == pytest.approx(500.0, abs=1e-4)
    # constant energy: total drifts far less than potential and kinetic energy exchange
    assert np.ptp(log["total_eV"]) < 0.05 * np.ptp(log["potential_eV"])
    assert np.ptp(log["volume_A3"]) == 0.0

    frames = ase.io.read(workdir / "nve.xyz", index=":")
    assert len(frames) == 5 and frames[0].calc is None  # model results are not stored as labels
    model = gapfit.load(path)
    for frame, potential in zip(frames[::2], log["potential_eV"][::2]):
        assert frame.info["gap_energy"] == pytest.approx(potential, abs=1e-5)
        prediction = model.predict_structure(frame)
        assert prediction.energy == pytest.approx(potential, abs=1e-4)
        np.testing.assert_allclose(frame.arrays["gap_forces"], prediction.forces, atol=1e-4)


def test_md_npt_changes_the_volume_towards_the_target_pressure(tiny_model, workdir):
    path, _ = tiny_model
    gapfit_command("md", path, DATA / "cu_test.xyz", "--index", "0", "--ensemble", "npt",
                   "--steps", "60", "--timestep", "2", "--pressure", "0", "--pdamp", "40",
                   "--interval", "20", "--seed", "1", "-o", "npt.xyz", "--log", "npt.log", "-q",
                   cwd=workdir)
    log = read_log(workdir / "npt.log")
    # the fixed 0 K cell of a 300 K snapshot is under about 2 GPa: at 0 GPa the cell expands
    assert log["pressure_GPa"][0] > 1.0
    assert log["volume_A3"][-1] > log["volume_A3"][0] * 1.005
    assert log["pressure_GPa"][-1] < log["pressure_GPa"][0]
    frames = ase.io.read(workdir / "npt.xyz", index=":")
    np.testing.assert_allclose([f.get_volume() for f in frames], log["volume_A3"], rtol=1e-6)


def test_md_log_has_the_largest_force_uncertainty_when_the_calculator_gives_one(tiny_model, tmp_path):
    import gapfit
    from gapfit.md.dynamics import read_md_log, run_md, summarise_md

    class WithUncertainty(gapfit.GAPCalculator):
        def calculate(self, *args, **kwargs):
            super().calculate(*args, **kwargs)
            std = np.full((len(self.atoms), 3), 0.01)
            std[3, 1] = 0.2  # the largest entry
            self.results["forces_std"] = std

    model = gapfit.load(tiny_model[0])
    atoms = bulk("Cu", "fcc", a=3.59, cubic=True).repeat(2)
    result = run_md(atoms, WithUncertainty(model), "nvt", steps=4, interval=2, seed=0,
                    logfile=tmp_path / "md.log")
    log = read_md_log(tmp_path / "md.log")
    np.testing.assert_allclose(log["max_F_std_eV/A"], 0.2)
    np.testing.assert_allclose(result.log["max_F_std_eV/A"], 0.2)
    assert summarise_md(log)["max_F_std_eV/A"] == pytest.approx(0.2)
    plain = run_md(atoms, gapfit.GAPCalculator(model), "nvt", steps=2, interval=2, seed=0)
    assert "max_F_std_eV/A" not in plain.log
    assert np.array_equal(atoms.positions, bulk("Cu", "fcc", a=3.59, cubic=True).repeat(2).positions)


def test_radial_distribution_matches_ase_and_msd_of_a_rigid_shift_is_zero():
    from ase.geometry.rdf import get_rdf
    from gapfit.md.dynamics import mean_square_displacement, radial_distribution
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(2):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(3)
        atoms.positions += 0.1 * rng.standard_normal(atoms.positions.shape)
        frames.append(atoms)
    distances, rdf = radial_distribution(frames, 5.0, n_bins=50)
    expected, expected_distances = get_rdf(frames, 5.0, 50)
    np.testing.assert_allclose(distances, expected_distances)
    np.testing.assert_allclose(rdf, expected, rtol=1e-10, atol=1e-12)

    shifted = [frames[0].copy() for _ in range(4)]
    displacement = rng.standard_normal((len(frames[0]), 3))
    for step, atoms in enumerate(shifted):
        atoms.positions += step * np.array([0.3, 0.0, 0.1])  # centre-of-mass motion only
        atoms.positions += (step > 0) * 0.05 * displacement
    lags, msd = mean_square_displacement(shifted, times_ps=[0.0, 0.1, 0.2, 0.3])
    relative = 0.05 * (displacement - displacement.mean(axis=0))
    np.testing.assert_allclose(lags, [0.0, 0.1, 0.2, 0.3])
    # lags 1..3: among the 3 pairs of lag 1 only (0,1) differs in internal positions
    np.testing.assert_allclose(msd, [0.0, np.mean(np.sum(relative ** 2, axis=1)) / 3,
                                     np.mean(np.sum(relative ** 2, axis=1)) / 2,
                                     np.mean(np.sum(relative ** 2, axis=1))], atol=1e-12)


# ----------------------------------------------------------------------------- select
def test_select_writes_the_chosen_pool_configurations(tiny_model, workdir):
    process = gapfit_command("select", tiny_model[0], DATA / "cu_test.xyz", "-n", "3", "-o", "pick.xyz",
                             cwd=workdir)
    indices = [int(i) for i in process.stdout.split(":")[-1].split()]
    pool = ase.io.read(DATA / "cu_test.xyz", index=":")
    chosen = ase.io.read(workdir / "pick.xyz", index=":")
    assert len(indices) == len(set(indices)) == len(chosen) == 3
    for index, atoms in zip(indices, chosen):
        np.testing.assert_allclose(atoms.positions, pool[index].positions)
        assert atoms.get_potential_energy() == pool[index].get_potential_energy()


# ----------------------------------------------------------------------------- errors and help
def test_damaged_and_missing_files_give_one_line_errors(tiny_model, workdir):
    model_bytes = bytearray(tiny_model[0].read_bytes())
    middle = len(model_bytes) // 2
    model_bytes[middle: middle + 64] = bytes(b ^ 0xFF for b in model_bytes[middle: middle + 64])
    (workdir / "corrupt.gap").write_bytes(model_bytes)
    assert_one_line_error(gapfit_command("eval", "corrupt.gap", DATA / "cu_test.xyz", cwd=workdir,
                                         expect=1), "corrupt.gap", "model file")

    lines = (DATA / "cu_train.xyz").read_text().splitlines(keepends=True)
    (workdir / "truncated.xyz").write_text("".join(lines[:100]) + lines[100][:25])
    assert_one_line_error(gapfit_command("fit", "truncated.xyz", "--terms", "twobody", cwd=workdir,
                                         expect=1), "truncated.xyz", "cannot read")

    assert_one_line_error(gapfit_command("md", tiny_model[0], "missing.xyz", cwd=workdir, expect=1),
                          "missing.xyz: no such file")


def test_progress_bars_only_on_a_terminal_and_never_when_quiet():
    import io
    from gapfit.cli.logging_setup import show_progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert show_progress(stream=Terminal()) is True
    assert show_progress(quiet=True, stream=Terminal()) is False
    assert show_progress(stream=io.StringIO()) is False


def test_help_of_every_command(capsys):
    from gapfit.cli.commands import main
    expected = {"fit": ["--config", "--soap", "--energy-key", "--virial-key", "--seed", "--print-settings"],
                "eval": ["--json", "--plots", "--stress-key"],
                "md": ["--ensemble", "--pressure", "--uncertainty", "--trajectory", "--quiet"],
                "select": ["-n", "--strategy", "--output"]}
    for command, options in expected.items():
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert f"usage: gapfit {command}" in text and "examples:" in text
        for option in options:
            assert option in text, (command, option)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--ensemble", "nve"])  # an option of another command: usage error
    assert exit_info.value.code == 2

"""On-the-fly learning along a schedule: loaded models that update, the append-only labelled set,
and a run killed with SIGKILL that continues without losing a labelled frame."""
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

import gapfit
from gapfit.active import on_the_fly
from gapfit.cli import otf_settings
from gapfit.cli import main

from conftest import make_cu_structures

ROOT = Path(__file__).resolve().parents[1]


def pair_model(**kwargs):
    return gapfit.GAP(terms=[gapfit.TwoBody(cutoff=4.5, n_sparse=15, theta=0.8)], random_state=0,
                      **kwargs)


# ------------------------------------------------------------------ loaded models

def test_a_loaded_model_updates_exactly_as_the_fitted_one(tmp_path):
    data = make_cu_structures(4, seed=7, repeat=(2, 1, 1))
    fitted = pair_model(optimize_hyperparameters=True).fit(data[:2])
    fitted.save(tmp_path / "m.gap")
    loaded = gapfit.load(tmp_path / "m.gap")
    assert loaded.noise_ == fitted.noise_ and fitted.noise_.scales != {}
    assert list(loaded.data_factors_) == list(fitted.data_factors_)
    for kind, factor in fitted.data_factors_.items():  # stored as packed triangles, exactly
        assert np.array_equal(loaded.data_factors_[kind], factor)
    fitted.update(data[2:])
    loaded.update(data[2:])
    assert np.allclose(loaded.alpha_, fitted.alpha_, rtol=1e-10, atol=1e-12 * abs(fitted.alpha_).max())
    # and the optimised scales weigh the new data: without them the update differs
    plain = gapfit.load(tmp_path / "m.gap")
    plain.noise_ = dataclasses.replace(plain.noise_, scales={})
    plain.update(data[2:])
    assert not np.allclose(plain.alpha_, fitted.alpha_, rtol=1e-6)


def test_a_model_file_with_square_factors_loads_and_updates_as_the_lean_one(tmp_path):
    """Files written before factors were kept lean hold (M+1)² factors (packed triangles):
    they load, predict and update like the lean model."""
    from gapfit.gp import linalg
    data = make_cu_structures(4, seed=9, repeat=(2, 1, 1))
    lean = pair_model().fit(data[:2])
    assert lean.data_factors_["energy"].shape[0] == 2  # two configurations: two rows
    old = pair_model().fit(data[:2])
    old.data_factors_ = {kind: linalg.square_factor(f) for kind, f in old.data_factors_.items()}
    old.solve_coefficients().save(tmp_path / "old.gap")
    loaded = gapfit.load(tmp_path / "old.gap")
    size = lean.alpha_.size + 1
    assert all(f.shape == (size, size) for f in loaded.data_factors_.values())
    np.testing.assert_allclose(loaded.predict(data[2:]), lean.predict(data[2:]), rtol=1e-9)
    lean.update(data[2:])
    loaded.update(data[2:])
    np.testing.assert_allclose(loaded.predict(data), lean.predict(data), rtol=1e-9)


def test_a_model_file_without_data_factors_is_refused_with_a_reason(tmp_path):
    model = pair_model().fit(make_cu_structures(2, seed=8, repeat=(2, 1, 1)))
    del model.data_factors_
    with pytest.raises(ValueError, match="data factors"):
        on_the_fly.OnTheFlyRun(object(), [bulk("Cu", cubic=True)], [on_the_fly.Stage(steps=1)],
                               tmp_path / "run", model=model).run()


# ------------------------------------------------------------------ the labelled set on disk

def test_a_frame_cut_short_is_dropped_and_appending_goes_on(tmp_path):
    frames = make_cu_structures(3, seed=9, repeat=(1, 1, 1))
    path = tmp_path / "labelled.xyz"
    for atoms in frames[:2]:
        gapfit.io.append(path, atoms)
    whole = path.read_text()
    partial = (tmp_path / "one.xyz")
    gapfit.io.write(partial, frames[2:])
    path.write_text(whole + partial.read_text()[:-40])  # the third frame, cut by a kill
    read = on_the_fly.read_complete_frames(path)
    assert len(read) == 2 and path.read_text() == whole
    assert np.array_equal(read[1].get_forces(), frames[1].get_forces())
    gapfit.io.append(path, frames[2])
    again = on_the_fly.read_complete_frames(path)
    assert len(again) == 3 and np.array_equal(again[2].positions, frames[2].positions)


def test_the_threshold_is_a_multiple_of_the_fitted_force_sigma():
    model = pair_model(force_sigma=0.04, optimize_hyperparameters=False).fit(
        make_cu_structures(2, seed=10, repeat=(2, 1, 1)))
    assert on_the_fly.noise_level(model) == pytest.approx(0.04)
    model.noise_ = model.noise_.with_scales({"forces": 2.5})
    assert on_the_fly.noise_level(model) == pytest.approx(0.1)


# ------------------------------------------------------------------ gapfit otf, killed and resumed

SETTINGS = """
start = "start.xyz"
output = "run"
[oracle]
calculator = "ase.calculators.emt:EMT"
[learning]
threshold = {threshold}
check_every = 5
checkpoint_every = 5
seed = 3
[gap]
force_sigma = 0.05
random_state = 0
[[terms]]
type = "TwoBody"
cutoff = 4.5
n_sparse = 15
theta = 0.8
[[stages]]
temperature = 600.0
steps = 60
timestep = 2.0
[[stages]]
temperature = 1200.0
steps = 60
timestep = 2.0
"""


def write_case(folder, threshold):
    folder.mkdir(parents=True, exist_ok=True)
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 1))
    del atoms[3]
    atoms.rattle(0.05, seed=1)
    gapfit.io.write(folder / "start.xyz", [atoms])
    (folder / "otf.toml").write_text(SETTINGS.format(threshold=threshold))
    return folder / "otf.toml"


def otf_process(settings):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "gapfit.cli", "otf", str(settings), "-q"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def frames_on_disk(path):
    """Complete frames in labelled.xyz without touching the file (the run may be writing)."""
    text = path.read_text() if path.exists() else ""
    lines, count, position = text.split("\n"), 0, 0
    while position < len(lines) and lines[position].strip():
        position += 2 + int(lines[position])
        if position >= len(lines):
            break
        count += 1
    return count


def test_otf_killed_mid_run_continues_and_keeps_every_labelled_frame(tmp_path):
    settings = write_case(tmp_path, threshold=1.0)
    labelled = tmp_path / "run" / "labelled.xyz"
    kills, processes = 0, 0
    for wanted in (3, 5):  # kill twice, after a few more oracle calls each time
        process = otf_process(settings)
        processes += 1
        deadline = time.time() + 1200
        while frames_on_disk(labelled) < wanted and process.poll() is None:
            assert time.time() < deadline, "the run did not reach the oracle calls in time"
            time.sleep(0.05)
        if process.poll() is not None:
            process.communicate()
            break  # finished before this kill: the run needed fewer calls
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        before = gapfit.io.read(labelled, index=f":{frames_on_disk(labelled)}")
        assert len(before) >= wanted
        state = json.loads((tmp_path / "run" / "settings.json").read_text())
        assert state["threshold"] == 1.0
    assert kills >= 1
    process = otf_process(settings)
    processes += 1
    out, err = process.communicate(timeout=1800)
    assert process.returncode == 0, err.decode()
    assert "schedule done" in out.decode()
    after = gapfit.io.read(labelled)
    assert len(after) >= len(before)
    for a, b in zip(before, after):  # every frame labelled before the kills is still there
        assert np.array_equal(a.positions, b.positions)
        assert np.array_equal(a.get_forces(), b.get_forces())
    assert [a.info["otf_call"] for a in after] == list(range(1, len(after) + 1))
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["finished"] == "schedule done" and state["stage"] == 2
    model = gapfit.load(tmp_path / "run" / "model.gap")
    assert model.n_training_structures_ == len(after)  # start structure + every oracle label
    log = (tmp_path / "run" / "otf.log").read_text().splitlines()
    calls = [line for line in log if ": stage " in line and " call " in line]
    restarts = [line for line in log if " restart: " in line]
    assert len(restarts) == processes - 1  # every process after the first continued the run
    # one line per call that ran through (a kill between the label and its line loses the line)
    assert len(after) - 1 - kills <= len(calls) <= len(after) - 1


def test_otf_stops_when_the_budget_is_spent(tmp_path):
    settings = write_case(tmp_path, threshold=0.2)
    assert main(["otf", str(settings), "--max-calls", "3", "-q"]) == 0
    run = tmp_path / "run"
    assert len(gapfit.io.read(run / "labelled.xyz")) == 3
    state = json.loads((run / "state.json").read_text())
    assert state["finished"] == "oracle budget spent"
    # run again: nothing more to do, the finished run is reported as it ended
    assert main(["otf", str(settings), "--max-calls", "3", "-q"]) == 0
    assert len(gapfit.io.read(run / "labelled.xyz")) == 3


def test_otf_settings_errors_name_the_problem(tmp_path, capsys):
    settings = write_case(tmp_path, threshold=1.0)
    text = settings.read_text()
    settings.write_text(text.replace("ase.calculators.emt:EMT", "ase.calculators.emt:Nope"))
    assert main(["otf", str(settings)]) == 1
    assert "has no Nope" in capsys.readouterr().err
    settings.write_text(text.replace("timestep = 2.0", "timestep = 2.0\ntemprature = 5", 1))
    assert main(["otf", str(settings)]) == 1
    assert "stage 0 has unknown setting 'temprature'" in capsys.readouterr().err
    # a run folder with another schedule is not continued
    settings.write_text(text)
    write_case(tmp_path, threshold=1.0)
    assert main(["otf", str(settings), "--max-calls", "2", "-q"]) == 0
    settings.write_text(text.replace("steps = 60", "steps = 80", 1))
    assert main(["otf", str(settings)]) == 1
    assert "other settings (stages)" in capsys.readouterr().err
    # the calibration is a [learning] setting: a run made with the default one is not
    # continued without it, and an unknown one is named
    settings.write_text(text.replace("seed = 3", "seed = 3\ncalibration = \"none\""))
    assert main(["otf", str(settings)]) == 1
    assert "other settings (calibration)" in capsys.readouterr().err
    settings.write_text(text.replace("seed = 3", "seed = 3\ncalibration = \"latent\""))
    assert main(["otf", str(settings)]) == 1
    assert "unknown calibration 'latent'" in capsys.readouterr().err


def test_oracle_factory_with_arguments():
    calculator = otf_settings.make_oracle("ase.calculators.lj:LennardJones", {"sigma": 2.3})
    assert calculator.parameters.sigma == 2.3
    with pytest.raises(ValueError, match="module:Class"):
        otf_settings.make_oracle("EMT", {})


def test_frame_uncertainty_is_the_largest_posterior_force_std():
    data = make_cu_structures(2, seed=11, repeat=(2, 1, 1))
    model = pair_model().fit(data[:1])
    stds = model.predict_variances(data[1:])[0].forces_std
    assert on_the_fly.frame_uncertainty(model, data[1])[0] == pytest.approx(stds.max(), rel=1e-10)
    rms, _ = on_the_fly.frame_uncertainty(model, data[1], score="forces_rms")
    assert rms == pytest.approx(np.sqrt(np.mean(stds ** 2)), rel=1e-10)


def test_a_fixed_interval_labels_every_kth_step_and_a_loaded_model_goes_on(tmp_path):
    from ase.calculators.emt import EMT
    start = make_cu_structures(1, seed=12, repeat=(2, 2, 1), rattle=0.05)
    pair_model().fit(start).save(tmp_path / "start.gap")
    model = gapfit.load(tmp_path / "start.gap")  # a model from a file continues
    stages = [on_the_fly.Stage(steps=20, temperature_K=500.0, timestep_fs=2.0),
              on_the_fly.Stage(steps=10, temperature_K=900.0, timestep_fs=2.0)]
    run = on_the_fly.OnTheFlyRun(EMT(), start, stages, tmp_path / "run", model=model,
                                 training=start, threshold=100.0, check_every=5, label_every=5,
                                 refit_growth=None,
                                 random_state=4).run()
    assert run.reason == "schedule done"
    assert [(a.info["otf_stage"], a.info["otf_step"]) for a in run.labelled] == [
        (0, 5), (0, 10), (0, 15), (0, 20), (1, 5), (1, 10)]
    assert run.model.n_training_structures_ == 1 + 6
    replay = gapfit.load(tmp_path / "start.gap").update(run.labelled)  # no refit at 100 sigma
    # (coefficients of this small pair model cancel strongly, so compare predictions)
    for atoms in run.labelled[::3]:
        expected = replay.predict_structure(atoms).forces
        assert np.allclose(run.model.predict_structure(atoms).forces, expected, rtol=1e-6,
                           atol=1e-6 * abs(expected).max())
    trajectory = gapfit.io.read(tmp_path / "run" / "trajectory.xyz")
    assert all("model_forces" in frame.arrays for frame in trajectory if frame.info["otf_step"])


def test_calls_keep_the_minimum_interval_and_a_new_structure_is_labelled_and_refitted(tmp_path):
    from ase.calculators.emt import EMT
    start = make_cu_structures(2, seed=15, repeat=(2, 2, 1), rattle=0.05)
    start[1].rattle(0.05, seed=2)  # a second start structure, apart from the first
    model = pair_model().fit(start[:1])
    stages = [on_the_fly.Stage(steps=12, temperature_K=900.0, timestep_fs=2.0, structure=0),
              on_the_fly.Stage(steps=4, temperature_K=300.0, timestep_fs=2.0, structure=1)]

    def run(folder, threshold, **settings):
        return on_the_fly.OnTheFlyRun(EMT(), start, stages, tmp_path / folder, model=model,
                                      training=start[:1], threshold=threshold, refit_growth=None,
                                      random_state=6, **{"calibration": "none", **settings}).run()

    # a tiny threshold calls at every step of the first stage (its step 0 is the training start)
    every = run("every", 1e-6)
    assert [a.info["otf_step"] for a in every.labelled if a.info["otf_stage"] == 0] == list(
        range(1, 13))
    # a label at a stage's step 0 does not end the stage: its MD goes on and keeps checking
    assert [a.info["otf_step"] for a in every.labelled if a.info["otf_stage"] == 1] == list(
        range(0, 5))
    spaced = run("spaced", 1e-6, min_call_interval=5)
    assert [a.info["otf_step"] for a in spaced.labelled if a.info["otf_stage"] == 0] == [1, 6, 11]
    # the stage on the new structure calls at its step 0 (the structure is fresh), then rests
    assert [a.info["otf_step"] for a in spaced.labelled if a.info["otf_stage"] == 1] == [0]
    # a huge threshold never calls, but the new start structure is labelled and refitted
    quiet = run("quiet", 1e6)
    assert quiet.labelled == [] and quiet.refits == 0
    new = run("new", 1e6, label_new_structures=True)
    assert [(a.info["otf_stage"], a.info["otf_step"], a.info["config_type"])
            for a in new.labelled] == [(1, 0, "new_structure")]
    assert np.allclose(new.labelled[0].positions, start[1].positions)
    assert new.refits == 1 and new.model.n_training_structures_ == 2
    assert "(new structure)" in (tmp_path / "new" / "otf.log").read_text()
    with pytest.raises(ValueError, match="min_call_interval"):
        run("bad", 1.0, min_call_interval=0)
    # a fixed interval longer than the trajectory's still writes every trajectory_every-th frame,
    # each with the driving model's forces
    fixed = run("fixed", 1e6, check_every=6, label_every=6, trajectory_every=4)
    assert [(a.info["otf_stage"], a.info["otf_step"]) for a in fixed.labelled] == [(0, 6), (0, 12)]
    frames = gapfit.io.read(tmp_path / "fixed" / "trajectory.xyz")
    assert [(f.info["otf_stage"], f.info["otf_step"]) for f in frames] == [
        (0, 0), (0, 4), (0, 8), (0, 12), (1, 0), (1, 4)]
    assert all("model_forces" in f.arrays for f in frames if f.info["otf_step"])


def test_the_python_on_the_fly_continues_a_loaded_model(tmp_path):
    from ase.calculators.emt import EMT
    from gapfit.active import OnTheFly
    start = make_cu_structures(1, seed=13, repeat=(2, 2, 1), rattle=0.05)
    pair_model().fit(start).save(tmp_path / "start.gap")
    loaded = gapfit.load(tmp_path / "start.gap")
    run = OnTheFly(loaded, EMT(), tmp_path / "run", threshold=0.01, check_every=10,
                   temperature_K=800.0, timestep_fs=2.0, random_state=5).run(start[0], 30)
    assert len(run.labelled) >= 1
    assert run.model.n_training_structures_ == 1 + len(run.labelled)


def test_the_local_source_reads_the_driving_calculators_forces_std():
    data = make_cu_structures(2, seed=14, repeat=(2, 1, 1))
    model = pair_model().fit(data[:1])
    atoms = data[1].copy()
    atoms.calc = gapfit.GAPCalculator(model, uncertainty="local")
    atoms.get_forces()
    reported = atoms.calc.results["forces_latent_score"]
    value, _ = on_the_fly.frame_uncertainty(model, atoms, source="local")
    assert value == np.max(reported)
    bare = data[1].copy()  # without such a calculator: one is made for the frame
    bare.calc = None
    assert on_the_fly.frame_uncertainty(model, bare, source="local")[0] == pytest.approx(value)
    with pytest.raises(ValueError, match="unknown uncertainty source"):
        on_the_fly.frame_uncertainty(model, bare, source="exact")


# ------------------------------------------------------------------ calibrated threshold
def test_the_calibration_factor_pools_the_errors_and_stds_of_the_calls():
    rng = np.random.default_rng(3)
    frames, errors, stds = [], [], []
    for n_atoms, error_scale in ((2, 0.3), (5, 0.1), (3, 0.2)):
        atoms = bulk("Cu", "fcc", a=3.6).repeat((n_atoms, 1, 1))
        error = error_scale * rng.standard_normal((n_atoms, 3))
        std = 0.05 * rng.uniform(0.5, 1.5, (n_atoms, 3))
        atoms.info.update(otf_error_ms=float(np.mean(error ** 2)),
                          otf_predictive_ms=float(np.mean(std ** 2)))
        frames.append(atoms)
        errors.append(error.ravel())
        stds.append(std.ravel())
    # the slow reference: the root mean square of every component's error over that of its
    # predictive std
    reference = np.sqrt(np.mean(np.concatenate(errors) ** 2) / np.mean(np.concatenate(stds) ** 2))
    assert reference > 1.5
    assert on_the_fly.calibration_factor(frames) == pytest.approx(reference, rel=1e-12)
    # frames without a pair (start labels, frames of older runs) are skipped
    frames.append(bulk("Cu", "fcc", a=3.6))
    assert on_the_fly.calibration_factor(frames) == pytest.approx(reference, rel=1e-12)
    # no pair: no calibration; errors below the stds: the latent std is not scaled down
    assert on_the_fly.calibration_factor(frames[-1:]) == 1.0
    small = bulk("Cu", "fcc", a=3.6)
    small.info.update(otf_error_ms=1e-4, otf_predictive_ms=4e-4)
    assert on_the_fly.calibration_factor([small]) == 1.0


def test_calibrated_calls_fire_where_the_latent_std_alone_stays_below_the_threshold(tmp_path):
    import copy
    from ase.calculators.emt import EMT
    start = make_cu_structures(2, seed=15, repeat=(2, 2, 1), rattle=0.05)
    start[1].rattle(0.05, seed=2)
    # a pair potential for many-body EMT, with a small noise sigma: its errors are several
    # times its predictive std
    model = pair_model(force_sigma=0.01, optimize_hyperparameters=False).fit(start[:1])
    sigma_F = on_the_fly.noise_level(model)
    stages = [on_the_fly.Stage(steps=20, temperature_K=300.0, timestep_fs=2.0, structure=1)]

    def run(folder, calibration):
        return on_the_fly.OnTheFlyRun(EMT(), start, stages, tmp_path / folder,
                                      model=copy.deepcopy(model), training=start[:1], threshold=4.0,
                                      refit_growth=None, random_state=6, min_call_interval=5,
                                      label_new_structures=True, calibration=calibration).run()

    plain = run("none", "none")
    assert [a.info["config_type"] for a in plain.labelled] == ["new_structure"]
    calibrated = run("errors", "errors")
    kinds = [a.info["config_type"] for a in calibrated.labelled]
    assert kinds[0] == "new_structure" and kinds.count("on_the_fly") >= 2
    # the pair stored with the new structure's label, against a slow reference: the start
    # model's force errors there and its latent variances plus the noise sigma squared
    reference = start[1].copy()
    reference.calc = EMT()
    errors = model.predict_structure(start[1]).forces - reference.get_forces()
    stds = model.predict_variances([start[1]])[0].forces_std
    first = calibrated.labelled[0].info
    assert first["otf_error_ms"] == pytest.approx(np.mean(errors ** 2), rel=1e-8)
    assert first["otf_predictive_ms"] == pytest.approx(np.mean(stds ** 2) + sigma_F ** 2, rel=1e-8)
    factor = np.sqrt(np.mean(errors ** 2) / (np.mean(stds ** 2) + sigma_F ** 2))
    assert factor > 2
    # the next call compared its latent std with 4 sigma_F over that factor
    second = calibrated.labelled[1].info
    assert second["otf_threshold"] == pytest.approx(4.0 * sigma_F / factor, rel=1e-6)
    assert second["otf_uncertainty"] < 4.0 * sigma_F < factor * second["otf_uncertainty"]
    # the factor lives in labelled.xyz: a run restored from the folder has the same, and
    # only a non-default calibration is written into settings.json
    restored = on_the_fly.OnTheFlyRun(EMT(), start, stages, tmp_path / "errors", model=model,
                                      training=start[:1], threshold=4.0, refit_growth=None,
                                      random_state=6, min_call_interval=5,
                                      label_new_structures=True)
    assert restored.run().oracle_calls == calibrated.oracle_calls
    assert restored.calibration_factor() == pytest.approx(
        on_the_fly.calibration_factor(calibrated.labelled), rel=1e-9)
    assert "calibration" not in json.loads((tmp_path / "errors" / "settings.json").read_text())
    assert json.loads((tmp_path / "none" / "settings.json").read_text())["calibration"] == "none"
    with pytest.raises(ValueError, match="calibration"):
        on_the_fly.OnTheFlyRun(EMT(), start, stages, tmp_path / "none", model=model,
                               training=start[:1], threshold=4.0, refit_growth=None,
                               random_state=6, min_call_interval=5,
                               label_new_structures=True).run()
    with pytest.raises(ValueError, match="unknown calibration 'latent'"):
        run("bad", "latent")

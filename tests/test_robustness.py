"""Nothing silently wrong, nothing lost: shared calculators, output paths, model files from other
versions, unlabelled data, bad command-line values and input slices (issue 17).

The command line is driven in-process through ``gapfit.cli.main`` so that library functions can be
replaced by recording stand-ins (for instance to show that a fit never starts).
"""
import json
import os
import stat
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

import gapfit
from gapfit.cli import main


REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"


@pytest.fixture(scope="module")
def pair_model(cu_train):
    return gapfit.GAP(terms=[gapfit.TwoBody(n_sparse=15, theta=1.0)], random_state=0).fit(cu_train)


@pytest.fixture(scope="module")
def model_file(pair_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "pair.gap"
    pair_model.save(path)
    return path


def run_cli(capsys, *args):
    """(exit status, stdout, stderr) of ``gapfit ARGS``, usage errors (SystemExit) included."""
    try:
        status = main([str(a) for a in args])
    except SystemExit as exit_:
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_line(stderr):
    lines = [line for line in stderr.strip().splitlines() if not line.startswith("usage:")
             and not line.startswith(" ")]
    assert "Traceback" not in stderr
    assert len(lines) == 1, stderr
    return lines[0]


# ----------------------------------------------------------------------------- threads
def test_a_calculator_shared_by_threads_gives_each_thread_its_own_results(pair_model):
    """4 threads × 100 calls on one GAPCalculator, each thread with its own structures (different
    sizes, two geometries in turn), agree with serial results to rounding."""
    shapes = [(2, 2, 2), (3, 2, 2), (2, 3, 3), (3, 3, 2)]
    rng = np.random.default_rng(0)
    geometries = []
    for shape in shapes:
        base = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(shape)
        pair = []
        for _ in range(2):
            atoms = base.copy()
            atoms.positions += 0.05 * rng.standard_normal(atoms.positions.shape)
            pair.append(atoms)
        geometries.append(pair)
    serial = [[(gapfit.GAPCalculator(pair_model).get_potential_energy(atoms),
                gapfit.GAPCalculator(pair_model).get_forces(atoms)) for atoms in pair]
              for pair in geometries]

    shared = gapfit.GAPCalculator(pair_model)
    mismatches, errors = [], []
    start = threading.Barrier(len(shapes))

    def work(thread):
        atoms = geometries[thread][0].copy()
        atoms.calc = shared
        start.wait()
        try:
            for call in range(100):
                which = call % 2
                atoms.positions[:] = geometries[thread][which].positions
                energy, forces = atoms.get_potential_energy(), atoms.get_forces()
                expected_energy, expected_forces = serial[thread][which]
                # to rounding: the calculator's reused neighbour list may sum pairs in another order
                if (abs(energy - expected_energy) > 1e-9 or forces.shape != expected_forces.shape
                        or np.abs(forces - expected_forces).max() > 1e-9):
                    mismatches.append((thread, call, energy - expected_energy))
        except Exception as error:  # an IndexError or PropertyNotImplementedError is a failure too
            errors.append(f"{type(error).__name__}: {error}")

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often so that a race shows
    try:
        threads = [threading.Thread(target=work, args=(t,)) for t in range(len(shapes))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors[:3]
    assert not mismatches, (f"{len(mismatches)} of 400 calls gave another thread's results",
                            mismatches[:5])


def test_a_calculator_with_its_lock_can_still_be_pickled_and_copied(pair_model, cu_test):
    import copy
    import pickle
    calculator = gapfit.GAPCalculator(pair_model)
    for twin in (pickle.loads(pickle.dumps(calculator)), copy.deepcopy(calculator)):
        assert twin.get_potential_energy(cu_test[0]) == pytest.approx(
            gapfit.GAPCalculator(pair_model).get_potential_energy(cu_test[0]))


# ----------------------------------------------------------------------------- output paths
@pytest.fixture
def fit_never_called(monkeypatch):
    """Replace the fit by a stand-in that records being called."""
    import gapfit.cli.settings
    calls = []
    monkeypatch.setattr(gapfit.cli.settings, "fit_from_settings",
                        lambda *args, **kwargs: calls.append(args) or pytest.fail("the fit started"))
    return calls


def unwritable_paths(tmp_path):
    (tmp_path / "a_file").write_text("not a folder\n")
    paths = [tmp_path / "missing" / "m.gap", tmp_path / "a_file" / "m.gap", tmp_path]
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o555)
    if not os.access(read_only, os.W_OK):  # the superuser writes anywhere
        paths.append(read_only / "m.gap")
    return paths


def test_an_unwritable_output_path_fails_before_the_fit_and_names_the_path(
        tmp_path, capsys, fit_never_called):
    for output in unwritable_paths(tmp_path):
        status, _, err = run_cli(capsys, "fit", DATA / "cu_train.xyz", "-o", output)
        message = one_line(err)
        assert status == 1 and message.startswith(f"gapfit fit: error: {output}:"), message
        assert ".tmp" not in message and ".gapfit-" not in message
    assert fit_never_called == []
    status, _, err = run_cli(capsys, "fit", DATA / "cu_train.xyz", "-o", "/proc/m.gap")
    if Path("/proc").is_dir():  # a file system even the superuser cannot write
        assert status == 1 and "/proc/m.gap: cannot create a file in /proc" in one_line(err)


def test_save_checks_the_destination_first_and_names_it(pair_model, tmp_path, monkeypatch):
    import gapfit.model.stored
    monkeypatch.setattr(gapfit.model.stored, "model_arrays",
                        lambda model: pytest.fail("save did work before checking the path"))
    target = tmp_path / "missing" / "m.gap"
    with pytest.raises(FileNotFoundError) as caught:
        pair_model.save(target)
    assert caught.value.filename == str(target) and "folder" in str(caught.value)


def test_a_model_that_cannot_be_written_after_the_fit_is_kept_and_the_message_says_where(
        pair_model, tmp_path, capsys, monkeypatch):
    import shutil
    import gapfit.cli.settings
    folder = tmp_path / "out"
    folder.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)

    def fit_then_lose_the_folder(settings, verbose=False):
        shutil.rmtree(folder)  # the destination disappears during the fit
        return pair_model

    monkeypatch.setattr(gapfit.cli.settings, "fit_from_settings", fit_then_lose_the_folder)
    status, _, err = run_cli(capsys, "fit", DATA / "cu_train.xyz", "-o", folder / "m.gap")
    message = one_line(err)
    assert status == 1 and str(folder / "m.gap") in message
    assert f"saved to {work / 'm.gap'} instead" in message, message
    kept = gapfit.load(work / "m.gap")
    assert np.array_equal(kept.alpha_, pair_model.alpha_)


# ----------------------------------------------------------------------------- permissions
@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_model_files_get_the_permissions_of_the_umask(pair_model, tmp_path, umask):
    from gapfit.structures.atomic_files import write_atomically
    old = os.umask(umask)
    try:
        pair_model.save(tmp_path / "m.gap")
        write_atomically(tmp_path / "other.xyz", lambda path: Path(path).write_text("1\n\n"))
    finally:
        os.umask(old)
    for name in ("m.gap", "other.xyz"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o666 & ~umask, name


def test_overwriting_a_model_file_keeps_its_permissions(pair_model, tmp_path):
    path = tmp_path / "m.gap"
    pair_model.save(path)
    path.chmod(0o640)
    pair_model.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


# ----------------------------------------------------------------------------- model files
def rewrite_header(source, target, change):
    with np.load(source) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = json.loads(arrays.pop("header").tobytes().decode())
    change(header)
    with open(target, "wb") as stream:  # a file object: np.savez would append .npz to a name
        np.savez(stream, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays)


def test_a_model_with_a_setting_this_version_lacks_names_the_writer_version_and_setting(
        model_file, tmp_path, capsys):
    def newer(header):
        header["gapfit_version"] = "9.1.0"
        header["settings"]["core_repulsion"] = "zbl"
        header["settings"]["terms"][0]["params"]["new_knob"] = 3

    rewrite_header(model_file, tmp_path / "newer.gap", newer)
    with pytest.raises(gapfit.ModelFileError) as caught:
        gapfit.load(tmp_path / "newer.gap")
    message = str(caught.value)
    assert "written by gapfit 9.1.0" in message and f"({gapfit.__version__})" in message
    assert "'core_repulsion'" in message and "'TwoBody.new_knob'" in message
    status, _, err = run_cli(capsys, "eval", tmp_path / "newer.gap", DATA / "cu_test.xyz")
    assert status == 1 and "written by gapfit 9.1.0" in one_line(err)


def test_a_text_file_given_as_a_model_is_called_not_a_model_file(tmp_path, capsys):
    for path in (DATA / "cu_test.xyz", tmp_path / "empty.gap"):
        if not path.exists():
            path.write_bytes(b"")
        with pytest.raises(gapfit.ModelFileError) as caught:
            gapfit.load(path)
        assert "not a gapfit model file" in str(caught.value)
        assert "pickle" not in str(caught.value)
    status, _, err = run_cli(capsys, "eval", DATA / "cu_test.xyz", DATA / "cu_test.xyz")
    message = one_line(err)
    assert status == 1 and "cu_test.xyz: not a gapfit model file (it holds text" in message, message
    assert "pickle" not in message


# ----------------------------------------------------------------------------- command-line values
BAD_VALUES = [
    ("fit", ["--energy-sigma", "0"], "argument --energy-sigma: must be > 0 eV/atom, not 0"),
    ("fit", ["--force-sigma", "-1"], "argument --force-sigma: must be > 0 eV/Å, not -1"),
    ("fit", ["--virial-sigma", "nan"], "argument --virial-sigma: a finite number is needed"),
    ("fit", ["--sparse-jitter", "-0.1"], "argument --sparse-jitter: must be >= 0"),
    ("fit", ["--seed", "-3"], "argument --seed: must be >= 0"),
    ("fit", ["--seed", "1.5"], "argument --seed: an integer is needed, not '1.5'"),
    ("fit", ["--n-jobs", "0"], "argument --n-jobs: must not be 0"),
    ("fit", ["--soap", "n_sparse=abc"], "--soap: SOAP n_sparse must be an integer, not 'abc'"),
    ("fit", ["--soap", "r_cut=-1"], "--soap: SOAP r_cut must be a finite number > 0, not -1"),
    ("fit", ["--soap", "l_max=2.5"], "--soap: SOAP l_max must be an integer, not 2.5"),
    ("fit", ["--twobody", "theta=0"], "--twobody: TwoBody theta must be a finite number > 0"),
    ("fit", ["--terms", "acsf", "--acsf", "delta=x"], "--acsf: ACSF delta must be a number, not 'x'"),
    ("fit", ["--e0", "Cu=x"], "--e0 'Cu=x': every SYMBOL=VALUE needs a number in eV"),
    ("eval", ["--md-time", "0"], "argument --md-time: must be > 0 ps, not 0"),
    ("eval", ["--md-temperature", "-1"], "argument --md-temperature: must be > 0 K, not -1"),
    ("md", ["--timestep", "-1"], "argument --timestep: must be > 0 fs, not -1"),
    ("md", ["--temperature", "-5"], "argument --temperature: must be >= 0 K, not -5"),
    ("md", ["--init-temperature", "-1"], "argument --init-temperature: must be >= 0 K, not -1"),
    ("md", ["--steps", "0"], "argument --steps: must be >= 1, not 0"),
    ("md", ["--steps", "ten"], "argument --steps: an integer is needed, not 'ten'"),
    ("md", ["--repeat", "2", "0", "2"], "argument --repeat: must be >= 1, not 0"),
    ("md", ["--pressure", "inf"], "argument --pressure: a finite number is needed, not 'inf'"),
    ("md", ["--friction", "0"], "argument --friction: must be > 0 1/fs, not 0"),
    ("md", ["--tdamp", "0"], "argument --tdamp: must be > 0 fs, not 0"),
    ("md", ["--pdamp", "-100"], "argument --pdamp: must be > 0 fs, not -100"),
    ("md", ["--interval", "0"], "argument --interval: must be >= 1, not 0"),
    ("md", ["--seed", "x"], "argument --seed: an integer is needed, not 'x'"),
    ("select", ["-n", "0"], "argument -n: must be >= 1, not 0"),
    ("select", ["-n", "3", "--seed", "-1"], "argument --seed: must be >= 0, not -1"),
]


@pytest.mark.parametrize("command, values, expected", BAD_VALUES,
                         ids=[" ".join(values) for _, values, _ in BAD_VALUES])
def test_a_bad_numeric_option_is_a_one_line_usage_error_naming_it(
        command, values, expected, model_file, capsys, fit_never_called):
    positional = {"fit": [DATA / "cu_train.xyz"], "eval": [model_file, DATA / "cu_test.xyz"],
                  "md": [model_file, DATA / "cu_test.xyz"], "select": [model_file, DATA / "cu_test.xyz"]}
    status, _, err = run_cli(capsys, command, *positional[command], *values)
    message = one_line(err)
    assert status == 2, (status, err)
    assert message.startswith(f"gapfit {command}: error: ") and expected in message, message


def test_good_numeric_options_still_parse():
    from gapfit.cli.commands import build_parser
    args = build_parser().parse_args(["md", "m.gap", "s.xyz", "--timestep", "0.5", "--temperature", "0",
                                      "--pressure", "-1.5", "--repeat", "2", "2", "1", "--seed", "0"])
    assert (args.timestep, args.temperature, args.pressure, args.repeat, args.seed) == (
        0.5, 0.0, -1.5, [2, 2, 1], 0)


# ----------------------------------------------------------------------------- unlabelled data
def test_eval_names_the_configurations_that_lack_a_label_and_fails_with_nothing_to_evaluate(
        model_file, tmp_path, capsys):
    import ase.io
    structures = gapfit.io.read(DATA / "cu_test.xyz", index=":6")
    unlabelled = [atoms.copy() for atoms in structures]  # copy() drops the labels
    ase.io.write(tmp_path / "unlabelled.xyz", unlabelled)
    status, out, err = run_cli(capsys, "eval", model_file, tmp_path / "unlabelled.xyz")
    assert status == 1 and "Traceback" not in err
    assert "all configurations have no reference energy" in err
    assert "all configurations have no reference forces" in err
    assert err.strip().splitlines()[-1].startswith("gapfit eval: error: ") and "nothing to evaluate" in err

    partial = gapfit.io.read(DATA / "cu_test.xyz", index=":6")
    partial[2].calc.results["forces"][0, 1] = np.nan
    del partial[4].calc.results["energy"]
    gapfit.io.write(tmp_path / "partial.xyz", partial)
    status, out, err = run_cli(capsys, "eval", model_file, tmp_path / "partial.xyz",
                               "--json", tmp_path / "errors.json")
    assert status == 0
    assert "configuration 4 has no reference energy" in err
    assert "configuration 2 has NaN or infinite reference forces" in err
    result = json.loads((tmp_path / "errors.json").read_text())
    assert result["all"]["energy"]["n"] == 5 and result["all"]["forces"]["n"] == 5 * 3 * len(partial[0])
    assert all(result["all"][q]["mae"] is not None for q in ("energy", "forces"))


def test_label_gaps_and_their_sentence():
    from gapfit.evaluate.errors import describe_label_gaps, label_gaps
    structures = gapfit.io.read(DATA / "cu_test.xyz", index=":5")
    for index in (0, 1, 2, 4):
        del structures[index].calc.results["stress"]
    structures[3].calc.results["energy"] = np.inf
    gaps = label_gaps(structures)
    assert gaps["stress"]["missing"] == [0, 1, 2, 4] and gaps["energy"]["non_finite"] == [3]
    assert describe_label_gaps(gaps, 5) == ("configuration 3 has NaN or infinite reference energy; "
                                            "configurations 0-2, 4 have no reference stress")


# ----------------------------------------------------------------------------- inputs
def write_mlearn(path, structures):
    """structures in the mlearn benchmark's JSON layout (energy eV, forces eV/Å, no stress)."""
    entries = [{"structure": {"lattice": {"matrix": atoms.cell.array.tolist()},
                              "sites": [{"species": [{"element": symbol}], "xyz": position.tolist()}
                                        for symbol, position in zip(atoms.get_chemical_symbols(),
                                                                    atoms.positions)]},
                "num_atoms": len(atoms), "group": "synthetic",
                "outputs": {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces().tolist()}}
               for atoms in structures]
    Path(path).write_text(json.dumps(entries))


SELECTIONS = [":5", "3:11:2", "::-3", "19:13:-3", "-4:", "7", "-1", "50:"]


@pytest.mark.parametrize("selection", SELECTIONS)
def test_the_at_slice_syntax_selects_like_an_index(selection):
    everything = gapfit.io.read(DATA / "cu_test.xyz")
    wanted = [everything[i] for i in gapfit.io.selected_positions(len(everything), selection)]
    read = gapfit.io.read(f"{DATA / 'cu_test.xyz'}@{selection}")
    assert [a.get_potential_energy() for a in read] == [a.get_potential_energy() for a in wanted]
    assert gapfit.fit.training.frame_sizes(f"{DATA / 'cu_test.xyz'}@{selection}") == [len(a) for a in wanted]


@pytest.mark.parametrize("selection", SELECTIONS)
def test_file_chunks_read_by_workers_honour_the_at_slice(selection):
    from gapfit.fit.training import chunks_of_files
    path = f"{DATA / 'cu_test.xyz'}@{selection}"
    expected = gapfit.io.read(path)
    chunks = chunks_of_files([path, DATA / "cu_test.xyz"], max_atoms=70)
    loaded = [atoms for chunk in chunks for atoms in chunk.load()]
    assert len(chunks) > 1 and len(loaded) == len(expected) + len(gapfit.io.read(DATA / "cu_test.xyz"))
    assert [a.get_potential_energy() for a in loaded[:len(expected)]] == [
        a.get_potential_energy() for a in expected]
    assert [c.first_index for c in chunks] == sorted(c.first_index for c in chunks)


def test_at_slice_errors_name_the_path():
    path = DATA / "cu_test.xyz"
    with pytest.raises(ValueError, match="'abc' after '@' is not a configuration index"):
        gapfit.io.read(f"{path}@abc")
    with pytest.raises(ValueError, match="configurations chosen twice"):
        gapfit.io.read(f"{path}@:5", index="2")


def test_fit_eval_select_and_md_honour_the_at_slice(model_file, tmp_path, capsys, monkeypatch):
    import gapfit.cli.settings
    fitted = []
    original = gapfit.cli.settings.fit_from_settings

    def record(settings, verbose=False):
        fitted.append(settings["train"])
        return original(settings, verbose)

    monkeypatch.setattr(gapfit.cli.settings, "fit_from_settings", record)
    status, _, err = run_cli(capsys, "fit", f"{DATA / 'cu_train.xyz'}@:5", "--terms", "twobody",
                             "--twobody", "n_sparse=6", "-o", tmp_path / "m.gap")
    assert status == 0, err
    assert "read 5 configurations" in err and fitted[0][0].endswith("cu_train.xyz@:5")
    assert gapfit.load(tmp_path / "m.gap").n_training_structures_ == 5

    status, out, err = run_cli(capsys, "eval", model_file, f"{DATA / 'cu_test.xyz'}@2:5")
    assert status == 0 and "(3 configurations)" in out, (out, err)

    status, out, err = run_cli(capsys, "select", model_file, f"{DATA / 'cu_test.xyz'}@:4", "-n", "4",
                               "-o", tmp_path / "picked.xyz")
    assert status == 0, err
    assert sorted(int(i) for i in out.split(":")[-1].split()) == [0, 1, 2, 3]

    from gapfit.cli.commands import _starting_structure
    third = _starting_structure(f"{DATA / 'cu_test.xyz'}@2", None, None)
    assert np.array_equal(third.positions, gapfit.io.read(DATA / "cu_test.xyz", index=2)[0].positions)
    status, _, err = run_cli(capsys, "md", model_file, f"{DATA / 'cu_test.xyz'}@:3", "--steps", "1")
    assert status == 1 and "selects 3 structures; give one index" in one_line(err)


def test_every_command_reads_mlearn_json(model_file, tmp_path, capsys):
    structures = gapfit.io.read(DATA / "cu_test.xyz", index=":4")
    write_mlearn(tmp_path / "pool.json", structures)
    read = gapfit.io.read(tmp_path / "pool.json")
    assert np.allclose([a.get_potential_energy() for a in read],
                       [a.get_potential_energy() for a in structures])
    assert len(gapfit.io.read(f"{tmp_path / 'pool.json'}@1:3")) == 2
    assert gapfit.fit.training.frame_sizes(tmp_path / "pool.json") == [len(a) for a in structures]
    status, out, err = run_cli(capsys, "select", model_file, tmp_path / "pool.json", "-n", "2",
                               "-o", tmp_path / "picked.xyz")
    assert status == 0, err
    assert len(gapfit.io.read(tmp_path / "picked.xyz")) == 2
    status, out, err = run_cli(capsys, "eval", model_file, tmp_path / "pool.json")
    assert status == 0 and "(4 configurations)" in out
    atoms = gapfit.cli.commands._starting_structure(str(tmp_path / "pool.json"), None, None)
    assert np.array_equal(atoms.positions, structures[-1].positions)


def test_no_reference_forces_names_the_file_and_suggests_no_forces(tmp_path, capsys):
    structures = gapfit.io.read(DATA / "cu_test.xyz", index=":3")
    for atoms in structures:
        del atoms.calc.results["forces"]
    gapfit.io.write(tmp_path / "energies.xyz", structures)
    status, _, err = run_cli(capsys, "fit", DATA / "cu_test.xyz", tmp_path / "energies.xyz",
                             "--terms", "twobody", "-o", tmp_path / "m.gap")
    message = one_line(err)
    assert status == 1 and f"{tmp_path / 'energies.xyz'}: configuration 0: no reference forces" in message
    assert "--no-forces" in message
    with pytest.raises(ValueError, match=r"energies.xyz: configuration 0: no reference forces.*--no-forces"):
        gapfit.GAP(terms=[gapfit.TwoBody(n_sparse=4)]).fit([str(tmp_path / "energies.xyz")])


def test_other_commands_check_their_outputs_before_work(model_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(gapfit, "load", lambda path: pytest.fail("the command started work"))
    missing = tmp_path / "missing"
    for command in (["md", model_file, DATA / "cu_test.xyz", "-o", missing / "md.xyz"],
                    ["md", model_file, DATA / "cu_test.xyz", "--log", missing / "md.log"],
                    ["select", model_file, DATA / "cu_test.xyz", "-n", "2", "-o", missing / "p.xyz"],
                    ["eval", model_file, DATA / "cu_test.xyz", "--json", missing / "e.json"]):
        status, _, err = run_cli(capsys, *command)
        assert status == 1 and f"{command[-1]}: folder {missing} does not exist" in one_line(err)

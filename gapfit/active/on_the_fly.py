"""On-the-fly learning through a schedule of MD stages, resumable after a kill: the runner of ``gapfit otf``.

``OnTheFlyRun`` drives MD with a GAP through ``Stage``s (NVE, Langevin NVT or NPT at a
temperature and pressure), measures the model's uncertainty every ``check_every`` steps and,
when it exceeds the threshold, has the oracle (any ASE calculator) label the frame, adds the
label with ``GAP.update`` and, when that label cannot lower its own uncertainty (the sparse
set does not span it) and the training data are known, refits with fresh sparse points. It
stops when the schedule is done or the budget of oracle calls is spent.

The threshold is relative to the model's own noise level by default: a multiple of the
fitted force sigma (``force_sigma`` times any optimised scale), so one number serves every
system. ``threshold_unit="eV/A"`` takes it as an absolute force std (eV/Å) instead.

What is compared with it is, by default (``calibration="errors"``), the frame's largest latent
force std times a calibration factor learnt from the oracle calls themselves: at every call
the runner knows the model's force errors on the frame before its label and its predictive
stds there (latent variance plus the noise sigma squared), and the factor is the root mean
square of the errors over that of the predictive stds, pooled over every call so far
(``calibration_factor``), never below 1. The latent std's level relative to the model's errors
differs from system to system (benchmarks/on_the_fly.py: at the calls on EMT Cu-Ag-Au the
RMS error is 0.2-1.7 times the RMS predictive std, on a Mo SNAP 1.7-2.9 times in the bulk and
4-7 times on a surface); the factor reads the std at the errors' scale. The noise term
bounds it: as labels shrink the latent std, the factor tends to the errors over the noise
sigma instead of growing without end (a ratio to the latent std alone did grow, 2.7 -> 16 on
Mo, and called at every allowed step). Until a call has given a pair the factor is 1.
``calibration="none"`` compares the latent std itself.

Files in the run folder, each written so that a kill at any moment loses no labelled data:

- ``labelled.xyz``: every oracle-labelled frame, extended XYZ, appended and synced to disk
  after each oracle call (positions, momenta, labels, and in ``info`` the stage, step,
  uncertainty and threshold). A frame cut short by a kill is dropped on restart.
- ``models/model-K.gap``: the model holding the first K labelled frames, written atomically
  after each change; on restart the newest is loaded and updated with the frames after K.
- ``state.json``: the MD state at the last checkpoint (stage, step, exact positions,
  momenta and cell), written atomically; a labelled frame later than it is resumed from.
- ``settings.json``: the schedule and learning settings; a restart with others is an error.
- ``otf.log``: one line per oracle call and per refit. ``trajectory.xyz``: the MD frames
  every ``trajectory_every`` steps with the driving model's forces (``model_forces``) and
  energy (a restart repeats the frames after the last checkpoint).
- ``model.gap``: the final model, written when the run ends.
"""
import dataclasses
import datetime
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from ase import Atoms

log = logging.getLogger(__name__)

ENSEMBLES = ("nve", "nvt", "npt")
THRESHOLD_UNITS = ("sigma", "eV/A")
UNCERTAINTY_SOURCES = ("full", "local")
SCORES = ("forces", "forces_rms")
REFIT_POLICIES = ("auto", "never")
CALIBRATIONS = ("errors", "none")


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of the schedule.

    steps : MD steps. temperature_K : thermostat target (K); the stage starts with
        Maxwell–Boltzmann velocities at it. ensemble : "nvt" (Langevin), "npt" (isotropic
        MTK barostat, ``pressure_GPa``) or "nve". timestep_fs : fs. friction_per_fs : 1/fs.
    structure : index of the start structure the stage begins from, or None to go on from
        the previous stage's last frame (the first stage then begins from structure 0).
    """

    steps: int
    temperature_K: float = 300.0
    ensemble: str = "nvt"
    timestep_fs: float = 1.0
    pressure_GPa: float = 0.0
    friction_per_fs: float = 0.01
    structure: int = None

    def __post_init__(self):
        if self.ensemble not in ENSEMBLES:
            raise ValueError(f"unknown ensemble {self.ensemble!r} (choose from {', '.join(ENSEMBLES)})")
        if int(self.steps) != self.steps or self.steps < 0:
            raise ValueError(f"stage steps must be a whole number >= 0, not {self.steps!r}")
        if self.timestep_fs <= 0:
            raise ValueError(f"stage timestep must be positive (fs), not {self.timestep_fs!r}")
        if self.temperature_K < 0:
            raise ValueError(f"stage temperature must be >= 0 K, not {self.temperature_K!r}")

    def describe(self):
        pressure = f" {self.pressure_GPa:g} GPa" if self.ensemble == "npt" else ""
        return f"{self.ensemble} {self.temperature_K:g} K{pressure}"


def noise_level(model):
    """The model's fitted force noise sigma (eV/Å): ``force_sigma`` times any optimised scale."""
    return float(model.noise_.force_sigma) * model.noise_.scale("forces")


def force_stds(model, atoms, source="full", posterior=None):
    """The latent force stds of one frame (eV/Å): (N, 3) posterior force-component stds
    (``source="full"``) or the (N,) per-atom latent force score of the "local" calculator
    (see ``frame_uncertainty``). Returns (stds, posterior), the posterior to pass back in
    while the model is unchanged."""
    from ..md.calculator import GAPCalculator
    if source == "full":
        from ..uncertainty.posterior import Posterior, structure_targets, target_variances
        if posterior is None or not posterior.is_current(model):
            posterior = Posterior(model)
        stds = target_variances(posterior, structure_targets(model.terms_, atoms)).forces_std
    elif source == "local":
        calculator = atoms.calc
        if getattr(calculator, "uncertainty", None) != "local" or calculator.model is not model:
            calculator = GAPCalculator(model, uncertainty="local")
        calculator.get_forces(atoms)  # the MD step's own results when they are current
        stds = calculator.results.get("forces_latent_score")
        if stds is None:
            raise ValueError("uncertainty 'local': GAPCalculator reports no forces_latent_score")
    else:
        raise ValueError(f"unknown uncertainty source {source!r} (choose from "
                         f"{', '.join(UNCERTAINTY_SOURCES)})")
    return np.asarray(stds, dtype=float), posterior


def reduce_stds(stds, score="forces"):
    """One frame's uncertainty (eV/Å) from its stds: the largest (``score="forces"``) or
    their root mean square ("forces_rms")."""
    if score == "forces":
        return float(np.max(stds))
    if score == "forces_rms":
        return float(np.sqrt(np.mean(np.square(stds))))
    raise ValueError(f"unknown uncertainty score {score!r} (choose from {', '.join(SCORES)})")


def frame_uncertainty(model, atoms, score="forces", source="full", posterior=None):
    """The force uncertainty of one frame (eV/Å): the largest force-component std
    (``score="forces"``) or their root mean square ("forces_rms").

    source : "full", the exact latent posterior force std (``gapfit.uncertainty.posterior``);
        "local", the latent part of the cheap force score that
        ``GAPCalculator(model, uncertainty="local")`` reports (``forces_latent_score``, one
        value per atom), read from the results of the calculator driving ``atoms`` when it is
        such a calculator of ``model``. Both leave out the label noise, so the threshold
        compares what more data can lower. Returns (score, posterior), the
        posterior to pass back in while the model is unchanged.
    """
    if score not in SCORES:
        raise ValueError(f"unknown uncertainty score {score!r} (choose from {', '.join(SCORES)})")
    stds, posterior = force_stds(model, atoms, source, posterior)
    return reduce_stds(stds, score), posterior


def calibration_factor(frames):
    """The factor (>= 1, no unit) by which the latent force stds are read at the scale of the
    model's force errors, from the oracle-labelled ``frames`` that carry an error/std pair in
    ``info`` (``otf_error_ms``: mean squared force-component error of the model before the
    label; ``otf_predictive_ms``: mean squared predictive std there, latent variance plus the
    noise sigma squared; both eV²/Å²; frames without them are skipped):
    sqrt(sum n·error_ms / sum n·predictive_ms) with n the frame's atoms, or 1 when no frame
    has a pair. Below 1 is not taken: the calls are made where the std is large, so their
    ratio understates it elsewhere, and the uncalibrated threshold is the floor."""
    errors = variances = 0.0
    for frame in frames:
        if "otf_error_ms" in frame.info and "otf_predictive_ms" in frame.info:
            errors += len(frame) * float(frame.info["otf_error_ms"])
            variances += len(frame) * float(frame.info["otf_predictive_ms"])
    if variances <= 0.0:
        return 1.0
    return max(1.0, float(np.sqrt(errors / variances)))


def min_distance(atoms):
    """Shortest interatomic distance (Å), periodic images included (inf for one atom alone)."""
    from ase.neighborlist import neighbor_list
    if len(atoms) < 2 and not atoms.pbc.any():
        return float("inf")
    distances = neighbor_list("d", atoms, 3.0)
    return float(distances.min()) if len(distances) else float("inf")


def write_atomically(path, text):
    """Write ``text`` to ``path`` through a synced temporary file renamed onto it."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def read_complete_frames(path):
    """The complete extended XYZ frames of an append-only file; a frame cut short by a kill
    (and anything after it) is cut off the file, so appending can go on."""
    from ..structures.io import read
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    offset, position, complete = 0, 0, 0
    while position < len(lines):
        head = lines[position].strip()
        if not head:
            break
        try:
            n_atoms = int(head)
        except ValueError:
            break
        end = position + 2 + n_atoms
        if end >= len(lines):  # the frame's last line has no newline yet: incomplete
            break
        offset += sum(len(line) + 1 for line in lines[position:end])
        position, complete = end, complete + 1
    if offset < len(data):
        log.warning("%s: dropping %d bytes of an incomplete frame after %d complete ones",
                    path, len(data) - offset, complete)
        with open(path, "r+b") as stream:
            stream.truncate(offset)
            stream.flush()
            os.fsync(stream.fileno())
    return read(path) if complete else []


def _atoms_state(atoms):
    """JSON-able exact copy of an MD frame (floats round-trip through repr exactly)."""
    return {"numbers": atoms.numbers.tolist(), "positions": atoms.positions.tolist(),
            "momenta": atoms.get_momenta().tolist(), "cell": atoms.cell.array.tolist(),
            "pbc": atoms.pbc.tolist()}


def _atoms_from_state(state):
    atoms = Atoms(numbers=state["numbers"], positions=state["positions"], cell=state["cell"],
                  pbc=state["pbc"])
    atoms.set_momenta(np.array(state["momenta"]))
    return atoms


@dataclasses.dataclass
class RunResult:
    """What ``OnTheFlyRun.run`` returns: the final model, every labelled frame, the oracle
    calls and refits made (over all restarts), and why it stopped ("schedule done",
    "oracle budget spent" or "unphysical: ...")."""

    model: object
    labelled: list
    oracle_calls: int
    refits: int
    reason: str
    directory: Path


class OnTheFlyRun:
    """Resumable on-the-fly learning along a schedule of MD stages (see the module docstring).

    Parameters
    ----------
    oracle : ASE calculator giving reference energies, forces (and stress).
    start : list of Atoms: the structures stages begin from (``Stage.structure``).
    stages : list of ``Stage``.
    directory : the run folder; if it holds a run, ``run`` continues it.
    model : a fitted (or loaded) GAP to continue, or None to fit ``recipe`` to the
        oracle-labelled start structures.
    recipe : an unfitted GAP, used when ``model`` is None.
    training : labelled structures the model was fitted to (None: unknown). Refits fit
        training + labelled frames; without training data a given model only grows by
        ``update`` (when it was fitted here, the labelled frames are all its data).
    label_start : also have the oracle label the start structures first (default: only
        when there is no model).
    threshold : oracle call when the frame's uncertainty times the calibration factor exceeds
        it; in multiples of ``noise_level(model)`` (threshold_unit "sigma") or eV/Å ("eV/A").
    calibration : "errors" (default): the frame's uncertainty is compared with the threshold
        after scaling by ``calibration_factor`` of the labelled frames (the model's force
        errors before each label over its predictive stds there). "none": the latent
        uncertainty itself is compared.
    score : "forces" (largest force-component std) or "forces_rms".
    uncertainty : the source of the stds, "full" or "local" (``frame_uncertainty``).
    check_every : MD steps between uncertainty checks.
    max_oracle_calls : budget (start labels included); None for no limit.
    refit : "auto" or "never". "auto" refits (fresh sparse points from all the data) when an
        update leaves the label's uncertainty above the threshold, until a refit adds no
        sparse point (every term then holds its ``n_sparse``), and whenever the data have
        grown ``refit_growth`` times since the last fit (so the sparse set follows the data,
        with O(log n) refits).
    checkpoint_every : MD steps between writes of ``state.json`` (also after every oracle
        call and at the end of each stage).
    trajectory_every : MD steps between frames of ``trajectory.xyz`` (0: none).
    max_temperature_factor : the run stops as unphysical when the temperature exceeds this
        multiple of the stage's target (and 500 K), or two atoms come closer than
        ``min_distance_A`` (Å).
    label_every : a fixed labelling interval instead (a baseline): every ``label_every``-th
        step is labelled whatever its uncertainty (then a multiple of ``check_every``); the
        threshold still decides refits.
    min_call_interval : MD steps after an oracle call during which the threshold is not
        checked (in the same stage; default 1: every check may call). Consecutive MD frames
        are near copies: when one label cannot bring the uncertainty below the threshold (the
        sparse set's floor), the next steps would each call the oracle for almost nothing.
    label_new_structures : label a stage's start structure (``Stage.structure``) at its
        step 0 whatever its uncertainty, unless the training data or the labelled frames hold
        it already, and refit after that label (sparse points for the new environments).
        It applies to the ``label_every`` baseline too. Without it, a stage beginning from a
        start structure checks its uncertainty before the first step, unless the training data
        or the labelled frames hold that structure already (a label there would repeat one).
    random_state : int seed of the velocities and the Langevin noise (re-seeded at every
        checkpoint, so a restart goes on as the uninterrupted run would).
    """

    def __init__(self, oracle, start, stages, directory, model=None, recipe=None, training=None,
                 label_start=None, threshold=3.0, threshold_unit="sigma", score="forces",
                 uncertainty="full", check_every=1, max_oracle_calls=None, refit="auto",
                 checkpoint_every=10, trajectory_every=10, max_temperature_factor=3.0,
                 min_distance_A=1.0, label_every=None, refit_growth=2.0, random_state=0,
                 min_call_interval=1, label_new_structures=False, calibration="errors"):
        if model is None and recipe is None:
            raise ValueError("give a model to continue or a recipe to fit to the start structures")
        if threshold_unit not in THRESHOLD_UNITS:
            raise ValueError(f"unknown threshold unit {threshold_unit!r} (choose from "
                             f"{', '.join(THRESHOLD_UNITS)})")
        if uncertainty not in UNCERTAINTY_SOURCES:
            raise ValueError(f"unknown uncertainty source {uncertainty!r} (choose from "
                             f"{', '.join(UNCERTAINTY_SOURCES)})")
        if score not in SCORES:
            raise ValueError(f"unknown uncertainty score {score!r} (choose from {', '.join(SCORES)})")
        if calibration not in CALIBRATIONS:
            raise ValueError(f"unknown calibration {calibration!r} (choose from "
                             f"{', '.join(CALIBRATIONS)})")
        if refit not in REFIT_POLICIES:
            raise ValueError(f"unknown refit policy {refit!r} (choose from {', '.join(REFIT_POLICIES)})")
        if not threshold > 0:
            raise ValueError(f"threshold must be positive, not {threshold!r}")
        if int(check_every) < 1 or int(checkpoint_every) < 1:
            raise ValueError("check_every and checkpoint_every must be at least 1 step")
        if max_oracle_calls is not None and max_oracle_calls < 1:
            raise ValueError(f"max_oracle_calls must be at least 1, not {max_oracle_calls!r}")
        self.oracle = oracle
        self.start = [atoms.copy() for atoms in start]
        if not self.start:
            raise ValueError("no start structures given")
        self.stages = [stage if isinstance(stage, Stage) else Stage(**stage) for stage in stages]
        if not self.stages:
            raise ValueError("the schedule has no stages")
        for index, stage in enumerate(self.stages):
            if stage.structure is not None and not 0 <= stage.structure < len(self.start):
                raise ValueError(f"stage {index}: structure {stage.structure} is not one of the "
                                 f"{len(self.start)} start structures")
        self.directory = Path(directory)
        self.model = model
        self.recipe = recipe
        self.training = None if training is None else list(training)
        self.label_start = (model is None) if label_start is None else bool(label_start)
        if model is None and not self.label_start:
            raise ValueError("without a model the start structures must be labelled to fit one")
        self.threshold = float(threshold)
        self.threshold_unit = threshold_unit
        self.score = score
        self.uncertainty = uncertainty
        self.check_every = int(check_every)
        self.max_oracle_calls = max_oracle_calls
        self.refit_policy = refit
        self.checkpoint_every = int(checkpoint_every)
        self.trajectory_every = int(trajectory_every)
        self.max_temperature_factor = float(max_temperature_factor)
        self.min_distance_A = float(min_distance_A)
        self.refit_growth = None if not refit_growth else float(refit_growth)
        if self.refit_growth is not None and self.refit_growth <= 1:
            raise ValueError(f"refit_growth must exceed 1 (or be None), not {refit_growth!r}")
        self.label_every = None if label_every is None else int(label_every)
        if self.label_every is not None and (self.label_every < 1
                                             or self.label_every % self.check_every):
            raise ValueError(f"label_every ({label_every}) must be a multiple of check_every "
                             f"({self.check_every})")
        self.random_state = int(random_state)
        if int(min_call_interval) < 1:
            raise ValueError(f"min_call_interval must be at least 1 step, not {min_call_interval!r}")
        self.min_call_interval = int(min_call_interval)
        self.label_new_structures = bool(label_new_structures)
        self.calibration = calibration
        self.labelled = []
        self.refits = 0
        self.sparse_full = False
        self.fit_size = 0 if model is None else len(self.training or []) or model.n_training_structures_
        self._posterior = None

    # ------------------------------------------------------------------ files
    def _path(self, name):
        return self.directory / name

    def settings_record(self):
        """The settings a restart must share (JSON-able)."""
        record = {"stages": [dataclasses.asdict(stage) for stage in self.stages],
                "threshold": self.threshold, "threshold_unit": self.threshold_unit,
                "score": self.score, "uncertainty": self.uncertainty,
                "check_every": self.check_every, "label_start": self.label_start,
                "refit": self.refit_policy, "random_state": self.random_state,
                "label_every": self.label_every, "refit_growth": self.refit_growth,
                "n_start": len(self.start)}
        # recorded only when set, so that runs written before these settings existed resume
        if self.min_call_interval != 1:
            record["min_call_interval"] = self.min_call_interval
        if self.label_new_structures:
            record["label_new_structures"] = True
        # a run written before the calibration existed resumes calibrated: its labels carry
        # no error/std pair, so the factor starts at 1 with its next call
        if self.calibration != "errors":
            record["calibration"] = self.calibration
        return record

    def _log_line(self, text):
        log.info("%s", text)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        with open(self._path("otf.log"), "a") as stream:
            stream.write(f"{stamp} {text}\n")

    def _save_model(self):
        """The model holding the first len(labelled) frames, then older model files go."""
        count = len(self.labelled)
        folder = self._path("models")
        target = folder / f"model-{count:05d}.gap"
        self.model.save(target)  # atomic
        for older in folder.glob("model-*.gap"):
            if older != target:
                older.unlink()

    def _newest_model(self):
        """(count, path) of the model file with the most labelled frames, or (None, None)."""
        files = sorted(self._path("models").glob("model-*.gap"))
        if not files:
            return None, None
        return int(files[-1].stem.split("-")[1]), files[-1]

    def _save_state(self, atoms, stage, step, finished=None):
        state = {"stage": stage, "step": step, "atoms": _atoms_state(atoms),
                 "oracle_calls": len(self.labelled), "refits": self.refits,
                 "sparse_full": self.sparse_full, "fit_size": self.fit_size,
                 "finished": finished,
                 "wall_time": datetime.datetime.now(datetime.timezone.utc).isoformat()}
        write_atomically(self._path("state.json"), json.dumps(state))

    # ------------------------------------------------------------------ threshold
    def threshold_eV_A(self):
        """The threshold on the frame's latent uncertainty, eV/Å, for the current model and
        calibration: the threshold (times ``noise_level(model)`` in unit "sigma") over the
        calibration factor."""
        threshold = self.threshold
        if self.threshold_unit == "sigma":
            threshold *= noise_level(self.model)
        return threshold / self.calibration_factor()

    def calibration_factor(self):
        """The factor the latent stds are scaled by (1 without calibration): see
        ``calibration_factor``."""
        return calibration_factor(self.labelled) if self.calibration == "errors" else 1.0

    def _frame_uncertainty(self, atoms):
        return reduce_stds(self._frame_stds(atoms), self.score)

    def _frame_stds(self, atoms):
        stds, self._posterior = force_stds(self.model, atoms, self.uncertainty, self._posterior)
        return stds

    # ------------------------------------------------------------------ start and restore
    def _begin(self):
        """A new run: settings and (given) model on disk, then the start labels and the fit."""
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "models").mkdir(exist_ok=True)
        write_atomically(self._path("settings.json"), json.dumps(self.settings_record(), indent=1))
        self._path("labelled.xyz").touch()
        if self.model is not None:
            if not hasattr(self.model, "data_factors_"):
                raise ValueError("the model cannot be updated (no data factors): a model file "
                                 "written before gapfit stored them; fit it again")
            self._save_model()
        self._prepare(0)
        return None

    def _prepare(self, count):
        """Label the start structures not yet labelled (if asked), then fit the recipe (no
        model yet) or add the labelled frames after the first ``count`` to the model."""
        done = sum(1 for frame in self.labelled if frame.info.get("otf_stage") == -1)
        later = any(frame.info.get("otf_stage", -1) >= 0 for frame in self.labelled)
        if self.label_start and not later:
            for index in range(done, len(self.start)):
                if self._budget_spent():
                    break
                self._label(self.start[index], {"otf_stage": -1, "otf_step": index,
                                                "config_type": "start"})
                self._log_line(f"call {len(self.labelled)}: start structure {index} "
                               f"({len(self.start[index])} atoms) labelled")
        if self.model is None:
            self._fit_recipe()
        else:
            self._incorporate(range(count, len(self.labelled)))

    def _fit_recipe(self):
        from sklearn.base import clone
        began = time.perf_counter()
        self.model = clone(self.recipe).fit(self._training_set(len(self.labelled)))
        self.fit_size = len(self._training_set(len(self.labelled)))
        self._posterior = None
        self._save_model()
        self._log_line(f"fit of the recipe to {len(self._training_set(len(self.labelled)))} "
                       f"structures ({time.perf_counter() - began:.1f} s); threshold "
                       f"{1e3 * self.threshold_eV_A():.1f} meV/Å")

    def _restore(self):
        """An interrupted run: labelled frames, model (updated with frames it lacks), MD state."""
        from .. import load
        stored = json.loads(self._path("settings.json").read_text())
        current = json.loads(json.dumps(self.settings_record()))
        # a key only one side records is a setting away from its default there
        different = sorted(key for key in set(current) | set(stored)
                           if stored.get(key) != current.get(key))
        if different:
            raise ValueError(f"{self.directory}: holds a run with other settings "
                             f"({', '.join(different)}); use another output folder")
        self.labelled = read_complete_frames(self._path("labelled.xyz"))
        count, path = self._newest_model()
        self.model = None if path is None else load(path)
        if self.model is None and self.recipe is None:
            raise ValueError(f"{self.directory}: no model file in models/ and no recipe to fit")
        state = self._read_state()
        self.refits = state["refits"] if state else 0
        self.sparse_full = bool(state and state.get("sparse_full"))
        if self.model is not None:
            self.fit_size = (state or {}).get("fit_size") or self.model.n_training_structures_
        self._log_line(f"restart: {len(self.labelled)} labelled frames on disk, the model holds "
                       f"{count or 0}")
        self._prepare(count or 0)
        return state

    def _read_state(self):
        path = self._path("state.json")
        return json.loads(path.read_text()) if path.exists() else None

    # ------------------------------------------------------------------ learning
    def _budget_spent(self):
        return self.max_oracle_calls is not None and len(self.labelled) >= self.max_oracle_calls

    def _label(self, atoms, info, model_forces=None, stds=None):
        """The oracle's labels of ``atoms``, appended to labelled.xyz before anything else.
        Given the model's forces before the label and the frame's latent stds (eV/Å), the
        calibration's pair goes with it (``otf_error_ms``, ``otf_predictive_ms``, eV²/Å²)."""
        from .learning import label
        from ..structures.io import append
        labelled = label(atoms, self.oracle)
        labelled.info.update(info)
        if model_forces is not None and stds is not None:
            errors = model_forces - labelled.get_forces()
            labelled.info["otf_error_ms"] = float(np.mean(errors ** 2))
            labelled.info["otf_predictive_ms"] = float(np.mean(np.square(stds))
                                                       + noise_level(self.model) ** 2)
        labelled.info["otf_call"] = len(self.labelled) + 1
        append(self._path("labelled.xyz"), labelled)
        self.labelled.append(labelled)
        return labelled

    def _training_set(self, count):
        return (self.training or []) + self.labelled[:count]

    def _can_refit(self):
        known = self.training is not None or (self.recipe is not None and self.label_start)
        return self.refit_policy == "auto" and known

    def _incorporate(self, indices):
        """Add labelled frames ``indices`` (in order) to the model: update, refit when the
        update leaves a frame's uncertainty above the threshold; save the model after each."""
        for index in indices:
            frame = self.labelled[index]
            self.model.update([frame])
            self._posterior = None
            if self._can_refit():
                size = len(self._training_set(index + 1))
                after = self._frame_uncertainty(frame)
                if frame.info.get("config_type") == "new_structure":
                    why = "a new start structure"
                elif after > self.threshold_eV_A() and not self.sparse_full:
                    why = (f"uncertainty after the update {1e3 * after:.1f} meV/Å still above the "
                           "threshold")
                elif self.refit_growth and size >= self.refit_growth * max(self.fit_size, 1):
                    why = f"{size} structures, {self.refit_growth:g}x those of the last fit"
                else:
                    why = None
                if why is not None:
                    began = time.perf_counter()
                    sparse_before = sum(t.n_sparse_points for t in self.model.terms_)
                    self.model = self.model.refit(self._training_set(index + 1))
                    self._posterior = None
                    self.refits += 1
                    self.fit_size = size
                    sparse_after = sum(t.n_sparse_points for t in self.model.terms_)
                    # a refit that could not add sparse points: each term holds its n_sparse
                    self.sparse_full = sparse_after <= sparse_before
                    self._log_line(
                        f"refit {self.refits} after call {index + 1}: {why}; {size} structures, "
                        f"sparse points {sparse_before} -> {sparse_after}, "
                        f"{time.perf_counter() - began:.1f} s")
            self._save_model()

    def _learn(self, atoms, stage, step, stds, threshold, kind="on_the_fly"):
        """Label ``atoms`` (latent force stds ``stds``, eV/Å), log the model's errors before the
        label, store the error/std pair of the calibration and add the label to the model."""
        prediction = self.model.predict_structure(atoms)
        uncertainty = reduce_stds(stds, self.score)
        labelled = self._label(atoms, {"otf_stage": stage, "otf_step": step,
                                       "otf_uncertainty": uncertainty, "otf_threshold": threshold,
                                       "config_type": kind}, prediction.forces, stds)
        errors = np.abs(prediction.forces - labelled.get_forces())
        n_atoms = len(atoms)
        self._log_line(
            f"call {len(self.labelled)}: stage {stage} ({self.stages[stage].describe()}) step {step}"
            f"{'' if kind == 'on_the_fly' else ' (' + kind.replace('_', ' ') + ')'}: uncertainty "
            f"{1e3 * uncertainty:.1f} {'>' if uncertainty > threshold else '<='} "
            f"{1e3 * threshold:.1f} meV/Å; model error "
            f"before: force MAE {1e3 * errors.mean():.1f}, max {1e3 * errors.max():.1f} meV/Å, "
            f"energy {1e3 * (prediction.energy - labelled.get_potential_energy()) / n_atoms:+.1f} "
            "meV/atom" + (f"; calibration factor now {self.calibration_factor():.2f}"
                          if self.calibration == "errors" else ""))
        self._incorporate([len(self.labelled) - 1])

    # ------------------------------------------------------------------ MD
    def _rng(self, stage, step):
        return np.random.default_rng(np.random.SeedSequence(self.random_state,
                                                            spawn_key=(stage, step)))

    def _dynamics(self, atoms, stage_index, step):
        from ..md.dynamics import make_dynamics
        stage = self.stages[stage_index]
        return make_dynamics(atoms, stage.ensemble, timestep_fs=stage.timestep_fs,
                             temperature_K=stage.temperature_K, pressure_GPa=stage.pressure_GPa,
                             friction_per_fs=stage.friction_per_fs,
                             rng=self._rng(stage_index, step))

    def _stage_start(self, stage_index, previous):
        from ..md.dynamics import initialise_velocities
        stage = self.stages[stage_index]
        index = stage.structure if stage.structure is not None else (0 if previous is None else None)
        atoms = (self.start[index] if index is not None else previous).copy()
        atoms.calc = None
        initialise_velocities(atoms, stage.temperature_K,
                              self._rng(stage_index, 2 ** 31))  # a key no step takes
        return atoms

    def _unphysical(self, atoms, stage):
        temperature = atoms.get_temperature()
        limit = max(self.max_temperature_factor * stage.temperature_K, 500.0)
        if temperature > limit:
            return f"temperature {temperature:.0f} K above {limit:.0f} K"
        closest = min_distance(atoms)
        if closest < self.min_distance_A:
            return f"atoms {closest:.2f} Å apart"
        return None

    def _trajectory(self, atoms, stage, step):
        import ase.io
        if self.trajectory_every and step % self.trajectory_every == 0:
            frame = atoms.copy()
            frame.calc = None
            frame.info.update({"otf_stage": stage, "otf_step": step,
                               "temperature_K": atoms.get_temperature()})
            results = getattr(atoms.calc, "results", {})
            if "forces" in results:  # what the driving model predicted there
                frame.arrays["model_forces"] = results["forces"].copy()
                frame.info["model_energy"] = float(results["energy"])
            ase.io.write(self._path("trajectory.xyz"), frame, format="extxyz", append=True)

    def run(self):
        """Run (or continue) the schedule; returns a ``RunResult``. The final model is
        written to ``model.gap`` in the run folder, the labelled frames are in labelled.xyz."""
        state = self._restore() if self._path("settings.json").exists() else self._begin()
        if state is not None and state.get("finished"):
            return self._result(state["finished"])
        if state is None:
            stage_index, step, atoms = 0, 0, None
        else:
            stage_index, step = state["stage"], state["step"]
            atoms = _atoms_from_state(state["atoms"])
            last = self.labelled[-1] if self.labelled else None
            if last is not None and (last.info["otf_stage"], last.info["otf_step"]) > (stage_index,
                                                                                       step):
                stage_index, step = int(last.info["otf_stage"]), int(last.info["otf_step"])
                atoms = last.copy()
                atoms.calc = None
            self._log_line(f"continuing at stage {stage_index} step {step}")
        reason = None
        while stage_index < len(self.stages) and reason is None:
            stage = self.stages[stage_index]
            atoms_before = atoms
            if step == 0:  # new velocities (and maybe a new structure) at every stage
                atoms = self._stage_start(stage_index, atoms)
            atoms.calc = self._calculator()
            dynamics = self._dynamics(atoms, stage_index, step)
            if step == 0:
                self._trajectory(atoms, stage_index, 0)
                fresh = (stage.structure is not None and stage_index > 0) or atoms_before is None
                if fresh and self.label_new_structures and not self._holds(atoms):
                    reason = self._check(dynamics, atoms, stage_index, 0, labelling=True,
                                         kind="new_structure")
                elif fresh and self.label_every is None and not self._holds(atoms):
                    # a structure the MD has not seen yet: check it before the first step
                    reason = self._check(dynamics, atoms, stage_index, 0, labelling=False)
                reason = None if reason == "learned" else reason  # the stage's MD goes on
            while step < stage.steps and reason is None:
                # up to the next check, trajectory frame or the stage's end
                chunk = min(self.check_every - step % self.check_every, stage.steps - step)
                if self.trajectory_every:
                    chunk = min(chunk, self.trajectory_every - step % self.trajectory_every)
                dynamics.run(chunk)
                step += chunk
                self._trajectory(atoms, stage_index, step)
                problem = self._unphysical(atoms, stage)
                if problem is not None:
                    reason = f"unphysical: {problem} at stage {stage_index} step {step}"
                    break
                learned = False
                if step % self.check_every == 0 or step == stage.steps:
                    due = self.label_every is not None and step % self.label_every == 0
                    reason = self._check(dynamics, atoms, stage_index, step, labelling=due)
                    learned = reason == "learned"
                    reason = None if learned else reason
                if not learned and step % self.checkpoint_every == 0:
                    self._checkpoint(dynamics, atoms, stage_index, step)
            reason = None if reason == "learned" else reason
            if reason is None:
                stage_index, step = stage_index + 1, 0
                self._save_state(atoms, stage_index, 0)
        reason = reason or "schedule done"
        self._save_state(atoms, stage_index, step, finished=reason)
        return self._result(reason)

    def _calculator(self):
        """The MD's calculator: with the "local" source it also gives the uncertainty."""
        from ..md.calculator import GAPCalculator
        return GAPCalculator(self.model, uncertainty="local" if self.uncertainty == "local" else False)

    def _holds(self, atoms):
        """Whether the training data or the labelled frames hold ``atoms``' positions."""
        return any(len(frame) == len(atoms) and np.array_equal(frame.numbers, atoms.numbers)
                   and np.allclose(frame.positions, atoms.positions, atol=1e-8)
                   for frame in (self.training or []) + self.labelled)

    def _resting(self, stage, step):
        """Whether an oracle call less than ``min_call_interval`` steps ago (this stage)
        keeps the threshold unchecked at ``step``."""
        if self.min_call_interval <= 1 or not self.labelled:
            return False
        last = self.labelled[-1].info
        return (int(last.get("otf_stage", -1)) == stage
                and step - int(last.get("otf_step", 0)) < self.min_call_interval)

    def _check(self, dynamics, atoms, stage, step, labelling=False, kind="on_the_fly"):
        """Measure the uncertainty of ``atoms``; label and learn it when it exceeds the
        threshold (or ``labelling``). Returns "learned", "oracle budget spent" or None."""
        if not labelling and self._resting(stage, step):
            return None
        stds = self._frame_stds(atoms)
        threshold = self.threshold_eV_A()
        if not (reduce_stds(stds, self.score) > threshold or labelling):
            return None
        if self._budget_spent():
            return "oracle budget spent"
        self._learn(atoms, stage, step, stds, threshold, kind)
        atoms.calc = self._calculator()
        self._checkpoint(dynamics, atoms, stage, step)
        return "learned"

    def _checkpoint(self, dynamics, atoms, stage, step):
        """Write the MD state; re-seed the Langevin noise so a restart from here goes on alike."""
        self._save_state(atoms, stage, step)
        if hasattr(dynamics, "rng"):
            dynamics.rng = self._rng(stage, step)

    def _result(self, reason):
        self.model.save(self._path("model.gap"))
        self._log_line(f"finished ({reason}): {len(self.labelled)} oracle calls, {self.refits} "
                       f"refits; model {self._path('model.gap')}, labelled frames "
                       f"{self._path('labelled.xyz')}")
        return RunResult(self.model, self.labelled, len(self.labelled), self.refits, reason,
                         self.directory)

"""Active learning: choose configurations to label by the model's uncertainty, and learn on the fly in MD.

``select`` ranks a pool of unlabelled configurations; ``OnTheFly`` runs Langevin MD with a
fitted GAP, asks an oracle (any ASE calculator) whenever the predicted force uncertainty
crosses a threshold, adds the answer with ``GAP.update`` (no refit) and carries on; only when
the new label cannot lower the uncertainty (the sparse set does not span the configuration)
does it refit with sparse points chosen afresh. Its state lives in a directory and survives
interruption.
"""
import datetime
import json
import os
from pathlib import Path

import numpy as np
from ase import units
from ase.calculators.singlepoint import SinglePointCalculator
from scipy.linalg import cho_factor, cho_solve, solve_triangular

from ..gp import linalg as gp
from ..fit.threads import single_thread
from ..structures.atomic_files import write_atomically
from ..uncertainty.posterior import Posterior, structure_targets, target_variances

STRATEGIES = ("uncertainty", "batch", "coverage", "random")
SCORES = ("forces", "forces_rms", "energy")


def _rng(random_state):
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)


def uncertainty_score(result, n_atoms, score="forces"):
    """One number per structure from a StructureVariance: the largest force-component std
    (eV/Å, ``score="forces"``), the root-mean-square force-component std (eV/Å,
    ``"forces_rms"``: the structure as a whole rather than its most unusual atom) or the
    energy std per atom (eV/atom, ``score="energy"``)."""
    if score == "forces":
        return float(result.forces_std.max())
    if score == "forces_rms":
        return float(np.sqrt(np.mean(result.forces_std ** 2)))
    if score == "energy":
        return result.energy_std / n_atoms
    raise ValueError(f"unknown uncertainty score {score!r}; choose one of {SCORES}")


class _Candidate:
    """A pool structure's score rows with their fixed part (prior minus Nyström term),
    and the weighted rows its labels would add to the fit."""

    def __init__(self, model, posterior, atoms, score, priors=True):
        targets = structure_targets(model.terms_, atoms, priors=priors)
        n_atoms, n_columns = targets.local_rows.shape
        if score in ("forces", "forces_rms"):
            self.rows = targets.force_rows.reshape(3 * n_atoms, n_columns)
            prior = targets.force_priors.ravel()
        else:
            self.rows = targets.energy_row[None, :]
            prior = np.array([targets.energy_prior])
        # the fixed part needs the exact priors; without them only reducible scores exist
        self.fixed = prior - posterior.explained(self.rows)[0] if priors else None
        self.n_atoms = n_atoms
        self.training_rows = _weighted_rows(model, atoms, targets)

    def score_variances(self, precision_upper):
        """The reducible variances a Σ_α aᵀ of the score rows under the posterior with
        precision R11ᵀR11 (eV², (eV/Å)²)."""
        whitened = _whitened(precision_upper, self.rows)
        return np.einsum("mn,mn->n", whitened, whitened)

    def score(self, precision_upper, score, reducible=False):
        """The uncertainty score under the posterior with precision R11ᵀR11; ``reducible``
        leaves out the Nyström part k** - a K_MM⁻¹ aᵀ, which no label can lower."""
        variances = self.score_variances(precision_upper)
        if not reducible:
            if self.fixed is None:
                raise ValueError("this candidate was built without priors: only reducible scores")
            variances = np.maximum(self.fixed + variances, 0.0)
        if score == "forces":
            return float(np.sqrt(variances.max()))
        if score == "forces_rms":
            return float(np.sqrt(variances.mean()))
        return float(np.sqrt(variances[0])) / self.n_atoms


def _weighted_rows(model, atoms, targets):
    """Design rows divided by the sigmas a fit would give this structure's labels
    (energy, forces, and the virial of a 3D-periodic cell, whose stress an oracle gives)."""
    settings = model.target_settings()
    energy_sigma, force_sigma, virial_sigma = settings.sigmas_of(atoms)
    rows = [targets.energy_row[None, :] / energy_sigma]
    if model.fit_forces:
        rows.append(targets.force_rows.reshape(-1, targets.force_rows.shape[-1]) / force_sigma)
    if model.fit_virial and atoms.pbc.all():
        sigmas = settings.noise.voigt_sigmas(virial_sigma)
        rows.append(targets.virial_rows / sigmas[:, None])
    return np.concatenate(rows)


def _whitened(precision_upper, rows):
    """R⁻ᵀ rowsᵀ (M, n): rows in the coordinates where the posterior covariance is the identity."""
    return solve_triangular(precision_upper, np.ascontiguousarray(rows.T), trans="T", lower=False,
                            check_finite=False)


def _pool_gram(candidates):
    """G = Σ aᵀa over the score rows of ``candidates`` (M, M)."""
    return sum(c.rows.T @ c.rows for c in candidates)


def _coverage_gains(candidates, precision_upper, gram=None):
    """For every candidate, the drop of the summed reducible variance (a Σ_α aᵀ over all score
    rows of the whole pool) that conditioning on its training rows would bring. ``gram``:
    ``_pool_gram(candidates)`` if the caller already holds it.

    With W = T R⁻¹ (T: the candidate's weighted training rows) and H = R⁻ᵀ G R⁻¹, G = Σ_pool aᵀa,
    Woodbury gives the drop as tr((I + W Wᵀ)⁻¹ W H Wᵀ): a label counts by how much it teaches
    about everything in the pool, so a typical configuration can beat an odd one.
    """
    if gram is None:
        gram = _pool_gram(candidates)
    half = _whitened(precision_upper, gram)                 # R⁻ᵀ G
    whitened_gram = _whitened(precision_upper, half)        # R⁻ᵀ G R⁻¹ (G is symmetric)
    gains = np.empty(len(candidates))
    for index, candidate in enumerate(candidates):
        w_t = _whitened(precision_upper, candidate.training_rows)
        inner = np.eye(w_t.shape[1]) + w_t.T @ w_t
        projected = w_t.T @ whitened_gram @ w_t
        gains[index] = np.trace(cho_solve(cho_factor(inner, check_finite=False), projected,
                                          check_finite=False))
    return gains


def select(model, pool, n, strategy="uncertainty", random_state=None, score="forces"):
    """Indices of ``n`` configurations of ``pool`` (a list of Atoms) to label next.

    strategy : "uncertainty" — the n largest scores; "batch" — greedy on the part of the
        variance that labels can remove (a Σ_α aᵀ: the sparse points stay, so the Nyström
        part k** - a K_MM⁻¹ aᵀ cannot shrink): after each pick the posterior is conditioned
        on that structure's energy and force rows (its labels are not needed), so
        near-duplicates of a pick lose their score; "coverage" — greedy on the expected drop
        of the whole pool's summed reducible variance (of the ``score`` targets) that labelling
        a configuration brings, conditioning on each pick: it weighs uncertainty by how much of
        the pool shares it, so it favours configurations typical of the pool; "random".
    score : "forces" (largest force-component std, eV/Å), "forces_rms" (root mean square of
        the force-component stds, eV/Å) or "energy" (energy std per atom).
    """
    pool = list(pool)
    if not 0 < n <= len(pool):
        raise ValueError(f"cannot select {n} configurations from a pool of {len(pool)}")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
    if score not in SCORES:
        raise ValueError(f"unknown uncertainty score {score!r}; choose one of {SCORES}")
    if strategy == "random":
        return _rng(random_state).choice(len(pool), size=n, replace=False).tolist()
    model.check_predictable(pool)
    posterior = Posterior(model)
    # only the full variance needs the exact priors; batch and coverage use the reducible part
    candidates = [_Candidate(model, posterior, atoms, score, priors=strategy == "uncertainty")
                  for atoms in pool]
    precision = posterior.precision_upper
    if strategy == "uncertainty":
        scores = np.array([c.score(precision, score) for c in candidates])
        return np.argsort(-scores, kind="stable")[:n].tolist()
    # many small factorisations: threaded BLAS only adds overhead (and stalls on a busy machine)
    with single_thread():
        return _greedy(candidates, precision, n, strategy, score)


def _greedy(candidates, precision, n, strategy, score):
    """Greedy batch/coverage picks, conditioning the posterior on each pick in turn."""
    chosen = []
    remaining = list(range(len(candidates)))
    # coverage: the pool's Gram matrix once, less each pick's share (picks leave the pool)
    gram = _pool_gram(candidates) if strategy == "coverage" else None
    for _ in range(n):
        if strategy == "coverage":
            scores = _coverage_gains([candidates[i] for i in remaining], precision, gram)
        else:
            scores = np.array([candidates[i].score(precision, score, reducible=True)
                               for i in remaining])
        best = remaining[int(np.argmax(scores))]
        chosen.append(best)
        remaining.remove(best)
        precision = gp.combine_factors([precision, candidates[best].training_rows])
        if gram is not None:
            gram = gram - candidates[best].rows.T @ candidates[best].rows
    return chosen


# ----------------------------------------------------------------------------- on the fly
def _write_atomically(path, write):
    """Call write(temporary path), flush it to disk, then rename it onto ``path``."""
    write_atomically(path, write)


def label(atoms, oracle):
    """A copy of ``atoms`` carrying the oracle's energy, forces and (3D-periodic) stress
    as reference labels (SinglePointCalculator; eV, eV/Å, eV/Å³)."""
    labelled = atoms.copy()
    labelled.calc = oracle
    results = {"energy": labelled.get_potential_energy(), "forces": labelled.get_forces()}
    if labelled.pbc.all():
        results["stress"] = labelled.get_stress()
    labelled.calc = SinglePointCalculator(labelled, **results)
    return labelled


class OnTheFly:
    """Langevin MD driven by a GAP that calls an oracle when it is unsure, and learns.

    Parameters
    ----------
    model : fitted ``GAP`` holding ``data_factors_``: a fit, or a model file loaded with
        ``gapfit.load`` (model files keep the data factors ``update`` needs).
    oracle : ASE calculator giving reference energies, forces (and stress).
    directory : where the state lives; created if needed. If it already holds a state,
        ``run`` continues from it and ignores ``model`` and the starting atoms.
    threshold : uncertainty (``score``: eV/Å for "forces", eV/atom for "energy") above
        which the oracle is called.
    check_every : MD steps between uncertainty checks (each check is also a checkpoint).
    timestep_fs, temperature_K, friction_per_fs : Langevin settings (fs, K, 1/fs).
    score : "forces" or "energy", see ``uncertainty_score``.
    max_oracle_calls : stop calling the oracle after this many calls (None: no limit).
    random_state : int; the MD noise is re-seeded from it and the step at every
        checkpoint, so a resumed run follows the same trajectory as an uninterrupted one.
    training : the labelled structures ``model`` was fitted to, or None. With them, a
        label that leaves its configuration's uncertainty above the threshold after
        ``update`` (the part k** - a K_MM⁻¹ aᵀ that no label lowers dominates: the sparse
        set does not span the new environments) triggers a refit on training + labelled
        data, with sparse points chosen afresh (up to each term's ``n_sparse``). Without
        them the model only ever grows by ``update``.

    Files in ``directory``: ``model.gap`` (the model, ``gapfit.load``), ``factors.npz``
    (its data R factors, which ``update`` needs), ``labelled.xyz`` (every oracle-labelled
    configuration, extended XYZ), ``md.xyz`` (the last checkpoint, with momenta) and
    ``oracle_calls.jsonl`` (one JSON object per oracle call; ``"refit"`` says how the
    label entered the model), and ``training.xyz`` (the ``training`` structures). Every
    file is replaced atomically and the labelled configurations are written first, so an
    interruption at any point loses no labelled data.
    """

    def __init__(self, model, oracle, directory, threshold=0.1, check_every=10, timestep_fs=2.0,
                 temperature_K=300.0, friction_per_fs=0.01, score="forces", max_oracle_calls=None,
                 random_state=0, training=None):
        if score not in SCORES:
            raise ValueError(f"unknown uncertainty score {score!r}; choose one of {SCORES}")
        if not isinstance(random_state, (int, np.integer)):
            raise ValueError("OnTheFly needs an integer random_state to re-seed its MD after a resume")
        self.model = model
        self.oracle = oracle
        self.directory = Path(directory)
        self.threshold = threshold
        self.check_every = int(check_every)
        self.timestep_fs = timestep_fs
        self.temperature_K = temperature_K
        self.friction_per_fs = friction_per_fs
        self.score = score
        self.max_oracle_calls = max_oracle_calls
        self.random_state = int(random_state)
        self.training = None if training is None else list(training)
        self.labelled = []
        self.step = 0

    # -------------------------------------------------------------- files
    def _path(self, name):
        return self.directory / name

    def has_state(self):
        return self._path("factors.npz").exists() and self._path("model.gap").exists()

    def _save_model(self, n_included=None):
        """Model file and data R factors, recording how many labelled configurations they hold."""
        _write_atomically(self._path("model.gap"), self.model.save)
        arrays = {f"factor_{kind}": factor for kind, factor in self.model.data_factors_.items()}
        arrays["n_labelled"] = np.array(len(self.labelled) if n_included is None else n_included)

        def write(path):
            with open(path, "wb") as stream:
                np.savez(stream, **arrays)
        _write_atomically(self._path("factors.npz"), write)

    def _save_labelled(self):
        from ..structures.io import write
        _write_atomically(self._path("labelled.xyz"), lambda path: write(path, self.labelled))

    def _save_checkpoint(self, atoms):
        from ..structures.io import write
        frame = atoms.copy()
        frame.calc = None
        frame.info["otf_step"] = self.step
        _write_atomically(self._path("md.xyz"), lambda path: write(path, [frame]))

    def _log(self, record):
        with open(self._path("oracle_calls.jsonl"), "a") as stream:
            stream.write(json.dumps(record) + "\n")
            stream.flush()
            os.fsync(stream.fileno())

    def _logged_calls(self):
        path = self._path("oracle_calls.jsonl")
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    # -------------------------------------------------------------- state
    def _restore(self):
        """Model, labelled data and MD frame from the directory; returns the MD frame."""
        import ase.io
        from ..structures.io import read
        from ..model.estimator import load_model
        model = load_model(self._path("model.gap"))
        with np.load(self._path("factors.npz")) as stored:
            model.data_factors_ = {name[7:]: stored[name] for name in stored.files
                                   if name.startswith("factor_")}
            included = int(stored["n_labelled"])
        stored = self._path("labelled.xyz")
        self.labelled = read(stored) if stored.exists() and stored.stat().st_size else []
        stored = self._path("training.xyz")
        self.training = read(stored) if stored.exists() else None
        model.solve_coefficients()
        self.model = model
        # labelled but interrupted before the model was saved: add them as run() would have
        for count in range(included + 1, len(self.labelled) + 1):
            self._incorporate(count)
        frame = ase.io.read(self._path("md.xyz"))
        if self.labelled and self.labelled[-1].info["otf_step"] >= frame.info["otf_step"]:
            frame = self.labelled[-1].copy()
        frame.calc = None
        self.step = int(frame.info["otf_step"])
        self._recover_log()
        return frame

    def _recover_log(self):
        """Log lines for labelled configurations whose line the interruption prevented."""
        logged = len(self._logged_calls())
        for index in range(logged, len(self.labelled)):
            atoms = self.labelled[index]
            self._log({"call": index + 1, "step": int(atoms.info["otf_step"]),
                       "n_atoms": len(atoms), "recovered_after_interruption": True,
                       "oracle_energy": float(atoms.get_potential_energy())})

    def _start(self, atoms):
        from ase.md.velocitydistribution import thermalize_momenta
        if not hasattr(self.model, "data_factors_"):
            raise ValueError("OnTheFly needs a model that can be updated (with data_factors_): a"
                             " model file written before gapfit stored its data factors cannot;"
                             " fit it again")
        self.directory.mkdir(parents=True, exist_ok=True)
        atoms = atoms.copy()
        atoms.calc = None
        thermalize_momenta(atoms, self.temperature_K, exact_temperature=True, rng=self._md_rng())
        self.labelled, self.step = [], 0
        if self.training is not None:
            from ..structures.io import write
            _write_atomically(self._path("training.xyz"),
                              lambda path: write(path, self.training))
        self._save_labelled()
        self._save_model()
        self._save_checkpoint(atoms)
        return atoms

    def _md_rng(self):
        return np.random.default_rng(np.random.SeedSequence(self.random_state,
                                                            spawn_key=(self.step,)))

    # -------------------------------------------------------------- run
    def _dynamics(self, atoms):
        from ase.md.langevin import Langevin
        return Langevin(atoms, self.timestep_fs * units.fs, temperature_K=self.temperature_K,
                        friction=self.friction_per_fs / units.fs, fixcm=False,
                        rng=self._md_rng())

    def run(self, atoms, steps):
        """Run MD until ``steps`` steps in total (counting those of earlier, interrupted runs).

        A run stopped at a multiple of ``check_every`` (or interrupted anywhere) and
        resumed follows the same trajectory as one that ran through.

        atoms : the starting configuration (ignored when the directory holds a state).
        Returns self; ``model``, ``labelled`` and ``step`` hold the outcome.
        """
        from ..md.calculator import GAPCalculator
        atoms = self._restore() if self.has_state() else self._start(atoms)
        posterior = Posterior(self.model)
        while self.step < steps:
            atoms.calc = GAPCalculator(self.model)
            self._dynamics(atoms).run(min(self.check_every, steps - self.step))
            self.step += min(self.check_every, steps - self.step)
            if not posterior.is_current(self.model):
                posterior = Posterior(self.model)
            result = target_variances(posterior, structure_targets(self.model.terms_, atoms))
            uncertainty = uncertainty_score(result, len(atoms), self.score)
            calls_left = self.max_oracle_calls is None or len(self.labelled) < self.max_oracle_calls
            if uncertainty > self.threshold and calls_left:
                self._learn(atoms, result, uncertainty)
            self._save_checkpoint(atoms)
        return self

    def _learn(self, atoms, result, uncertainty):
        """Label ``atoms`` with the oracle, store it, update and save the model."""
        prediction = self.model.predict_structure(atoms)
        labelled = label(atoms, self.oracle)
        labelled.info.update({"otf_step": self.step, "config_type": "on_the_fly"})
        self.labelled.append(labelled)
        self._save_labelled()
        forces = labelled.get_forces()
        self._log({
            "call": len(self.labelled), "step": self.step,
            "time_ps": self.step * self.timestep_fs / 1000.0, "n_atoms": len(atoms),
            "score": self.score, "uncertainty": uncertainty, "threshold": self.threshold,
            "max_force_std": float(result.forces_std.max()),
            "energy_std_per_atom": result.energy_std / len(atoms),
            "oracle_energy": float(labelled.get_potential_energy()),
            "model_energy": prediction.energy,
            "force_mae_before": float(np.mean(np.abs(prediction.forces - forces))),
            "force_max_error_before": float(np.max(np.abs(prediction.forces - forces))),
            "wall_time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "refit": self._incorporate(len(self.labelled)),
        })

    def _incorporate(self, count):
        """Put the first ``count`` labelled configurations into the model, the last one new:
        ``update``, then refit (new sparse points) if that label left its own uncertainty
        above the threshold and the training structures are known. Saves the model;
        returns True if it refitted."""
        newest = self.labelled[count - 1]
        self.model.update([newest])
        refitted = False
        if self.training is not None:
            result = target_variances(Posterior(self.model),
                                      structure_targets(self.model.terms_, newest))
            if uncertainty_score(result, len(newest), self.score) > self.threshold:
                self.model = self.model.refit(self.training + self.labelled[:count])
                refitted = True
        self._save_model(n_included=count)
        return refitted

"""ASE calculator around a fitted GAP: energy, free_energy, energies, forces, stress, and
posterior uncertainties (full or at MD cost)."""
import logging
import threading

import numpy as np
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from sklearn.utils.validation import check_is_fitted

from ..predict.predictor import StructurePredictor
from ..structures.checks import check_structures
from ..structures.voigt import stress_from_virial
from ..uncertainty.local import CALCULATOR_TOLERANCE, LocalUncertaintyPredictor, noise_levels
from ..uncertainty.posterior import structure_variance

logger = logging.getLogger(__name__)

# changes after which the structure is checked again (geometry and species)
_STRUCTURAL_CHANGES = {"numbers", "cell", "pbc"}
# results of uncertainty="full" (gapfit.uncertainty.posterior) and of uncertainty="local"
_FULL_RESULTS = ("energy_std", "energy_latent_std", "energies_std", "forces_std",
                 "forces_latent_std")
_LOCAL_RESULTS = ("energies_std", "forces_score", "forces_latent_score")
UNCERTAINTY_MODES = (False, True, "full", "local")


class GAPCalculator(Calculator):
    """Adapts a fitted ``gapfit.GAP`` to ASE (eV, eV/Å, eV/Å³ in ASE's sign and Voigt order).

    ``uncertainty`` adds posterior standard deviations to every call:

    - ``"local"`` (at MD cost, ≤ 2× a plain call; ``gapfit.uncertainty.local``):
      ``energies_std`` (N,) eV, the exact latent std of each local energy, and the force
      score ``forces_score`` (N,) eV/Å, predictive: sqrt(κ² (var E_i + Σ_neighbours var E_j)
      + σ_F²), one value standing for each of the atom's three components, with its latent
      part ``forces_latent_score``. κ is learnt per model so that the score's mean square
      matches the mean latent force variance on training structures: it ranks atoms and has
      the right overall size, but it is not the force std atom by atom.
    - ``True`` or ``"full"`` (``gapfit.uncertainty.posterior``, tens of times a plain call): ``forces_std``
      (N, 3) eV/Å and ``energy_std`` eV, predictive, i.e. sqrt(latent variance + noise²) with
      the model's fitted force sigma σ_F and energy sigma σ_E·√N (after evidence scaling):
      what a prediction's error against a label should be compared with; their latent parts
      (the uncertainty of the model's function alone) as ``forces_latent_std`` and
      ``energy_latent_std``; and ``energies_std`` as above.

    ``local_tolerance`` τ (None: ``gapfit.uncertainty.local.CALCULATOR_TOLERANCE``, 0.01)
    drops the directions of the posterior the data barely constrain from the cheap path:
    local variances are then overstated by at most τ/(1 - τ) of themselves (1 % by default;
    0 for the exact values).

    Local energies are never labelled, so ``energies_std`` is latent in both modes. Any of
    these results can also be asked for on its own (``get_property("forces_std")``) with
    any setting: it is then computed for that call. All are listed in
    ``implemented_properties``.

    ``skin`` (Å) is the margin of the neighbour list kept between calls: it is searched
    at the model's cutoff + skin and reused, with only its pair vectors recomputed, until
    an atom has moved more than skin / 2 or the cell, periodicity or species change
    (``gapfit.structures.neighbors.SkinNeighborList``). Results are the same as without reuse.

    Thread safety: one calculator may be shared by several threads (e.g. several
    ``Atoms`` with the same calculator, each in a ``threading.Thread``). A lock held
    for the whole of ``get_property`` (the check of what changed, ``calculate`` and the
    read of the result) makes the calls take turns, so each thread gets the results of
    its own structure; they do not run in parallel. For parallel work give each thread
    its own calculator (``GAPCalculator(model)`` is cheap; the model can be shared).

    Two atoms closer than the shortest distance of their species pair in the training data
    (``GAP.shortest_distances_``) are outside what the model learnt: a warning through
    ``logging`` names the pair, once per calculator and chemical formula.
    """

    implemented_properties = ("energy", "free_energy", "energies", "forces", "stress",
                              "energy_std", "energy_latent_std", "energies_std", "forces_std",
                              "forces_latent_std", "forces_score", "forces_latent_score")

    def __init__(self, model, uncertainty=False, skin=0.5, local_tolerance=None, **kwargs):
        if not any(uncertainty is mode or (isinstance(mode, str) and uncertainty == mode)
                   for mode in UNCERTAINTY_MODES):
            raise ValueError(f"GAPCalculator: uncertainty must be False, True, 'full' or "
                             f"'local', not {uncertainty!r}")
        super().__init__(**kwargs)
        self.model = model
        self.uncertainty = uncertainty
        self.skin = skin
        self.local_tolerance = local_tolerance
        self._predictor = None
        self._local = None
        self._warned_formulas = set()
        self._lock = threading.RLock()

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_lock", None)  # a lock cannot be pickled or copied
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def get_property(self, name, atoms=None, allow_calculation=True):
        with self._lock:
            return super().get_property(name, atoms, allow_calculation)

    def _wants(self, properties):
        """(full, local): which uncertainty paths this call runs."""
        wanted = set(properties)
        full = self.uncertainty is True or self.uncertainty == "full"
        local = self.uncertainty == "local"
        full = full or bool(wanted & (set(_FULL_RESULTS) - set(_LOCAL_RESULTS)))
        local = local or bool(wanted & {"forces_score", "forces_latent_score"})
        if "energies_std" in wanted and not (full or local):
            local = True
        return full, local

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        with self._lock:
            self._calculate(atoms, properties, system_changes)

    def _calculate(self, atoms, properties, system_changes):
        have_prediction = not system_changes and "energy" in self.results
        previous = dict(self.results) if have_prediction else {}
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        full, local = self._wants(properties)
        if self._predictor is None or not self._predictor.is_current(self.model):
            check_is_fitted(self.model, "alpha_")
            self._predictor = StructurePredictor.from_model(self.model, skin=self.skin)
            system_changes = all_changes
            have_prediction, previous = False, {}
        if _STRUCTURAL_CHANGES.intersection(system_changes):
            # overlapping atoms are caught on every call by the predictor itself
            check_structures([atoms], species=self.model.species_, min_distance=None)
        if have_prediction and not (local and "forces_score" not in previous):
            self.results = previous  # same atoms: only a missing full uncertainty to add
        else:
            self._predict(atoms, properties, local)
            self.results = {**previous, **self.results}
        if full and "forces_std" not in self.results:
            self._add_full_uncertainty(atoms)

    def _predict(self, atoms, properties, local):
        if local:
            if self._local is None or not self._local.is_current(self.model):
                tolerance = (CALCULATOR_TOLERANCE if self.local_tolerance is None
                             else self.local_tolerance)
                self._local = LocalUncertaintyPredictor(self.model, skin=self.skin,
                                                        tolerance=tolerance)
            prediction, uncertainty = self._local.predict(atoms)
        else:
            prediction = self._predictor.predict(atoms)
        if prediction.contact is not None:
            self._warn_extrapolation(atoms, prediction.contact)
        self.results = {
            "energy": prediction.energy,
            "free_energy": prediction.energy,
            "energies": prediction.local_energies,
            "forces": prediction.forces,
        }
        if atoms.pbc.all():
            self.results["stress"] = stress_from_virial(prediction.virial, atoms.get_volume())
        elif "stress" in properties:
            raise PropertyNotImplementedError(
                "stress needs a structure periodic in all three directions")
        if local:
            self.results["energies_std"] = uncertainty.energies_latent_std
            self.results["forces_score"] = uncertainty.forces_score
            self.results["forces_latent_score"] = uncertainty.forces_latent_score

    def _warn_extrapolation(self, atoms, contact):
        formula = atoms.get_chemical_formula()
        if formula in self._warned_formulas:
            return
        self._warned_formulas.add(formula)
        baseline = ("the ZBL repulsion baseline holds them apart" if self._predictor.baseline
                    is not None else "the model has no repulsion baseline (repulsion=None)")
        logger.warning("%s: atoms %d and %d are %.3f Å apart, closer than the shortest %s distance "
                       "in the training data (%.3f Å): the model is extrapolating and %s "
                       "(reported once per calculator and formula)", formula, contact.atom_i,
                       contact.atom_j, contact.distance, contact.symbols, contact.shortest, baseline)

    def _add_full_uncertainty(self, atoms):
        result = structure_variance(self.model, atoms, self.model.posterior())
        force_noise, energy_noise = noise_levels(self.model)
        forces = np.maximum(result.forces, 0.0)
        energy = max(result.energy, 0.0)
        self.results["energy_latent_std"] = result.energy_std
        self.results["energy_std"] = float(np.sqrt(energy + len(atoms) * energy_noise ** 2))
        self.results["energies_std"] = result.local_energies_std
        self.results["forces_latent_std"] = result.forces_std
        self.results["forces_std"] = np.sqrt(forces + force_noise ** 2)

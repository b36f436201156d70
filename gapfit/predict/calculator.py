"""ASE calculator around a fitted GAP: energy, free_energy, energies, forces, stress."""
import logging
import threading

from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from sklearn.utils.validation import check_is_fitted

from ..structures.checks import check_structures
from .predictor import StructurePredictor
from ..structures.voigt import stress_from_virial

logger = logging.getLogger(__name__)

# changes after which the structure is checked again (geometry and species)
_STRUCTURAL_CHANGES = {"numbers", "cell", "pbc"}


class GAPCalculator(Calculator):
    """Adapts a fitted ``gapfit.GAP`` to ASE (eV, eV/Å, eV/Å³ in ASE's sign and Voigt order).

    With ``uncertainty=True`` the results also hold posterior standard deviations
    (``gapfit.uncertainty.posterior``): ``energy_std`` (eV), ``energies_std`` (per atom, eV) and
    ``forces_std`` (N×3, eV/Å).

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

    implemented_properties = ("energy", "free_energy", "energies", "forces", "stress")

    def __init__(self, model, uncertainty=False, skin=0.5, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.uncertainty = uncertainty
        self.skin = skin
        self._predictor = None
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

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        with self._lock:
            self._calculate(atoms, properties, system_changes)

    def _calculate(self, atoms, properties, system_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        if self._predictor is None or not self._predictor.is_current(self.model):
            check_is_fitted(self.model, "alpha_")
            self._predictor = StructurePredictor.from_model(self.model, skin=self.skin)
            system_changes = all_changes
        if _STRUCTURAL_CHANGES.intersection(system_changes):
            # overlapping atoms are caught on every call by the predictor itself
            check_structures([atoms], species=self.model.species_, min_distance=None)
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
        if self.uncertainty:
            self._add_uncertainty(atoms)

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

    def _add_uncertainty(self, atoms):
        result = self.model.predict_variances([atoms])[0]
        self.results["energy_std"] = result.energy_std
        self.results["energies_std"] = result.local_energies_std
        self.results["forces_std"] = result.forces_std

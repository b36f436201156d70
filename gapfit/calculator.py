"""ASE calculator around a fitted GAP: energy, free_energy, energies, forces, stress."""
import numpy as np
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes


class GAPCalculator(Calculator):
    """Adapts a fitted ``gapfit.GAP`` to ASE (eV, eV/Å, eV/Å³ in ASE's sign and Voigt order).

    With ``uncertainty=True`` the results also hold posterior standard deviations
    (``gapfit.variance``): ``energy_std`` (eV), ``energies_std`` (per atom, eV) and
    ``forces_std`` (N×3, eV/Å).
    """

    implemented_properties = ("energy", "free_energy", "energies", "forces", "stress")

    def __init__(self, model, uncertainty=False, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.uncertainty = uncertainty
        self._posterior = None

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        self.model._check_predictable([atoms])
        prediction = self.model.predict_structure(atoms)
        self.results = {
            "energy": prediction.energy,
            "free_energy": prediction.energy,
            "energies": prediction.local_energies.copy(),
            "forces": prediction.forces.copy(),
        }
        if atoms.pbc.all():
            stress = -prediction.virial / atoms.get_volume()
            self.results["stress"] = stress.flat[[0, 4, 8, 5, 2, 1]].copy()
        elif "stress" in properties:
            raise PropertyNotImplementedError(
                "stress needs a structure periodic in all three directions")
        if self.uncertainty:
            self._add_uncertainty(atoms)

    def _add_uncertainty(self, atoms):
        from .variance import Posterior, structure_variance
        if self._posterior is None or not self._posterior.is_current(self.model):
            self._posterior = Posterior(self.model)
        result = structure_variance(self.model, atoms, self._posterior)
        self.results["energy_std"] = result.energy_std
        self.results["energies_std"] = result.local_energies_std
        self.results["forces_std"] = result.forces_std

"""ASE calculator around a fitted GAP: energy, free_energy, energies, forces, stress."""
import numpy as np
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes


class GAPCalculator(Calculator):
    """Adapts a fitted ``gapfit.GAP`` to ASE (eV, eV/Å, eV/Å³ in ASE's sign and Voigt order)."""

    implemented_properties = ("energy", "free_energy", "energies", "forces", "stress")

    def __init__(self, model, **kwargs):
        super().__init__(**kwargs)
        self.model = model

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

"""The noise model: the expected error (sigma) of every label a fit weighs, in one place.

Sigmas come from the estimator's settings (energy eV/atom, force eV/Å, virial eV/atom), are
overridden per config_type and per configuration (``atoms.info`` keys ``energy_sigma``,
``force_sigma``, ``virial_sigma``), and multiplied by the scale factors that the evidence
optimisation found (``scales``, one per target kind). The fit, the evidence, active selection
and ``GAP.update`` all weigh labels through ``NoiseModel.sigmas_of``; the model file keeps it.
"""
from dataclasses import dataclass, field, replace

import numpy as np

KINDS = ("energy", "forces", "virial")

# How the six Voigt components of a virial share its sigma (``NoiseModel.virial_weighting``):
# "tensor" sums the squared error over the nine components of the virial tensor (the
# Frobenius norm), which counts each shear component twice, so in Voigt form the shear
# sigmas are divided by √2; unlike a sum over six Voigt numbers this loss does not change
# when the training structures are rotated. "voigt" gives each of the six Voigt components
# the virial sigma: gap_fit's weighting (measured: with gap_fit's own sparse points a gapfit
# fit then reproduces gap_fit's coefficients, tests/test_quip_models.py).
VIRIAL_WEIGHTINGS = {"tensor": np.array([1.0, 1.0, 1.0, 2.0 ** -0.5, 2.0 ** -0.5, 2.0 ** -0.5]),
                     "voigt": np.ones(6)}


@dataclass(frozen=True)
class NoiseModel:
    """Sigmas of energies (eV/atom), forces (eV/Å) and virials (eV/atom).

    config_type_sigma : {config_type: (energy, force, virial)} overrides, or None.
    scales : {kind: factor} for kinds in KINDS, from hyperparameter optimisation (1 when absent).
    virial_weighting : "tensor" or "voigt", how the Voigt components share the virial sigma
        (``VIRIAL_WEIGHTINGS``).
    Energy and virial sigmas of a configuration of N atoms are the per-atom values times √N.
    """

    energy_sigma: float
    force_sigma: float
    virial_sigma: float
    config_type_sigma: dict = None
    scales: dict = field(default_factory=dict)
    virial_weighting: str = "tensor"

    def __post_init__(self):
        if self.virial_weighting not in VIRIAL_WEIGHTINGS:
            raise ValueError(f"virial_weighting must be one of {sorted(VIRIAL_WEIGHTINGS)}, "
                             f"not {self.virial_weighting!r}")
        for name in ("energy_sigma", "force_sigma", "virial_sigma"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        for config_type, sigmas in (self.config_type_sigma or {}).items():
            if len(sigmas) != 3 or not all(np.isfinite(s) and s > 0 for s in sigmas):
                raise ValueError(f"config_type_sigma[{config_type!r}] must be three positive "
                                 f"sigmas (energy, force, virial), got {sigmas!r}")

    def scale(self, kind):
        """The optimised factor of one target kind (1 when none was found)."""
        return float(self.scales.get(kind, 1.0))

    def with_scales(self, factors):
        """A copy whose scales are multiplied by ``factors`` ({kind: factor})."""
        merged = {kind: self.scale(kind) * float(factors.get(kind, 1.0))
                  for kind in set(self.scales) | set(factors)}
        return replace(self, scales=merged)

    def sigmas_of(self, atoms):
        """(energy eV, force eV/Å, virial eV) sigmas of one configuration, scales applied."""
        sigma = [self.energy_sigma, self.force_sigma, self.virial_sigma]
        config_type = atoms.info.get("config_type")
        if self.config_type_sigma and config_type in self.config_type_sigma:
            sigma = list(self.config_type_sigma[config_type])
        for position, key in enumerate(("energy_sigma", "force_sigma", "virial_sigma")):
            if key in atoms.info:
                sigma[position] = float(atoms.info[key])
        root_n = np.sqrt(len(atoms))
        return (sigma[0] * root_n * self.scale("energy"), sigma[1] * self.scale("forces"),
                sigma[2] * root_n * self.scale("virial"))

    def voigt_sigmas(self, virial_sigma):
        """Sigmas (eV) of the six Voigt virial components xx, yy, zz, yz, xz, xy for a virial
        sigma (eV, already scaled by √N, as ``sigmas_of`` gives it): (..., 6) for an array."""
        return np.multiply.outer(virial_sigma, VIRIAL_WEIGHTINGS[self.virial_weighting])

    def to_dict(self):
        """Plain JSON-ready settings and scales (for the model file)."""
        return {"energy_sigma": self.energy_sigma, "force_sigma": self.force_sigma,
                "virial_sigma": self.virial_sigma,
                "config_type_sigma": ({k: list(v) for k, v in self.config_type_sigma.items()}
                                      if self.config_type_sigma else None),
                "scales": dict(self.scales), "virial_weighting": self.virial_weighting}

    @classmethod
    def from_dict(cls, record):
        config = record.get("config_type_sigma")
        return cls(float(record["energy_sigma"]), float(record["force_sigma"]),
                   float(record["virial_sigma"]),
                   {k: tuple(v) for k, v in config.items()} if config else None,
                   {k: float(v) for k, v in record.get("scales", {}).items()},
                   record.get("virial_weighting", "tensor"))

"""SOAP as QUIP/gap_fit defines it (``soap`` descriptor, equispaced-Gaussian radial basis),
computed by gapfit's numba kernels with analytic pair gradients and a vector-Jacobian product.

Features equal ``quippy.descriptors.Descriptor("soap ...")`` (quippy-ase 0.10.3, default
xml_version) to ~1e-14; the conventions, found by black-box comparison, are listed in the
class docstring and in /work/notes/quip_descriptor_facts.md.
"""
import math

import numpy as np
from ase.data import chemical_symbols as _CHEMICAL_SYMBOLS
from scipy.special import erf

from . import _kernel_blocks as blocks
from . import _quip_soap_kernels as kernels
from . import _soap_basis as harmonic_basis
from .base import Descriptor, LocalEnvironments, atomic_number
from .quip_common import validated_cutoff


def gaussian_centres(cutoff, n_max, atom_sigma, basis_error_exponent):
    """Centres r_k = k R / n_max (Å), k = 0..n_max-1, R = cutoff + σ sqrt(2 x ln 10)."""
    extent = cutoff + atom_sigma * math.sqrt(2.0 * basis_error_exponent * math.log(10.0))
    return np.arange(n_max) * extent / n_max


def gaussian_overlap(centres, atom_sigma):
    """S_kk' = ∫_0^∞ r² exp(-((r - r_k)² + (r - r_k')²) / (2σ²)) dr (Å³)."""
    s = atom_sigma
    a = centres[:, None]
    b = centres[None, :]
    middle = 0.5 * (a + b)
    half_line = ((middle**2 + 0.5 * s * s) * 0.5 * s * math.sqrt(math.pi)
                 * (1.0 + erf(middle / s)) + 0.5 * s * s * middle * np.exp(-(middle / s) ** 2))
    return np.exp(-((a - b) ** 2) / (4.0 * s * s)) * half_line


def radial_transform(centres, atom_sigma):
    """W = U G⁻¹: U the upper Cholesky factor of the overlap (S = Uᵀ U), G the Gaussians'
    values at the centres, G_kk' = exp(-(r_k - r_k')² / (2σ²))."""
    overlap = gaussian_overlap(centres, atom_sigma)
    try:
        upper = np.linalg.cholesky(overlap).T
    except np.linalg.LinAlgError:
        raise ValueError(f"QUIP SOAP: the overlap of the {len(centres)} radial Gaussians "
                         f"(atom_sigma={atom_sigma} Å) is not positive definite; lower n_max"
                         ) from None
    collocation = np.exp(-((centres[:, None] - centres[None, :]) ** 2) / (2.0 * atom_sigma**2))
    return np.ascontiguousarray(upper @ np.linalg.inv(collocation))


class QuipSOAPDescriptor(Descriptor):
    """QUIP's ``soap`` descriptor (power spectrum, equispaced-Gaussian radial basis).

    Parameters
    ----------
    species : list of chemical symbols or atomic numbers, QUIP's ``species_Z`` **in its
        order** (it fixes the feature order), or None for QUIP's wild card (no species_Z:
        every neighbour, whatever its species, in one density).
    cutoff : float, Å. cutoff_transition_width : float, Å (cosine taper over the last width).
    n_max, l_max : radial and angular band limits. atom_sigma : Gaussian width, Å.
    central_weight : weight of the centre's own Gaussian (added to its species' density).
    covariance_sigma0 : value of the trailing feature element.
    normalise : bool, unit-length power spectrum (before the trailing element).
    Z : None (every atom is a centre, QUIP's Z=0; all centres share channel 0 as they share
        one GP in QUIP), or one or several centre species: then only those atoms are
        centres and the channel is the centre's atomic number (like gap_fit's one
        descriptor per Z).
    central_reference_all_species : bool, the centre's Gaussian in every species' density.
    basis_error_exponent : QUIP's parameter (10): the basis reaches
        cutoff + atom_sigma sqrt(2 x ln 10) Å.

    Attributes
    ----------
    cutoff : float, neighbour-list radius in Å (= the cutoff; the taper ends there).
    n_features : (l_max+1) K (K+1) / 2 + 1 with K = n_max max(1, len(species)).
    species : (n_species,) int64 in the given order (empty for the wild card).
    centre_species : (n,) int64 or None, the Z argument.

    Feature order: channels a = s n_max + n; channel b outer, a <= b inner, l innermost;
    element p = (√2 if a != b) (2l+1)^(-1/2) Σ_m c_alm c_blm; unit length; then
    covariance_sigma0. Features are dimensionless when normalised; gradients per Å.
    """

    def __init__(self, species, cutoff, n_max, l_max, atom_sigma, cutoff_transition_width=0.5,
                 central_weight=1.0, covariance_sigma0=0.0, normalise=True, Z=None,
                 central_reference_all_species=False, basis_error_exponent=10.0):
        what = "QUIP SOAP"
        if species is None:
            self.species = np.zeros(0, dtype=np.int64)
        else:
            numbers = [atomic_number(s, what) for s in species]
            if not numbers:
                raise ValueError(f"{what}: species is empty (use None for QUIP's wild card)")
            if len(set(numbers)) != len(numbers):
                raise ValueError(f"{what}: species {numbers} lists a species twice")
            self.species = np.array(numbers, dtype=np.int64)
        self.cutoff, self.cutoff_transition_width = validated_cutoff(
            cutoff, cutoff_transition_width, what)
        self.n_max = int(n_max)
        self.l_max = int(l_max)
        self.atom_sigma = float(atom_sigma)
        if self.n_max < 1:
            raise ValueError(f"{what}: n_max must be >= 1, got {n_max}")
        if not 0 <= self.l_max <= 20:
            raise ValueError(f"{what}: l_max must be in 0..20, got {l_max}")
        if not self.atom_sigma > 0:
            raise ValueError(f"{what}: atom_sigma must be > 0 Å, got {atom_sigma}")
        self.central_weight = float(central_weight)
        self.covariance_sigma0 = float(covariance_sigma0)
        self.normalise = bool(normalise)
        self.central_reference_all_species = bool(central_reference_all_species)
        self.basis_error_exponent = float(basis_error_exponent)
        if Z is None or (not isinstance(Z, str) and np.ndim(Z) == 0 and Z == 0):
            self.centre_species = None
        else:
            centre = [Z] if isinstance(Z, str) or np.ndim(Z) == 0 else list(Z)
            self.centre_species = np.array([atomic_number(z, what) for z in centre],
                                           dtype=np.int64)
            if len(self.species):
                missing = sorted(set(self.centre_species.tolist()) - set(self.species.tolist()))
                if missing:
                    raise ValueError(f"{what}: centre species Z={missing} not among species "
                                     f"{self.species.tolist()}")
        self._set_up_basis()

    def _set_up_basis(self):
        centres = gaussian_centres(self.cutoff, self.n_max, self.atom_sigma,
                                   self.basis_error_exponent)
        transform = radial_transform(centres, self.atom_sigma)
        norms = harmonic_basis.real_harmonic_norms(self.l_max)
        centre_term = (self.central_weight * norms[0, 0]
                       * (transform @ np.exp(-centres**2 / (2.0 * self.atom_sigma**2))))
        self._basis = (centres, transform, centres / self.atom_sigma**2, self.atom_sigma,
                       self.cutoff, self.cutoff_transition_width, centre_term,
                       self.central_reference_all_species, norms,
                       harmonic_basis.harmonic_recurrence(self.l_max))
        self._species_index = np.full(len(_CHEMICAL_SYMBOLS), -1, dtype=np.int64)
        if len(self.species):
            self._species_index[self.species] = np.arange(len(self.species))
        else:
            self._species_index[:] = 0

    @property
    def n_density_species(self):
        return max(len(self.species), 1)

    @property
    def n_features(self):
        channels = self.n_max * self.n_density_species
        return (self.l_max + 1) * channels * (channels + 1) // 2 + 1

    def quip_string(self, z=None):
        """The quippy ``Descriptor`` string with these settings (centre species ``z``,
        default the single Z given, or none)."""
        if z is None and self.centre_species is not None and len(self.centre_species) == 1:
            z = int(self.centre_species[0])
        parts = [f"soap cutoff={self.cutoff!r} cutoff_transition_width="
                 f"{self.cutoff_transition_width!r} n_max={self.n_max} l_max={self.l_max} "
                 f"atom_sigma={self.atom_sigma!r} central_weight={self.central_weight!r} "
                 f"covariance_sigma0={self.covariance_sigma0!r} "
                 f"normalise={'T' if self.normalise else 'F'} "
                 f"central_reference_all_species="
                 f"{'T' if self.central_reference_all_species else 'F'} "
                 f"basis_error_exponent={self.basis_error_exponent!r}"]
        if len(self.species):
            listed = " ".join(str(int(s)) for s in self.species)
            parts.append(f"n_species={len(self.species)} species_Z={{{listed}}}")
        if z is not None:
            parts.append(f"Z={int(z)}")
        return " ".join(parts)

    def _kernel_inputs(self, atoms, neighbor_list):
        """Centres, their pairs within the cutoff (CSR over centres) and species indices."""
        if neighbor_list.n_atoms != len(atoms):
            raise ValueError(f"QUIP SOAP on {atoms.get_chemical_formula()}: neighbour list has {neighbor_list.n_atoms} "
                             f"atoms, structure has {len(atoms)}")
        numbers = np.asarray(atoms.numbers, dtype=np.int64)
        if self.centre_species is None:
            is_centre = np.ones(len(atoms), dtype=bool)
        else:
            is_centre = np.isin(numbers, self.centre_species)
        centre_atoms = np.flatnonzero(is_centre).astype(np.int64)
        centre_species = self._species_index[numbers[centre_atoms]]
        if (centre_species < 0).any():
            unknown = sorted({_CHEMICAL_SYMBOLS[z] for z in numbers[centre_atoms][centre_species < 0]})
            raise ValueError(f"QUIP SOAP on {atoms.get_chemical_formula()}: centre species {', '.join(unknown)} not among "
                             f"the descriptor's species "
                             f"{[_CHEMICAL_SYMBOLS[z] for z in self.species]} (give Z=)")
        env_of_atom = np.full(len(atoms), -1, dtype=np.int64)
        env_of_atom[centre_atoms] = np.arange(len(centre_atoms))
        pair_species = self._species_index[numbers[neighbor_list.neighbors]]
        keep = ((neighbor_list.distances < self.cutoff) & is_centre[neighbor_list.centers]
                & (pair_species >= 0))
        envs = env_of_atom[neighbor_list.centers[keep]]
        offsets = np.zeros(len(centre_atoms) + 1, dtype=np.int64)
        np.cumsum(np.bincount(envs, minlength=len(centre_atoms)), out=offsets[1:])
        return (centre_atoms, np.ascontiguousarray(envs, dtype=np.int64),
                np.ascontiguousarray(neighbor_list.neighbors[keep], dtype=np.int64),
                np.ascontiguousarray(neighbor_list.vectors[keep], dtype=np.float64), offsets,
                np.ascontiguousarray(pair_species[keep]), np.ascontiguousarray(centre_species))

    def _channels(self, atoms, centre_atoms):
        if self.centre_species is None:
            return np.zeros(len(centre_atoms), dtype=np.int64)
        return np.asarray(atoms.numbers, dtype=np.int64)[centre_atoms]

    def _run(self, mode, offsets, vectors, pair_species, centre_species, features=None,
             pair_gradients=None, d_energy_d_features=None, d_energy_d_vectors=None):
        empty_2d = np.empty((0, 0))
        kernels.quip_soap_kernel(
            mode, offsets, vectors, pair_species, centre_species, self.l_max, self.n_max,
            self.n_density_species, self._basis, self.normalise, self.covariance_sigma0,
            blocks.blocks_per_pass(), empty_2d if features is None else features,
            np.empty((0, 0, 0)) if pair_gradients is None else pair_gradients,
            empty_2d if d_energy_d_features is None else d_energy_d_features,
            empty_2d if d_energy_d_vectors is None else d_energy_d_vectors)

    def compute(self, atoms, neighbor_list, gradients=False):
        """QUIP SOAP of every centre of ``atoms``.

        ``neighbor_list`` is ``build_neighbor_list(atoms, r)`` with r >= ``self.cutoff``.
        With ``gradients=True`` the pair arrays hold, for every (centre, neighbour image of
        a listed species within the cutoff), ∂q_centre/∂r_image (3, n_features) per Å.
        """
        centre_atoms, envs, neighbors, vectors, offsets, pair_species, centre_species = \
            self._kernel_inputs(atoms, neighbor_list)
        common = dict(center_atoms=centre_atoms, channels=self._channels(atoms, centre_atoms))
        features = np.empty((len(centre_atoms), self.n_features))
        if not gradients:
            self._run(kernels.FEATURES, offsets, vectors, pair_species, centre_species,
                      features=features)
            return LocalEnvironments(features=features, **common)
        pair_gradients = np.empty((len(envs), 3, self.n_features))
        self._run(kernels.FEATURES_AND_GRADIENTS, offsets, vectors, pair_species,
                  centre_species, features=features, pair_gradients=pair_gradients)
        return LocalEnvironments(features=features, pair_envs=envs, pair_neighbors=neighbors,
                                 pair_vectors=vectors, pair_gradients=pair_gradients, **common)

    def backward(self, atoms, neighbor_list, d_energy_d_features):
        """Vector-Jacobian product for forces: ∂E/∂q (n_envs, n_features) in eV per feature
        unit → (pair_envs, pair_neighbors, pair_vectors, ∂E/∂pair vector (n_pairs, 3) in
        eV/Å), without forming the pair gradients. F_k = -Σ_{p: neighbour k} g_p +
        Σ_{p: centre of env k} g_p; dE/dε_ab = Σ_p g_pa D_pb.
        """
        centre_atoms, envs, neighbors, vectors, offsets, pair_species, centre_species = \
            self._kernel_inputs(atoms, neighbor_list)
        d_energy_d_features = np.ascontiguousarray(d_energy_d_features, dtype=np.float64)
        expected = (len(centre_atoms), self.n_features)
        if d_energy_d_features.shape != expected:
            raise ValueError(f"QUIP SOAP backward on {atoms.get_chemical_formula()}: "
                             f"d_energy_d_features has shape {d_energy_d_features.shape}, "
                             f"expected {expected}")
        d_energy_d_vectors = np.zeros((len(envs), 3))
        self._run(kernels.BACKWARD, offsets, vectors, pair_species, centre_species,
                  d_energy_d_features=d_energy_d_features, d_energy_d_vectors=d_energy_d_vectors)
        return envs, neighbors, vectors, d_energy_d_vectors

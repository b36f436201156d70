"""SOAP power spectrum with dscribe's GTO radial basis, computed in numba.

Features equal ``dscribe.descriptors.SOAP(rbf="gto", average="off", compression off)``
with the same weighting; analytic pair gradients and a vector-Jacobian product (for forces
in MD) come with it. One weighting dscribe lacks: "cosine" (GAP's cutoff function), weight c
up to r0 - d and c (1 + cos(pi (r - r0 + d) / d)) / 2 from there to 0 at r0.
"""
import copy
from dataclasses import dataclass

import numpy as np

from . import _kernel_blocks as blocks
from . import _soap_basis as basis
from . import _soap_kernels as kernels
from .base import AtomCentredDescriptor, LocalEnvironments

_WEIGHT_KINDS = {"poly": kernels.WEIGHT_POLY, "pow": kernels.WEIGHT_POW, "exp": kernels.WEIGHT_EXP,
                 "cosine": kernels.WEIGHT_COSINE}


def _validated_weighting(weighting):
    """A float-valued copy of dscribe's weighting dictionary ({} for none)."""
    if not weighting:
        return {}
    weighting = copy.deepcopy(dict(weighting))
    if weighting.get("w0") is not None:
        if weighting["w0"] < 0:
            raise ValueError(f"SOAP weighting: w0 must be >= 0, got {weighting['w0']}")
        weighting["w0"] = float(weighting["w0"])
    function = weighting.get("function")
    if function is None:
        return weighting
    if function not in _WEIGHT_KINDS:
        raise ValueError(f"SOAP weighting: unknown function {function!r}, "
                         f"choose one of {sorted(_WEIGHT_KINDS)}")
    required = {"poly": ("r0", "c", "m"), "pow": ("r0", "c", "d", "m"), "exp": ("r0", "c", "d"),
                "cosine": ("r0", "c", "d")}
    for name in required[function]:
        value = weighting.get(name)
        if value is None or value < 0 or (name == "r0" and value == 0):
            relation = "> 0" if name == "r0" else ">= 0"
            raise ValueError(f"SOAP weighting {function!r}: {name} must be {relation}, got {value}")
        weighting[name] = float(value)
    if function == "cosine" and not 0 < weighting["d"] <= weighting["r0"]:
        raise ValueError(f"SOAP weighting 'cosine': d, the taper width, must be in (0, r0 = "
                         f"{weighting['r0']}] Å, got {weighting['d']}")
    if function in ("pow", "exp"):
        weighting["threshold"] = float(weighting.get("threshold", 1e-2))
    return weighting


def _radius_from_weighting(weighting):
    """dscribe's r_cut when only a weighting is given (Å): where the weight reaches its
    threshold (pow, exp) or zero (poly)."""
    function = weighting.get("function")
    if function in ("poly", "cosine"):
        return weighting["r0"]
    if function == "pow":
        return weighting["r0"] * (weighting["c"] / weighting["threshold"] - weighting["d"]) ** (
            1.0 / weighting["m"])
    if function == "exp":
        return weighting["r0"] * np.log(weighting["c"] / weighting["threshold"] - weighting["d"])
    raise ValueError("SOAP: give r_cut or a weighting function to infer it from")


@dataclass
class SOAPForwardState:
    """What ``SOAPDescriptor.forward`` keeps for ``backward_from``: the structure (its formula
    names it in messages, formed only then: it costs ~2 µs per atom), the kernel inputs
    (pairs by centre, CSR offsets, species indices), the expansion coefficients (n_atoms,
    n_species, (l_max+1)², n_max) in dscribe's units, and per pair the exponentials of the
    radial integral ((l_max+1) n_max each) and the solid harmonics ((l_max+1)² each), so
    that the backward pass evaluates no basis function again."""

    atoms: object
    inputs: tuple
    coefficients: np.ndarray
    exps: np.ndarray
    harmonics: np.ndarray


class SOAPDescriptor(AtomCentredDescriptor):
    """Smooth overlap of atomic positions, power spectrum, GTO radial basis (dscribe 2.1).

    Parameters
    ----------
    species : list of chemical symbols or atomic numbers that may ever occur.
    r_cut : float, radial cutoff in Å (> 1 Å). None infers it from ``weighting``.
    n_max : int, number of radial basis functions.
    l_max : int, largest angular momentum.
    sigma : float, width (Å) of the Gaussian on each atom.
    weighting : dict or None, dscribe's weighting of the neighbour density, e.g.
        ``{"function": "poly", "r0": 5.0, "c": 1.0, "m": 2}``, ``"pow"`` (r0, c, d, m),
        ``"exp"`` (r0, c, d), ``"cosine"`` (r0, c, d: weight c up to r0 - d Å, a half cosine
        down to 0 at r0; not in dscribe), optionally ``"w0"``, the weight of the centre atom.
        r_cut sets the reach of the radial basis; a weighting may end the environment
        sooner (poly, cosine: at r0).

    Attributes
    ----------
    species : (n_species,) int64, sorted atomic numbers; the feature blocks follow
        dscribe's order (species pairs s1 <= s2, then l, then n <= n' or all n, n').
    cutoff : float, neighbour-list radius in Å: r_cut plus dscribe's padding
        sigma sqrt(-2 ln 1e-3), within which every atom contributes; with the ``poly`` or
        ``cosine`` weighting at most r0, beyond which the weight (and so every contribution)
        is zero.
    n_features : int.

    Features are squared expansion coefficients of a sum of unnormalised Gaussians on an
    orthonormal basis (dscribe's normalisation), so they carry Å^3; gradients carry Å^2.
    Every atom is a centre; the channel of an environment is the centre's atomic number.
    Unlike an sklearn estimator, __init__ validates its arguments and sets up the basis
    (a few ms), so that errors show at construction.
    """

    label = "SOAP"

    def __init__(self, species, r_cut=5.0, n_max=8, l_max=6, sigma=0.5, weighting=None):
        self.set_species(species)
        self.weighting = _validated_weighting(weighting)
        self.r_cut = float(r_cut) if r_cut else float(_radius_from_weighting(self.weighting))
        self.n_max = int(n_max)
        self.l_max = int(l_max)
        self.sigma = float(sigma)
        if self.sigma <= 0:
            raise ValueError(f"SOAP: sigma must be > 0 Å, got {sigma}")
        if self.n_max < 1:
            raise ValueError(f"SOAP: n_max must be >= 1, got {n_max}")
        if not 0 <= self.l_max <= 20:
            raise ValueError(f"SOAP: l_max must be in 0..20, got {l_max}")
        if self.r_cut <= 1.0:
            raise ValueError(f"SOAP: the GTO basis needs r_cut > 1 Å, got {self.r_cut}")
        self.cutoff = self.r_cut + basis.cutoff_padding(self.sigma)
        if self.weighting.get("function") in ("poly", "cosine"):
            # these weights are exactly zero beyond r0: farther atoms add nothing
            self.cutoff = min(self.cutoff, self.weighting["r0"])
        self._set_up_basis()

    def _set_up_basis(self):
        alphas, betas = basis.gto_exponents_and_orthonormalisation(self.r_cut, self.n_max,
                                                                    self.l_max)
        exponents, prefactors = basis.radial_integral_factors(alphas, betas, self.sigma)
        self._basis = (exponents, prefactors, basis.real_harmonic_norms(self.l_max),
                       basis.harmonic_recurrence(self.l_max),
                       basis.power_spectrum_prefactors(self.l_max),
                       basis.slope_prefactors(exponents, prefactors))
        self._lowering = basis.harmonic_lowering(self.l_max)
        kind = _WEIGHT_KINDS.get(self.weighting.get("function"), kernels.WEIGHT_NONE)
        params = np.array([self.weighting.get(name, 0.0) for name in ("r0", "c", "m", "d")],
                          dtype=np.float64)
        has_w0 = "w0" in self.weighting
        w0 = float(self.weighting.get("w0", 0.0))
        self_weight = kernels.weight_and_derivative(0.0, (kind, params, has_w0, w0, 0.0))[0]
        self._weighting = (kind, params, has_w0, w0, float(self_weight))

    @property
    def n_features(self):
        size = len(self.species) * self.n_max
        return size * (size + 1) // 2 * (self.l_max + 1)

    def to_dscribe(self, periodic=False):
        """The dscribe SOAP with the same settings (dense, no averaging or compression)."""
        from dscribe.descriptors import SOAP

        if self.weighting.get("function") == "cosine":
            raise ValueError("SOAP: dscribe has no cosine weighting")
        return SOAP(species=[int(z) for z in self.species], r_cut=self.r_cut, n_max=self.n_max,
                    l_max=self.l_max, sigma=self.sigma, rbf="gto",
                    weighting=copy.deepcopy(self.weighting) or None, periodic=periodic,
                    sparse=False, average="off", compression={"mode": "off"})

    def _kernel_inputs(self, atoms, neighbor_list):
        """Pairs within the cutoff, CSR offsets and species indices for the kernels."""
        return self.centred_pairs(atoms, neighbor_list, neighbor_list.distances <= self.cutoff)

    def _run(self, mode, offsets, vectors, pair_species, centre_species, features=None,
             pair_gradients=None, d_energy_d_features=None, d_energy_d_vectors=None,
             kept=None):
        """Call the numba kernel in ``mode``; outputs it does not use are empty arrays.
        ``kept`` is a SOAPForwardState whose arrays FEATURES fills and BACKWARD reads."""
        empty_2d = np.empty((0, 0))
        empty_1d = np.empty(0)
        kernels.soap_kernel(
            mode, offsets, vectors, pair_species, centre_species, len(self.species),
            self.l_max, self.n_max, self._basis, self._weighting, self._lowering,
            blocks.blocks_per_pass(),
            empty_2d if features is None else features,
            np.empty((0, 0, 0)) if pair_gradients is None else pair_gradients,
            empty_2d if d_energy_d_features is None else d_energy_d_features,
            empty_2d if d_energy_d_vectors is None else d_energy_d_vectors,
            np.empty((0, 0, 0, 0)) if kept is None else kept.coefficients,
            empty_1d if kept is None else kept.exps,
            empty_1d if kept is None else kept.harmonics)

    def compute(self, atoms, neighbor_list, gradients=False):
        """SOAP of every atom of ``atoms`` (one environment per atom).

        ``neighbor_list`` is ``build_neighbor_list(atoms, r)`` with r >= ``self.cutoff``
        (pairs beyond the cutoff are ignored). With ``gradients=True`` the pair arrays
        hold, for every (centre, neighbour image within the cutoff),
        ∂q_centre/∂r_image of shape (3, n_features) in feature units per Å; the
        centre's own derivative is minus their sum.
        """
        centers, neighbors, vectors, offsets, pair_species, centre_species = \
            self._kernel_inputs(atoms, neighbor_list)
        numbers = np.asarray(atoms.numbers, dtype=np.int64)
        environments = dict(center_atoms=np.arange(len(atoms), dtype=np.int64),
                            channels=numbers.copy())
        features = np.empty((len(atoms), self.n_features))
        if not gradients:
            self._run(kernels.FEATURES, offsets, vectors, pair_species, centre_species,
                      features=features)
            return LocalEnvironments(features=features, **environments)
        pair_gradients = np.empty((len(centers), 3, self.n_features))
        self._run(kernels.FEATURES_AND_GRADIENTS, offsets, vectors, pair_species, centre_species,
                  features=features, pair_gradients=pair_gradients)
        return LocalEnvironments(features=features, pair_envs=centers, pair_neighbors=neighbors,
                                 pair_vectors=vectors, pair_gradients=pair_gradients,
                                 **environments)

    def forward(self, atoms, neighbor_list, reuse=None):
        """Features (as ``compute`` without gradients) and a ``SOAPForwardState`` that keeps
        the kernel inputs, every centre's expansion coefficients and every pair's basis
        values, so that ``backward_from`` forms the vector-Jacobian product without
        evaluating the expansion again (the MD path: features, then ∂E/∂q from the kernel,
        then forces). ``reuse``: an earlier state whose buffers are refilled when large
        enough (MD calls one after the other: no fresh pages to fault in)."""
        inputs = self._kernel_inputs(atoms, neighbor_list)
        centers, neighbors, vectors, offsets, pair_species, centre_species = inputs
        numbers = np.asarray(atoms.numbers, dtype=np.int64)
        features = np.empty((len(atoms), self.n_features))
        state = self._forward_state(atoms, inputs, reuse)
        self._run(kernels.FEATURES, offsets, vectors, pair_species, centre_species,
                  features=features, kept=state)
        environments = LocalEnvironments(features=features,
                                         center_atoms=np.arange(len(atoms), dtype=np.int64),
                                         channels=numbers.copy())
        return environments, state

    def _forward_state(self, atoms, inputs, reuse):
        """A SOAPForwardState for ``inputs`` with buffers of ``reuse`` where they are large
        enough, else new ones with 20 % room for the pair count to grow."""
        n_pairs = len(inputs[0])
        n_lm = (self.l_max + 1) ** 2
        shape = (len(atoms), len(self.species), n_lm, self.n_max)
        sizes = (n_pairs * (self.l_max + 1) * self.n_max, n_pairs * n_lm)
        if (isinstance(reuse, SOAPForwardState) and reuse.coefficients.shape[1:] == shape[1:]
                and reuse.coefficients.shape[0] >= shape[0]
                and reuse.exps.size >= sizes[0] and reuse.harmonics.size >= sizes[1]):
            return SOAPForwardState(atoms, inputs, reuse.coefficients, reuse.exps,
                                    reuse.harmonics)
        room = 1.2
        return SOAPForwardState(atoms, inputs, np.empty(shape),
                                np.empty(int(room * sizes[0]) + 1),
                                np.empty(int(room * sizes[1]) + 1))

    def backward_from(self, state, d_energy_d_features):
        """``backward`` for the structure and neighbour list that ``forward`` saw (``state``
        is what it returned), reusing its expansion coefficients; same results."""
        centers, neighbors, vectors, offsets, pair_species, centre_species = state.inputs
        d_energy_d_features = self._checked_upstream(state.atoms, len(offsets) - 1,
                                                     d_energy_d_features)
        d_energy_d_vectors = np.empty((len(centers), 3))
        self._run(kernels.BACKWARD, offsets, vectors, pair_species, centre_species,
                  d_energy_d_features=d_energy_d_features,
                  d_energy_d_vectors=d_energy_d_vectors, kept=state)
        return centers, neighbors, vectors, d_energy_d_vectors

    def _checked_upstream(self, atoms, n_atoms, d_energy_d_features):
        d_energy_d_features = np.ascontiguousarray(d_energy_d_features, dtype=np.float64)
        expected = (n_atoms, self.n_features)
        if d_energy_d_features.shape != expected:
            raise ValueError(f"SOAP backward on {atoms.get_chemical_formula()}: "
                             f"d_energy_d_features has shape {d_energy_d_features.shape}, "
                             f"expected {expected}")
        return d_energy_d_features

    def backward(self, atoms, neighbor_list, d_energy_d_features):
        """Vector-Jacobian product for forces: given ∂E/∂q (n_atoms, n_features) in eV per
        feature unit, return (pair_envs, pair_neighbors, pair_vectors,
        d_energy_d_pair_vectors) with d_energy_d_pair_vectors[p] = sum_f ∂E/∂q[e, f]
        ∂q[e, f]/∂r_image (n_pairs, 3) in eV/Å, without forming the pair gradients.
        With g_p = d_energy_d_pair_vectors[p] (D_p = r_image - r_centre), the force on atom k
        is F_k = -sum_{p: neighbour k} g_p + sum_{p: centre k} g_p, and the derivative with
        respect to a homogeneous strain is dE/dε_ab = sum_p g_pa D_pb (eV).
        """
        centers, neighbors, vectors, offsets, pair_species, centre_species = \
            self._kernel_inputs(atoms, neighbor_list)
        d_energy_d_features = self._checked_upstream(atoms, len(atoms),
                                                     d_energy_d_features)
        d_energy_d_vectors = np.empty((len(centers), 3))
        self._run(kernels.BACKWARD, offsets, vectors, pair_species, centre_species,
                  d_energy_d_features=d_energy_d_features,
                  d_energy_d_vectors=d_energy_d_vectors)
        return centers, neighbors, vectors, d_energy_d_vectors

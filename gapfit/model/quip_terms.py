"""Fit terms with QUIP's descriptors and kernels: models that gap_fit, quippy and LAMMPS share.

``QuipSOAP``, ``QuipDistance2b`` and ``QuipAngle3b`` take gap_fit's parameter names and
defaults (``cutoff``, ``cutoff_transition_width``, ``n_max``, ``atom_sigma``, ``zeta``,
``delta``, ``f0`` as ``signal_mean``, ``theta_uniform``, ``covariance_type`` dot_product /
ard_se / pp, ``n_sparse``, ``sparse_method`` uniform / random / cur_points). Like gap_fit
they make one sparse GP per species combination (one kernel channel each; ``Z``/``Z1``/``Z2``
None = every combination of the training species, 0 = QUIP's wild card: one GP for all),
and a local energy is gap_fit's

    e(q) = f(q) Σ_m c_m α_m (δ² k(q, s_m) + μ²)          (μ² for ard_se and pp only)

with f the descriptor's covariance cutoff (1 for SOAP), c_m that of the sparse point's own
environment. A model of these terms can be written as a gap_fit XML file
(``GAP.save_xml``) and gap_fit files are read into these terms (``gapfit.load``).

Internally, ard_se and pp see features divided by θ (isotropic, unit length scale); the raw
sparse points and the c_m are kept (``sparse_raw_``, ``sparse_cutoffs_``) for the XML file.
distance_2b with ard_se and μ = 0 is exactly gapfit's ``CutoffSquaredExponential`` on the
distance (f(r) f(x_m) exp(-(r - x_m)²/2θ²), c_m = f(x_m)) and uses it, with its fast MD path.
"""
import itertools

import numpy as np

from ..descriptors.quip_angle import QuipAngle3bDescriptor
from ..descriptors.quip_channels import QuipChannels, pair_channel, triplet_channel
from ..descriptors.numerics import cosine_cutoff
from ..descriptors.quip_pair import QuipDistance2bDescriptor
from ..descriptors.quip_soap import QuipSOAPDescriptor
from ..gp.kernels import CutoffSquaredExponential
from ..gp.quip_kernels import QuipARDSE, QuipDotProduct, QuipPP
from .terms import Term

#: gap_fit's sparse_method names and gapfit's equivalents
SPARSE_METHODS = {"cur_points": "cur", "cur": "cur", "random": "random", "uniform": "uniform",
                  "fps": "fps"}
COVARIANCE_TYPES = ("dot_product", "ard_se", "pp")


def _species_option(value):
    """None (every combination), 0 (QUIP's wild card) or an atomic number."""
    if value is None:
        return None
    if not isinstance(value, str) and int(value) == 0:
        return 0
    from ..descriptors.base import atomic_number
    return atomic_number(value, "QUIP term species")


class QuipTerm(Term):
    """What the three QUIP terms share: channels per species combination, QUIP kernels,
    per-sparse-point cutoffs c_m, the signal mean μ and the XML coordinate they write."""

    quip_name = None

    # ----------------------------------------------------------------- settings
    @property
    def selection_method(self):
        """gapfit's name of ``sparse_method`` (``gapfit.gp.sparse``)."""
        try:
            return SPARSE_METHODS[self.sparse_method]
        except KeyError:
            raise ValueError(f"{type(self).__name__}: sparse_method {self.sparse_method!r} is "
                             f"not supported; choose one of {sorted(SPARSE_METHODS)}") from None

    def _check_kernel_settings(self):
        name = type(self).__name__
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"{name}: covariance_type {self.covariance_type!r} is not "
                             f"supported; choose one of {COVARIANCE_TYPES}")
        if self.covariance_type == "dot_product" and not float(self.zeta) > 0:
            raise ValueError(f"{name}: zeta must be > 0, got {self.zeta}")
        if not float(self.delta) > 0:
            raise ValueError(f"{name}: delta must be > 0 eV, got {self.delta}")

    def length_scales(self, n_features):
        """θ per feature (descriptor units) of ard_se and pp: ``theta`` if given, else
        ``theta_uniform`` in every dimension."""
        theta = (np.full(n_features, float(self.theta_uniform)) if self.theta is None
                 else np.asarray(self.theta, dtype=np.float64).reshape(-1))
        if theta.shape != (n_features,) or not np.all(theta > 0):
            raise ValueError(f"{type(self).__name__}: theta must be {n_features} positive "
                             f"length scales, got {self.theta if self.theta is not None else self.theta_uniform}")
        return theta

    def kernel_offset(self):
        """μ² (eV²) added to every δ²-scaled kernel value (ard_se and pp; 0 for dot_product)."""
        return float(self.signal_mean) ** 2 if self.covariance_type in ("ard_se", "pp") else 0.0

    # -------------------------------------------------------------------- build
    def build(self, species):
        self._check_kernel_settings()
        self.species_ = sorted(int(z) for z in species)
        self.delta_ = float(self.delta)
        parts = self._parts(self.species_)
        n_features = parts[0][1].n_features
        self.folded_ = self._folds_cutoff()
        if self.covariance_type == "dot_product":
            self.feature_scale_ = None
            self.kernel_ = QuipDotProduct(float(self.zeta))
        elif self.folded_:
            self.feature_scale_ = None
            descriptor = parts[0][1]
            self.kernel_ = CutoffSquaredExponential(float(self.length_scales(1)[0]),
                                                    descriptor.cutoff,
                                                    descriptor.cutoff_transition_width)
        else:
            self.feature_scale_ = 1.0 / self.length_scales(n_features)
            kernel = QuipARDSE if self.covariance_type == "ard_se" else QuipPP
            self.kernel_ = (kernel(np.ones(n_features)) if kernel is QuipARDSE
                            else kernel(np.ones(n_features), n_features))
        self.descriptor_ = QuipChannels(parts, scale=self.feature_scale_,
                                        weighted=not self.folded_)
        self.channel_descriptors_ = {label: descriptor for label, descriptor in parts}
        return self

    def _folds_cutoff(self):
        return False

    @staticmethod
    def _species_channels(species, options, channel, make):
        """[(channel label, descriptor)]: one GP per species combination, as gap_fit makes
        them. ``options`` are the term's species settings, the centre's first if any, then
        Z1 and Z2 of an unordered neighbour pair; None is every training species, and a 0
        in any makes one wild-card channel (label 0) for all. ``channel(*combination)``
        labels and ``make(*combination)`` builds the descriptor of a combination (None for
        an unrestricted species)."""
        options = [_species_option(value) for value in options]
        if 0 in options:
            return [(0, make(*(z or None for z in options)))]
        *centres, firsts, seconds = [species if z is None else [z] for z in options]
        pairs = sorted({(min(a, b), max(a, b)) for a in firsts for b in seconds})
        return [(channel(*centre, a, b), make(*centre, a, b))
                for centre in itertools.product(*centres) for a, b in pairs]

    def _parts(self, species):
        raise NotImplementedError

    # ------------------------------------------------------------ sparse points
    def set_sparse(self, features, channels):
        """Store sparse points (internal space) and their raw values and cutoffs c_m."""
        super().set_sparse(features, channels)
        raw = self.sparse_points_.copy()
        if self.feature_scale_ is not None:
            raw = raw / self.feature_scale_
        self.sparse_raw_ = raw
        self.sparse_cutoffs_ = self.point_cutoffs(raw)
        return self

    def point_cutoffs(self, raw_points):
        """c_m: the covariance cutoff of each sparse point's own environment (1 for SOAP)."""
        return np.ones(len(raw_points))

    def state_arrays(self):
        return {"sparse_raw": self.sparse_raw_, "sparse_cutoffs": self.sparse_cutoffs_}

    def restore_state(self, arrays):
        """Raw sparse points and c_m as stored (a model file or a gap_fit XML file)."""
        self.sparse_raw_ = np.asarray(arrays["sparse_raw"], dtype=np.float64)
        self.sparse_cutoffs_ = np.asarray(arrays["sparse_cutoffs"], dtype=np.float64)
        return self

    def sparse_weights(self):
        """Per-sparse-point factors c_m that multiply the kernel (None: the kernel holds them)."""
        return None if self.folded_ else self.sparse_cutoffs_

    # ------------------------------------------------------------------ kernels
    def sparse_covariance(self):
        """c_m c_m' (δ² K_MM + μ²), block diagonal over channels (eV²)."""
        size = self.n_sparse_points
        covariance = np.zeros((size, size))
        weights = self.sparse_weights()
        offset = self.kernel_offset()
        for start, stop in self.channel_columns_.values():
            block = self.delta_ ** 2 * self.kernel_.sparse_covariance(
                self.sparse_points_[start:stop]) + offset
            if weights is not None:
                c = weights[start:stop]
                block = block * np.outer(c, c)
            covariance[start:stop, start:stop] = block
        return covariance

    def kernel_blocks(self, environments):
        """As ``Term.kernel_blocks``, with K = c_m (δ² k + μ²) and A, B = c_m δ² (A, B).
        The covariance cutoff f_e of weighted environments is applied by the caller."""
        weights = self.sparse_weights()
        offset = self.kernel_offset()
        for envs, start, stop, values, factor_sparse, factor_self in super().kernel_blocks(
                environments):
            if offset:
                values = values + offset
            if weights is not None:
                c = weights[start:stop][None, :]
                values, factor_sparse, factor_self = (values * c, factor_sparse * c,
                                                      factor_self * c)
            yield envs, start, stop, values, factor_sparse, factor_self

    def posterior_unsupported(self):
        """Why posterior variances are not available for this term, or None."""
        if self.quip_name == "soap" or self.folded_:
            return None  # no covariance cutoff weights, kernels with a prior covariance
        return (f"{type(self).__name__} with covariance_type={self.covariance_type}: "
                "posterior variances of QUIP 2-/3-body terms weighted by covariance cutoffs "
                "are not implemented")

    # ----------------------------------------------------------------- XML side
    def coordinate_descriptor(self, channel):
        """The QUIP descriptor string of one channel (one ``<gpCoordinates>``)."""
        descriptor = self.channel_descriptors_.get(channel)
        if descriptor is not None:
            return descriptor.quip_string()
        return self.channel_descriptors_[None].quip_string(z=channel)

    def coordinate_kernel(self):
        """(covariance_type, zeta or None, θ (d,) or None) as the XML stores them."""
        if self.covariance_type == "dot_product":
            return "dot_product", float(self.zeta), None
        n_features = self.descriptor_.n_features
        return self.covariance_type, None, self.length_scales(n_features)


class QuipSOAP(QuipTerm):
    """QUIP's ``soap`` with the ``dot_product`` kernel (q·s)^ζ, as gap_fit fits it.

    Parameters (gap_fit's names and defaults where gap_fit has one)
    ----------
    cutoff : Å. cutoff_transition_width : Å (0.5). n_max, l_max. atom_sigma : Å.
    central_weight (1.0), covariance_sigma0 (0.0), normalise (True),
    central_reference_all_species (False), basis_error_exponent (10).
    species_Z : None (the training species, ascending, as gap_fit adds them) or a list.
    Z : None (one GP per centre species, as gap_fit), 0 (QUIP's wild card: every atom a
        centre of one GP) or one atomic number.
    zeta : kernel power. delta : eV. signal_mean : gap_fit's f0 (no effect on dot_product).
    n_sparse : split over centre species by their counts (gap_fit: n_sparse each). sparse_method : "cur_points" (or gapfit's "cur"),
        "random", "fps".
    Defaults are the ANCHORS recipe (/work/shared/ANCHORS.md): n_max=8, l_max=6, cutoff=5,
    cutoff_transition_width=1, atom_sigma=0.5, zeta=4, delta=0.2, 1000 CUR points.
    """

    quip_name = "soap"

    def __init__(self, cutoff=5.0, cutoff_transition_width=1.0, n_max=8, l_max=6,
                 atom_sigma=0.5, central_weight=1.0, covariance_sigma0=0.0, normalise=True,
                 central_reference_all_species=False, basis_error_exponent=10.0,
                 species_Z=None, Z=None, zeta=4, delta=0.2, signal_mean=0.0,
                 covariance_type="dot_product", n_sparse=1000, sparse_method="cur_points"):
        self._keep_settings(locals())

    def _check_kernel_settings(self):
        if self.covariance_type != "dot_product":
            raise ValueError(f"QuipSOAP: covariance_type {self.covariance_type!r} is not "
                             "supported; SOAP uses dot_product")
        super()._check_kernel_settings()

    def _parts(self, species):
        density = list(species) if self.species_Z is None else list(self.species_Z)
        centre = _species_option(self.Z)
        descriptor = QuipSOAPDescriptor(
            density, cutoff=self.cutoff, n_max=self.n_max, l_max=self.l_max,
            atom_sigma=self.atom_sigma, cutoff_transition_width=self.cutoff_transition_width,
            central_weight=self.central_weight, covariance_sigma0=self.covariance_sigma0,
            normalise=self.normalise, central_reference_all_species=
            self.central_reference_all_species, basis_error_exponent=self.basis_error_exponent,
            Z=list(species) if centre is None else (None if centre == 0 else centre))
        # channels: the centre's atomic number (0 for the wild card)
        return [(None, descriptor)]

    def coordinate_descriptor(self, channel):
        return self.channel_descriptors_[None].quip_string(z=channel if channel else None)


class QuipDistance2b(QuipTerm):
    """QUIP's ``distance_2b`` with ard_se (default), pp or dot_product, as gap_fit fits it.

    Parameters
    ----------
    cutoff : Å. cutoff_transition_width : Å (0.5, gap_fit's default).
    Z1, Z2 : None (one GP per unordered species pair of the training set, as gap_fit),
        0 (wild card) or atomic numbers.
    covariance_type : "ard_se", "pp" or "dot_product". theta_uniform : Å, length scale;
        theta : explicit length scale list (overrides theta_uniform). zeta : dot_product power.
    delta : eV. signal_mean : μ, eV (gap_fit's f0). n_sparse : split over species pairs by their counts (gap_fit: n_sparse each).
    sparse_method : "uniform" (default), "random", "cur_points", "fps".
    """

    quip_name = "distance_2b"

    def __init__(self, cutoff=5.0, cutoff_transition_width=0.5, Z1=None, Z2=None,
                 covariance_type="ard_se", theta_uniform=1.0, theta=None, zeta=2, delta=1.0,
                 signal_mean=0.0, n_sparse=20, sparse_method="uniform"):
        self._keep_settings(locals())

    def _folds_cutoff(self):
        return (self.covariance_type == "ard_se" and float(self.signal_mean) == 0.0
                and float(self.cutoff_transition_width) > 0.0)

    def _parts(self, species):
        return self._species_channels(
            species, (self.Z1, self.Z2), pair_channel,
            lambda a, b: QuipDistance2bDescriptor(self.cutoff, self.cutoff_transition_width,
                                                  Z1=a, Z2=b))

    def point_cutoffs(self, raw_points):
        value, _ = cosine_cutoff(raw_points[:, 0], float(self.cutoff),
                                 float(self.cutoff_transition_width))
        return value


class QuipAngle3b(QuipTerm):
    """QUIP's ``angle_3b`` (features r_ij + r_ik, (r_ij - r_ik)², r_jk) with ard_se or pp.

    Parameters
    ----------
    cutoff : Å. cutoff_transition_width : Å (0.5).
    Z : centre species; Z1, Z2 : neighbour species; None (every combination, as gap_fit),
        0 (wild card) or atomic numbers.
    covariance_type : "ard_se" (default), "pp" or "dot_product". theta_uniform : length scale
        in each of the three dimensions (Å, Å², Å); theta : explicit list of three.
    delta : eV. signal_mean : μ, eV. n_sparse : split over combinations by their counts (gap_fit: each). sparse_method : "random"
        (default), "cur_points", "fps".
    """

    quip_name = "angle_3b"

    def __init__(self, cutoff=3.0, cutoff_transition_width=0.5, Z=None, Z1=None, Z2=None,
                 covariance_type="ard_se", theta_uniform=1.0, theta=None, zeta=2, delta=0.1,
                 signal_mean=0.0, n_sparse=100, sparse_method="random"):
        self._keep_settings(locals())

    def _parts(self, species):
        return self._species_channels(
            species, (self.Z, self.Z1, self.Z2), triplet_channel,
            lambda c, a, b: QuipAngle3bDescriptor(self.cutoff, self.cutoff_transition_width,
                                                  Z=c, Z1=a, Z2=b))

    def point_cutoffs(self, raw_points):
        """f(r_ij) f(r_ik) from the features: r_ij, r_ik = (q₀ ± √q₁)/2 (f f is symmetric)."""
        half_sum = 0.5 * raw_points[:, 0]
        half_difference = 0.5 * np.sqrt(np.maximum(raw_points[:, 1], 0.0))
        cutoff, width = float(self.cutoff), float(self.cutoff_transition_width)
        f_a, _ = cosine_cutoff(half_sum + half_difference, cutoff, width)
        f_b, _ = cosine_cutoff(half_sum - half_difference, cutoff, width)
        return f_a * f_b

"""The terms a GAP sums: a descriptor, a kernel on it, a signal scale δ and a sparse set.

``SOAP``, ``TwoBody`` and ``ACSF`` hold settings only (scikit-learn style);
``GAP.fit`` clones them, calls ``build`` with the training species and then
stores the chosen sparse points on the clone (attributes ending in ``_``).
"""
import inspect

import numpy as np
from sklearn.base import BaseEstimator

from ..gp.kernels import CutoffSquaredExponential, NormalizedDotProduct, SquaredExponential


# every term class by name (subclasses register themselves), for model files and settings
TERM_CLASSES = {}


class Term(BaseEstimator):
    """Shared behaviour: building the descriptor and kernel, holding sparse points."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.endswith("Term"):  # a concrete term, not a shared base
            TERM_CLASSES[cls.__name__] = cls

    def _keep_settings(self, settings):
        """Store every ``__init__`` argument unchanged under its own name and nothing else
        (scikit-learn's rule, so that ``get_params``, ``clone`` and grid searches work);
        a term's ``__init__`` is ``self._keep_settings(locals())``."""
        for name in inspect.signature(type(self).__init__).parameters:
            if name != "self":
                setattr(self, name, settings[name])

    def build(self, species):
        """Create ``descriptor_`` and ``kernel_`` for these atomic numbers; returns self.

        ``delta_`` (eV), the fitted signal scale, starts at the ``delta`` setting; evidence
        optimisation changes ``delta_`` only, never the setting."""
        self.species_ = sorted(int(z) for z in species)
        self.delta_ = float(self.delta)
        self.descriptor_ = self._make_descriptor(self.species_)
        self.kernel_ = self._make_kernel()
        return self

    @property
    def neighbor_cutoff(self):
        """Radius (Å) of the neighbour list the descriptor needs."""
        return self.descriptor_.cutoff

    def adapt_to_moments(self, count, mean, variance):
        """Learn what the term needs from all training features before sparse points are
        chosen, given their count, mean and variance (ddof=0) per feature (a fit reduces
        these over chunks). Returns whether the descriptor changed, so the features must be
        computed again. Most terms need nothing."""
        return False

    @property
    def selection_method(self):
        """The ``gapfit.gp.sparse`` method that chooses this term's sparse points."""
        return self.sparse_method

    def sparse_weights(self):
        """Per-sparse-point factors that multiply the kernel, or None (all 1)."""
        return None

    def kernel_offset(self):
        """A constant (eV²) added to every δ²-scaled kernel value; 0 for gapfit's kernels."""
        return 0.0

    def state_arrays(self):
        """Fitted arrays besides the sparse points that a model file must keep."""
        return {}

    def restore_state(self, arrays):
        """Set what ``state_arrays`` returned (after ``build``); returns self."""
        return self

    def selection_features(self, features):
        """Features as the kernel compares them (used to choose sparse points)."""
        return self.kernel_.prepare_sparse(features)

    def set_sparse(self, features, channels):
        """Store sparse points (features as the kernel stores them), grouped by channel."""
        order = np.argsort(channels, kind="stable")
        self.sparse_points_ = np.ascontiguousarray(features[order], dtype=np.float64)
        self.sparse_channels_ = np.asarray(channels, dtype=np.int64)[order]
        labels, starts = np.unique(self.sparse_channels_, return_index=True)
        stops = np.append(starts[1:], len(order))
        self.channel_columns_ = {int(c): (int(a), int(b)) for c, a, b in zip(labels, starts, stops)}
        return self

    @property
    def n_sparse_points(self):
        return len(self.sparse_points_)

    def sparse_covariance(self):
        """δ² K_MM, block diagonal over channels (environments of different channels never correlate)."""
        size = self.n_sparse_points
        covariance = np.zeros((size, size))
        for start, stop in self.channel_columns_.values():
            block = self.sparse_points_[start:stop]
            covariance[start:stop, start:stop] = self.kernel_.sparse_covariance(block)
        return self.delta_ ** 2 * covariance

    def kernel_blocks(self, environments):
        """Yield (env_indices, start, stop, K, A, B) per channel present in both.

        K, A, B are δ²-scaled values and gradient factors (``gapfit.gp.kernels``)
        between the channel's environments and its sparse points
        ``sparse_points_[start:stop]``.
        """
        scale = self.delta_ ** 2
        for channel, (start, stop) in self.channel_columns_.items():
            envs = np.flatnonzero(environments.channels == channel)
            if len(envs) == 0:
                continue
            values, factor_sparse, factor_self = self.kernel_.values_and_factors(
                environments.features[envs], self.sparse_points_[start:stop])
            yield envs, start, stop, scale * values, scale * factor_sparse, scale * factor_self


class SOAP(Term):
    """Smooth overlap of atomic positions with the normalised dot-product kernel to the power zeta.

    Parameters
    ----------
    r_cut : float, Å: with "poly" and "cosine" atoms farther than this from a centre do not
        enter its environment (with a dscribe weighting dict, dscribe's r_cut).
    n_max, l_max : radial and angular basis sizes.
    sigma : float, Å, width of the atomic Gaussians.
    weighting : how much each neighbour's Gaussian counts, by its distance r from the centre:
        "poly" (default; dscribe's polynomial weight with r0 = r_cut, c = 1, m = 1):
        1 - 3x² + 2x³, x = r / r_cut, so neighbours count less the farther they are (0.43 at
        2.7 Å when r_cut is 5 Å);
        "cosine" (GAP's cutoff function, ``cutoff_transition_width`` in gap_fit): 1 up to
        r_cut - transition_width, then a half cosine down to 0 at r_cut;
        None (no weighting) or a dscribe weighting dict (its own r0 sets the reach).
    transition_width : float, Å, width of the cosine taper ("cosine" only).
    basis_r_cut : float, Å, reach of the radial GTO basis; None for r_cut + 5 sigma with
        "cosine" (the Gaussian of an atom at r_cut has fallen to 4e-6 of its peak there, so
        it is expanded whole; GAP's basis also reaches beyond its cutoff) and r_cut otherwise
        (dscribe's basis: the features then equal dscribe's). On mlearn Mo_train[::5] the log
        marginal likelihood rises with the reach and levels off: -36,900 at 5 Å, -31,800 at
        7 Å, -30,500 at 7.5 Å, -30,000 at 8 Å.
    zeta : int, kernel power.
    delta : float, eV, signal scale: the prior standard deviation of an atom's SOAP energy.
        0.5 eV (larger than the 0.2 of many GAP recipes): the log marginal likelihood of the
        mlearn Mo fit rises steadily with delta up to 2 eV, and 0.5 lowers test force errors
        on Mo and Si alike without loosening energies.
    n_sparse : number of sparse environments (split over centre species).
    sparse_method : "cur", "fps" or "random".

    Which weighting suits which data (defaults otherwise; log marginal likelihood from
    ``gapfit.hyperparameters.log_marginal_likelihood``, test MAEs): on the mlearn DFT sets
    "cosine" is far more probable (Mo -101,100 against -117,900; Si +1,200 against -26,300)
    and fits Mo better (energy 1.69 against 2.41 meV/atom, forces 93.3 against 97.0 meV/Å,
    stress 0.192 against 0.199 GPa) and Si's forces (66.4 against 72.4 meV/Å) but not its
    energies (2.96 against 2.71 meV/atom) or stresses (0.116 against 0.103 GPa); on the
    short-ranged EMT alloys in ``data/`` "poly" is more probable and fits better (Cu–Ag–Au
    energy 0.08 of the know-nothing error against 0.26). "poly" stays the default; compare
    both by their log marginal likelihood on your data. Neighbour lists, and so the cost,
    are the same for both.
    """

    def __init__(self, r_cut=5.0, n_max=8, l_max=6, sigma=0.5, weighting="poly",
                 transition_width=1.0, basis_r_cut=None, zeta=4, delta=0.5, n_sparse=1000,
                 sparse_method="cur"):
        self._keep_settings(locals())

    def dscribe_weighting(self):
        """The weighting as a weighting dict of ``SOAPDescriptor`` (dscribe's spelling, plus
        gapfit's "cosine" function: weight c inside r0 - d, a half cosine to 0 at r0)."""
        if self.weighting == "poly":
            return {"function": "poly", "r0": float(self.r_cut), "c": 1.0, "m": 1.0}
        if self.weighting == "cosine":
            return {"function": "cosine", "r0": float(self.r_cut), "c": 1.0,
                    "d": float(self.transition_width)}
        if isinstance(self.weighting, str):
            raise ValueError(f"SOAP: unknown weighting {self.weighting!r}; choose \"poly\", "
                             f"\"cosine\", None or a dscribe weighting dict")
        return self.weighting

    def radial_basis_cutoff(self):
        """Reach of the radial basis in Å (see ``basis_r_cut``)."""
        if self.basis_r_cut is not None:
            return float(self.basis_r_cut)
        if self.weighting == "cosine":
            return float(self.r_cut) + 5.0 * float(self.sigma)
        return float(self.r_cut)

    def _make_descriptor(self, species):
        from ..descriptors.soap import SOAPDescriptor
        return SOAPDescriptor(species, r_cut=self.radial_basis_cutoff(), n_max=self.n_max,
                              l_max=self.l_max, sigma=self.sigma,
                              weighting=self.dscribe_weighting())

    def _make_kernel(self):
        return NormalizedDotProduct(zeta=self.zeta)


class TwoBody(Term):
    """Pair term: squared-exponential kernel on pair distances with a cosine cutoff.

    Parameters
    ----------
    cutoff : float, Å. transition_width : float, Å, width of the cosine taper.
    theta : float, Å, length scale. delta : float, eV, signal scale.
    n_sparse : sparse distances per species pair, spread uniformly.
    """

    def __init__(self, cutoff=5.0, transition_width=1.0, theta=1.0, delta=1.0, n_sparse=20,
                 sparse_method="uniform"):
        self._keep_settings(locals())

    def _make_descriptor(self, species):
        from ..descriptors.twobody import TwoBodyDescriptor
        return TwoBodyDescriptor(species, self.cutoff)

    def _make_kernel(self):
        return CutoffSquaredExponential(self.theta, self.cutoff, self.transition_width)


class ACSF(Term):
    """Behler–Parrinello atom-centred symmetry functions with a squared-exponential kernel.

    Features are standardised with their spread over the training environments (learnt in
    ``fit``, stored in the model), so G2 counts and small G4/G5 values weigh alike.

    Parameters
    ----------
    r_cut : float, Å.
    g2_params : (n, 2) rows (eta Å^-2, R_s Å); None for a grid derived from r_cut.
    g4_params, g5_params : (n, 3) rows (eta Å^-2, zeta, lambda = ±1); None for defaults.
    theta : float, kernel length scale in units of √(number of features) of
        standardised features. The default 2.0 was the best of 1, 2, 3, 4 on the EMT
        Cu–Au and Cu–Ag–Au sets and better than 1 on EMT Cu (test force MAE 2.1 against
        5.4 meV/Å, 500 sparse points); on mlearn Mo 1 and 2 give the same force MAE.
    delta : float, eV, signal scale.
    n_sparse : sparse environments (split over centre species). sparse_method : "cur",
        "fps" or "random".
    """

    def __init__(self, r_cut=5.0, g2_params=None, g4_params=None, g5_params=None, theta=2.0,
                 delta=0.2, n_sparse=1000, sparse_method="cur"):
        self._keep_settings(locals())

    def _make_descriptor(self, species):
        from ..descriptors.acsf import ACSFDescriptor
        return ACSFDescriptor(species, r_cut=self.r_cut, g2_params=self.g2_params,
                              g4_params=self.g4_params, g5_params=self.g5_params)

    def _make_kernel(self):
        return SquaredExponential(self.theta * np.sqrt(self.descriptor_.n_features))

    def adapt_to_moments(self, count, mean, variance):
        """Divide every feature by its standard deviation over the training environments
        (features that never vary keep scale 1); returns True."""
        spread = np.sqrt(np.maximum(np.asarray(variance, dtype=np.float64), 0.0))
        scale = np.where(spread > 1e-12 * max(spread.max(initial=0.0), 1e-300),
                         1.0 / np.where(spread > 0, spread, 1.0), 1.0)
        self.restore_state({"feature_scale": scale})
        return True

    def state_arrays(self):
        return {"feature_scale": self.feature_scale_}

    def restore_state(self, arrays):
        from ..descriptors.base import ScaledDescriptor
        self.feature_scale_ = np.asarray(arrays["feature_scale"], dtype=np.float64)
        inner = getattr(self.descriptor_, "descriptor", self.descriptor_)
        self.descriptor_ = ScaledDescriptor(inner, self.feature_scale_)
        return self


def default_terms():
    """The default recipe: a 2-body term plus SOAP, as in common GAP fits."""
    return [TwoBody(), SOAP()]


def term_record(term):
    """{"class": name, "params": settings} of a term (JSON-ready)."""
    params = {name: (np.asarray(value).tolist() if isinstance(value, (np.ndarray, tuple)) else value)
              for name, value in term.get_params(deep=False).items()}
    return {"class": type(term).__name__, "params": params}


def term_class(name):
    """The term class called ``name`` (any subclass of Term, QUIP's included), or None."""
    return TERM_CLASSES.get(name)


def term_from_record(record):
    """The term of a ``term_record``; ValueError for an unknown class."""
    cls = term_class(record["class"])
    if cls is None:
        raise ValueError(f"unknown term class {record['class']!r} in model file")
    return cls(**record["params"])

"""The recipe chosen from the data: candidate term sets compared by k-fold cross-validation.

``GAP(recipe="search")`` (with no terms) fits whatever recipe the training data prefer.
Candidates are built from the data's own length scale (the median nearest-neighbour distance
d₁, so no table of per-element settings exists anywhere) and from the species present: a
2-body term over every species pair plus SOAP with species channels, differing in the
cutoff (multiples of d₁), SOAP's neighbour weighting and its number of sparse points.

The screen is a subset of the training configurations stratified by ``config_type``: every
configuration of a small group is kept (they decide the rare groups' errors, e.g. surfaces),
the large groups are thinned evenly. Each candidate is fitted k times, each time to all but
one fold of the screen (folds by configuration, every group spread over all folds), and
predicts the held-out fold: its cross-validated energy, force and stress MAEs, overall and per
config_type. The score is the mean over those kinds of the ratio of the candidate's CV MAE to
the first (reference) candidate's; a candidate is allowed if in no group its held-out
energy or force errors exceed the reference's on the same configurations by more than
``GROUP_LIMIT`` with a margin beyond the noise of the paired differences, and its MD cost
stays within ``MAX_MD_COST_RATIO`` of the reference's (unless ``prefer="accuracy"``). The allowed candidate
with the lowest score is fitted to all data. Only the training set enters; the log marginal
likelihood per row of the fold fits is reported beside the scores (it ranks energies unlike
the test error on mlearn Mo, so it does not choose).

The search has two stages: the structural candidates above, then the best of them with the
SOAP atom widths of ATOM_WIDTHS. Every term set is also scored with each sigma option of
SIGMA_OPTIONS (the virial sigma × 0.3) by re-solving its fold fits, which costs no refit;
the chosen option's factors multiply the model's sigmas in the final fit.

By default (``search_time="auto"``) the fold fits may cost SCREEN_BUDGET_FITS default fits'
work (``fit_work``, from atom counts: the same on every machine); candidates beyond it are
listed unscreened. On large data sets the screen is a small part of the training set and every
candidate fits in; on small ones the screen is the training set and fewer are screened.
"""
import logging
import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.base import clone

from ..evaluate.errors import parity_data
from ..structures.neighbors import build_neighbor_list
from ..uncertainty.hyperparameters import common_scale, structures_noise
from .quip_terms import QuipSOAP
from .terms import SOAP, TwoBody

logger = logging.getLogger(__name__)

# a chosen recipe may cost this many times the reference recipe's MD time per atom
MAX_MD_COST_RATIO = 1.5
# atoms the screen holds at most (the large config_type groups are thinned to fit)
SCREEN_ATOMS = 2500
# a config_type group with at most this many configurations is kept whole in the screen
SMALL_GROUP = 12
# folds of the cross-validation (by configuration)
FOLDS = 3
# sparse points of the many-body term while screening, per 1,000 of the candidate's
SCREEN_SPARSE_FRACTION = 0.4
# a candidate whose CV energy or force MAE in any config_type group exceeds the reference's
# by more than this factor is not chosen
GROUP_LIMIT = 1.10
# ... and the paired excess over that limit is this many standard errors (``worse_groups``)
GUARD_STANDARD_ERRORS = 2.0
# sparse points of the candidates' SOAP term: on mlearn Mo 1,500 cost 1.08-1.28x the
# reference's MD time and 750 MB to fit, 2,500 2.2x and 1.3 GB (docs/recipe_research.md)
SEARCH_SPARSE = 1500
# SOAP cutoffs as multiples of the median nearest-neighbour distance, and their bounds (Å)
CUTOFF_MULTIPLES = (1.85, 2.05, 2.25)
CUTOFF_BOUNDS = (3.5, 7.0)
# SOAP atom widths (Å) screened on the best candidate of the first stage (0.5 Å, the SOAP
# default, is the first stage's own): 3-fold CV on mlearn preferred 0.35 to 0.5 on Mo (E 1.97
# against 2.27 meV/atom, F 88.7 against 92.3 meV/Å) and Si (E 2.40 against 2.69), at the
# same MD cost (same basis and neighbours; docs/recipe_research.md, recipe3)
ATOM_WIDTHS = (0.35, 0.3)
# sigma options scored on every candidate's fold fits by re-solving them (no refit,
# ``GAP.with_sigma_scales``): the model's own sigmas, and the virial sigma × 0.3, the CV
# stress optimum in every mlearn Mo run (CV S -5 to -11 %; recipe3)
SIGMA_OPTIONS = ({}, {"virial": 0.3})
# search_time="auto": the screening's fold fits may cost this many default fits (the fixed
# recipe fitted to the whole training set), estimated from atom counts by ``fit_work``; with
# the final fit (a 1,500-sparse recipe: about 1.7 default fits on mlearn Mo) the search then
# stays within the 6 default fits that issue 16 allows, on large and small data alike
SCREEN_BUDGET_FITS = 4.0
# fit work per atom of a many-body term ∝ DESCRIPTOR_WORK × (r_cut / 5 Å)³ + n_sparse / 1,000:
# the one parameter fitted to the reference candidate's 3 fold fits against a default fit
# (mlearn Mo, screen 2,500 of 10,087 atoms: 9.4 s against 26 s; Ti-Al, screen = all 1,830
# atoms: 24 s against 15 s; this model says 0.38 and 1.52 default fits, measured 0.36 and 1.6)
DESCRIPTOR_WORK = 1.5
PREFERENCES = ("speed", "accuracy")
KINDS = ("energy", "forces", "stress")
# display factors: meV/atom, meV/Å, GPa (from eV/atom, eV/Å, eV/Å³)
_DISPLAY = {"energy": 1e3, "forces": 1e3, "stress": 160.21766208}


@dataclass
class Candidate:
    """One screened recipe: its name, term settings ({"type": class name, parameter: value}),
    scores and costs.

    cv_mae : {"energy" meV/atom, "forces" meV/Å, "stress" GPa}, k-fold CV MAE on the screen.
    cv_groups : {config_type: [energy meV/atom, force meV/Å]} CV MAE per group.
    cv_configurations : {"energy", "forces": per screen configuration, its held-out |error|
        (meV/atom) and mean |force component error| (meV/Å); "groups": its config_type}.
    score : mean over the kinds of cv_mae / the reference's (lower is better; 1 = reference).
    allowed : passes the per-group guard and the MD cost bound.
    log_evidence_per_row : mean over the fold fits of the log marginal likelihood divided by
        the number of target rows (dimensionless; a diagnostic, not the choice).
    md_cost_ratio : estimated MD time per atom relative to the reference recipe.
    seconds : wall time of its k fold fits and predictions (s); candidates that differ only
        in ``scales`` share those fits, so each reports the same time.
    scales : {target kind: factor} applied to the model's sigmas (``SIGMA_OPTIONS``; {} for
        the sigmas as set), by re-solving the fold fits in CV and in the final fit.
    """

    name: str
    terms: list
    log_evidence_per_row: float = float("nan")
    md_cost_ratio: float = float("nan")
    seconds: float = float("nan")
    scales: dict = field(default_factory=dict)
    cv_mae: dict = field(default_factory=dict)
    cv_groups: dict = field(default_factory=dict)
    cv_configurations: dict = field(default_factory=dict)
    score: float = float("nan")
    allowed: bool = False
    reason: str = ""


@dataclass
class RecipeReport:
    """What the search did: the candidates with their scores, the choice, the screen and the
    time it took (s), and any warning it gave."""

    candidates: list
    chosen: str
    nearest_neighbour_distance: float
    screen_configurations: int
    seconds: float
    final_md_us_per_atom: float = float("nan")
    warnings: list = field(default_factory=list)
    folds: int = FOLDS

    def to_dict(self):
        return asdict(self)

    def chosen_scales(self):
        """The chosen candidate's sigma factors ({target kind: factor})."""
        return dict(next(c.scales for c in self.candidates if c.name == self.chosen))

    @classmethod
    def from_dict(cls, record):
        record = dict(record)
        record["candidates"] = [Candidate(**c) for c in record["candidates"]]
        return cls(**record)

    def format_table(self):
        """The candidates as lines of text for people."""
        lines = [f"recipe search: d1 = {self.nearest_neighbour_distance:.3f} Å, {self.folds}-fold"
                 f" CV on a screen of {self.screen_configurations} configurations,"
                 f" {self.seconds:.0f} s",
                 f"{'candidate':42s} {'CV E meV/at':>11s} {'F meV/Å':>8s} {'S GPa':>6s}"
                 f" {'score':>6s} {'logev/row':>9s} {'MD cost':>8s} {'fit s':>6s}"]
        for c in self.candidates:
            if not c.cv_mae:
                lines.append(f"{c.name:42s} not screened (budget)")
                continue
            mark = " <- chosen" if c.name == self.chosen else ""
            mae = [c.cv_mae.get(kind, float("nan")) for kind in KINDS]
            note = f" ({c.reason})" if c.reason and not mark else ""
            lines.append(f"{c.name:42s} {mae[0]:11.2f} {mae[1]:8.1f} {mae[2]:6.3f}"
                         f" {c.score:6.3f} {c.log_evidence_per_row:9.3f}"
                         f" {c.md_cost_ratio:7.2f}x {c.seconds:6.1f}{mark}{note}")
        if np.isfinite(self.final_md_us_per_atom):
            lines.append(f"chosen recipe: {self.final_md_us_per_atom:.0f} µs/atom per energy+forces"
                         "+stress call (this machine, this process)")
        lines += [f"note: {w}" for w in self.warnings]
        return "\n".join(lines)


def term_settings(term):
    """{"type": class name, parameter: value} of a term (JSON-ready)."""
    params = {k: (v.tolist() if isinstance(v, np.ndarray) else v)
              for k, v in term.get_params(deep=False).items()}
    return {"type": type(term).__name__, **params}


def nearest_neighbour_distance(structures, max_atoms=4000):
    """Median over atoms of the distance to the nearest neighbour (Å), from at most
    ``max_atoms`` atoms of evenly spaced configurations."""
    step = max(1, int(np.ceil(sum(len(a) for a in structures) / max_atoms)))
    nearest = []
    for atoms in structures[::step]:
        neighbors = build_neighbor_list(atoms, 6.0)
        if not neighbors.distances.size:
            continue
        shortest = np.full(len(atoms), np.inf)
        np.minimum.at(shortest, neighbors.centers, neighbors.distances)
        nearest.append(shortest[np.isfinite(shortest)])
    if not nearest:
        raise ValueError("recipe search: no configuration has two atoms within 6 Å; give terms")
    return float(np.median(np.concatenate(nearest)))


def _soap(r_cut, weighting, n_max=8, l_max=6, zeta=4, n_sparse=1000):
    return SOAP(r_cut=round(float(r_cut), 2), n_max=n_max, l_max=l_max, weighting=weighting,
                transition_width=1.0, zeta=zeta, delta=0.5, n_sparse=n_sparse)


def candidates(d1, prefer="speed"):
    """Candidate recipes (name, [terms]) for data whose median nearest-neighbour distance is
    d1 Å. The first is the reference recipe (gapfit's fixed default until 0.1); the others
    have SEARCH_SPARSE sparse points and SOAP cutoffs at CUTOFF_MULTIPLES of d1: poly
    weighting at the middle one, GAP's cosine taper at each."""
    low, high = CUTOFF_BOUNDS
    cutoffs = [round(float(np.clip(k * d1, low, high)), 2) for k in CUTOFF_MULTIPLES]
    middle = cutoffs[len(cutoffs) // 2]
    cutoffs = sorted(set(cutoffs))
    sparse = SEARCH_SPARSE
    found = [("reference 2b+soap poly 5.0", [TwoBody(), _soap(5.0, "poly")]),
             (f"2b+soap poly {middle:.2f} m{sparse}",
              [TwoBody(cutoff=middle), _soap(middle, "poly", n_sparse=sparse)])]
    for r_cut in cutoffs:
        found.append((f"2b+soap cosine {r_cut:.2f} m{sparse}",
                      [TwoBody(cutoff=r_cut), _soap(r_cut, "cosine", n_sparse=sparse)]))
    if prefer == "accuracy":
        for r_cut in cutoffs:
            found.append((f"2b+soap cosine {r_cut:.2f} n10 l8",
                          [TwoBody(cutoff=r_cut), _soap(r_cut, "cosine", n_max=10, l_max=8)]))
    return found


# the reference recipe's MD time per atom in parts (sum 1): a fixed part (neighbour list,
# 2-body term, bookkeeping), the SOAP expansion and power-spectrum gradient (∝ neighbours ×
# n_max² × (l_max+1)²) and the kernel with its gradient (∝ features × sparse points). Fitted
# to ``python experiments/md_cost.py Mo default cos+ns1500 cos+ns2500 cos+l8`` (128-atom cell,
# one thread, 2026-12-06, after the faster SOAP passes): 1,500 sparse points 1.23x the
# reference, 2,500 1.61x, l_max 8 1.36x; these parts give 1.22, 1.65 and 1.36.
MD_COST_PARTS = {"fixed": 0.21, "expansion": 0.36, "kernel": 0.43}
_REFERENCE_SOAP = {"r_cut": 5.0, "n_max": 8, "l_max": 6, "n_sparse": 1000}


def _many_body_terms(terms):
    """(term, cutoff in Å) of each SOAP or QuipSOAP term of ``terms``."""
    return [(term, term.r_cut if isinstance(term, SOAP) else term.cutoff)
            for term in terms if isinstance(term, (SOAP, QuipSOAP))]


def md_cost(terms):
    """MD time per atom of one energy+forces+stress call relative to the reference recipe
    (2-body + SOAP r_cut 5 Å, n_max 8, l_max 6, 1,000 sparse points) on the same data (the
    neighbour count grows as r_cut³), from MD_COST_PARTS.
    QuipSOAP is costed like SOAP (its wider basis makes it about 1.3x dearer than this says);
    each SOAP term beyond the first adds about 0.2 more than this says (its own passes over
    the neighbours: a short second SOAP term measured 1.40x against 1.18x estimated,
    docs/recipe_research.md, "Multi-scale SOAP"). The search's candidates have one."""
    def features(n_max, l_max):
        return n_max * (n_max + 1) // 2 * (l_max + 1)

    ref = _REFERENCE_SOAP
    total = MD_COST_PARTS["fixed"]
    for term, r_cut in _many_body_terms(terms):
        neighbours = (r_cut / ref["r_cut"]) ** 3
        total += (MD_COST_PARTS["expansion"] * neighbours * (term.n_max / ref["n_max"]) ** 2
                  * ((term.l_max + 1) / (ref["l_max"] + 1)) ** 2)
        total += (MD_COST_PARTS["kernel"] * features(term.n_max, term.l_max)
                  / features(ref["n_max"], ref["l_max"]) * term.n_sparse / ref["n_sparse"])
    return total


def fit_work(terms, n_atoms):
    """Relative work (arbitrary units) of fitting ``terms`` to ``n_atoms`` atoms: per atom
    and many-body term DESCRIPTOR_WORK × (r_cut / 5 Å)³ for its descriptor and its gradients
    plus n_sparse / 1,000 for its covariance rows. Deterministic, so a search bounded by it
    chooses the same recipe on any machine."""
    ref = _REFERENCE_SOAP
    per_atom = sum(DESCRIPTOR_WORK * (r_cut / ref["r_cut"]) ** 3 + term.n_sparse / ref["n_sparse"]
                   for term, r_cut in _many_body_terms(terms))
    return per_atom * n_atoms


def _group_of(atoms):
    return str(atoms.info.get("config_type", "default"))


def screen(structures, random_state=None, max_atoms=SCREEN_ATOMS):
    """The screening subset, stratified by config_type: groups of at most SMALL_GROUP
    configurations whole, the others thinned evenly (same fraction of atoms each, at least
    2 FOLDS configurations) so that the subset holds about ``max_atoms`` atoms. Deterministic:
    configurations are taken at evenly spaced positions of each group (``random_state`` is
    not needed)."""
    groups = {}
    for index, atoms in enumerate(structures):
        groups.setdefault(_group_of(atoms), []).append(index)
    atoms_of = {g: sum(len(structures[i]) for i in idx) for g, idx in groups.items()}
    small = [g for g, idx in groups.items() if len(idx) <= SMALL_GROUP]
    large = [g for g in groups if g not in small]
    room = max_atoms - sum(atoms_of[g] for g in small)
    large_atoms = sum(atoms_of[g] for g in large)
    fraction = 1.0 if large_atoms <= max(room, 0) else max(room, 0) / large_atoms
    chosen = [i for g in small for i in groups[g]]
    for g in large:
        indices = groups[g]
        count = min(len(indices), max(2 * FOLDS, int(round(fraction * len(indices)))))
        positions = np.unique(np.round(np.linspace(0, len(indices) - 1, count)).astype(int))
        chosen += [indices[p] for p in positions]
    return [structures[i] for i in sorted(chosen)]


def folds(subset, k=FOLDS):
    """Fold number (0..k-1) of each configuration of ``subset``: within every config_type
    group in turn, so that each fold holds its share of every group."""
    counters, assignment = {}, []
    for atoms in subset:
        group = _group_of(atoms)
        assignment.append(counters.get(group, 0) % k)
        counters[group] = counters.get(group, 0) + 1
    return np.array(assignment)


def _screen_terms(terms):
    """The candidate's terms with SCREEN_SPARSE_FRACTION of its many-body sparse points."""
    small = []
    for term in terms:
        term = clone(term)
        if isinstance(term, (SOAP, QuipSOAP)):
            term.set_params(n_sparse=max(50, int(round(SCREEN_SPARSE_FRACTION * term.n_sparse))))
        small.append(term)
    return small


def screening_work(terms, subset, default_fit_work):
    """The work of cross-validating ``terms`` on the screen ``subset`` in default fits
    (``default_fit_work`` = ``fit_work`` of the reference recipe on the training set): each
    configuration is fitted in FOLDS - 1 of the fold fits, with the screen's sparse points."""
    fitted_atoms = (FOLDS - 1) * sum(len(atoms) for atoms in subset)
    return fit_work(_screen_terms(terms), fitted_atoms) / default_fit_work


def _has_virial_rows(atoms, model):
    """Whether ``model``'s settings fit the virial of ``atoms`` (periodic, with a stress)."""
    return (model.fit_virial and atoms.pbc.all()
            and "stress" in getattr(atoms.calc, "results", {}))


def _target_rows(structures, model):
    rows = 0
    for atoms in structures:
        rows += 1 + (3 * len(atoms) if model.fit_forces else 0)
        if _has_virial_rows(atoms, model):
            rows += 6
    return rows


class _HeldOutErrors:
    """The held-out errors of one candidate's fold fits, gathered fold by fold (display units:
    meV/atom, meV/Å, GPa)."""

    def __init__(self, subset):
        self.subset = subset
        self.errors = {kind: [] for kind in KINDS}
        self.groups = {kind: [] for kind in KINDS}
        self.per_config = {"energy": [np.nan] * len(subset), "forces": [np.nan] * len(subset),
                           "groups": [_group_of(a) for a in subset]}
        self.evidence = []

    def add(self, fitted_model, held):
        """The errors of ``fitted_model`` on the screen configurations ``held`` (indices)."""
        for index in held:
            parity = parity_data(fitted_model, [self.subset[index]])
            for kind in KINDS:
                series = parity.series(kind)
                self.errors[kind].append(np.abs(series.errors))
                self.groups[kind].append(series.config_types)
                if kind in ("energy", "forces") and series.errors.size:
                    self.per_config[kind][index] = float(
                        _DISPLAY[kind] * np.abs(series.errors).mean())

    def summary(self):
        """(cv_mae, cv_groups, per-configuration errors, mean log evidence per row)."""
        cv_mae, cv_groups = {}, {}
        for kind in KINDS:
            values = np.concatenate(self.errors[kind]) if self.errors[kind] else np.zeros(0)
            if values.size:
                cv_mae[kind] = float(_DISPLAY[kind] * values.mean())
        for kind in ("energy", "forces"):
            if not self.errors[kind]:
                continue
            values, labels = np.concatenate(self.errors[kind]), np.concatenate(self.groups[kind])
            for group in sorted(set(labels)):
                cv_groups.setdefault(group, [float("nan"), float("nan")])
                cv_groups[group][0 if kind == "energy" else 1] = float(
                    _DISPLAY[kind] * values[labels == group].mean())
        evidence = float(np.mean(self.evidence)) if self.evidence else float("nan")
        return cv_mae, cv_groups, self.per_config, evidence


def cross_validate(model, terms, subset, assignment, sigma_options=({},)):
    """[(cv_mae, cv_groups, per-configuration errors, log evidence per row)], one per sigma
    option ({target kind: factor on the sigmas}), of ``terms`` fitted with ``model``'s
    settings: k fits, each to all folds but one, re-solved for every option (no refit,
    ``GAP.with_sigma_scales``) and predicting the held-out fold. MAEs in display units; the
    per-configuration errors ({"energy": |error| meV/atom, "forces": mean |component error|
    meV/Å, "groups": config_type}) are in ``subset`` order."""
    tallies = [_HeldOutErrors(subset) for _ in sigma_options]
    for fold in range(assignment.max() + 1):
        fitted = [a for a, f in zip(subset, assignment) if f != fold]
        held = [i for i, f in enumerate(assignment) if f == fold]
        if not held or not fitted:
            continue
        trial = clone(model).set_params(terms=_screen_terms(terms), optimize_hyperparameters="scale",
                                        verbose=False, search_time=None, recipe="fixed")
        trial.fit(fitted)
        rows = _target_rows(fitted, trial)
        for tally, option in zip(tallies, sigma_options):
            # a kind without rows in this fit (no stresses) has nothing to re-weigh
            scales = {kind: f for kind, f in option.items() if kind in trial.data_factors_}
            if scales:
                resolved = trial.with_sigma_scales(scales)
                # its evidence at its own best common scale, as the trial's own
                *_, after = common_scale(resolved, structures_noise(resolved, fitted))
                tally.evidence.append(after / rows)
                tally.add(resolved, held)
            else:
                tally.evidence.append(
                    trial.hyperparameter_result_["log_marginal_likelihood_after"] / rows)
                tally.add(trial, held)
    return [tally.summary() for tally in tallies]


def worse_groups(candidate, reference):
    """"group E" / "group F" where the candidate's held-out configurations are worse than the
    reference's on the same configurations by more than (GROUP_LIMIT - 1) of the reference's
    mean error AND by more than GUARD_STANDARD_ERRORS standard errors of the paired
    differences (a rare group of a dozen configurations is not condemned by noise)."""
    found = []
    for i, kind in enumerate(("energy", "forces")):
        mine = np.asarray(candidate.cv_configurations.get(kind, []), dtype=float)
        theirs = np.asarray(reference.cv_configurations.get(kind, []), dtype=float)
        labels = np.asarray(reference.cv_configurations.get("groups", []), dtype=object)
        if mine.size == 0 or mine.shape != theirs.shape:
            continue
        for group in sorted(set(labels)):
            mask = (labels == group) & np.isfinite(mine) & np.isfinite(theirs)
            if mask.sum() < 2:
                continue
            difference = mine[mask] - theirs[mask]
            excess = difference.mean() - (GROUP_LIMIT - 1.0) * theirs[mask].mean()
            spread = difference.std(ddof=1) / np.sqrt(mask.sum())
            if excess > 0 and excess > GUARD_STANDARD_ERRORS * spread:
                found.append(f"{group} {'EF'[i]}")
    return found


def judge(listed, prefer):
    """Score every cross-validated candidate against the first and apply the guards; return
    the chosen one (the reference if no other is allowed)."""
    reference = listed[0]
    for candidate in listed:
        if not candidate.cv_mae:
            continue
        ratios = [candidate.cv_mae[k] / reference.cv_mae[k] for k in KINDS
                  if k in candidate.cv_mae and reference.cv_mae.get(k, 0) > 0]
        candidate.score = float(np.mean(ratios)) if ratios else float("nan")
        worse = [] if candidate is reference else worse_groups(candidate, reference)
        costly = prefer != "accuracy" and candidate.md_cost_ratio > MAX_MD_COST_RATIO
        candidate.allowed = candidate is reference or not (worse or costly)
        candidate.reason = "; ".join(([f"CV worse in {', '.join(worse)}"] if worse else [])
                                     + (["MD cost"] if costly and candidate is not reference
                                        else []))
    allowed = [c for c in listed if c.allowed and np.isfinite(c.score)]
    return min(allowed, key=lambda c: c.score)


def _fitted_kinds(structures, model):
    """The target kinds ("energy", "forces", "virial") ``model``'s settings fit on
    ``structures``."""
    kinds = {"energy"} | ({"forces"} if model.fit_forces else set())
    if any(_has_virial_rows(atoms, model) for atoms in structures):
        kinds.add("virial")
    return kinds


def _option_name(name, scales):
    """A candidate's name with its sigma factors, e.g. "... σV×0.3"."""
    letters = {"energy": "E", "forces": "F", "virial": "V"}
    return name + "".join(f" σ{letters[kind]}×{factor:g}" for kind, factor in sorted(scales.items()))


def with_atom_widths(name, terms):
    """(name, terms) of ``terms`` with each of ATOM_WIDTHS as the SOAP atom width (``sigma``,
    Å) in place of its own, in every SOAP term; none without a SOAP term."""
    found = []
    for width in ATOM_WIDTHS:
        changed = [clone(term).set_params(sigma=width) if isinstance(term, SOAP) else clone(term)
                   for term in terms]
        if any(isinstance(term, SOAP) and term.sigma != width for term in terms):
            found.append((f"{name} a{width:g}", changed))
    return found


class _Screening:
    """The candidates screened so far, each term set once with all its sigma options, and
    the budget (work or seconds) they share."""

    def __init__(self, model, subset, options, reference_cost, default_fit_work):
        """``default_fit_work``: ``fit_work`` of the reference recipe on the training set."""
        self.model, self.subset, self.options = model, subset, options
        self.assignment = folds(subset)
        self.reference_cost = reference_cost
        # by candidate name: its terms, and the name of its term set (without sigma options)
        self.listed, self.terms, self.term_set, self.notes = [], {}, {}, []
        self.start = time.perf_counter()
        # the fold fits' work so far, in default fits (``fit_work``)
        self.default_fit_work, self.work = default_fit_work, 0.0

    def over_budget(self, work):
        """A note saying why a term set of screening work ``work`` (default fits) would exceed
        the budget, or ""."""
        budget = self.model.search_time
        if budget == "auto":
            work += self.work
            if work > SCREEN_BUDGET_FITS:
                return (f"screening budget of {SCREEN_BUDGET_FITS:g} default fits' work reached"
                        f" (the next term set would bring it to {work:.1f}; search_time=None"
                        " screens every candidate)")
        elif budget is not None and time.perf_counter() - self.start > budget:
            return f"time budget of {budget:.0f} s reached"
        return ""

    def add(self, name, terms, work=None):
        """List the candidates of one term set (one per sigma option), cross-validated
        together if ``work`` (its screening work, default fits) is given."""
        listed = [Candidate(_option_name(name, scales), [term_settings(t) for t in terms],
                            scales=dict(scales)) for scales in self.options]
        for candidate in listed:
            self.terms[candidate.name] = terms
            self.term_set[candidate.name] = name
        self.listed += listed
        if work is None:
            return
        began = time.perf_counter()
        self.work += work
        results = cross_validate(self.model, terms, self.subset, self.assignment, self.options)
        seconds = time.perf_counter() - began
        for candidate, result in zip(listed, results):
            (candidate.cv_mae, candidate.cv_groups, candidate.cv_configurations,
             candidate.log_evidence_per_row) = result
            candidate.seconds = seconds
            candidate.md_cost_ratio = md_cost(terms) / self.reference_cost
            logger.info("recipe search: %s: CV MAE %s, MD cost %.2fx (%.1f s)", candidate.name,
                        candidate.cv_mae, candidate.md_cost_ratio, candidate.seconds)

    def add_within_budget(self, proposed, stage):
        """Screen each (name, terms) while the budget lasts (the first candidate always);
        list the rest unscreened."""
        for name, terms in proposed:
            work = screening_work(terms, self.subset, self.default_fit_work)
            reason = self.over_budget(work) if self.listed else ""
            if reason and not self.notes:
                self.notes.append(f"{reason} in the {stage}; the best screened so far is used")
            self.add(name, terms, None if reason else work)


def search(model, structures):
    """(terms, RecipeReport) for ``model``'s settings on ``structures`` (labelled Atoms).

    Two stages: the structural candidates (``candidates``), then the best of them with the
    other SOAP atom widths (ATOM_WIDTHS); every term set with each of SIGMA_OPTIONS that
    applies to the data. The chosen candidate's sigma factors are ``report.chosen_scales()``.
    """
    prefer = model.prefer
    if prefer not in PREFERENCES:
        raise ValueError(f"prefer must be one of {PREFERENCES}, got {prefer!r}")
    budget = model.search_time
    if not (budget is None or (isinstance(budget, str) and budget == "auto")
            or (isinstance(budget, (int, float)) and not isinstance(budget, bool) and budget >= 0)):
        raise ValueError(f"search_time must be 'auto', a number of seconds >= 0 or None, "
                         f"got {budget!r}")
    d1 = nearest_neighbour_distance(structures)
    subset = screen(structures, model.random_state)
    kinds = _fitted_kinds(subset, model)
    options = [scales for scales in SIGMA_OPTIONS if set(scales) <= kinds]
    proposed = candidates(d1, prefer)
    default_fit_work = fit_work(proposed[0][1], sum(len(atoms) for atoms in structures))
    screening = _Screening(model, subset, options, md_cost(proposed[0][1]), default_fit_work)
    screening.add_within_budget(proposed, "structural stage")
    best = judge(screening.listed, prefer)
    screening.add_within_budget(with_atom_widths(screening.term_set[best.name],
                                                 screening.terms[best.name]),
                                "atom-width stage")
    best = judge(screening.listed, prefer)
    for note in screening.notes:
        # the automatic budget is the design, not a surprise: it is logged and reported
        if model.search_time == "auto":
            logger.info("recipe search: %s", note)
        else:
            warnings.warn(f"recipe search: {note}", stacklevel=3)
    report = RecipeReport(screening.listed, best.name, d1, len(subset), 0.0,
                          warnings=screening.notes)
    return [clone(term) for term in screening.terms[best.name]], report

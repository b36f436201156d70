"""The recipe chosen from the data: candidate term sets screened by their evidence on a subset.

``GAP(recipe="search")`` (with no terms) fits whatever recipe the training data prefer. Candidates are
built from the data's own length scale (the median nearest-neighbour distance d₁, so no table
of per-element settings exists anywhere) and from the species present: a 2-body term over every
species pair plus SOAP with species channels, with cutoffs at fixed multiples of d₁, two
neighbour weightings and, where asked for, larger bases. Each candidate is fitted to every
k-th training configuration (the screen), its sigmas and deltas set by maximising the log
marginal likelihood, and scored by that maximised evidence per target row: the probability of
the training labels under the candidate, which the test set never enters. The best candidate
whose MD cost stays within ``MAX_MD_COST_RATIO`` of the reference recipe's (unless
``prefer="accuracy"``) is then fitted to all data, hyperparameters optimised again.
"""
import logging
import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.base import clone

from ..structures.neighbors import build_neighbor_list
from .terms import SOAP, TwoBody

logger = logging.getLogger(__name__)

# a chosen recipe may cost this many times the reference recipe's MD time per atom
MAX_MD_COST_RATIO = 1.5
# atoms the screen fits at most (every k-th configuration)
SCREEN_ATOMS = 2500
# sparse points of the many-body term while screening
SCREEN_SPARSE = 400
# SOAP cutoffs as multiples of the median nearest-neighbour distance, and their bounds (Å)
CUTOFF_MULTIPLES = (1.85, 2.05, 2.25)
CUTOFF_BOUNDS = (3.5, 7.0)
PREFERENCES = ("speed", "accuracy")


@dataclass
class Candidate:
    """One screened recipe: its name, term settings ({"type": class name, parameter: value}),
    score and costs.

    log_evidence_per_row : maximised log marginal likelihood of the screen's labels divided by
        their number of target rows (dimensionless; higher is more probable).
    md_cost_ratio : estimated MD time per atom relative to the reference recipe.
    seconds : wall time of its screening fit (s).
    """

    name: str
    terms: list
    log_evidence_per_row: float = float("nan")
    md_cost_ratio: float = float("nan")
    seconds: float = float("nan")
    scales: dict = field(default_factory=dict)


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

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, record):
        record = dict(record)
        record["candidates"] = [Candidate(**c) for c in record["candidates"]]
        return cls(**record)

    def format_table(self):
        """The candidates as lines of text for people."""
        lines = [f"recipe search: d1 = {self.nearest_neighbour_distance:.3f} Å, screen of "
                 f"{self.screen_configurations} configurations, {self.seconds:.0f} s",
                 f"{'candidate':34s} {'log evidence/row':>17s} {'MD cost':>8s} {'fit s':>6s}"]
        for c in self.candidates:
            mark = " <- chosen" if c.name == self.chosen else ""
            lines.append(f"{c.name:34s} {c.log_evidence_per_row:17.4f} {c.md_cost_ratio:7.2f}x"
                         f" {c.seconds:6.1f}{mark}")
        if np.isfinite(self.final_md_us_per_atom):
            lines.append(f"chosen recipe: {self.final_md_us_per_atom:.0f} µs/atom per energy+forces"
                         "+stress call (this machine, this process)")
        lines += [f"warning: {w}" for w in self.warnings]
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
                transition_width=1.0 if weighting == "cosine" else 1.0, zeta=zeta, delta=0.5,
                n_sparse=n_sparse)


def candidates(d1, prefer="speed"):
    """Candidate recipes (name, [terms]) for data whose median nearest-neighbour distance is
    d1 Å. The first is the reference recipe (gapfit's fixed default until 0.1)."""
    low, high = CUTOFF_BOUNDS
    cutoffs = sorted({round(float(np.clip(k * d1, low, high)), 2) for k in CUTOFF_MULTIPLES})
    found = [("reference 2b+soap poly 5.0", [TwoBody(), _soap(5.0, "poly")])]
    for r_cut in cutoffs:
        for weighting in ("poly", "cosine"):
            found.append((f"2b+soap {weighting} {r_cut:.2f}",
                          [TwoBody(cutoff=r_cut), _soap(r_cut, weighting)]))
    if prefer == "accuracy":
        for r_cut in cutoffs:
            found.append((f"2b+soap cosine {r_cut:.2f} n10 l8",
                          [TwoBody(cutoff=r_cut), _soap(r_cut, "cosine", n_max=10, l_max=8)]))
    return found


def md_cost(terms, density):
    """Arithmetic per atom of one energy+forces+stress call (arbitrary units), for comparing
    recipes: pair expansions and their backward pass, power spectrum, kernel and its gradient.
    density : atoms per Å³ of the data (sets the neighbour count within each cutoff)."""
    total = 0.0
    for term in terms:
        if isinstance(term, SOAP):
            neighbours = density * 4.0 / 3.0 * np.pi * term.r_cut ** 3
            n_features = term.n_max * (term.n_max + 1) // 2 * (term.l_max + 1)
            expansion = 12.0 * neighbours * term.n_max * (term.l_max + 1) ** 2
            spectrum = 4.0 * n_features * (term.l_max + 1)
            total += expansion + spectrum + 4.0 * n_features * term.n_sparse
        elif isinstance(term, TwoBody):
            total += 8.0 * density * 4.0 / 3.0 * np.pi * term.cutoff ** 3 * term.n_sparse
    return total


def screen(structures, random_state):
    """Every k-th configuration so that the screen holds at most SCREEN_ATOMS atoms."""
    total = sum(len(a) for a in structures)
    step = max(1, int(np.ceil(total / SCREEN_ATOMS)))
    return structures[::step]


def _screened(model, terms, subset):
    """A screening fit of ``terms`` (fewer sparse points), hyperparameters optimised."""
    small = [clone(term).set_params(n_sparse=min(term.n_sparse, SCREEN_SPARSE))
             if isinstance(term, SOAP) else clone(term) for term in terms]
    trial = clone(model).set_params(terms=small, optimize_hyperparameters=True, verbose=False,
                                    search_time=None, recipe="fixed")
    trial.fit(subset)
    result = trial.hyperparameter_result_
    return result["log_marginal_likelihood_after"] / result["n_rows"], dict(trial.noise_.scales)


def search(model, structures):
    """(terms, RecipeReport) for ``model``'s settings on ``structures`` (labelled Atoms)."""
    start = time.perf_counter()
    prefer = model.prefer
    if prefer not in PREFERENCES:
        raise ValueError(f"prefer must be one of {PREFERENCES}, got {prefer!r}")
    d1 = nearest_neighbour_distance(structures)
    volumes = [a.get_volume() for a in structures if a.pbc.all()]
    density = (sum(len(a) for a in structures if a.pbc.all()) / sum(volumes) if volumes
               else 1.0 / (d1 ** 3))
    subset = screen(structures, model.random_state)
    proposed = candidates(d1, prefer)
    objects = dict(proposed)
    listed = [Candidate(name, [term_settings(term) for term in terms]) for name, terms in proposed]
    reference_cost = md_cost(proposed[0][1], density)
    notes = []
    budget = model.search_time
    for index, candidate in enumerate(listed):
        if budget is not None and index > 0 and time.perf_counter() - start > budget:
            notes.append(f"time budget of {budget:.0f} s reached after {index} of {len(listed)}"
                         " candidates; the best screened so far is used")
            break
        began = time.perf_counter()
        terms = objects[candidate.name]
        candidate.log_evidence_per_row, candidate.scales = _screened(model, terms, subset)
        candidate.seconds = time.perf_counter() - began
        candidate.md_cost_ratio = md_cost(terms, density) / reference_cost
        logger.info("recipe search: %s: log evidence per row %.4f, MD cost %.2fx (%.1f s)",
                    candidate.name, candidate.log_evidence_per_row, candidate.md_cost_ratio,
                    candidate.seconds)
    screened = [c for c in listed if np.isfinite(c.log_evidence_per_row)]
    allowed = [c for c in screened
               if prefer == "accuracy" or c.md_cost_ratio <= MAX_MD_COST_RATIO]
    best = max(allowed, key=lambda c: c.log_evidence_per_row)
    for note in notes:
        warnings.warn(f"recipe search: {note}", stacklevel=3)
    report = RecipeReport(listed, best.name, d1, len(subset), 0.0, warnings=notes)
    return [clone(term) for term in objects[best.name]], report

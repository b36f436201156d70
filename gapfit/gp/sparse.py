"""Choice of sparse (inducing) environments: CUR leverage sampling, farthest point, uniform, random.

All choices are per kernel channel and reproducible through a numpy Generator. A fit
chooses in passes over chunks, so no process ever holds all the features:

1. ``summarize`` each chunk (per channel: count, mean, spread, range and, for
   CUR, the Gram matrix FᵀF) and ``merge_summaries``;
2. ``plan_selection`` on the client: the share of each channel and, for CUR,
   the projection that turns a feature vector into its exact leverage score
   in the top singular subspace of all the training features;
3. ``propose`` candidates per chunk, with a generator seeded from the fit's
   seed and the chunk's first configuration (``chunk_rng``), and
   ``merge_candidates`` down to a bounded pool; ``finish_selection`` picks
   the sparse points.

CUR and random draw a weighted sample without replacement by
Efraimidis–Spirakis keys log(u)/w (u uniform, w the weight): the rows with the
largest keys form a sample with the same law as drawing one at a time with
probability ∝ w, and the largest keys of a union are the largest among the
parts' largest keys, so merging is exact and independent of the order.
Identical environments (to 1e-10) count once, with the largest key of their
copies (the law of one environment of their summed weight). Farthest point
sampling merges greedy coresets (the chunk's farthest points, then the
farthest points of the union). The result depends only on the data, the
chunks and the seed, never on the backend or the order chunks finish in.
"""
import warnings
from dataclasses import dataclass

import numpy as np

METHODS = ("cur", "fps", "random", "uniform")


def farthest_point_indices(features, n, first=None):
    """Greedy farthest-point order in Euclidean feature space: indices of n rows.

    first : the row to start from; default the row farthest from the mean, so the choice
    is deterministic. Each further row maximises its distance to the nearest chosen row.
    """
    features = np.asarray(features, dtype=np.float64)
    if not 0 <= n <= len(features):
        raise ValueError(f"cannot keep {n} of {len(features)} rows")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if first is None:
        first = int(np.argmax(np.linalg.norm(features - features.mean(axis=0), axis=1)))
    chosen = [first]
    nearest = np.linalg.norm(features - features[first], axis=1)
    for _ in range(n - 1):
        nearest[chosen] = -1.0
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        nearest = np.minimum(nearest, np.linalg.norm(features - features[pick], axis=1))
    return np.array(chosen, dtype=np.int64)


def allocate(counts, n_sparse):
    """Split n_sparse over channels in proportion to their environment counts."""
    counts = np.asarray(counts)
    share = np.maximum(1, np.floor(n_sparse * counts / counts.sum())).astype(int)
    while share.sum() < n_sparse and (share < counts).any():
        share[np.argmax(counts - share)] += 1
    return np.minimum(share, counts)


# --------------------------------------------------------------- selection in passes over chunks
FPS_POOL = 4  # intermediate farthest-point pools keep this many times a channel's share


@dataclass
class ChannelSummary:
    """Statistics of one channel's features: count, mean and m2 (Σ (f - mean)²) per feature,
    range (low, high) and, for CUR, gram = Σ f fᵀ."""

    count: int
    mean: np.ndarray
    m2: np.ndarray
    low: np.ndarray
    high: np.ndarray
    gram: np.ndarray = None


def summarize(features, channels, with_gram):
    """{channel: ChannelSummary} of one chunk's features."""
    summary = {}
    for channel in np.unique(channels):
        rows = features[channels == channel]
        mean = rows.mean(axis=0)
        summary[int(channel)] = ChannelSummary(
            len(rows), mean, np.sum((rows - mean) ** 2, axis=0), rows.min(axis=0),
            rows.max(axis=0), rows.T @ rows if with_gram else None)
    return summary


def _merge_channel(a, b):
    """Summary of the union (pairwise update of mean and m2: no cancellation)."""
    count = a.count + b.count
    delta = b.mean - a.mean
    gram = None if a.gram is None or b.gram is None else a.gram + b.gram
    return ChannelSummary(count, a.mean + delta * (b.count / count),
                          a.m2 + b.m2 + delta ** 2 * (a.count * b.count / count),
                          np.minimum(a.low, b.low), np.maximum(a.high, b.high), gram)


def merge_summaries(a, b):
    """Summary of the union of two chunks' features."""
    merged = dict(a)
    for channel, summary in b.items():
        merged[channel] = _merge_channel(merged[channel], summary) if channel in merged else summary
    return dict(sorted(merged.items()))


def pooled_moments(summary):
    """(count, mean, variance) per feature over every channel (variance with ddof=0)."""
    parts = [summary[channel] for channel in sorted(summary)]
    total = parts[0]
    for part in parts[1:]:
        total = _merge_channel(total, part)
    return total.count, total.mean, total.m2 / total.count


@dataclass
class SelectionPlan:
    """How chunks propose candidates: method, sparse points per channel (shares) and,
    for CUR, per channel the projection P (leverage of f = ||f P||²) and a weight floor."""

    method: str
    shares: dict
    projections: dict = None
    floors: dict = None


def _leverage_projection(gram, rank):
    """P with ||f P||² the leverage of f in the top-``rank`` singular subspace of the rows
    whose Gram matrix is ``gram`` (directions with σ² below 1e-10 σ_max² dropped)."""
    eigenvalues, vectors = np.linalg.eigh(gram)
    order = np.argsort(eigenvalues)[::-1][:rank]
    eigenvalues, vectors = eigenvalues[order], vectors[:, order]
    top = eigenvalues[0] if len(eigenvalues) else 0.0
    keep = eigenvalues > 1e-10 * top if top > 0 else np.zeros(len(eigenvalues), dtype=bool)
    return vectors[:, keep] / np.sqrt(eigenvalues[keep])


def plan_selection(summary, n_sparse, method):
    """The plan for one descriptor, from the summary of all its training features."""
    if method not in METHODS:
        raise ValueError(f"unknown sparse_method {method!r}; choose one of {METHODS}")
    labels = sorted(summary)
    if method == "uniform":
        return SelectionPlan(method, {c: int(n_sparse) for c in labels})
    shares = dict(zip(labels, (int(s) for s in allocate([summary[c].count for c in labels],
                                                          n_sparse))))
    if method != "cur":
        return SelectionPlan(method, shares)
    projections, floors = {}, {}
    for channel in labels:
        projection = _leverage_projection(summary[channel].gram, shares[channel])
        projections[channel] = projection
        # leverages sum to the rank: the floor is 1e-12 of their mean
        floors[channel] = 1e-12 * max(projection.shape[1], 1) / summary[channel].count
    return SelectionPlan(method, shares, projections, floors)


@dataclass
class Candidates:
    """Environments proposed as sparse points: features (k, d), channels (k,), keys (k,)
    (larger is preferred) and ids (k, 2) = (first configuration of the chunk, row in the
    chunk), which break ties so every merge order gives the same result."""

    features: np.ndarray
    channels: np.ndarray
    keys: np.ndarray
    ids: np.ndarray

    def __len__(self):
        return len(self.keys)


def chunk_rng(seed, term_index, first_index):
    """Generator of one term's proposals in the chunk starting at configuration first_index."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(term_index, first_index)))


def _ranked_distinct(candidates):
    """Row order by key (descending, ties by id), one row per distinct (features, channel)."""
    order = np.lexsort((candidates.ids[:, 1], candidates.ids[:, 0], -candidates.keys))
    rows = np.column_stack([np.round(candidates.features[order], 10), candidates.channels[order]])
    _, first = np.unique(rows, axis=0, return_index=True)
    return order[np.sort(first)]


def _take(candidates, rows):
    return Candidates(candidates.features[rows], candidates.channels[rows],
                      candidates.keys[rows], candidates.ids[rows])


def reduce_candidates(candidates, plan, final):
    """Keep per channel the share (final) or the pool of candidates the plan asks for."""
    if len(candidates) == 0:
        return candidates
    ranked = _ranked_distinct(candidates)
    kept = []
    for channel in np.unique(candidates.channels[ranked]):
        rows = ranked[candidates.channels[ranked] == channel]
        share = plan.shares.get(int(channel), 0)
        if plan.method == "fps":
            size = min(len(rows), share if final else FPS_POOL * share)
            # greedy farthest points, starting from the best-keyed row
            rows = rows[farthest_point_indices(candidates.features[rows], size, first=0)]
        else:
            rows = rows[:share]
        kept.append(rows)
    return _take(candidates, np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64))


def propose(features, channels, plan, rng, first_index):
    """One chunk's candidates (features as the kernel compares them, channels per row)."""
    n_rows = len(features)
    keys = np.log1p(-rng.random(n_rows))  # log(u), u uniform in (0, 1]
    if plan.method == "cur":
        weights = np.empty(n_rows)
        for channel in np.unique(channels):
            rows = channels == channel
            projection = plan.projections.get(int(channel))
            leverage = (np.sum((features[rows] @ projection) ** 2, axis=1)
                        if projection is not None else np.zeros(rows.sum()))
            weights[rows] = leverage + plan.floors.get(int(channel), 1.0)
        keys = keys / weights
    ids = np.column_stack([np.full(n_rows, first_index, dtype=np.int64),
                           np.arange(n_rows, dtype=np.int64)])
    return reduce_candidates(Candidates(np.asarray(features, dtype=np.float64),
                                        np.asarray(channels, dtype=np.int64), keys, ids),
                             plan, final=False)


def merge_candidates(a, b, plan):
    """The pool of the union of two chunks' candidates."""
    joined = Candidates(np.concatenate([a.features, b.features]),
                        np.concatenate([a.channels, b.channels]),
                        np.concatenate([a.keys, b.keys]), np.concatenate([a.ids, b.ids]))
    return reduce_candidates(joined, plan, final=False)


def finish_selection(plan, summary, candidates, n_sparse, label="descriptor"):
    """(sparse_features, sparse_channels) from the merged summary and candidates.

    Fewer distinct environments than n_sparse gives fewer points, with a warning.
    """
    if plan.method == "uniform":
        chosen, chosen_channels = [], []
        for channel, share in plan.shares.items():
            part = summary[channel]
            if len(part.low) != 1:
                raise ValueError("sparse_method='uniform' needs a one-dimensional descriptor")
            chosen.append(np.linspace(part.low[0], part.high[0], share)[:, None])
            chosen_channels.append(np.full(share, channel, dtype=np.int64))
        return np.concatenate(chosen), np.concatenate(chosen_channels)
    picked = reduce_candidates(candidates, plan, final=True)
    if len(picked) < n_sparse:
        warnings.warn(f"{label}: only {len(picked)} distinct environments for n_sparse={n_sparse};"
                      f" using {len(picked)} sparse points", stacklevel=3)
    return picked.features, picked.channels

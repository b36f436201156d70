"""Choice of sparse (inducing) environments: CUR leverage sampling, farthest point, uniform, random.

All choices are per kernel channel and reproducible through a numpy Generator.
"""
import warnings

import numpy as np

METHODS = ("cur", "fps", "random", "uniform")


def _unique_rows(features, decimals=10):
    """Indices of the first occurrence of each distinct feature vector."""
    _, first = np.unique(np.round(features, decimals), axis=0, return_index=True)
    return np.sort(first)


def _cur(features, n, rng):
    """Sample n rows with probability ∝ their leverage score in the top singular subspace."""
    rank = min(n, *features.shape)
    u, _, _ = np.linalg.svd(features, full_matrices=False)
    leverage = np.sum(u[:, :rank] ** 2, axis=1)
    weights = leverage + 1e-12 * leverage.max()
    return rng.choice(len(features), size=n, replace=False, p=weights / weights.sum())


def _farthest_point(features, n, rng):
    """Greedy farthest-point sampling in Euclidean feature space, random start."""
    chosen = [int(rng.integers(len(features)))]
    distance = np.sum((features - features[chosen[0]]) ** 2, axis=1)
    for _ in range(n - 1):
        nxt = int(np.argmax(distance))
        chosen.append(nxt)
        distance = np.minimum(distance, np.sum((features - features[nxt]) ** 2, axis=1))
    return np.asarray(chosen)


def _uniform(features, n):
    """For 1-D features: grid points spread evenly over the observed range (no data rows)."""
    if features.shape[1] != 1:
        raise ValueError("sparse_method='uniform' needs a one-dimensional descriptor")
    low, high = features[:, 0].min(), features[:, 0].max()
    return np.linspace(low, high, n)[:, None]


def allocate(counts, n_sparse):
    """Split n_sparse over channels in proportion to their environment counts."""
    counts = np.asarray(counts)
    share = np.maximum(1, np.floor(n_sparse * counts / counts.sum())).astype(int)
    while share.sum() < n_sparse and (share < counts).any():
        share[np.argmax(counts - share)] += 1
    return np.minimum(share, counts)


def select_sparse(features, channels, n_sparse, method, rng, label="descriptor"):
    """Sparse points for one descriptor.

    Parameters
    ----------
    features : (n_envs, n_features) descriptor vectors, as the kernel sees
        them (already normalised for a normalised dot-product kernel).
    channels : (n_envs,) kernel channel of each environment.
    n_sparse : total number of sparse points wanted.
    method : one of METHODS.
    rng : numpy.random.Generator.

    Returns (sparse_features, sparse_channels). Fewer distinct environments
    than requested clamps the number, with a warning.
    """
    if method not in METHODS:
        raise ValueError(f"unknown sparse_method {method!r}; choose one of {METHODS}")
    distinct = _unique_rows(np.column_stack([features, channels]))
    features, channels = features[distinct], channels[distinct]
    if len(features) < n_sparse and method != "uniform":
        warnings.warn(f"{label}: only {len(features)} distinct environments for n_sparse={n_sparse};"
                      f" using {len(features)} sparse points", stacklevel=3)
        n_sparse = len(features)
    labels, counts = np.unique(channels, return_counts=True)
    if method == "uniform":
        shares = np.full(len(labels), n_sparse)
    else:
        shares = allocate(counts, n_sparse)
    chosen_features, chosen_channels = [], []
    for label_value, share in zip(labels, shares):
        rows = features[channels == label_value]
        if method == "uniform":
            picked = _uniform(rows, int(share))
        elif method == "random":
            picked = rows[rng.choice(len(rows), size=share, replace=False)]
        elif method == "fps":
            picked = rows[_farthest_point(rows, share, rng)]
        else:
            picked = rows[_cur(rows, share, rng)]
        chosen_features.append(picked)
        chosen_channels.append(np.full(len(picked), label_value, dtype=np.int64))
    return np.concatenate(chosen_features), np.concatenate(chosen_channels)

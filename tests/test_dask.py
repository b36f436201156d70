"""Scale-out: the same fit serially, in local processes (joblib) and on dask workers.

The cluster is a ``dask.distributed.LocalCluster`` with two worker processes. The
selection of sparse points runs in passes over chunks (``gapfit.sparse``); its pieces
are checked here against in-memory references.
"""
import os
import signal
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from ase.io import read
from sklearn.base import clone

import gapfit
from gapfit.gp import linalg, sparse
from gapfit.fit import training
from gapfit.fit.parallel import map_chunks, map_reduce_chunks, tree_reduce

DATA = Path(__file__).resolve().parents[1] / "data" / "cu_train.xyz"
N_CONFIGS = 20
CHUNK_ATOMS = 64  # 2 configurations of 32 atoms per chunk: 10 chunks


def small_terms():
    return [gapfit.TwoBody(cutoff=4.0, theta=0.8, n_sparse=8),
            gapfit.SOAP(r_cut=3.6, n_max=4, l_max=3, sigma=0.5, zeta=2, n_sparse=24)]


def small_model(**kwargs):
    return gapfit.GAP(terms=small_terms(), chunk_atoms=CHUNK_ATOMS, random_state=5, **kwargs)


def assert_same_fit(model, reference):
    for term, expected in zip(model.terms_, reference.terms_):
        np.testing.assert_array_equal(term.sparse_channels_, expected.sparse_channels_)
        np.testing.assert_allclose(term.sparse_points_, expected.sparse_points_, rtol=0, atol=1e-12)
    scale = np.abs(reference.alpha_).max()
    assert np.abs(model.alpha_ - reference.alpha_).max() <= 1e-8 * scale


@pytest.fixture(scope="module")
def structures():
    return read(DATA, index=f":{N_CONFIGS}")


@pytest.fixture(scope="module")
def train_file(tmp_path_factory, structures):
    """The first N_CONFIGS frames of data/cu_train.xyz, copied line by line (same numbers)."""
    sizes = training.frame_sizes(DATA)[:N_CONFIGS]
    lines = DATA.read_text().splitlines(keepends=True)[: sum(n + 2 for n in sizes)]
    path = tmp_path_factory.mktemp("dask") / "train.xyz"
    path.write_text("".join(lines))
    return path


@pytest.fixture(scope="module")
def serial(structures):
    model = small_model().fit(structures)
    assert len(model._training_chunks(structures)) >= 8
    return model


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("dask.distributed",
                                      reason="dask.distributed is not installed (pip install -e .[dask])")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as dask_client:
        yield dask_client


def thread_counts(_chunk):
    """(numba threads, largest BLAS/OpenMP pool) seen by a task."""
    import numba
    from threadpoolctl import threadpool_info
    return numba.get_num_threads(), max((pool["num_threads"] for pool in threadpool_info()),
                                        default=1)


def nest(left, right):
    return (left, right)


def label(chunk):
    return chunk


# ----------------------------------------------------------------- the reduction tree
def test_tree_reduce_follows_one_fixed_tree():
    assert tree_reduce("abcde", nest) == ((("a", "b"), ("c", "d")), "e")
    assert tree_reduce("abcdef", nest) == ((("a", "b"), ("c", "d")), ("e", "f"))
    assert tree_reduce("a", nest) == "a"
    with pytest.raises(ValueError, match="no chunks"):
        tree_reduce([], nest)


def test_map_reduce_has_the_same_tree_on_every_backend(client):
    items = list("abcdefg")
    expected = tree_reduce(items, nest)
    assert map_reduce_chunks(label, nest, items) == expected
    assert map_reduce_chunks(label, nest, items, n_jobs=2) == expected
    assert map_reduce_chunks(label, nest, items, client=client) == expected


def test_workers_use_one_thread_each(client):
    for counts in (map_chunks(thread_counts, range(4), client=client),
                   map_chunks(thread_counts, range(4), n_jobs=2)):
        assert all(count == (1, 1) for count in counts), counts


# ------------------------------------------------------------- selection in passes
def test_leverage_projection_gives_svd_leverage_scores():
    rng = np.random.default_rng(0)
    features = rng.standard_normal((200, 12)) * np.geomspace(1, 1e-3, 12)
    for rank in (3, 12):
        projection = sparse._leverage_projection(features.T @ features, rank)
        u = np.linalg.svd(features, full_matrices=False)[0]
        np.testing.assert_allclose(np.sum((features @ projection) ** 2, axis=1),
                                   np.sum(u[:, :rank] ** 2, axis=1), rtol=1e-8, atol=1e-12)


def test_merged_summaries_equal_the_statistics_of_all_features():
    rng = np.random.default_rng(1)
    parts = [(rng.normal(5.0, 0.1, (n, 4)), rng.integers(0, 2, n)) for n in (7, 30, 1, 12)]
    merged = tree_reduce([sparse.summarize(f, c, with_gram=True) for f, c in parts],
                         sparse.merge_summaries)
    features = np.concatenate([f for f, _ in parts])
    channels = np.concatenate([c for _, c in parts])
    for channel, summary in merged.items():
        rows = features[channels == channel]
        assert summary.count == len(rows)
        np.testing.assert_allclose(summary.mean, rows.mean(axis=0), rtol=1e-13)
        np.testing.assert_allclose(summary.m2 / summary.count, rows.var(axis=0), rtol=1e-10)
        np.testing.assert_allclose(summary.gram, rows.T @ rows, rtol=1e-13)
        np.testing.assert_array_equal(summary.low, rows.min(axis=0))
    count, mean, variance = sparse.pooled_moments(merged)
    assert count == len(features)
    np.testing.assert_allclose(variance, features.var(axis=0), rtol=1e-10)


def test_acsf_scale_from_moments_equals_scale_from_all_features():
    from_moments = gapfit.ACSF(r_cut=3.0).build([29])
    width = from_moments.descriptor_.n_features
    rng = np.random.default_rng(2)
    features = rng.normal(3.0, np.geomspace(1e-3, 2.0, width), (50, width))
    features[:, 0] = 1.5  # a feature that never varies keeps scale 1
    merged = sparse.merge_summaries(sparse.summarize(features[:20], np.zeros(20), False),
                                    sparse.summarize(features[20:], np.ones(30), False))
    assert from_moments.adapt_to_moments(*sparse.pooled_moments(merged))
    direct = 1.0 / features[:, 1:].std(axis=0)
    np.testing.assert_allclose(from_moments.feature_scale_[1:], direct, rtol=1e-9)
    assert from_moments.feature_scale_[0] == 1.0
    scaled = features * from_moments.feature_scale_
    np.testing.assert_allclose(scaled[:, 1:].std(axis=0), 1.0, rtol=1e-9)


@pytest.mark.parametrize("method", ["cur", "random", "fps"])
def test_candidate_pool_does_not_depend_on_merge_order(method):
    """Pools merge symmetrically; CUR and random also under any grouping."""
    rng = np.random.default_rng(3)
    features = rng.standard_normal((120, 5))
    channels = rng.integers(0, 2, 120)
    features[60:70], channels[60:70] = features[0], channels[0]  # copies of one environment
    summary = sparse.summarize(features, channels, with_gram=True)
    plan = sparse.plan_selection(summary, 10, method)
    pieces = [sparse.propose(features[i:i + 20], channels[i:i + 20], plan,
                             sparse.chunk_rng(7, 0, i), i) for i in range(0, 120, 20)]
    pools = [tree_reduce(pieces, lambda a, b: sparse.merge_candidates(a, b, plan)),
             tree_reduce(pieces, lambda a, b: sparse.merge_candidates(b, a, plan))]
    if method != "fps":  # exact sampling: any grouping gives the same (fps: one fixed tree)
        pools.append(tree_reduce(pieces[::-1], lambda a, b: sparse.merge_candidates(a, b, plan)))
    chosen = [sparse.finish_selection(plan, summary, pool, 10) for pool in pools]
    for other in chosen[1:]:
        np.testing.assert_array_equal(other[0], chosen[0][0])
        np.testing.assert_array_equal(other[1], chosen[0][1])
    assert len(chosen[0][0]) == 10
    assert len(np.unique(np.round(chosen[0][0], 10), axis=0)) == 10  # duplicates count once
    counts = np.bincount(channels)
    np.testing.assert_array_equal(np.bincount(chosen[0][1]), sparse.allocate(counts, 10))


def test_cur_prefers_high_leverage_rows():
    """Four rows span a rare direction and hold half the rank-2 leverage: CUR picks one
    of them in about 3 of 4 draws of 2 points, random in about 1 of 50."""
    rng = np.random.default_rng(4)
    features = np.zeros((400, 3))
    features[:, 0] = 1.0 + 0.01 * rng.standard_normal(400)
    features[:4, 1] = 1.0  # four rows span the rare direction
    channels = np.zeros(400, dtype=np.int64)
    summary = sparse.summarize(features, channels, with_gram=True)
    hits = {"cur": 0, "random": 0}
    for method in hits:
        plan = sparse.plan_selection(summary, 2, method)
        for seed in range(40):
            pool = tree_reduce([sparse.propose(features[i:i + 50], channels[i:i + 50], plan,
                                               sparse.chunk_rng(seed, 0, i), i)
                                for i in range(0, 400, 50)],
                               lambda a, b: sparse.merge_candidates(a, b, plan))
            chosen, _ = sparse.finish_selection(plan, summary, pool, 2)
            hits[method] += int(np.any(chosen[:, 1] > 0.5))
    assert hits["cur"] >= 20 and hits["random"] <= 5, hits


# ---------------------------------------------------------------- whole fits
def test_serial_fit_reports_peak_memory(serial):
    assert serial.peak_memory_mb_ > 50
    assert serial.worker_peak_memory_mb_ is None


def test_the_fit_keeps_lean_factors_equal_to_the_square_reduction(serial, structures):
    """The energy (20 rows) and virial (12 per chunk) factors of the fit stay trapezoids
    while they are short of M+1 = 33 rows; the reduction gives the RᵀR and coefficients of
    the square path (every chunk's factor padded to (M+1)², as before lean factors)."""
    size = serial.alpha_.size + 1
    assert serial.data_factors_["energy"].shape == (N_CONFIGS, size)
    assert serial.data_factors_["virial"].shape == (size, size)
    chunks = serial._training_chunks(structures)
    pieces = map_chunks(partial(training.factors, serial.terms_, serial.target_settings()), chunks)
    for kind, lean in serial.data_factors_.items():
        square = tree_reduce([linalg.square_factor(p[kind]) for p in pieces],
                             lambda a, b: linalg.combine_factors([a, b]))
        gram, reference = lean.T @ lean, square.T @ square
        assert np.abs(gram - reference).max() <= 1e-10 * np.abs(reference).max(), kind
    square_model = clone(serial)
    square_model.__dict__.update({k: v for k, v in vars(serial).items() if k.endswith("_")})
    square_model.data_factors_ = {kind: linalg.square_factor(f)
                                  for kind, f in serial.data_factors_.items()}
    square_model.solve_coefficients()  # the jitter of 1e-8 leaves α itself ill-conditioned
    assert np.abs(square_model.alpha_ - serial.alpha_).max() <= 1e-7 * np.abs(serial.alpha_).max()
    np.testing.assert_allclose(square_model.predict(structures[:3]), serial.predict(structures[:3]),
                               rtol=1e-9)


def test_joblib_fit_equals_serial(serial, structures):
    model = small_model(n_jobs=2).fit(structures)
    assert_same_fit(model, serial)
    assert model.worker_peak_memory_mb_ > 50


def test_dask_fit_equals_serial(serial, structures, client):
    model = small_model(backend=client).fit(structures)
    assert_same_fit(model, serial)
    assert model.worker_peak_memory_mb_ > 50
    # the reduction on the workers keeps the factors lean, like the serial one
    assert {kind: f.shape for kind, f in model.data_factors_.items()} == \
        {kind: f.shape for kind, f in serial.data_factors_.items()}
    assert model.data_factors_["energy"].shape[0] == N_CONFIGS


def test_dask_fit_from_files_equals_serial(serial, train_file, client):
    model = small_model(backend=client)
    chunks = model._training_chunks([train_file])
    assert all(chunk.structures is None and chunk.path == str(train_file) for chunk in chunks)
    assert_same_fit(model.fit([train_file]), serial)


def test_default_client_backend(serial, structures, client):
    assert_same_fit(small_model(backend="dask").fit(structures), serial)


def test_worker_killed_mid_fit_is_recovered(serial, train_file, client):
    """SIGKILL a worker while it assembles R factors: dask recomputes its lost work."""
    client.wait_for_workers(2)
    pids = client.run(os.getpid)
    outcome = {}

    def fit():
        try:
            outcome["model"] = small_model(backend=client).fit([train_file])
        except BaseException as error:  # reported to the test thread below
            outcome["error"] = error

    thread = threading.Thread(target=fit)
    thread.start()
    killed, deadline = None, time.monotonic() + 120
    while killed is None and thread.is_alive() and time.monotonic() < deadline:
        for address, keys in client.processing().items():
            if any(str(key).startswith("factors-") for key in keys):
                killed = pids[address]
                os.kill(killed, signal.SIGKILL)
                break
        time.sleep(0.002)
    thread.join(timeout=300)
    assert killed is not None, "the fit finished before a worker could be killed"
    assert "error" not in outcome, outcome.get("error")
    assert_same_fit(outcome["model"], serial)
    client.wait_for_workers(2, timeout=60)
    assert killed not in client.run(os.getpid).values()


def test_acsf_scales_come_from_chunk_statistics(structures, client):
    """ACSF standardisation is learnt from moments reduced over chunks: it equals 1/std of
    all raw training features, and the dask fit equals the serial one."""
    def acsf_model(**kwargs):
        return gapfit.GAP(terms=[gapfit.ACSF(r_cut=3.6, n_sparse=20)], chunk_atoms=CHUNK_ATOMS,
                          random_state=1, **kwargs)

    subset = structures[:10]
    reference = acsf_model().fit(subset)
    raw = clone(reference.terms[0]).build(reference.species_)
    values, _ = training.features([raw], training.Chunk(0, structures=subset))[0]
    spread = values.std(axis=0)
    varies = spread > 1e-8 * spread.max()
    assert varies.sum() > 10
    np.testing.assert_allclose(reference.terms_[0].feature_scale_[varies] * spread[varies], 1.0,
                               rtol=1e-9)
    assert_same_fit(acsf_model(backend=client).fit(subset), reference)

"""The sparse-GP linear algebra against a dense reference solution."""
import numpy as np

from gapfit.gp import linalg as gp


def _problem(seed, n_rows=60, n_sparse=8):
    rng = np.random.default_rng(seed)
    points = rng.standard_normal((n_sparse, 3))
    covariance = np.exp(-0.5 * np.sum((points[:, None] - points[None]) ** 2, axis=-1))
    rows = rng.standard_normal((n_rows, n_sparse))
    targets = rng.standard_normal(n_rows)
    sigmas = rng.uniform(0.1, 1.0, n_rows)
    return covariance, rows, targets, sigmas


def test_qr_solution_equals_normal_equations():
    covariance, rows, targets, sigmas = _problem(0)
    jitter = 1e-8
    prior = gp.prior_factor(covariance, jitter)
    alpha, _ = gp.solve([gp.weighted_factor(rows, targets, sigmas)], prior)
    weights = 1.0 / sigmas ** 2
    regularised = covariance + jitter * covariance.diagonal().max() * np.eye(len(covariance))
    normal = regularised + rows.T @ (weights[:, None] * rows)
    expected = np.linalg.solve(normal, rows.T @ (weights * targets))
    assert np.allclose(alpha, expected, rtol=1e-10, atol=1e-12 * np.abs(expected).max())


def test_chunked_factors_give_the_same_coefficients():
    covariance, rows, targets, sigmas = _problem(1)
    prior = gp.prior_factor(covariance, 1e-8)
    whole, _ = gp.solve([gp.weighted_factor(rows, targets, sigmas)], prior)
    pieces = [gp.weighted_factor(rows[s], targets[s], sigmas[s])
              for s in (slice(0, 5), slice(5, 37), slice(37, 60))]
    chunked, total = gp.solve([gp.combine_factors(pieces)], prior)
    assert np.allclose(chunked, whole, rtol=1e-10)
    # the last diagonal element squared is the minimised objective
    residual = (targets - rows @ whole) / sigmas
    regularised = covariance + 1e-8 * covariance.diagonal().max() * np.eye(len(covariance))
    objective = residual @ residual + whole @ regularised @ whole
    assert np.isclose(total[-1, -1] ** 2, objective, rtol=1e-9)


def test_fewer_rows_than_columns_is_padded():
    covariance, rows, targets, sigmas = _problem(2, n_rows=3)
    factor = gp.weighted_factor(rows, targets, sigmas)
    assert factor.shape == (9, 9)
    gram = factor.T @ factor
    stacked = np.column_stack([rows, targets]) / sigmas[:, None]
    assert np.allclose(gram, stacked.T @ stacked)


def test_combine_factors_accepts_raw_row_blocks_and_triangles():
    rng = np.random.default_rng(7)
    blocks = [rng.standard_normal((n, 9)) for n in (3, 14, 9, 1)]
    stacked = np.vstack(blocks)
    mixed = [blocks[0], np.linalg.qr(blocks[1], mode="r"), blocks[2], blocks[3]]
    combined = gp.combine_factors(mixed)
    assert combined.shape == (9, 9)
    assert not np.tril(combined, -1).any()
    assert np.allclose(combined.T @ combined, stacked.T @ stacked, rtol=1e-12, atol=1e-12)

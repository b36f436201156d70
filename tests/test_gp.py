"""The sparse-GP linear algebra against a dense reference solution."""
import numpy as np
import pytest

from gapfit.fit.parallel import tree_reduce
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


def test_fewer_rows_than_columns_stay_a_trapezoid():
    covariance, rows, targets, sigmas = _problem(2, n_rows=3)
    factor = gp.weighted_factor(rows, targets, sigmas)
    assert factor.shape == (3, 9)
    assert gp.is_upper_trapezoidal(factor)
    gram = factor.T @ factor
    stacked = np.column_stack([rows, targets]) / sigmas[:, None]
    assert np.allclose(gram, stacked.T @ stacked)
    assert gp.square_factor(factor).shape == (9, 9)
    np.testing.assert_array_equal(gp.square_factor(factor)[:3], factor)


def _square_path(pieces):
    """The reduction as gapfit did it before lean factors: every piece padded to n × n."""
    return gp.combine_factors([gp.square_factor(piece) for piece in pieces])


def _assert_same_gram(factor, expected, rtol=1e-10):
    gram, reference = factor.T @ factor, expected.T @ expected
    assert np.abs(gram - reference).max() <= rtol * np.abs(reference).max()


@pytest.mark.parametrize("sizes", [(2, 3, 1, 4, 5, 7, 2), (30,), (4,), (8, 1), (1, 1, 1)])
def test_lean_reduction_equals_the_square_path(sizes):
    """Chunks of few rows (energies, virials) stay trapezoids until their rows pass n = M+1
    (sizes (2, 3, 1, 4, ...) pass 9 midway), one chunk alone, and chunks that never do."""
    n_rows = sum(sizes)
    covariance, rows, targets, sigmas = _problem(3, n_rows=n_rows)
    bounds = np.cumsum((0,) + sizes)
    pieces = [gp.weighted_factor(rows[a:b], targets[a:b], sigmas[a:b])
              for a, b in zip(bounds[:-1], bounds[1:])]
    lean = tree_reduce(pieces, lambda a, b: gp.combine_factors([a, b]))
    assert lean.shape == (min(n_rows, 9), 9) and gp.is_upper_trapezoidal(lean)
    stacked = np.column_stack([rows, targets]) / sigmas[:, None]
    _assert_same_gram(lean, stacked)
    _assert_same_gram(lean, _square_path(pieces))
    prior = gp.prior_factor(covariance, 1e-8)
    alpha, total = gp.solve([lean], prior)
    square_alpha, square_total = gp.solve([_square_path(pieces)], prior)
    assert total.shape == (9, 9)
    np.testing.assert_allclose(alpha, square_alpha, rtol=1e-9, atol=1e-12 * np.abs(alpha).max())
    assert np.isclose(abs(total[-1, -1]), abs(square_total[-1, -1]), rtol=1e-10)


def test_merging_a_short_trapezoid_into_a_triangle_in_either_order():
    rng = np.random.default_rng(5)
    triangle = np.linalg.qr(rng.standard_normal((20, 9)), mode="r")
    short = np.linalg.qr(rng.standard_normal((4, 9)), mode="r")
    for pair in ([triangle, short], [short, triangle]):
        merged = gp.combine_factors(pair)
        assert merged.shape == (9, 9) and gp.is_upper_trapezoidal(merged)
        _assert_same_gram(merged, np.vstack(pair), rtol=1e-12)


def test_solve_without_data_rows_gives_zero_coefficients():
    covariance, rows, targets, sigmas = _problem(4)
    empty = gp.weighted_factor(rows[:0], targets[:0], sigmas[:0])
    assert empty.shape == (0, 9)
    alpha, total = gp.solve([empty], gp.prior_factor(covariance, 1e-8))
    assert total.shape == (9, 9) and np.all(alpha == 0)


def test_factors_of_different_widths_are_refused():
    with pytest.raises(ValueError, match="columns"):
        gp.combine_factors([np.eye(3), np.eye(4)])
    with pytest.raises(ValueError, match="no R factors"):
        gp.combine_factors([None])


def test_combine_factors_accepts_raw_row_blocks_and_triangles():
    rng = np.random.default_rng(7)
    blocks = [rng.standard_normal((n, 9)) for n in (3, 14, 9, 1)]
    stacked = np.vstack(blocks)
    mixed = [blocks[0], np.linalg.qr(blocks[1], mode="r"), blocks[2], blocks[3]]
    combined = gp.combine_factors(mixed)
    assert combined.shape == (9, 9)  # 27 rows: the triangle
    assert not np.tril(combined, -1).any()
    assert np.allclose(combined.T @ combined, stacked.T @ stacked, rtol=1e-12, atol=1e-12)

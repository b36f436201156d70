"""The fitted model: terms (descriptor + kernel + δ + sparse set), the GAP estimator that owns
the prior and the solve, and the model file (arrays and settings in, out)."""

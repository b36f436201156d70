"""Predictions for MD: energies, forces and virials of single structures from a fitted model,
and the ASE calculator that adapts them."""

"""What the model does not know: posterior variances of energies and forces, the evidence (log
marginal likelihood) and hyperparameters chosen by it."""

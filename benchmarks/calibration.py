"""Are the predicted force uncertainties calibrated? Fit on mlearn train, compare test errors with stds.

    python benchmarks/calibration.py                      # Mo and Si, 2-body + SOAP(n_sparse=1000)
    python benchmarks/calibration.py --elements Mo --n-sparse 500 --max-factor 10

For every force component of the test set: error e = prediction - DFT (eV/Å), latent std s
(posterior of the model's function) and predictive std t = sqrt(s² + σ_F²) with σ_F the
fit's force sigma. Reported: Spearman rank correlation of |e| with s (per component, and per
atom with |e_atom| against sqrt(Σ s²)), fractions with |e| ≤ t and ≤ 2t, and the mean Gaussian
negative log likelihood per component. Each row is shown as fitted and after maximising the
log marginal likelihood over the sigmas and deltas (each within --max-factor of its start).
Also the cost of the variances per atom against that of a prediction.
Data: ../shared/data/mlearn (Zuo et al., J. Phys. Chem. A 124, 731 (2020)).
"""
import argparse
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

MLEARN = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlearn"
TARGETS = {"spearman": 0.5, "within_2_sigma": (0.85, 0.99)}


def force_statistics(model, structures):
    """Errors, latent stds and timings over all force components of ``structures``."""
    from gapfit.uncertainty import posterior as variance
    from gapfit.structures.io import labels
    errors, stds = [], []
    posterior = variance.Posterior(model)
    predict_seconds = variance_seconds = 0.0
    for atoms in structures:
        start = time.perf_counter()
        prediction = model.predict_structure(atoms)
        predict_seconds += time.perf_counter() - start
        start = time.perf_counter()
        result = variance.structure_variance(model, atoms, posterior)
        variance_seconds += time.perf_counter() - start
        errors.append(prediction.forces - labels(atoms)[1])
        stds.append(result.forces_std)
    n_atoms = sum(len(atoms) for atoms in structures)
    return (np.concatenate(errors), np.concatenate(stds),
            1e3 * predict_seconds / n_atoms, 1e3 * variance_seconds / n_atoms)


def calibration(errors, latent_stds, noise_sigma):
    """Calibration figures of force components; errors and stds (n_atoms, 3) in eV/Å."""
    total = np.sqrt(latent_stds ** 2 + noise_sigma ** 2)
    e, s, t = np.abs(errors).ravel(), latent_stds.ravel(), total.ravel()
    atom_error = np.linalg.norm(errors, axis=1)
    atom_std = np.sqrt(np.sum(latent_stds ** 2, axis=1))
    nll = np.mean(0.5 * np.log(2 * np.pi * t ** 2) + 0.5 * (e / t) ** 2)
    return {"spearman": spearmanr(e, s).statistic,
            "spearman_atom": spearmanr(atom_error, atom_std).statistic,
            "within_1_sigma": float(np.mean(e <= t)), "within_2_sigma": float(np.mean(e <= 2 * t)),
            "latent_within_2_sigma": float(np.mean(e <= 2 * s)),
            "nll": float(nll), "mae": float(e.mean()), "mean_std": float(t.mean()),
            "noise_sigma": float(noise_sigma)}


def save_fitted(model, directory, name):
    """The model file plus its data R factors (which a model file does not keep)."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory / f"{name}.gap")
    np.savez(directory / f"{name}_factors.npz", **model.data_factors_)


def load_fitted(directory, name):
    """A model written by ``save_fitted``, ready for ``hyperparameters.optimize``; or None."""
    import gapfit
    if not (directory / f"{name}_factors.npz").exists():
        return None
    model = gapfit.load(directory / f"{name}.gap")
    with np.load(directory / f"{name}_factors.npz") as stored:
        model.data_factors_ = {kind: stored[kind] for kind in stored.files}
    model.solve_coefficients()
    return model


def run(element, n_sparse, max_factor, cache=None):
    import gapfit
    from gapfit import hyperparameters
    train = gapfit.io.read_mlearn(MLEARN / f"{element}_train.json")
    test = gapfit.io.read_mlearn(MLEARN / f"{element}_test.json")
    name = f"{element}_soap{n_sparse}"
    model = load_fitted(Path(cache), name) if cache else None
    if model is None:
        model = gapfit.GAP(terms=[gapfit.TwoBody(), gapfit.SOAP(n_sparse=n_sparse)],
                           random_state=0)
        start = time.perf_counter()
        model.fit(train)
        print(f"\n{element}: fit {time.perf_counter() - start:.0f} s", end="")
        if cache:
            save_fitted(model, Path(cache), name)
    else:
        print(f"\n{element}: fitted model read from {cache}", end="")
    print(f", M = {len(model.alpha_)}, {len(test)} test configurations, "
          f"{sum(len(a) for a in test)} atoms")
    rows = []
    errors, stds, predict_ms, variance_ms = force_statistics(model, test)
    rows.append(("as fitted", calibration(errors, stds, model.force_sigma)))
    start = time.perf_counter()
    result = hyperparameters.optimize(model, train, max_factor=max_factor)
    seconds = time.perf_counter() - start
    scales = dict(zip(result["names"], result["scales"]))
    print(f"optimised in {seconds:.0f} s ({result['evaluations']} evaluations): log p(y) "
          f"{result['log_marginal_likelihood_before']:.1f} -> {result['log_marginal_likelihood_after']:.1f};"
          " scale factors " + ", ".join(f"{k} {v:.3g}" for k, v in scales.items()))
    errors, stds, _, _ = force_statistics(model, test)
    rows.append(("optimised", calibration(errors, stds,
                                          model.force_sigma * model.noise_.scale("forces"))))
    print(f"cost per atom: prediction {predict_ms:.2f} ms, variances (energy, local energies,"
          f" all force components) {variance_ms:.2f} ms")
    print(f"{'':<11}{'MAE':>7}{'mean t':>8}{'σ_F':>7}{'Spearman':>9}{'(atom)':>8}{'≤1t':>7}"
          f"{'≤2t':>7}{'≤2s':>7}{'NLL':>8}")
    for name, figures in rows:
        print(f"{name:<11}{1e3 * figures['mae']:7.1f}{1e3 * figures['mean_std']:8.1f}"
              f"{1e3 * figures['noise_sigma']:7.1f}{figures['spearman']:9.3f}"
              f"{figures['spearman_atom']:8.3f}{figures['within_1_sigma']:7.3f}"
              f"{figures['within_2_sigma']:7.3f}{figures['latent_within_2_sigma']:7.3f}"
              f"{figures['nll']:8.3f}")
    final = rows[-1][1]
    low, high = TARGETS["within_2_sigma"]
    print(f"target Spearman >= {TARGETS['spearman']}: {final['spearman']:.3f} "
          f"{'ok' if final['spearman'] >= TARGETS['spearman'] else 'MISSED'}")
    print(f"target within-2σ in [{low}, {high}]: {final['within_2_sigma']:.3f} "
          f"{'ok' if low <= final['within_2_sigma'] <= high else 'MISSED'}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", nargs="+", default=["Mo", "Si"])
    parser.add_argument("--n-sparse", type=int, default=1000)
    parser.add_argument("--max-factor", type=float, default=10.0)
    parser.add_argument("--cache", default=None,
                        help="directory to keep fitted models in (reused on the next run)")
    args = parser.parse_args(argv)
    if not MLEARN.is_dir():
        print(f"skipped: mlearn data not found at {MLEARN}")
        return 0
    print("units: meV/Å; e = force error, s = latent std, t = sqrt(s² + σ_F²)")
    for element in args.elements:
        run(element, args.n_sparse, args.max_factor, args.cache)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

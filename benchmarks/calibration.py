"""Are the predicted force uncertainties calibrated with the defaults? mlearn train → test.

    python benchmarks/calibration.py                      # Mo and Si, gapfit.GAP() defaults
    python benchmarks/calibration.py --elements Mo --cache /tmp/calibration   # keep the fits
    python benchmarks/calibration.py --optimize           # also after the full evidence optimisation

The model is ``gapfit.GAP(random_state=0)`` with every default: 2-body + SOAP (1,000 sparse
points) and ``optimize_hyperparameters="scale"`` (all sigmas and deltas times the one
evidence-optimal factor, in closed form: predictions unchanged). For every force component
of the test set: error e = prediction - DFT (eV/Å); the full latent std s
(``gapfit.uncertainty.posterior``) and the predictive std t = sqrt(s² + σ_F²) that
``GAPCalculator(uncertainty=True)`` reports as ``forces_std``, σ_F the fitted force noise;
and the cheap predictive score c (``GAPCalculator(uncertainty="local")``'s ``forces_score``,
one per atom standing for its three components). Reported: test MAEs (E meV/atom, F meV/Å,
S GPa), fractions of components with |e| ≤ 2t, ≤ 2c and ≤ 2s (latent alone), Spearman rank
correlation per atom of |e_atom| with the full std and with the cheap score, the Gaussian
negative log likelihood per component under t, and the cost of both per atom.
Targets (issue 14): within 2σ in [0.85, 0.99] for t and c, Spearman(atom) of c ≥ 0.5.
Data: ../shared/data/mlearn (Zuo et al., J. Phys. Chem. A 124, 731 (2020)).
"""
import argparse
import copy
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

MLEARN = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlearn"
TARGETS = {"spearman": 0.5, "within_2_sigma": (0.85, 0.99)}


def force_statistics(model, structures):
    """Errors, full latent variances and cheap-score pieces over ``structures``."""
    from gapfit.uncertainty import local as local_uncertainty
    from gapfit.uncertainty import posterior as variance
    from gapfit.structures.io import labels
    posterior = variance.Posterior(model)
    cheap = local_uncertainty.LocalUncertaintyPredictor(
        model, tolerance=local_uncertainty.CALCULATOR_TOLERANCE)
    errors, latent, scores = [], [], []
    seconds = {"predict": 0.0, "full": 0.0, "local": 0.0}
    for atoms in structures:
        start = time.perf_counter()
        prediction = model.predict_structure(atoms)
        seconds["predict"] += time.perf_counter() - start
        start = time.perf_counter()
        result = variance.structure_variance(model, atoms, posterior)
        seconds["full"] += time.perf_counter() - start
        start = time.perf_counter()
        _, local = cheap.predict(atoms)
        seconds["local"] += time.perf_counter() - start
        errors.append(prediction.forces - labels(atoms)[1])
        latent.append(np.maximum(result.forces, 0.0))
        scores.append(local.forces_score)
    n_atoms = sum(len(atoms) for atoms in structures)
    cost = {name: 1e3 * value / n_atoms for name, value in seconds.items()}
    return np.concatenate(errors), np.concatenate(latent), np.concatenate(scores), cost


def calibration(errors, latent_variances, scores, noise_sigma):
    """Calibration figures; errors and latent variances (n_atoms, 3), scores (n_atoms,)."""
    total = np.sqrt(latent_variances + noise_sigma ** 2)
    e, t = np.abs(errors), total
    atom_error = np.linalg.norm(errors, axis=1)
    nll = np.mean(0.5 * np.log(2 * np.pi * t ** 2) + 0.5 * (e / t) ** 2)
    return {"within_2_sigma": float(np.mean(e <= 2 * t)),
            "score_within_2_sigma": float(np.mean(e <= 2 * scores[:, None])),
            "latent_within_2_sigma": float(np.mean(e <= 2 * np.sqrt(latent_variances))),
            "spearman_atom": spearmanr(atom_error, np.sqrt(latent_variances.sum(axis=1))).statistic,
            "score_spearman_atom": spearmanr(atom_error, scores).statistic,
            "nll": float(nll), "noise_sigma": float(noise_sigma)}


def test_errors(model, structures):
    from ase.units import GPa
    from gapfit.evaluate.errors import evaluate
    errors = evaluate(model, structures)
    return (1e3 * errors["energy"]["mae"], 1e3 * errors["forces"]["mae"],
            errors["stress"]["mae"] / GPa)


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


def row(name, model, test):
    from gapfit.uncertainty.local import noise_levels
    errors, latent, scores, cost = force_statistics(model, test)
    figures = calibration(errors, latent, scores, noise_levels(model)[0])
    figures["mae"] = test_errors(model, test)
    figures["cost"] = cost
    return name, figures


def run(element, cache=None, optimize=False):
    import gapfit
    from gapfit import hyperparameters
    from gapfit.uncertainty import local as local_uncertainty
    train = gapfit.io.read_mlearn(MLEARN / f"{element}_train.json")
    test = gapfit.io.read_mlearn(MLEARN / f"{element}_test.json")
    name = f"{element}_default"
    model = load_fitted(Path(cache), name) if cache else None
    if model is None:
        model = gapfit.GAP(random_state=0)
        start = time.perf_counter()
        model.fit(train)
        print(f"\n{element}: default fit {time.perf_counter() - start:.0f} s", end="")
        if cache:
            save_fitted(model, Path(cache), name)
    else:
        print(f"\n{element}: default fit read from {cache}", end="")
    result = getattr(model, "hyperparameter_result_", None)
    scale = result["scale"] if result else model.noise_.scale("forces")
    print(f", M = {len(model.alpha_)}, evidence scale λ = {scale:.3g}, κ = "
          f"{model.force_score_scale_:.3g} 1/Å; {len(test)} test configurations, "
          f"{sum(len(a) for a in test)} atoms")
    rows = [row("default", model, test)]
    if optimize:
        optimised = copy.deepcopy(model)
        start = time.perf_counter()
        result = hyperparameters.optimize(optimised, train)
        optimised.force_score_scale_ = local_uncertainty.force_score_scale(
            optimised, local_uncertainty.training_sample(train))
        scales = dict(zip(result["names"], result["scales"]))
        print(f"optimised in {time.perf_counter() - start:.0f} s: log p(y) "
              f"{result['log_marginal_likelihood_before']:.1f} -> "
              f"{result['log_marginal_likelihood_after']:.1f}; scale factors "
              + ", ".join(f"{k} {v:.3g}" for k, v in scales.items()))
        rows.append(row("optimised", optimised, test))
    cost = rows[0][1]["cost"]
    print(f"cost per atom: prediction {cost['predict']:.2f} ms, full variances (energy, local "
          f"energies, all force components) {cost['full']:.2f} ms, cheap path (prediction "
          f"included) {cost['local']:.2f} ms")
    print(f"{'':<10}{'E MAE':>7}{'F MAE':>7}{'S MAE':>7}{'σ_F':>7}{'≤2t':>7}{'≤2c':>7}{'≤2s':>7}"
          f"{'ρ(t)':>7}{'ρ(c)':>7}{'NLL':>8}")
    for label, figures in rows:
        energy, forces, stress = figures["mae"]
        print(f"{label:<10}{energy:7.2f}{forces:7.1f}{stress:7.3f}"
              f"{1e3 * figures['noise_sigma']:7.1f}{figures['within_2_sigma']:7.3f}"
              f"{figures['score_within_2_sigma']:7.3f}{figures['latent_within_2_sigma']:7.3f}"
              f"{figures['spearman_atom']:7.3f}{figures['score_spearman_atom']:7.3f}"
              f"{figures['nll']:8.3f}")
    final = rows[0][1]
    low, high = TARGETS["within_2_sigma"]
    for label, key in (("full std", "within_2_sigma"), ("cheap score", "score_within_2_sigma")):
        value = final[key]
        print(f"target {label} within 2σ in [{low}, {high}]: {value:.3f} "
              f"{'ok' if low <= value <= high else 'MISSED'}")
    value = final["score_spearman_atom"]
    print(f"target cheap score Spearman (atom) >= {TARGETS['spearman']}: {value:.3f} "
          f"{'ok' if value >= TARGETS['spearman'] else 'MISSED'}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", nargs="+", default=["Mo", "Si"])
    parser.add_argument("--optimize", action="store_true",
                        help="also a row after gapfit.hyperparameters.optimize (sigmas and deltas)")
    parser.add_argument("--cache", default=None,
                        help="directory to keep fitted models in (reused on the next run)")
    args = parser.parse_args(argv)
    if not MLEARN.is_dir():
        print(f"skipped: mlearn data not found at {MLEARN}")
        return 0
    print("units: meV/atom, meV/Å, GPa; e = force error, s = latent std, t = sqrt(s² + σ_F²) "
          "(forces_std), c = cheap score (forces_score); ρ = Spearman per atom with |e_atom|")
    for element in args.elements:
        run(element, args.cache, args.optimize)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Research (issue 16, helper recipe3): one full fit with optimize_hyperparameters=True (each
sigma kind and each term's delta within ×/÷F of its start, by the log marginal likelihood on the
TRAINING data), its optimised scales, test MAEs per group, and a few sigma re-solves around the
optimum (no refit).

    python experiments/evidence_fit.py Si cos+ns1500 --factor 10

Test set used for measuring only.
"""
import argparse
import sys
import time
from pathlib import Path

import gapfit
from gapfit.evaluate.errors import error_table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stress_fits import MLEARN, make_model, resolved  # noqa: E402

AROUND = [(1, 1, 1), (1, 0.6, 1), (1, 0.4, 1), (0.3, 1, 1), (0.1, 1, 1), (0.1, 0.6, 1),
          (0.3, 0.6, 0.5), (1, 0.6, 0.5)]


def show(label, model, test):
    rows = error_table(gapfit.metrics.evaluate(model, test))
    groups = "; ".join(f"{r[0]} {r[1]:.2f}/{r[3]:.0f}/{r[5]:.3f}" for r in rows[1:])
    print(f"| {label} | {rows[0][1]:.2f} / {rows[0][3]:.1f} / {rows[0][5]:.3f} | {groups} |", flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("element")
    p.add_argument("name")
    p.add_argument("--factor", type=float, default=10.0)
    a = p.parse_args()
    train = gapfit.io.read_mlearn(MLEARN / f"{a.element}_train.json")
    test = gapfit.io.read_mlearn(MLEARN / f"{a.element}_test.json")
    model = make_model(a.name)
    model.set_params(optimize_hyperparameters=a.factor)
    cpu = time.process_time()
    model.fit(train)
    cpu = time.process_time() - cpu
    print(f"{a.element} {a.name}: fit+evidence CPU {cpu:.0f} s, peak {model.peak_memory_mb_:.0f} MB")
    print("scales", model.noise_.scales, "deltas", [t.delta_ for t in model.terms_])
    print("| state | test E / F / S | per group E/F/S |\n|---|---|---|")
    for g in AROUND:
        show(f"evidence opt × σ{g}", resolved(model, g), test)


if __name__ == "__main__":
    main()

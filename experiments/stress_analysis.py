"""Research (issue 16, helper recipe3): stress diagnosis from experiments/stress_fits.py output.

    python experiments/stress_analysis.py /tmp/h16/Mo_cos+ns1500.pkl

Prints: MAEs per set (test / CV / train in-sample) and sigma grid point; per config_type;
diagonal vs shear stress MAE; the isotropic (hydrostatic) residual per group and its volume
dependence; test stress MAE after removing an isotropic offset estimated from TRAINING
residuals only (CV held-out, or in-sample); and how concentrated the stress MAE is.
"""
import pickle
import sys

import numpy as np
from ase.units import GPa

DIAG, SHEAR = slice(0, 3), slice(3, 6)


def select(rows, tag, grid=(1, 1, 1)):
    return [r for r in rows if r["set"] == tag and tuple(r["grid"]) == tuple(grid)]


def arrays(rows):
    s_ref = np.array([r["s_ref"] for r in rows]) / GPa
    s_pred = np.array([r["s_pred"] for r in rows]) / GPa
    e_err = 1e3 * np.array([r["e_pred"] - r["e_ref"] for r in rows])
    f_abs = np.array([r["f_abs"] for r in rows])
    f_n = np.array([r["f_n"] for r in rows])
    vpa = np.array([r["volume"] / r["n"] for r in rows])
    groups = np.array([r["group"] for r in rows])
    return s_ref, s_pred, e_err, f_abs, f_n, vpa, groups


def maes(rows, s_shift=None):
    s_ref, s_pred, e_err, f_abs, f_n, _, _ = arrays(rows)
    if s_shift is not None:
        s_pred = s_pred.copy()
        s_pred[:, DIAG] -= s_shift[:, None]
    return (np.abs(e_err).mean(), 1e3 * f_abs.sum() / f_n.sum(), np.abs(s_pred - s_ref).mean())


def fmt(t):
    return f"{t[0]:.2f} / {t[1]:.1f} / {t[2]:.3f}"


def hydro_residual(rows):
    s_ref, s_pred, *_ = arrays(rows)
    return (s_pred - s_ref)[:, DIAG].mean(axis=1)   # GPa, ASE sign (pred - ref)


def main(path):
    data = pickle.load(open(path, "rb"))
    rows, grid = data["rows"], data["grid"]
    print(path, data["info"])
    print("\n## sigma grid (E/F/S MAE: test | CV)")
    print("| σ factors E,F,V | test E / F / S | CV E / F / S |")
    print("|---|---|---|")
    for g in grid:
        t, c = select(rows, "test", g), select(rows, "cv", g)
        print(f"| {g} | {fmt(maes(t))} | {fmt(maes(c)) if c else '-'} |")
    for tag in ("test", "cv", "train"):
        rs = select(rows, tag)
        if not rs:
            continue
        s_ref, s_pred, e_err, f_abs, f_n, vpa, groups = arrays(rs)
        err = s_pred - s_ref
        print(f"\n## {tag} (σ×1): all {fmt(maes(rs))}; S diag {np.abs(err[:, DIAG]).mean():.3f}, "
              f"shear {np.abs(err[:, SHEAR]).mean():.3f} GPa; n configs {len(rs)}")
        print("| group | n | E | F | S | S diag | S shear | mean hydro resid | sd hydro resid | |ref| S mean |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        h = hydro_residual(rs)
        for grp in sorted(set(groups)):
            m = groups == grp
            sub = [r for r, k in zip(rs, m) if k]
            e, f, s = maes(sub)
            print(f"| {grp} | {m.sum()} | {e:.2f} | {f:.1f} | {s:.3f} | {np.abs(err[m][:, DIAG]).mean():.3f} "
                  f"| {np.abs(err[m][:, SHEAR]).mean():.3f} | {h[m].mean():+.3f} | {h[m].std():.3f} "
                  f"| {np.abs(s_ref[m]).mean():.2f} |")
        # volume dependence of the hydrostatic residual
        A = np.c_[np.ones_like(vpa), vpa - vpa.mean()]
        coef, *_ = np.linalg.lstsq(A, h, rcond=None)
        r = np.corrcoef(vpa, h)[0, 1]
        print(f"hydro residual: mean {h.mean():+.3f} GPa, sd {h.std():.3f}; linear in V/atom: "
              f"{coef[0]:+.3f} {coef[1]:+.3f}·(V/N - {vpa.mean():.2f}) GPa/Å³, corr {r:+.2f}")
        # concentration of stress MAE
        per = np.abs(err).sum(axis=1)
        order = np.argsort(per)[::-1]
        share = np.cumsum(per[order]) / per.sum()
        top = ", ".join(f"{groups[i]}#{rs[i]['index']}({per[i] / 6:.2f},V/N {vpa[i]:.1f},"
                        f"h {h[i]:+.2f})" for i in order[:6])
        print(f"top configs share of S abs error: top1 {share[0]:.2f}, top3 {share[2]:.2f}, "
              f"top5 {share[min(4, len(share) - 1)]:.2f}; worst: {top}")
    # offset corrections estimated from training residuals only, applied to test
    test = select(rows, "test")
    _, _, _, _, _, vpa_t, groups_t = arrays(test)
    print("\n## isotropic offset removed from test predictions (estimated from training only)")
    print("| estimate | offset | test E / F / S | S diag | per group S |")
    print("|---|---|---|---|---|")
    for tag in ("cv", "train"):
        rs = select(rows, tag)
        if not rs:
            continue
        h = hydro_residual(rs)
        _, _, _, _, _, vpa, groups = arrays(rs)
        A = np.c_[np.ones_like(vpa), vpa]
        lin, *_ = np.linalg.lstsq(A, h, rcond=None)
        for label, shift in ((f"{tag} const mean", np.full(len(test), h.mean())),
                             (f"{tag} const median", np.full(len(test), np.median(h))),
                             (f"{tag} linear V/N", lin[0] + lin[1] * vpa_t)):
            e, f, s = maes(test, shift)
            s_ref, s_pred, *_ = arrays(test)
            sp = s_pred.copy()
            sp[:, DIAG] -= shift[:, None]
            dg = np.abs((sp - s_ref)[:, DIAG]).mean()
            pg = ", ".join(f"{g} {np.abs((sp - s_ref)[groups_t == g]).mean():.3f}"
                           for g in sorted(set(groups_t)))
            print(f"| {label} | {shift.mean():+.3f} | {e:.2f} / {f:.1f} / {s:.3f} | {dg:.3f} | {pg} |")
    s_ref, s_pred, *_ = arrays(test)
    h = hydro_residual(test)
    e, f, s = maes(test, h)
    print(f"| oracle per-config hydro (test-fitted, bound) | - | {e:.2f} / {f:.1f} / {s:.3f} | | |")


if __name__ == "__main__":
    for p in sys.argv[1:]:
        main(p)

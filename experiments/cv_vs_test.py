"""The searched candidates' CV scores (from the 'search' run's stored recipe) beside the test
errors of the same recipes fitted to all training data (their own runs in the jsonl).
    python experiments/cv_vs_test.py [docs/recipe2_runs.jsonl]"""
import json
import sys
from pathlib import Path

path = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "docs" / "recipe2_runs.jsonl")
runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
by = {(r["element"], r["candidate"]): r for r in runs}


def run_name(candidate):
    """experiments/structural.py's name of a search candidate's recipe."""
    words = candidate.split()
    if words[0] == "reference":
        return "default"
    base = "cos" if words[1] == "cosine" else "default"
    return f"{base}+ns{words[3][1:]}+rc{float(words[2]):g}"


for element in ("Mo", "Si"):
    if (element, "search") not in by:
        continue
    search = by[(element, "search")]["recipe"]
    default = by[(element, "default")]["test"]
    print(f"\n{element}\n\n| candidate | CV E / F / S | CV score | CV guard | logev/row | MD cost (model) |"
          " test E / F / S | test score | test worst group vs default |\n|---|---|---|---|---|---|---|---|---|")
    for c in search["candidates"]:
        r = by.get((element, run_name(c["name"])))
        cv = c["cv_mae"]
        if r:
            t = r["test"]["all"]
            score = sum(t[i] / default["all"][i] for i in range(3)) / 3
            worst = max((r["test"][g][i] / default[g][i], f"{g} {'EF'[i]}")
                        for g in r["test"] if g != "all" for i in (0, 1))
            tested = f"{t[0]:.2f} / {t[1]:.1f} / {t[2]:.3f} | {score:.3f} | {worst[0]:.2f} ({worst[1]})"
        else:
            tested = "(not run) | | "
        mark = " **chosen**" if c["name"] == search["chosen"] else ""
        print(f"| {c['name']}{mark} | {cv['energy']:.2f} / {cv['forces']:.1f} / {cv['stress']:.3f} |"
              f" {c['score']:.3f} | {c['reason'] or 'ok'} | {c['log_evidence_per_row']:.3f} |"
              f" {c['md_cost_ratio']:.2f} | {tested} |")

"""Markdown tables of docs/recipe2_runs.jsonl: test MAE all and per config_type, each group's
worst ratio to the default recipe's (E or F), fit time, MD µs/atom and its ratio to the
default recipe measured in the same process.  python experiments/summarize2.py [jsonl]"""
import json
import sys
from pathlib import Path

TARGETS = {"Mo": (2.24, 90.0, 0.12), "Si": (2.21, 60.0, 0.12)}
path = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "docs" / "recipe2_runs.jsonl")
runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
latest = {}
for r in runs:
    latest[(r["element"], r["candidate"])] = r
for element in ("Mo", "Si"):
    rows = [r for (e, _), r in latest.items() if e == element]
    default = latest.get((element, "default"))
    if not rows or default is None:
        continue
    groups = sorted(k for k in default["test"] if k != "all")
    t = TARGETS[element]
    print(f"\n### {element} (targets {t[0]} / {t[1]} / {t[2]}; group columns E meV/atom / F meV/Å)\n")
    print("| candidate | E | F | S | " + " | ".join(groups) +
          " | worst group ratio | fit s (CPU) | load | MD µs/atom (default same run) | MD ratio |")
    print("|---|---|---|---|" + "---|" * len(groups) + "---|---|---|---|---|")
    for r in rows:
        cells, worst, where = [], 0.0, ""
        for g in groups:
            e, f = r["test"][g][0], r["test"][g][1]
            cells.append(f"{e:.2f} / {f:.1f}")
            for i, v in enumerate((e, f)):
                ratio = v / default["test"][g][i]
                if ratio > worst:
                    worst, where = ratio, f"{g} {'EF'[i]}"
        a = r["test"]["all"]
        mark = lambda v, lim: f"**{v}**" if v <= lim else f"{v}"
        print(f"| {r['candidate']} | {mark(round(a[0], 2), t[0])} | {mark(round(a[1], 1), t[1])} | "
              f"{mark(round(a[2], 3), t[2])} | " + " | ".join(cells) +
              f" | {worst:.2f} ({where}) | {r['fit_s']:.0f} ({r['fit_cpu_s']:.0f}) | {r['load']:.1f} | "
              f"{r['md_us']:.0f} ({r['md_default_us']:.0f}) | {r['md_ratio']:.2f} |")

"""Table of the organ-at-risk rows a protocol derives by LQ (for closing notes and audits).

Not shipped. For every (structure, metric) family with a derived row at some count in
1..N: the counts and derived limits (Gy), the reference row(s) (source, fraction count,
verification status), which derived rows the protocol replaces ([[limits.replace]]) and
the disabled (V2/U) rows at the same counts, for comparison. Then, per count beyond the
derivation range, the structures left without a limit (NOT EVALUATED when contoured).

    .venv/bin/python devtools/limits_table.py [--protocol oligo-hcc] [--beyond 9,10,15,30]
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from rtqa.constraints import DERIVATION_MAX_FRACTIONS, load_protocol


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocol", default="oligo-hcc")
    ap.add_argument("--beyond", default="9,10,15,20,30",
                    help="fraction counts beyond the derivation range to report")
    args = ap.parse_args()
    proto = load_protocol(args.protocol)
    counts = range(1, DERIVATION_MAX_FRACTIONS + 1)

    fams: dict[tuple[str, str], dict] = defaultdict(lambda: {"rows": {}, "refs": set(),
                                                             "replaced": [], "off": {}})
    for n in counts:
        sel = proto.select(n)
        for e in sel:
            if e.kind in ("apply", "replaced") and e.derived:
                c, d = e.constraint, e.constraint.derivation
                f = fams[(e.structure, c.metric)]
                f["rows"][n] = c.limit.value
                f["refs"].add((d.reference.source or d.reference.set_name,
                               d.reference_fractions, d.reference.status,
                               d.reference.limit.value, d.reference.ref))
                if e.replaced_by:
                    f["replaced"].append(n)
        for e in sel:
            if e.kind == "disabled" and (e.structure, e.constraint.metric) in fams:
                fams[(e.structure, e.constraint.metric)]["off"].setdefault(n, []).append(
                    f"{e.constraint.limit.value:g} ({e.constraint.status})")

    total = sum(len(f["rows"]) for f in fams.values())
    print(f"Protocol {proto.name}: {total} derived rows in {len(fams)} families "
          f"(1-{DERIVATION_MAX_FRACTIONS} fx)\n")
    print("| structure | metric | derived (fx: Gy) | reference (status) | replaced at | "
          "off rows at those counts |")
    print("|---|---|---|---|---|---|")
    for (structure, metric), f in fams.items():
        rows = ", ".join(f"{n}: {v:g}" for n, v in sorted(f["rows"].items()))
        refs = "; ".join(f"{lim:g} Gy {k} fx, {src} [{ref}] ({st})"
                         for src, k, st, lim, ref in sorted(f["refs"], key=lambda r: r[1]))
        rep = ", ".join(map(str, f["replaced"])) or "-"
        off = "; ".join(f"{n} fx: {', '.join(v)}" for n, v in sorted(f["off"].items())) or "-"
        print(f"| {structure} | {metric} | {rows} | {refs} | {rep} | {off} |")

    per_ref: dict[str, int] = defaultdict(int)
    for n in counts:
        for e in proto.select(n):
            if e.kind in ("apply", "replaced") and e.derived:
                r = e.constraint.derivation.reference
                per_ref[f"{r.source or r.set_name}, status {r.status}"] += 1
    print("\nDerived rows per reference source:")
    for src, k in sorted(per_ref.items(), key=lambda x: -x[1]):
        print(f"- {k}: {src}")

    print("\nBeyond the derivation range (no LQ derivation; contoured organs listed here are "
          "NOT EVALUATED until the protocol adds a row):")
    for n in (int(x) for x in args.beyond.split(",") if x.strip()):
        none = [e.structure for e in proto.select(n) if e.kind == "none"]
        print(f"- {n} fx: {len(none)}: {', '.join(none) or '-'}")


if __name__ == "__main__":
    main()

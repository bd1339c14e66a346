"""Resume of ``rtqa batch`` (``--resume``): which plans are up to date, by SHA-256.

A plan is skipped, and its previous result carried over, when ``summary.json`` has its
row made with the same settings fingerprint (:func:`settings_fingerprint`: rtqa
version, protocol, constraint library and extra files, name maps); its JSON report is
the one that row describes (same ``created`` and the same digest of its ``inputs``); the
report's ``inputs`` list exactly the plan's current files, each with the same SHA-256;
and its HTML report exists. Plans that ERRORed for a reason other than their input
(internal error, worker crash) record no inputs and are always checked again. A run
stopped by Ctrl-C writes the summary of the plans done so far (``"complete": false``),
so ``--resume`` continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rtqa import __version__
from rtqa.batch.model import PLANS_DIR, SUMMARY_SCHEMA, CheckSettings, PlanUnit, sha256_file
from rtqa.batch.summary import _inputs_digest

__all__ = ["settings_fingerprint"]


def settings_fingerprint(settings: CheckSettings) -> str:
    """SHA-256 over everything a plan's result depends on besides its files: rtqa
    version, the protocol and extra constraint files (content), the constraint library
    (content of every file), the name maps and the other check options
    (:meth:`CheckSettings.check_args`). Raises ``RtqaError`` for a protocol or
    constraint file that cannot be loaded (so a typo stops the batch before it starts)."""
    from rtqa.constraints import load_constraint_file, load_protocol
    from rtqa.paths import constraints_dir

    protocol = load_protocol(settings.protocol)
    lib = constraints_dir().resolve()
    paths = [protocol.path] + [s.path for s in protocol.sets]
    paths += [load_constraint_file(c).path for c in settings.constraints]
    paths += sorted(p for p in lib.rglob("*") if p.is_file() and not p.name.startswith("."))
    files = set()
    for p in paths:
        if p is not None and Path(p).is_file():
            # by content and name within the library (the same on every machine)
            rp = Path(p).resolve()
            name = rp.relative_to(lib).as_posix() if rp.is_relative_to(lib) else rp.name
            files.add((name, sha256_file(rp)))
    doc = {"rtqa_version": __version__, "protocol": settings.protocol,
           "constraints": list(settings.constraints), "overrides": list(settings.overrides),
           "files": sorted(files)}
    doc.update(settings.check_args())   # only when set: old fingerprints stay valid
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()




def previous_root(out: Path) -> str | None:
    """The ROOT of the batch whose ``summary.json`` is in ``out`` (None: none there)."""
    try:
        doc = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("schema") != SUMMARY_SCHEMA:
        return None
    root = doc.get("root")
    return root if isinstance(root, str) else None


def _load_previous(out: Path) -> dict:
    try:
        doc = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("schema") != SUMMARY_SCHEMA:
        return {}
    return {r["key"]: r for r in doc.get("plans", []) if isinstance(r, dict) and "key" in r}


def _up_to_date(unit: PlanUnit, prev: dict | None, out: Path, fingerprint: str,
                root: str) -> dict | None:
    """The JSON report of ``unit`` when it is up to date with the plan's files, else None."""
    if not prev or prev.get("settings") != fingerprint or unit.problem:
        return None
    try:
        doc = json.loads((out / PLANS_DIR / f"{unit.name}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("created") != prev.get("report_created"):
        return None
    if prev.get("html") and not (out / PLANS_DIR / f"{unit.name}.html").is_file():
        return None
    inputs = doc.get("inputs") or []
    if not inputs:
        return None
    if (prev.get("inputs") or {}).get("sha256") != _inputs_digest(inputs, root)["sha256"]:
        return None
    recorded = {(i.get("path"), i.get("sha256")) for i in inputs}
    if {p for p, _ in recorded} != set(unit.files):
        return None
    try:
        current = {(p, sha256_file(p)) for p in unit.files}
    except OSError:
        return None
    return doc if current == recorded else None

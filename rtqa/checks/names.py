"""Match plan ROI names to AAPM TG-263 standard names; never guess.

Each ROI name is classified, in this order:

0. **helper** if it starts with ``_`` (``_Cord``).
1. **organ** - its folded form (lower case, letters and digits only) is an alias in
   ``constraints/names.toml`` (left/right spellings generated for paired organs). This
   comes before the helper rules below so that no organ named in the table (``OPTIC
   NERVE L``) is taken for a helper.
2. **helper** - an optimisation/planning structure, never checked as an organ:
   * ``z`` followed by an upper-case letter, digit, ``_``, ``-``, ``.`` or space
     (``zPTV_opt``, ``z_ring``, ``z1``); ``Z`` followed by a digit/separator, or by
     GTV/CTV/ITV/PTV/OPT/RING/AVOID (``ZPTV``). Organ names such as ``Zygoma``
     (z + lower case) or ``ZYGOMA`` are not helpers;
   * a leading ``_``; ``opt`` as a separate word (``opt PTV``, ``PTV_opt``, ``OPT_Liver``)
     or ``opt``/``Opt`` glued to a capital or digit (``optPTV``) - not ``Optic...``;
   * ``ring`` or ``avoid`` anywhere (any case);
   * two or more target words (``PTV-GTV``, ``PTV1+PTV2``): a derived structure.
3. **target** - starts with GTV, CTV, ITV or PTV (any case): ``GTVp``, ``GTV_Liver``,
   ``PTV1``, ``PTV_High`` are targets of that class.
4. **PRV** - contains ``PRV``: ``SpinalCord_PRV05``, ``Cord PRV 5mm`` -> the standard
   ``SpinalCord_PRV05`` (margin in mm, two digits; ``cm`` converted); no margin ->
   ``SpinalCord_PRV``. A PRV never matches the organ itself.
5. **near** - an alias followed by an edit suffix (old, new, copy, final, v2, 1, ...):
   ``LIVER_old``. A near match is never used; next to an exact match it makes the
   standard name ambiguous.
6. otherwise **unmatched**.

A standard name matched by two or more ROIs (exact or near: ``Cord`` and ``SpinalCord``,
``Liver`` and ``LIVER_old``) is *ambiguous* and left unmatched. User overrides
(``--map SpinalCord=CORD_1``) win over everything; an overridden ROI is not matched to
anything else. A ROI typed EXTERNAL in the structure set is the External.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping

from rtqa.errors import ConstraintFileError, RtqaError
from rtqa.constraints.structexpr import TARGET_CLASSES

__all__ = ["AliasTable", "NameMatch", "fold", "load_aliases", "classify", "is_helper",
           "target_class", "standard_name", "match_rois"]

LEFT = ("l", "lt", "left", "lft", "sin")
RIGHT = ("r", "rt", "right", "rgt", "dx", "dex")
EDIT_SUFFIXES = frozenset({
    "old", "new", "orig", "original", "copy", "bak", "backup", "edit", "edited", "final",
    "mod", "modified", "adj", "adjusted", "corr", "corrected", "draft", "tmp", "temp",
    "test", "review", "rev", "prev", "previous"})


def fold(name: str) -> str:
    """Case-folded, letters and digits only: ``"Spinal_Cord"`` -> ``"spinalcord"``."""
    return "".join(ch for ch in name.casefold() if ch.isalnum())


@dataclass(frozen=True)
class AliasTable:
    """Folded alias -> standard name, and folded standard name -> standard name."""

    keys: Mapping[str, str]
    standards: Mapping[str, str]
    path: Path | None = None

    def lookup(self, name: str) -> str | None:
        return self.keys.get(fold(name))

    def canonical(self, name: str) -> str | None:
        """The standard name spelled ``name`` up to case/separators, else None."""
        return self.standards.get(fold(name))


def _table_from(data: dict, path: Path, lines: list[str]) -> AliasTable:
    keys: dict[str, str] = {}
    standards: dict[str, str] = {}

    def fail(std: str, why: str):
        line = next((i + 1 for i, t in enumerate(lines)
                     if re.match(rf"\s*{re.escape(std)}\s*=", t)), None)
        raise ConstraintFileError(f"{'line %d: ' % line if line else ''}{std}: {why}", path)

    def add(std: str, alias: str):
        key = fold(alias)
        if not key:
            fail(std, f"alias {alias!r} has no letters or digits")
        if keys.get(key, std) != std:
            fail(std, f"alias {alias!r} already belongs to {keys[key]}")
        keys[key] = std

    unknown = set(data) - {"organs", "paired"}
    if unknown:
        raise ConstraintFileError(f"unknown table(s) {sorted(unknown)}; expected [organs] "
                                  "and [paired]", path)
    for section in ("organs", "paired"):
        for base, aliases in data.get(section, {}).items():
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", base):
                fail(base, "not a TG-263 style name (letters, digits, '_')")
            if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
                fail(base, "aliases must be a list of text")
            if section == "organs":
                standards[fold(base)] = base
                for alias in [base, *aliases]:
                    add(base, alias)
                continue
            for side, words in (("L", LEFT), ("R", RIGHT)):
                std = f"{base}_{side}"
                standards[fold(std)] = std
                for alias in [base, *aliases]:
                    for w in words:
                        add(std, w + alias)
                        add(std, alias + w)
    return AliasTable(MappingProxyType(keys), MappingProxyType(standards), path)


@lru_cache(maxsize=8)
def _load(path: Path, mtime_ns: int) -> AliasTable:
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConstraintFileError(f"TOML syntax error: {exc}", path) from None
    return _table_from(data, path, text.splitlines())


def load_aliases(path: str | Path | None = None) -> AliasTable:
    """The alias table (default: ``names.toml`` in the constraints folder)."""
    if path is None:
        from rtqa.paths import constraints_dir
        path = constraints_dir() / "names.toml"
    path = Path(path)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        raise ConstraintFileError("alias table not found", path) from None
    return _load(path, mtime)


# --- classification of one name --------------------------------------------------------

_TARGET_WORD = re.compile(r"(?:^|[^A-Za-z])(?:GTV|CTV|ITV|PTV)", re.IGNORECASE)


def is_helper(name: str) -> bool:
    """True for optimisation/planning helper names (rules in the module docstring)."""
    s = name.strip()
    if not s:
        return False
    if s[0] == "_" or re.match(r"z[A-Z0-9_\-. ]", s) or re.match(r"Z[0-9_\-. ]", s):
        return True
    if re.match(r"Z(?:GTV|CTV|ITV|PTV|OPT|RING|AVOID)", s, re.IGNORECASE):
        return True
    if any(w.lower() == "opt" for w in re.split(r"[\s_\-.+]+", s)):
        return True
    if re.match(r"[oO]pt[A-Z0-9]", s):
        return True
    low = s.lower()
    return "ring" in low or "avoid" in low or len(_TARGET_WORD.findall(s)) >= 2


def target_class(name: str) -> str | None:
    """``"GTV"``/``"CTV"``/``"ITV"``/``"PTV"`` if the name starts with it (any case)."""
    m = re.match(r"\s*(GTV|CTV|ITV|PTV)", name, re.IGNORECASE)
    return m[1].upper() if m else None


def _prv(name: str, table: AliasTable) -> str | None:
    m = re.search(r"prv", name, re.IGNORECASE)
    if m is None:
        return None
    before, after = name[:m.start()], name[m.end():]
    num = re.match(r"[\s_\-.]*(\d+(?:[.,]\d+)?)\s*(mm|cm)?", after, re.IGNORECASE)
    if num:
        after = after[num.end():]
    else:
        num = re.search(r"(\d+(?:[.,]\d+)?)\s*(mm|cm)?[\s_\-.]*$", before, re.IGNORECASE)
        if num:
            before = before[:num.start()]
    base = table.lookup(before + " " + after)
    if base is None:
        return None
    if num is None:
        return f"{base}_PRV"
    mm = float(num[1].replace(",", ".")) * (10.0 if (num[2] or "").lower() == "cm" else 1.0)
    return f"{base}_PRV{int(round(mm)):02d}" if abs(mm - round(mm)) < 1e-9 else f"{base}_PRV{mm:g}"


def _near(name: str, table: AliasTable) -> str | None:
    key = fold(name)
    for cut in range(len(key) - 1, 0, -1):
        std = table.keys.get(key[:cut])
        suffix = key[cut:]
        if std and (suffix in EDIT_SUFFIXES or re.fullmatch(r"v?\d", suffix)):
            return std
    return None


def classify(name: str, table: AliasTable | None = None) -> tuple[str, str | None]:
    """``("organ", std)``, ``("helper", None)``, ``("target", cls)``, ``("near", std)``
    or ``("unmatched", None)`` (PRVs are organs with a ``_PRV`` standard name)."""
    table = table or load_aliases()
    if name.strip().startswith("_"):
        return "helper", None
    std = table.lookup(name)
    if std:
        return "organ", std
    if is_helper(name):
        return "helper", None
    cls = target_class(name)
    if cls:
        return "target", cls
    std = _prv(name, table)
    if std:
        return "organ", std
    std = _near(name, table)
    return ("near", std) if std else ("unmatched", None)


def standard_name(name: str, table: AliasTable | None = None) -> str | None:
    """The TG-263 standard name of one ROI name (organ or PRV), or None."""
    kind, std = classify(name, table)
    return std if kind == "organ" else None


# --- matching a plan's ROI names --------------------------------------------------------

@dataclass(frozen=True)
class NameMatch:
    """Result of ``match_rois``. ``standard_to_roi``: TG-263 name -> ROI name (unique
    matches and overrides); ``ambiguous``: TG-263 name -> the competing ROI names;
    ``targets``: class (GTV/CTV/ITV/PTV) -> ROI names; ``helpers``/``unmatched``: ROI
    names not checked; ``overridden``: TG-263 names set by the user."""

    standard_to_roi: Mapping[str, str]
    ambiguous: Mapping[str, tuple[str, ...]]
    helpers: tuple[str, ...]
    targets: Mapping[str, tuple[str, ...]]
    unmatched: tuple[str, ...]
    overridden: frozenset[str] = frozenset()

    def roi(self, standard: str) -> str | None:
        return self.standard_to_roi.get(standard)

    @property
    def roi_to_standard(self) -> dict[str, str]:
        return {roi: std for std, roi in self.standard_to_roi.items()}


def _overrides(overrides: Mapping[str, str] | None, names: list[str],
               table: AliasTable) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, roi in (overrides or {}).items():
        if key.strip().upper() in TARGET_CLASSES:
            raise RtqaError(f"--map {key}={roi}: {key} is a target class; targets are "
                            "recognised by their name prefix (GTV, CTV, ITV, PTV)")
        m = re.fullmatch(r"(.+?)_PRV(\d*(?:\.\d+)?)", key.strip())
        std = table.canonical(m[1] if m else key)
        if std is None:
            alias = table.lookup(m[1] if m else key)
            hint = f"; did you mean {alias}?" if alias else ""
            raise RtqaError(f"--map {key}={roi}: {key!r} is not a TG-263 standard name "
                            f"known to rtqa{hint}")
        std = f"{std}_PRV{m[2]}" if m else std
        count = names.count(roi)
        if count != 1:
            raise RtqaError(f"--map {key}={roi}: the plan has " + (
                "no ROI named {!r}".format(roi) if count == 0 else
                f"{count} ROIs named {roi!r}; cannot tell them apart"))
        if roi in out.values():
            raise RtqaError(f"--map {key}={roi}: ROI {roi!r} is already mapped")
        out[std] = roi
    return out


def match_rois(roi_names: Iterable[str], overrides: Mapping[str, str] | None = None, *,
               roi_types: Mapping[str, str] | None = None,
               table: AliasTable | None = None) -> NameMatch:
    """Match a plan's ROI names (see the module docstring for the rules).

    ``overrides``: TG-263 standard name -> ROI name (user's ``--map``), validated (raises
    ``RtqaError`` for an unknown standard name or a ROI not in the plan).
    ``roi_types``: ROI name -> RTROIInterpretedType; an EXTERNAL ROI is the External.
    """
    table = table or load_aliases()
    names = list(roi_names)
    forced = _overrides(overrides, names, table)
    claimed = set(forced.values())
    types = {k: (v or "").upper() for k, v in (roi_types or {}).items()}
    exact: dict[str, list[str]] = {}
    near: dict[str, list[str]] = {}
    targets: dict[str, list[str]] = {}
    helpers: list[str] = []
    unmatched: list[str] = []
    for name in names:
        if name in claimed:
            continue
        if types.get(name) == "EXTERNAL":
            kind, std = "organ", "External"
        else:
            kind, std = classify(name, table)
        if kind == "helper":
            helpers.append(name)
        elif kind == "unmatched":
            unmatched.append(name)
        else:
            {"organ": exact, "near": near, "target": targets}[kind].setdefault(
                std, []).append(name)
    mapped = dict(forced)
    ambiguous: dict[str, tuple[str, ...]] = {}
    for std, rois in exact.items():
        if std in forced:
            unmatched.extend(rois)
        elif len(rois) == 1 and not near.get(std):
            mapped[std] = rois[0]
        else:
            ambiguous[std] = tuple(rois + near.get(std, []))
    for std, rois in near.items():
        if std not in ambiguous:
            unmatched.extend(rois)
    order = {n: i for i, n in reversed(list(enumerate(names)))}
    return NameMatch(
        standard_to_roi=MappingProxyType(mapped),
        ambiguous=MappingProxyType(ambiguous),
        helpers=tuple(helpers),
        targets=MappingProxyType({k: tuple(v) for k, v in targets.items()}),
        unmatched=tuple(sorted(unmatched, key=lambda n: order.get(n, 0))),
        overridden=frozenset(forced))

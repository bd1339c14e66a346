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
   * ``ring``, ``avoid`` or ``shell`` anywhere (any case); ``wall`` with a target word
     (``PTV1_WALL``; ``Rectum_Wall`` is an organ-like name);
   * two or more target words (``PTV-GTV``, ``PTV1+PTV2``), an expansion (``PTV+5mm``,
     ``Cord+5mm``) or an organ combined with a target (``BRAIN - PTV``, ``Liver-GTV``):
     a derived structure.
3. **target** (by name; ``classify_roi`` then applies the declared type) - starts with
   GTV, CTV, ITV or PTV (any case: ``GTVp``, ``GTV_Liver``, ``PTV1``, ``PTV_High``) or has
   one as a separate word (``T10_PTV``) or glued after a lower-case letter (``LiverPTV``).
4. **PRV** - contains ``PRV``: ``SpinalCord_PRV05``, ``Cord PRV 5mm`` -> the standard
   ``SpinalCord_PRV05`` (margin in mm, two digits; ``cm`` converted); no margin ->
   ``SpinalCord_PRV``. A PRV never matches the organ itself.
5. **near** - an alias followed by an edit suffix (old, new, copy, final, v2, 1, ...):
   ``LIVER_old``. A near match is never used; next to an exact match it makes the
   standard name ambiguous.
6. otherwise **unmatched**.

Before any rule the name is normalised (``normalise``): Unicode NFKC (full-width letters,
NBSP), zero-width characters removed, Cyrillic and Greek letters that look like Latin ones
mapped to them (``Livеr`` with a Cyrillic 'е' is ``Liver``), whitespace collapsed. The
report keeps the ROI's own name and says when a look-alike was mapped.

Declared type first (``classify_roi``, used by ``match_rois``): RTROIInterpretedType wins
over the name where the type says what an ROI is not. ISOCENTER, MARKER, REGISTRATION,
CONTROL, DOSE_REGION, SUPPORT, FIXATION, BOLUS, CAVITY, AVOIDANCE (and the other
non-target types) are never targets; a target-like name (``PTV...``, ``T10_PTV``) makes a
target only on an untyped ROI or one typed GTV/CTV/ITV/PTV. A target-like name on an
ROI typed ORGAN (or AVOIDANCE, CONTROL, ... any volume type) is *target-like*: neither a
target nor an organ, flagged in the report (``rtqa.checks.lesions.mistyped_target_checks``).
Rings, walls, shells, PRVs, optimisation and derived structures (``PTV1_WALL``,
``PTV_shell``, ``PTV+5mm``, ``BRAIN - PTV``) are helpers whatever their prefix.

Unmatched organ-like ROIs (typed ORGAN or AVOIDANCE, or untyped; not helpers) get a
suggestion (``suggest``): a foreign-language synonym (``[synonyms]`` of names.toml:
``Herz`` -> Heart; suggested, never matched), an abbreviation (``STOM`` -> Stomach), a
near spelling, a PRV (``Cord_PRV0`` is a PRV of SpinalCord, not the cord). ``hidden_in``
says whether a protocol organ the plan lacks may be hidden in such ROIs: the caller then
reports its rows NOT EVALUATED with the ``--map`` that would use it.

A standard name matched by two or more ROIs (exact or near: ``Cord`` and ``SpinalCord``,
``Liver`` and ``LIVER_old``) is *ambiguous* and left unmatched. User overrides
(``--map SpinalCord=CORD_1``) win over everything; an overridden ROI is not matched to
anything else. A ROI typed EXTERNAL in the structure set is the External.
"""

from __future__ import annotations

import difflib
import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping

from rtqa.errors import ConstraintFileError, RtqaError
from rtqa.constraints.structexpr import TARGET_CLASSES

__all__ = ["AliasTable", "NameMatch", "fold", "normalise", "load_aliases", "classify",
           "classify_roi", "RoiClass", "is_helper", "target_class", "target_like",
           "standard_name", "match_rois", "suggest", "hidden_in", "map_hint",
           "combined_standard", "roi_infos", "unmatched_checks", "retype", "lookalikes",
           "TARGET_TYPES", "NEVER_TARGET_TYPES", "ORGAN_LIKE_TYPES", "ROI_TYPES"]

#: RTROIInterpretedType of targets.
TARGET_TYPES = frozenset({"GTV", "CTV", "ITV", "PTV"})
#: Types that say an ROI is not a target (PS3.3 C.8.8.8 defined terms other than targets).
NEVER_TARGET_TYPES = frozenset({
    "ISOCENTER", "MARKER", "REGISTRATION", "CONTROL", "DOSE_REGION", "SUPPORT", "FIXATION",
    "BOLUS", "CAVITY", "AVOIDANCE", "ORGAN", "EXTERNAL", "TREATED_VOLUME", "IRRAD_VOLUME",
    "CONTACT_AGENT", "BRACHY_CHANNEL", "BRACHY_ACCESSORY", "BRACHY_SRC_APP",
    "BRACHY_CHNL_SHLD"})
#: Types of points and devices: never organs or targets, never flagged.
_POINT_OR_DEVICE = frozenset({
    "ISOCENTER", "MARKER", "REGISTRATION", "SUPPORT", "FIXATION", "BOLUS", "CONTACT_AGENT",
    "BRACHY_CHANNEL", "BRACHY_ACCESSORY", "BRACHY_SRC_APP", "BRACHY_CHNL_SHLD"})
#: Types whose unmatched ROIs may be organs the protocol names ("" = untyped).
ORGAN_LIKE_TYPES = frozenset({"ORGAN", "AVOIDANCE", ""})
#: TG-263 combined names of paired organs: a ``<base>_L + <base>_R`` operand pair is
#: satisfied by the combined ROI.
COMBINED = {"Lung": "Lungs", "Kidney": "Kidneys", "Parotid": "Parotids",
            "BrachialPlex": "BrachialPlexs"}

LEFT = ("l", "lt", "left", "lft", "sin")
RIGHT = ("r", "rt", "right", "rgt", "dx", "dex")
#: German, French, Spanish side words (used for suggestions only).
LEFT_FOREIGN = ("links", "li", "gauche", "g", "izquierdo", "izquierda", "izq", "izda")
RIGHT_FOREIGN = ("rechts", "re", "droit", "droite", "d", "derecho", "derecha", "der", "dcha",
                 "dcho")
EDIT_SUFFIXES = frozenset({
    "old", "new", "orig", "original", "copy", "bak", "backup", "edit", "edited", "final",
    "mod", "modified", "adj", "adjusted", "corr", "corrected", "draft", "tmp", "temp",
    "test", "review", "rev", "prev", "previous"})


#: Cyrillic and Greek letters that look like Latin ones (Unicode confusables, Latin targets).
_CONFUSABLES = str.maketrans({
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P",
    "С": "C", "Т": "T", "Х": "X", "У": "Y", "Ѕ": "S", "І": "I", "Ј": "J", "Ԛ": "Q", "Ԝ": "W",
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "х": "x", "у": "y", "ѕ": "s",
    "і": "i", "ј": "j", "ԛ": "q", "ԝ": "w", "һ": "h", "ԁ": "d", "ӏ": "l",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
    "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X", "ο": "o", "ν": "v",
    "ι": "i", "κ": "k", "ρ": "p", "τ": "t", "υ": "u", "χ": "x"})
_ZERO_WIDTH = re.compile("[\u00ad\u200b-\u200f\u2060-\u2064\ufeff]")


def normalise(name: str) -> str:
    """``name`` with Unicode look-alikes made plain: NFKC (full-width letters, NBSP ...),
    zero-width characters and soft hyphens removed, Cyrillic/Greek letters that look like
    Latin ones mapped to them, whitespace collapsed and stripped."""
    s = _ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", name))
    s = s.translate(_CONFUSABLES)
    return " ".join(s.split())


def lookalikes(name: str) -> str:
    """'' or a note naming the characters ``normalise`` changed in ``name``."""
    if normalise(name) == " ".join(name.split()):
        return ""
    odd = [ch for ch in dict.fromkeys(name) if not ch.isascii()
           or _ZERO_WIDTH.match(ch)]
    names = ", ".join(f"U+{ord(ch):04X} {unicodedata.name(ch, '?')}" for ch in odd[:4])
    return f"name normalised (look-alike or invisible characters: {names})"


def fold(name: str) -> str:
    """Normalised, case-folded, letters and digits only: ``"Spinal_Cord"`` -> ``"spinalcord"``."""
    return "".join(filter(str.isalnum, normalise(name).casefold()))


@dataclass(frozen=True)
class AliasTable:
    """Folded alias -> standard name, and folded standard name -> standard name."""

    keys: Mapping[str, str]
    standards: Mapping[str, str]
    path: Path | None = None
    #: folded foreign-language synonym -> standard name (suggested, never matched)
    synonyms: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

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

    unknown = set(data) - {"organs", "paired", "synonyms"}
    if unknown:
        raise ConstraintFileError(f"unknown table(s) {sorted(unknown)}; expected [organs], "
                                  "[paired] and [synonyms]", path)
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
    synonyms: dict[str, str] = {}
    paired = set(data.get("paired", {}))
    for base, words in data.get("synonyms", {}).items():
        if not isinstance(words, list) or not all(isinstance(a, str) for a in words):
            fail(base, "synonyms must be a list of text")
        if base not in paired and fold(base) not in standards:
            fail(base, "synonyms of a name that is not in [organs] or [paired]")
        for word in words:
            if fold(word) in keys:
                fail(base, f"synonym {word!r} is already an alias of {keys[fold(word)]}")
            if base in paired:
                for side, sides in (("L", LEFT + LEFT_FOREIGN), ("R", RIGHT + RIGHT_FOREIGN)):
                    for w in sides:
                        synonyms.setdefault(fold(w + word), f"{base}_{side}")
                        synonyms.setdefault(fold(word + w), f"{base}_{side}")
            else:
                synonyms[fold(word)] = standards[fold(base)]
    return AliasTable(MappingProxyType(keys), MappingProxyType(standards), path,
                      MappingProxyType(synonyms))


@lru_cache(maxsize=8)
def _load(path: Path, mtime_ns: int) -> AliasTable:
    from rtqa.constraints.toml_reading import parse_toml
    text = path.read_text(encoding="utf-8")
    try:
        data = parse_toml(text)
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
_EXPANSION = re.compile(r"[+\-]\s*\d+(?:[.,]\d+)?\s*(?:mm|cm)", re.IGNORECASE)


def target_class(name: str) -> str | None:
    """``"GTV"``/``"CTV"``/``"ITV"``/``"PTV"`` if the name starts with it (any case)."""
    m = re.match(r"\s*(GTV|CTV|ITV|PTV)", normalise(name), re.IGNORECASE)
    return m[1].upper() if m else None


def target_like(name: str) -> str | None:
    """The target class a name suggests: it starts with GTV/CTV/ITV/PTV, or has one as a
    separate word (``T10_PTV``, ``Liver GTV``) or glued after a lower-case letter
    (``LiverPTV``)."""
    n = normalise(name)
    cls = target_class(n)
    if cls:
        return cls
    m = (re.search(r"(?:^|[^A-Za-z])(GTV|CTV|ITV|PTV)(?![a-z])", n, re.IGNORECASE)
         or re.search(r"(?<=[a-z])(GTV|CTV|ITV|PTV)", n))
    return m[1].upper() if m else None


def _derived(s: str, table: AliasTable | None) -> bool:
    """An expansion (``PTV+5mm``) or an organ combined with a target (``BRAIN - PTV``)."""
    if _EXPANSION.search(s):
        return True
    parts = [p for p in re.split(r"\s*[+\-&]\s*", s) if re.search(r"[A-Za-z]", p)]
    if len(parts) < 2 or not any(target_like(p) for p in parts):
        return False
    table = table or load_aliases()
    return any(table.lookup(p) for p in parts)


def is_helper(name: str, table: AliasTable | None = None) -> bool:
    """True for optimisation/planning helper names (rules in the module docstring)."""
    s = normalise(name)
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
    if "ring" in low or "avoid" in low or "shell" in low:
        return True
    if "wall" in low and target_like(s):
        return True
    return len(_TARGET_WORD.findall(s)) >= 2 or _derived(s, table)


def _prv(name: str, table: AliasTable) -> str | None:
    name = normalise(name)
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
    """By name alone: ``("organ", std)``, ``("helper", None)``, ``("target", cls)``,
    ``("near", std)`` or ``("unmatched", None)`` (PRVs are organs with a ``_PRV``
    standard name). ``classify_roi`` adds the declared type."""
    table = table or load_aliases()
    if normalise(name).startswith("_"):
        return "helper", None
    std = table.lookup(name)
    if std:
        return "organ", std
    if is_helper(name, table):
        return "helper", None
    cls = target_like(name)
    if cls:
        return "target", cls
    std = _prv(name, table)
    if std:
        return "organ", std
    std = _near(name, table)
    return ("near", std) if std else ("unmatched", None)


@dataclass(frozen=True)
class RoiClass:
    """How one ROI is interpreted. ``kind``: external, organ, prv, target, target-like
    (a target name on an ROI typed otherwise), helper, ignored (by its declared type),
    near (an edited copy of an organ name, never used) or unmatched; ``standard``: the
    TG-263 name (external, organ, prv, near), the target class (target, target-like);
    ``reason``: why, in words."""

    kind: str
    standard: str | None
    reason: str


def classify_roi(name: str, roi_type: str = "", table: AliasTable | None = None) -> RoiClass:
    """Declared type first, then the name (see the module docstring)."""
    table = table or load_aliases()
    t = (roi_type or "").strip().upper()
    typed = f"RTROIInterpretedType {t}" if t else "no RTROIInterpretedType"
    odd = lookalikes(name)
    odd = f"; {odd}" if odd else ""
    if t == "EXTERNAL":
        return RoiClass("external", "External", typed + odd)
    if t in _POINT_OR_DEVICE:
        return RoiClass("ignored", None, f"{typed}: a point or device, never a target or "
                                         "an organ" + odd)
    kind, std = classify(name, table)
    if kind == "organ":
        if "_PRV" in std:
            return RoiClass("prv", std, f"a PRV of {std.split('_PRV')[0]} (never the organ "
                                        "itself)" + odd)
        return RoiClass("organ", std, f"name matches TG-263 {std}" + odd)
    if kind == "helper":
        return RoiClass("helper", None, "helper name (ring, wall, shell, optimisation or "
                                        "derived structure): never a target or organ" + odd)
    if kind == "target":
        if t in TARGET_TYPES or not t:
            why = f"name says {std}" + ("" if not t or t == std else f", {typed}")
            return RoiClass("target", std, why + odd)
        return RoiClass("target-like", std, f"name suggests a {std} but {typed} says it is "
                                            "not a target" + odd)
    if t in TARGET_TYPES:
        return RoiClass("target", t, typed + odd)
    if t and t not in ORGAN_LIKE_TYPES:
        return RoiClass("ignored", None, f"{typed}: not an organ, not a target" + odd)
    if kind == "near":
        return RoiClass("near", std, f"looks like an edited copy of {std}: never used "
                                     "unless mapped" + odd)
    return RoiClass("unmatched", None, "matches no TG-263 name" + odd)


def standard_name(name: str, table: AliasTable | None = None) -> str | None:
    """The TG-263 standard name of one ROI name (organ or PRV), or None."""
    kind, std = classify(name, table)
    return std if kind == "organ" else None


def combined_standard(standard: str) -> str | None:
    """``Lung_L`` -> ``Lungs`` (the TG-263 combined name of a paired organ), else None."""
    m = re.fullmatch(r"(.+)_([LR])", standard)
    return COMBINED.get(m[1]) if m else None


_BONE_WORDS = re.compile(
    r"vertebr|bone|sacrum|sternum|femur|humerus|ilium|scapula|clavicle|skull|mandible|spine"
    r"|(?:^|[^a-z])(?:vb|ribs?)(?:[^a-z]|$)", re.IGNORECASE)


def suggest(name: str, table: AliasTable | None = None) -> tuple[tuple[str, str], ...]:
    """Standard names an unmatched ROI name may stand for, with why: a PRV of an organ, an
    edited copy, a foreign-language synonym (names.toml ``[synonyms]``), an abbreviation
    (the name begins an alias: ``STOM``), a close spelling, a shared word (``OPTIC
    STRUCTURES``). ``("bone", ...)`` for bone names (no protocol organ). At most 4."""
    table = table or load_aliases()
    key = fold(name)
    out: dict[str, str] = {}
    kind, std = classify(name, table)
    if kind == "organ" and std and "_PRV" in std:
        base = std.split("_PRV")[0]
        out[base] = f"a PRV of {base}, not {base} itself"
    elif kind == "near" and std:
        out[std] = f"an edited copy of {std}"
    if key in table.synonyms:
        out.setdefault(table.synonyms[key], "a synonym in names.toml [synonyms]")
    if not out and len(key) >= 3:
        pre = sorted({v for k, v in table.keys.items() if k.startswith(key)})
        for v in pre[:3]:
            out.setdefault(v, f"an abbreviation of {v}")
    if not out and len(key) >= 4:
        for k in difflib.get_close_matches(key, list(table.keys) + list(table.synonyms),
                                           n=3, cutoff=0.8):
            v = table.keys.get(k) or table.synonyms[k]
            out.setdefault(v, f"spelled like {v}")
    if not out and _BONE_WORDS.search(normalise(name)):
        out["bone"] = "a bone structure (no protocol organ)"
    if not out:
        for word in re.findall(r"[a-z]{4,}", normalise(name).casefold()):
            hits = sorted({v for k, v in table.keys.items() if k.startswith(word)})
            for v in hits[:3]:
                out.setdefault(v, f"shares the word '{word}' with {v}")
    return tuple(list(out.items())[:4])


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
    #: ROI name -> how it was interpreted (declared type first)
    classes: Mapping[str, RoiClass] = field(default_factory=lambda: MappingProxyType({}))
    #: ROI name -> RTROIInterpretedType (upper case, "" when absent)
    types: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: unmatched organ-like ROI name -> suggested (standard, why) pairs
    suggestions: Mapping[str, tuple[tuple[str, str], ...]] = field(
        default_factory=lambda: MappingProxyType({}))

    def roi(self, standard: str) -> str | None:
        return self.standard_to_roi.get(standard)

    @property
    def organ_like_unmatched(self) -> tuple[str, ...]:
        """Unmatched ROIs (no name, or an edited copy) typed ORGAN, AVOIDANCE or untyped,
        not helpers: they may be organs the protocol names."""
        return tuple(n for n in self.unmatched
                     if self.types.get(n, "") in ORGAN_LIKE_TYPES
                     and self.classes.get(n) is not None
                     and self.classes[n].kind in ("unmatched", "near"))

    @property
    def target_like(self) -> tuple[str, ...]:
        """ROIs whose name suggests a target but whose declared type says otherwise."""
        return tuple(n for n, c in self.classes.items() if c.kind == "target-like")

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
    ``roi_types``: ROI name -> RTROIInterpretedType (declared type first: an EXTERNAL ROI
    is the External; a target name on an ROI typed otherwise is target-like, not a target).
    """
    table = table or load_aliases()
    names = list(roi_names)
    forced = _overrides(overrides, names, table)
    claimed = {roi: std for std, roi in forced.items()}
    types = {k: (v or "").strip().upper() for k, v in (roi_types or {}).items()}
    exact: dict[str, list[str]] = {}
    near: dict[str, list[str]] = {}
    targets: dict[str, list[str]] = {}
    helpers: list[str] = []
    unmatched: list[str] = []
    classes: dict[str, RoiClass] = {}
    for name in names:
        if name in claimed:
            classes[name] = RoiClass("prv" if "_PRV" in claimed[name] else "organ",
                                     claimed[name], f"--map {claimed[name]}={name}")
            continue
        c = classify_roi(name, types.get(name, ""), table)
        classes[name] = c
        if c.kind == "helper":
            helpers.append(name)
        elif c.kind in ("unmatched", "ignored", "target-like"):
            unmatched.append(name)
        elif c.kind == "near":
            near.setdefault(c.standard, []).append(name)
        elif c.kind == "target":
            targets.setdefault(c.standard, []).append(name)
        else:  # external, organ, prv
            exact.setdefault(c.standard, []).append(name)
    mapped = dict(forced)
    ambiguous: dict[str, tuple[str, ...]] = {}
    for std, rois in exact.items():
        if std in forced:
            unmatched.extend(rois)
            for r in rois:
                classes[r] = RoiClass("unmatched", None, f"not used: --map {std}="
                                      f"{forced[std]} names another ROI for {std}")
        elif len(rois) == 1 and not near.get(std):
            mapped[std] = rois[0]
        else:
            ambiguous[std] = tuple(rois + near.get(std, []))
            for r in ambiguous[std]:
                classes[r] = RoiClass("ambiguous", std, f"one of {len(ambiguous[std])} ROIs "
                                      f"matching {std}: never guessed, choose with --map "
                                      f"{std}=<ROI>")
    for std, rois in near.items():
        if std not in ambiguous:
            unmatched.extend(rois)
    order = {n: i for i, n in reversed(list(enumerate(names)))}
    suggestions = {n: suggest(n, table) for n in unmatched
                   if classes[n].kind in ("unmatched", "near")
                   and types.get(n, "") in ORGAN_LIKE_TYPES}
    return NameMatch(
        standard_to_roi=MappingProxyType(mapped),
        ambiguous=MappingProxyType(ambiguous),
        helpers=tuple(helpers),
        targets=MappingProxyType({k: tuple(v) for k, v in targets.items()}),
        unmatched=tuple(sorted(unmatched, key=lambda n: order.get(n, 0))),
        overridden=frozenset(forced),
        classes=MappingProxyType(classes),
        types=MappingProxyType({n: types.get(n, "") for n in names}),
        suggestions=MappingProxyType(suggestions))


def hidden_in(standard: str, match: NameMatch) -> tuple[tuple[str, str], ...]:
    """(ROI, why) for every ROI of ``match`` in which the protocol organ ``standard``,
    which no ROI matches, may be hidden: an unmatched organ-like ROI suggested as it (or
    as its combined or one-sided form), one that matches no name at all (it may be any
    organ), a PRV of it, or the combined ROI (``Lungs``) of a one-sided name (``Lung_L``).
    Empty: the organ is absent from the plan as far as names can tell."""
    base = standard.split("_PRV")[0]
    related = {base}
    comb = combined_standard(base)
    if comb:
        related.add(comb)
    related.update(f"{b}_{side}" for b, c in COMBINED.items() if c == base for side in "LR")
    out: list[tuple[str, str]] = []
    for roi in match.organ_like_unmatched:
        sug = dict(match.suggestions.get(roi, ()))
        hit = next((why for std, why in sug.items() if std in related), None)
        if hit:
            out.append((roi, hit))
        elif not sug:
            out.append((roi, "matches no TG-263 name: it may be any organ"))
    for std, roi in match.standard_to_roi.items():
        if std.startswith(base + "_PRV") and std != standard:
            out.append((roi, f"a PRV of {base}, not {base} itself"))
        elif comb and std == comb:
            out.append((roi, f"the combined {comb}, not {standard} alone"))
    return tuple(dict.fromkeys(out))


def map_hint(hidden: Mapping[str, tuple[str, str]]) -> str:
    """Words telling the user how to settle ``hidden``: ROI -> (standard, why), from
    ``hidden_in``."""
    parts = [f"'{roi}' ({why}): --map {std}='{roi}' if it is {std}"
             for roi, (std, why) in hidden.items()]
    return ("; ".join(parts) + "; if it is none of the protocol's organs, say what it is "
            "with --roi-type '<ROI>'=CONTROL (a structure no row uses)")


# --- report ----------------------------------------------------------------------------

def _suggest_hint(roi: str, sug: tuple[tuple[str, str], ...]) -> str:
    stds = [std for std, _ in sug if std != "bone"]
    if not stds:
        return f"--map <STANDARD>='{roi}' if it is an organ a protocol row names"
    return " or ".join(f"--map {std}='{roi}'" for std in stds)


def roi_infos(structures, match: NameMatch):
    """``rtqa.results.RoiInfo`` of every ROI (structure-set order): role, reason, hint."""
    from rtqa.results import RoiInfo
    out = []
    for s in structures:
        c = match.classes.get(s.name)
        if c is None:
            continue
        hint = ""
        if c.kind in ("unmatched", "near") and s.name in match.suggestions:
            sug = match.suggestions[s.name]
            hint = _suggest_hint(s.name, sug)
            if sug:
                c = RoiClass(c.kind, c.standard, c.reason + "; may be " + ", ".join(
                    f"{std} ({why})" for std, why in sug))
        elif c.kind == "target-like":
            t = match.types.get(s.name, "") or "ORGAN"
            hint = f"--roi-type '{s.name}'={c.standard} or --roi-type '{s.name}'={t}"
        elif c.kind == "ambiguous":
            hint = f"--map {c.standard}=<ROI>"
        out.append(RoiInfo(s.name, int(s.roi_number), s.interpreted_type.strip(), c.kind,
                           c.standard, c.reason, hint))
    return tuple(out)


def unmatched_checks(match: NameMatch, category: str = "organs at risk"):
    """A WARN row per unmatched organ-like ROI, with the ``--map`` that would use it
    (none when every standard it may be was mapped by the user to another ROI)."""
    from rtqa.results import WARN, Check, Reason
    out = []
    for roi in match.organ_like_unmatched:
        sug = match.suggestions.get(roi, ())
        if sug and all(std in match.overridden for std, _ in sug):
            continue  # the user chose another ROI for what it may be (--map)
        may = ("; may be " + ", ".join(f"{std} ({why})" for std, why in sug)) if sug else \
            ": it may be any organ"
        out.append(Check(
            f"names.unmatched.{roi}", category, WARN,
            "constraints/names.toml (AAPM TG-263 names)", structure=roi, rois=(roi,),
            metric="ROI name", reason=Reason.STRUCTURE_UNRECOGNISED,
            note=(f"organ-like ROI '{roi}' (RTROIInterpretedType "
                  f"{match.types.get(roi) or 'absent'}) matches no TG-263 name and no row "
                  f"uses it{may}; {_suggest_hint(roi, sug)}")))
    return out


#: RTROIInterpretedType values ``--roi-type`` accepts (PS3.3 C.8.8.8 defined terms).
ROI_TYPES = TARGET_TYPES | NEVER_TARGET_TYPES


def retype(structure_set, roi_types: Mapping[str, str]):
    """``structure_set`` with the user's RTROIInterpretedType for some ROIs
    (``--roi-type ROI=TYPE``); raises ``RtqaError`` for an unknown ROI or type."""
    from dataclasses import replace
    names = [s.name for s in structure_set.structures]
    given = {}
    for roi, typ in roi_types.items():
        t = typ.strip().upper()
        if t not in ROI_TYPES:
            raise RtqaError(f"--roi-type {roi}={typ}: not an RTROIInterpretedType (one of "
                            + ", ".join(sorted(ROI_TYPES)) + ")")
        if names.count(roi) != 1:
            raise RtqaError(f"--roi-type {roi}={typ}: the plan has " + (
                f"no ROI named {roi!r}" if not names.count(roi) else
                f"{names.count(roi)} ROIs named {roi!r}; cannot tell them apart"))
        given[roi] = t
    structures = tuple(replace(s, interpreted_type=given[s.name]) if s.name in given else s
                       for s in structure_set.structures)
    return replace(structure_set, structures=structures)

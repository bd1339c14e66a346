"""Lesions of a structure set: target discovery, geometric grouping, organ of each lesion.

Targets
-------
Declared type first (``rtqa.checks.names.classify_roi``): a ROI is a target when its name
suggests one (starts with GTV, CTV, ITV or PTV, or has one as a word: ``T10_PTV``) and it
is untyped or typed GTV/CTV/ITV/PTV, or when its RTROIInterpretedType is GTV, CTV, ITV or
PTV. Types that say what an ROI is not (ISOCENTER, MARKER, CONTROL, AVOIDANCE, ORGAN ...)
are never targets, whatever the name. Helper structures (``zPTV_opt``, ``PTV-GTV``,
rings, walls, shells, expansions: ``rtqa.checks.names.is_helper``) and ROIs whose name is
an organ's are never targets. A ROI without closed contours has no volume and is left
out. When the name's class and the type's disagree the name wins and the lesion carries a
note.

A target-like name on an ROI typed otherwise (``T10_PTV`` typed ORGAN) is never silently
a lesion nor silently dropped (``mistyped_target_checks``): when at least
``CONTAINED_FRACTION`` of its volume lies inside the recognised targets (a composite such
as ``ptv 4 AND 5``, a cropped copy) it is a WARN row; otherwise it could be an untreated
target or the real PTV of a lesion judged on a smaller volume, and the row is NOT
EVALUATED (mandatory) with the hint ``--roi-type ROI=PTV`` (it is a target) or
``--roi-type ROI=ORGAN`` (the type is right). A type given with ``--roi-type`` is the
user's statement: the row is then a WARN naming it.

Grouping (geometry only, never names)
-------------------------------------
Overlaps are computed plane by plane with shapely: on every contour plane of the inner
ROI, the area of its cross-section (even-odd rule, so holes count) intersected with the
outer ROI's cross-section on the same plane (or the outer plane whose slab holds that
z), times the inner plane's slab thickness (``rtqa.dvh.geometry.slabs_for``).

* A target is *inside* another when at least ``CONTAINED_FRACTION`` (90 %) of its volume
  lies in it. Its *parent* is the smallest target, of the same class or an outer one
  (order GTV < CTV < ITV < PTV), that it is inside and that is larger (ties: the outer
  class, then the lower ROI number).
* Each target without a parent is a lesion; the lesion holds it and everything nested
  in it (a GTV with no PTV around it is a lesion of its own; a PTV inside a larger PTV,
  e.g. a boost volume, joins that PTV's lesion).
* A *composite* target (e.g. ``PTV_total``) holds two or more targets of its own class
  that are not nested in each other: it is not a lesion, nothing groups under it, and
  each lesion it holds gets a note.
* A target between ``PARTIAL_FRACTION`` (10 %) and 90 % inside another one is not
  grouped with it; both lesions get a note.

Names
-----
A lesion is named after its outermost ROI with the class prefix and separators removed
(``PTV_Liver`` -> ``Liver``, ``PTV T10`` -> ``T10``). When nothing with a letter remains
(``PTV1``, ``PTV_2``) or two lesions would share a name, the full ROI name is kept. Lesions
are listed in the structure set's ROI order of their outermost ROI.

Organ of a lesion
-----------------
Organ structures are the ROIs matched to a TG-263 standard name (``rtqa.checks.names.match_rois``,
ambiguous matches included: they name the same organ) except External, Skin and PRVs,
plus ROIs whose name says bone (``Vertebra_T10``, ``VB``, ``Sacrum``, ``Ribs``, ...). Organs
are grouped for counting: Lung_L/Lung_R/Lungs -> ``Lung``, Kidney_L/R -> ``Kidney``, bones
-> ``Bone``, other paired organs drop their side. The lesion's core is its innermost class
(its GTVs, else CTVs, ...). The lesion's organ is the organ structure that *contains* it:
the one holding the largest part of the core, if at least ``ORGAN_FRACTION`` (50 %) of it
(volume overlap plane by plane, shapely). Otherwise the organ is ``"unknown"`` (a lymph
node 11 mm outside the liver is not a liver lesion; nearness is never used), with the
nearest organ surface in the note for orientation only. The user names the organ of such
a lesion with ``lesion_organs`` (``--lesion-organ PTV_LN=LymphNode``, by any of the
lesion's ROI names or the lesion's name). Every choice is explained in
``Lesion.organ_note``.

Units: mm, cc.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import shapely

from rtqa.dvh.geometry import slabs_for
from rtqa.errors import RtqaError
from rtqa.checks.names import NameMatch, is_helper
from rtqa.reading.structures import Structure, StructureSet
from rtqa.results import NOT_EVALUATED, WARN, Check, Reason

__all__ = ["Target", "Lesion", "discover_lesions", "find_targets", "group_targets",
           "organ_structures", "organ_group", "organ_of", "lesion_name", "UNKNOWN_ORGAN",
           "mistyped_target_checks"]

CLASS_RANK = {"GTV": 0, "CTV": 1, "ITV": 2, "PTV": 3}
CONTAINED_FRACTION = 0.90
PARTIAL_FRACTION = 0.10
ORGAN_FRACTION = 0.50
#: Slab thickness (mm) given to a ROI drawn on one plane only (overlap fractions of such a
#: ROI do not depend on it; only its volume does).
SINGLE_PLANE_MM = 3.0
UNKNOWN_ORGAN = "unknown"

_NOT_ORGANS = frozenset({"External", "Skin"})
_GROUPS = {"Lungs": "Lung", "Kidneys": "Kidney", "Kidney_Cortex": "Kidney", "Rib": "Bone",
           "Femur_Head": "Bone"}
_BONE_NAME = re.compile(
    r"vertebr|bone|sacrum|sternum|femur|humerus|ilium|scapula|clavicle|skull|mandible|spine"
    r"|(?:^|[^a-z])(?:vb|ribs?)(?:[^a-z]|$)", re.IGNORECASE)


# --- plane geometry ---------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _Planes:
    """Cross-sections of one ROI: plane z, slab faces (mm), shapely geometry, area (mm²)."""

    z: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    geoms: np.ndarray  # object array of shapely geometries
    area: np.ndarray
    bbox: np.ndarray   # (xmin, ymin, zmin, xmax, ymax, zmax)

    @property
    def thickness(self) -> np.ndarray:
        return self.hi - self.lo

    @property
    def volume_mm3(self) -> float:
        return float(np.sum(self.area * self.thickness))


def _even_odd(polys) -> shapely.Geometry:
    geoms = [shapely.make_valid(shapely.Polygon(p)) for p in polys if len(p) >= 3]
    acc = geoms[0] if geoms else shapely.Polygon()
    for g in geoms[1:]:
        acc = shapely.symmetric_difference(acc, g)
    return acc


def _planes(structure: Structure) -> _Planes:
    z = structure.z_planes
    slabs = slabs_for(z, SINGLE_PLANE_MM)
    geoms = np.array([_even_odd(polys) for _, polys in structure.planes] or [], dtype=object)
    area = shapely.area(geoms) if geoms.size else np.zeros(0)
    pts = np.concatenate([p for _, polys in structure.planes for p in polys])
    bbox = np.array([*pts.min(axis=0), slabs.lo.min(), *pts.max(axis=0), slabs.hi.max()])
    return _Planes(z, slabs.lo, slabs.hi, geoms, np.asarray(area, float), bbox)


def _overlap_mm3(inner: _Planes, outer: _Planes) -> float:
    """Volume (mm³) of ``inner`` that lies inside ``outer``, plane by plane."""
    a, b = inner.bbox, outer.bbox
    if np.any(a[:3] > b[3:]) or np.any(b[:3] > a[3:]):
        return 0.0
    n = outer.z.size
    k = np.searchsorted(outer.z, inner.z)
    below, above = np.clip(k - 1, 0, n - 1), np.clip(k, 0, n - 1)
    j = np.where(np.abs(outer.z[below] - inner.z) <= np.abs(outer.z[above] - inner.z),
                 below, above)
    ok = (inner.z >= outer.lo[j] - 1e-3) & (inner.z <= outer.hi[j] + 1e-3)
    if not np.any(ok):
        return 0.0
    inter = shapely.area(shapely.intersection(inner.geoms[ok], outer.geoms[j[ok]]))
    return float(np.sum(inter * inner.thickness[ok]))


def _centroid(p: _Planes) -> np.ndarray:
    w = p.area * p.thickness
    c = shapely.centroid(p.geoms)
    xy = np.column_stack([shapely.get_x(c), shapely.get_y(c)])
    ok = w > 0
    return np.array([*np.average(xy[ok], axis=0, weights=w[ok]),
                     float(np.average(p.z[ok], weights=w[ok]))])


def _surface_distance(p: _Planes, point: np.ndarray) -> float:
    """Distance (mm) from ``point`` to ``p``: 0 inside a cross-section on its own plane."""
    dxy = shapely.distance(p.geoms, shapely.Point(point[0], point[1]))
    dz = np.maximum(np.abs(p.z - point[2]) - 0.5 * p.thickness, 0.0)
    return float(np.min(np.hypot(dxy, dz)))


# --- model ------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Target:
    """One target ROI: name, class (GTV/CTV/ITV/PTV), ROI number, volume (cc, slab
    convention: plane area x slab thickness)."""

    roi: str
    target_class: str
    roi_number: int
    volume_cc: float
    structure: Structure | None = field(default=None, repr=False)


@dataclass(frozen=True, eq=False)
class Lesion:
    """A lesion: its target ROIs (outermost class first, larger first within a class), the
    organ group it lies in (``"Liver"``, ``"Lung"``, ``"Bone"``, ..., ``"unknown"``) and
    why, and notes on its grouping."""

    name: str
    targets: tuple[Target, ...]
    organ: str | None = None
    organ_roi: str | None = None
    organ_note: str = ""
    notes: tuple[str, ...] = ()

    @property
    def roi_names(self) -> tuple[str, ...]:
        return tuple(t.roi for t in self.targets)

    def of_class(self, cls: str) -> tuple[Target, ...]:
        """Targets of class ``cls`` (largest first)."""
        return tuple(t for t in self.targets if t.target_class == cls)

    @property
    def core(self) -> tuple[Target, ...]:
        """The innermost class present: the GTVs, else the CTVs, ITVs or PTVs."""
        for cls in CLASS_RANK:
            found = self.of_class(cls)
            if found:
                return found
        return ()

    @property
    def n_gtv(self) -> int:
        return len(self.of_class("GTV"))


# --- discovery --------------------------------------------------------------------------

def _target_classes(structure_set: StructureSet, name_match: NameMatch):
    """(structure, class by name, class by RTROIInterpretedType) of every ROI that is a
    target by ``rtqa.checks.names.classify_roi`` (declared type first)."""
    from rtqa.checks.names import target_like
    for s in structure_set.structures:
        c = name_match.classes.get(s.name)
        if c is None or c.kind != "target" or is_helper(s.name):
            continue
        typ = s.interpreted_type.strip().upper()
        yield s, target_like(s.name), (typ if typ in CLASS_RANK else None)


def empty_targets(structure_set: StructureSet, name_match: NameMatch) -> list[Structure]:
    """Target ROIs without volume (no contours, or every contour dropped as invalid). A
    lesion cannot be evaluated without them: the caller reports them NOT EVALUATED."""
    return [s for s, _, _ in _target_classes(structure_set, name_match) if not s.has_volume]


def find_targets(structure_set: StructureSet, name_match: NameMatch
                 ) -> tuple[list[Target], dict[int, str]]:
    """Target ROIs with volume, and notes by ROI number (see the module docstring)."""
    out, notes = [], {}
    for s, named, typed in _target_classes(structure_set, name_match):
        cls = named or typed
        if not s.has_volume:
            continue
        if named and typed and named != typed:
            notes[s.roi_number] = (f"{s.name}: name says {named}, RTROIInterpretedType says "
                                   f"{typed}; taken as {named}")
        out.append(Target(s.name, cls, s.roi_number, _planes(s).volume_mm3 / 1000.0, s))
    return out, notes


def _bigger(o: Target, t: Target) -> bool:
    return ((o.volume_cc, CLASS_RANK[o.target_class], -o.roi_number)
            > (t.volume_cc, CLASS_RANK[t.target_class], -t.roi_number))


def group_targets(targets: list[Target], planes: dict[int, _Planes] | None = None
                  ) -> tuple[list[list[Target]], dict[int, list[str]]]:
    """Group targets into lesions by containment. Returns the groups (outermost target
    first) and notes by ROI number."""
    planes = planes or {t.roi_number: _planes(t.structure) for t in targets}
    frac: dict[tuple[int, int], float] = {}
    for t in targets:
        vol = planes[t.roi_number].volume_mm3
        for o in targets:
            if o is not t and vol > 0:
                frac[t.roi_number, o.roi_number] = _overlap_mm3(
                    planes[t.roi_number], planes[o.roi_number]) / vol

    def inside(t: Target, o: Target) -> bool:
        return frac.get((t.roi_number, o.roi_number), 0.0) >= CONTAINED_FRACTION

    notes: dict[int, list[str]] = {t.roi_number: [] for t in targets}
    composite = set()
    for o in targets:
        held = [t for t in targets if t is not o and t.target_class == o.target_class
                and inside(t, o) and _bigger(o, t)]
        if any(not inside(a, b) and not inside(b, a) for a in held for b in held if a is not b):
            composite.add(o.roi_number)
            for t in held:
                notes[t.roi_number].append(
                    f"also inside {o.roi}, which holds several lesions: {o.roi} is not a lesion")
    parent: dict[int, Target] = {}
    for t in targets:
        if t.roi_number in composite:
            continue
        cands = [o for o in targets if o is not t and o.roi_number not in composite
                 and CLASS_RANK[o.target_class] >= CLASS_RANK[t.target_class]
                 and _bigger(o, t) and inside(t, o)]
        if cands:
            parent[t.roi_number] = min(cands, key=lambda o: (o.volume_cc, -CLASS_RANK[
                o.target_class], o.roi_number))

    def root(t: Target) -> Target:
        while t.roi_number in parent:
            t = parent[t.roi_number]
        return t

    groups: dict[int, list[Target]] = {}
    for t in targets:
        if t.roi_number not in composite:
            groups.setdefault(root(t).roi_number, []).append(t)
    for t in targets:
        for o in targets:
            f = frac.get((t.roi_number, o.roi_number), 0.0)
            if (f >= PARTIAL_FRACTION and not composite & {t.roi_number, o.roi_number}
                    and root(t) is not root(o)):
                notes[t.roi_number].append(f"{t.roi} lies {100 * f:.0f}% inside {o.roi} of "
                                           "another lesion: not grouped with it")
    out = [sorted(groups[n], key=lambda t: (-CLASS_RANK[t.target_class], -t.volume_cc,
                                           t.roi_number)) for n in sorted(groups)]
    for g in out:  # the root first: it is the largest of the outermost class
        r = next(t for t in g if t.roi_number not in parent)
        g.remove(r)
        g.insert(0, r)
    return out, notes


def lesion_name(roi: str) -> str:
    """``PTV_Liver`` -> ``Liver``; ``T10_PTV`` -> ``T10``; ``PTV1`` -> ``PTV1`` (nothing
    readable left)."""
    rest = re.sub(r"^\s*(?:GTV|CTV|ITV|PTV)[\s_\-.:]*", "", roi, flags=re.IGNORECASE).strip()
    rest = re.sub(r"[\s_\-.:]+(?:GTV|CTV|ITV|PTV)\s*$", "", rest, flags=re.IGNORECASE).strip()
    return rest if re.search(r"[A-Za-z]", rest) else roi


def _names(roots: list[Target]) -> list[str]:
    short = [lesion_name(t.roi) for t in roots]
    names = [s if short.count(s) == 1 else t.roi for s, t in zip(short, roots)]
    return [n if names.count(n) == 1 else f"{n}#{t.roi_number}" for n, t in zip(names, roots)]


# --- organs -----------------------------------------------------------------------------

def organ_group(standard: str) -> str | None:
    """Organ group used to count organs: ``Lung_L`` -> ``Lung``; None for non-organs."""
    if standard in _NOT_ORGANS or "_PRV" in standard:
        return None
    base = re.sub(r"_[LR]$", "", standard)
    return _GROUPS.get(base, base)


def organ_structures(structure_set: StructureSet, name_match: NameMatch
                     ) -> list[tuple[str, str, Structure]]:
    """(organ group, standard name or ``"bone"``, structure) of every organ structure."""
    std_of = dict(name_match.roi_to_standard)
    for std, rois in name_match.ambiguous.items():
        std_of.update({r: std for r in rois})
    out = []
    for s in structure_set.structures:
        if not s.has_volume or s.interpreted_type.upper() == "EXTERNAL":
            continue
        std = std_of.get(s.name)
        if std is not None:
            group = organ_group(std)
            if group:
                out.append((group, std, s))
        elif s.name in name_match.unmatched and _BONE_NAME.search(s.name):
            out.append(("Bone", "bone", s))
    return out


def organ_of(core: list[_Planes], organs: list[tuple[str, str, Structure, _Planes]]
             ) -> tuple[str, str | None, str]:
    """(organ group, organ ROI, explanation) for a lesion core (see the module docstring):
    the organ containing most of the core, else unknown."""
    if not core or not organs:
        return UNKNOWN_ORGAN, None, "no organ structure to place the lesion in"
    vol = sum(p.volume_mm3 for p in core)
    fracs = [sum(_overlap_mm3(c, op) for c in core) / vol for *_, op in organs]
    k = int(np.argmax(fracs))
    group, std, s, _ = organs[k]
    if fracs[k] >= ORGAN_FRACTION:
        return group, s.name, f"{100 * fracs[k]:.0f}% of the lesion core inside {s.name}"
    w = np.array([p.volume_mm3 for p in core])
    centre = np.average(np.array([_centroid(p) for p in core]), axis=0, weights=w)
    dist = [_surface_distance(op, centre) for *_, op in organs]
    j = int(np.argmin(dist))
    gap = max(dist[j] - (3 * vol / (4 * math.pi)) ** (1 / 3), 0.0)
    inside = (f"; {100 * fracs[k]:.0f}% inside {s.name}" if fracs[k] > 0 else "")
    return UNKNOWN_ORGAN, None, (
        f"not within an organ structure (less than {100 * ORGAN_FRACTION:.0f}% of the core "
        f"inside any{inside}; nearest {organs[j][2].name}, about {gap:.0f} mm from the core's "
        "surface): organ unknown; name it with --lesion-organ")


def _lesion_organ_override(lesion: Lesion, given: dict[str, str]) -> str | None:
    for key in (lesion.name, *lesion.roi_names):
        if key in given:
            return given[key]
    return None


def discover_lesions(structure_set: StructureSet, name_match: NameMatch,
                     lesion_organs: dict[str, str] | None = None) -> list[Lesion]:
    """Every lesion of ``structure_set`` with its targets and organ (module docstring).

    ``name_match``: ``rtqa.checks.names.match_rois`` of the structure set's ROI names (with the
    user's ``--map`` overrides), so that organs and helpers are recognised as elsewhere.
    ``lesion_organs``: lesion name or one of its ROI names -> organ (``--lesion-organ``);
    a key that names no lesion raises ``RtqaError``.
    """
    targets, type_notes = find_targets(structure_set, name_match)
    planes = {t.roi_number: _planes(t.structure) for t in targets}
    groups, notes = group_targets(targets, planes)
    organs = [(g, std, s, _planes(s)) for g, std, s in organ_structures(structure_set, name_match)]
    given = dict(lesion_organs or {})
    out = []
    for name, group in zip(_names([g[0] for g in groups]), groups):
        les = Lesion(name, tuple(group))
        organ, roi, why = organ_of([planes[t.roi_number] for t in les.core], organs)
        named = _lesion_organ_override(les, given)
        if named is not None:
            was = "unknown" if organ == UNKNOWN_ORGAN else f"{organ} by containment"
            organ, roi, why = named, None, f"named by --lesion-organ (geometry: {was}; {why})"
        text = [type_notes[t.roi_number] for t in group if t.roi_number in type_notes]
        text += [n for t in group for n in notes[t.roi_number]]
        if les.n_gtv > 1:
            gtvs = ", ".join(t.roi for t in les.of_class("GTV"))
            text.append(f"{les.n_gtv} GTVs in one lesion ({gtvs}): each counts as a lesion")
        out.append(Lesion(name, tuple(group), organ, roi, why, tuple(dict.fromkeys(text))))
    known = {k for les in out for k in (les.name, *les.roi_names)}
    unused = [k for k in given if k not in known]
    if unused:
        raise RtqaError("--lesion-organ " + ", ".join(f"{k}={given[k]}" for k in unused)
                        + ": no lesion has that name or ROI (lesions: " + ", ".join(
                            f"{les.name} [{', '.join(les.roi_names)}]" for les in out)
                        + ")")
    return out


def mistyped_target_checks(structure_set: StructureSet, name_match: NameMatch,
                           lesions: list[Lesion], source: str,
                           user_types: dict[str, str] | None = None) -> list[Check]:
    """One row per ROI whose name suggests a target but whose declared type says it is not
    one (``T10_PTV`` typed ORGAN): WARN when it lies inside the recognised targets or its
    type was given by the user, else NOT EVALUATED (module docstring)."""
    user_types = user_types or {}
    by_name = {s.name: s for s in structure_set.structures}
    known = [t for les in lesions for t in les.targets]
    roots = [les.targets[0] for les in lesions if les.targets]
    out = []
    for roi in name_match.target_like:
        s = by_name.get(roi)
        if s is None:
            continue
        cls = name_match.classes[roi].standard
        typ = name_match.types.get(roi, "") or "absent"
        base = dict(category="lesions", source=source, structure=roi, rois=(roi,),
                    metric="target interpretation", reason=Reason.TARGET_TYPE_CONFLICT)
        cid = f"lesion.mistyped_target.{roi}"
        hint = (f"if it is a target: --roi-type '{roi}'={cls}; if RTROIInterpretedType "
                f"{typ} is right: --roi-type '{roi}'={typ}")
        if roi in user_types:
            out.append(Check(cid, status=WARN, note=(
                f"name suggests a {cls}; --roi-type gives {typ}: not a target, by the "
                "user's statement"), **base))
            continue
        if not s.has_volume:
            out.append(Check(cid, status=WARN, note=(
                f"name suggests a {cls} but RTROIInterpretedType is {typ}; no volume: "
                "not a target"), **base))
            continue
        p = _planes(s)
        vol = p.volume_mm3
        single = max((_overlap_mm3(p, _planes(t.structure)) for t in known), default=0.0)
        summed = sum(_overlap_mm3(p, _planes(t.structure)) for t in roots)
        frac = min(1.0, max(single, summed) / vol) if vol > 0 else 1.0
        if frac >= CONTAINED_FRACTION:
            out.append(Check(cid, status=WARN, value=round(100 * frac, 1), unit="%", note=(
                f"name suggests a {cls} but RTROIInterpretedType is {typ}: not taken as a "
                f"target; {100 * frac:.0f}% of it lies inside the recognised targets (a "
                f"composite or copy of them); {hint}"), **base))
        else:
            out.append(Check(cid, status=NOT_EVALUATED, value=round(100 * frac, 1), unit="%",
                             note=(
                f"name suggests a {cls} but RTROIInterpretedType is {typ}: only "
                f"{100 * frac:.0f}% of its {vol / 1000:.2f} cc lies inside the recognised "
                "targets, so it may be an untreated target or the real PTV of a lesion "
                f"judged on a smaller volume; not evaluated as either: {hint}"), **base))
    return out


def evaluate_rois(ctx):
    """The ROI-interpretation rows on a plan context (``rtqa.checks.context``): one row
    per target-like ROI typed otherwise (``mistyped_target_checks``, category lesions) and
    a WARN row per unmatched organ-like ROI (``rtqa.checks.names.unmatched_checks``,
    category organs at risk)."""
    from rtqa.checks.context import Evaluation
    from rtqa.checks.names import unmatched_checks
    source = ctx.protocol.lesions.source if ctx.protocol.lesions else "lesion discovery"
    rows = mistyped_target_checks(ctx.structure_set, ctx.names, list(ctx.lesions), source,
                                  dict(ctx.options.roi_types))
    return Evaluation(tuple(rows) + tuple(unmatched_checks(ctx.names)))

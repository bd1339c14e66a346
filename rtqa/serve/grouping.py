"""Knowing when a plan is complete: received instances grouped and linked by UID.

Every instance is described by its linking header (:func:`describe`). Instances are
grouped by PatientID (links are only followed within one patient) and linked:

* **RTPLAN → RTSTRUCT** (ReferencedStructureSetSequence),
* **RTSTRUCT → CT series** (RTReferencedSeriesSequence; the images its
  ContourImageSequence lists must all be there; a series without such a list needs at
  least one image; an RTSTRUCT that names no series needs a CT in its frame of
  reference),
* **RTDOSE → RTPLAN** (ReferencedRTPlanSequence; at least one RTDOSE per plan).

One :class:`PlanSet` per RTPLAN SOP Instance UID (also when only doses referencing it
have arrived: the set then misses its RTPLAN) holds the latest copy of each member and
what is still missing, in words. An RTDOSE that references no RTPLAN is a set of its own
that can never be complete (checked at the deadline, ERROR). The study and frame of
reference of a set are those of its RTSTRUCT (else its plan or dose); the check itself
refuses members in different frames of reference.

When a set is due (:func:`due`): every set whose members include an instance received
after its last check (or never checked) is *pending*; a pending complete set is checked
once nothing new has arrived for its patient for ``settle`` seconds; a pending
incomplete set is checked anyway ``deadline`` seconds after its first new plan or dose
arrived (after its first new member when only structures or images were re-sent), and
its report lists what is missing as errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Instance", "PlanSet", "describe", "due", "plan_sets"]


@dataclass(frozen=True)
class Instance:
    """One received copy of an instance (a receipt), as recorded in the database."""

    seq: int                      # receipt number, increasing
    sha256: str
    path: str                     # its file in the spool
    kind: str                     # RTPLAN, RTDOSE, RTSTRUCT, CT, MR, OTHER
    sop_class: str
    sop_uid: str
    patient_id: str
    study_uid: str = ""
    series_uid: str = ""
    frame_uid: str = ""
    label: str = ""
    refs: tuple[str, ...] = ()    # RTPLAN -> RTSTRUCT, RTDOSE -> RTPLAN, RTSTRUCT -> series
    images: tuple[str, ...] = ()  # RTSTRUCT: SOP Instance UIDs of its contour images
    received: float = 0.0         # time.time() of the receipt
    source: str = ""              # calling AE title, or the watched file


def describe(data: bytes) -> dict:
    """The linking header of an encoded instance (Part 10, or a data set without the Part
    10 header as ``rtqa check`` reads it), as the keyword arguments of :class:`Instance`
    it determines (:func:`rtqa.batch.discovery.link_fields`, shared with ``rtqa
    batch``). Raises ValueError when it cannot be read or has no SOP Class or SOP
    Instance UID."""
    from rtqa.batch.discovery import link_fields, read_link_dataset
    try:
        ds, _bare = read_link_dataset(data)
        fields = link_fields(ds)
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on broken input
        raise ValueError(f"unreadable DICOM header ({type(exc).__name__}: {exc})") from None
    if not fields["sop_class"] or not fields["sop_uid"]:
        raise ValueError("no SOPClassUID or SOPInstanceUID")
    return fields


@dataclass
class PlanSet:
    """The instances one plan needs, and what is still missing."""

    key: str                      # the RTPLAN SOP Instance UID ("dose:<uid>" for a dose
    #                               that references no plan)
    patient_id: str
    label: str = ""
    study_uid: str = ""
    frame_uid: str = ""
    members: list[Instance] = field(default_factory=list)  # latest copy of each
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)       # notes on re-sent instances

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def max_seq(self) -> int:
        return max((m.seq for m in self.members), default=0)


def _short(uid: str) -> str:
    return uid if len(uid) <= 24 else "…" + uid[-16:]


def plan_sets(instances: list[Instance]) -> list[PlanSet]:
    """Every plan set of the received instances (see the module docstring)."""
    latest: dict[tuple[str, str], Instance] = {}
    copies: dict[tuple[str, str], set[str]] = {}
    for inst in sorted(instances, key=lambda i: i.seq):
        k = (inst.patient_id, inst.sop_uid)
        latest[k] = inst
        copies.setdefault(k, set()).add(inst.sha256)
    by_patient: dict[str, list[Instance]] = {}
    for inst in latest.values():
        by_patient.setdefault(inst.patient_id, []).append(inst)
    out: list[PlanSet] = []
    for pid, items in sorted(by_patient.items()):
        plans = {i.sop_uid: i for i in items if i.kind == "RTPLAN"}
        structs = {i.sop_uid: i for i in items if i.kind == "RTSTRUCT"}
        doses = [i for i in items if i.kind == "RTDOSE"]
        images = {i.sop_uid: i for i in items if i.kind in ("CT", "MR")}
        series: dict[str, list[Instance]] = {}
        for im in images.values():
            series.setdefault(im.series_uid, []).append(im)
        keys = list(plans) + [r for d in doses for r in d.refs if r not in plans]
        keys = list(dict.fromkeys(keys))
        for d in doses:
            if not d.refs:
                keys.append("dose:" + d.sop_uid)
        for key in keys:
            s = PlanSet(key=key, patient_id=pid)
            plan = plans.get(key)
            if key.startswith("dose:"):
                dose_list = [d for d in doses if d.sop_uid == key[5:]]
                s.missing.append("RTPLAN (the RTDOSE references none)")
            else:
                dose_list = [d for d in doses if key in d.refs]
            s.members += sorted(dose_list, key=lambda d: d.sop_uid)
            struct = None
            if plan is None and not key.startswith("dose:"):
                s.missing.append(f"RTPLAN {key} (referenced by the RTDOSE)")
            if plan is not None:
                s.members.insert(0, plan)
                s.label = plan.label
                if not plan.refs:
                    s.missing.append("RTSTRUCT (the RTPLAN references none)")
                for ref in plan.refs:
                    if ref in structs:
                        struct = struct or structs[ref]
                    else:
                        s.missing.append(f"RTSTRUCT {ref} (referenced by the RTPLAN)")
                if not dose_list:
                    s.missing.append("RTDOSE referencing the RTPLAN")
            if struct is not None:
                s.members.append(struct)
                s.members += _images(struct, series, images, s.missing)
            anchor = struct or plan or (dose_list[0] if dose_list else None)
            if anchor is not None:
                s.study_uid, s.frame_uid = anchor.study_uid, anchor.frame_uid
            if not s.label:
                s.label = plan.label if plan else "RTDOSE without RTPLAN"
            for m in s.members:
                n = len(copies[(pid, m.sop_uid)])
                if n > 1:
                    s.changed.append(f"{m.kind} {_short(m.sop_uid)} was received with "
                                     f"{n} different contents; the latest copy is checked")
            out.append(s)
    return out


def _images(struct: Instance, series: dict[str, list[Instance]],
            images: dict[str, Instance], missing: list[str]) -> list[Instance]:
    members: list[Instance] = []
    if not struct.refs:
        in_frame = [i for i in images.values() if i.frame_uid == struct.frame_uid]
        if not in_frame:
            missing.append("planning CT (the RTSTRUCT names no series and no CT of its "
                           "frame of reference has arrived)")
        return sorted(in_frame, key=lambda i: i.sop_uid)
    for uid in struct.refs:
        present = series.get(uid, [])
        members += present
        if not struct.images and not present:
            missing.append(f"CT series {uid} (referenced by the RTSTRUCT)")
    if struct.images:
        absent = [u for u in struct.images if u not in images]
        if absent:
            missing.append(f"{len(absent)} of {len(struct.images)} CT images listed by the "
                           f"RTSTRUCT (series {', '.join(struct.refs) or '?'})")
        have = {i.sop_uid for i in members}
        members += [images[u] for u in struct.images if u in images and u not in have]
    return sorted(members, key=lambda i: i.sop_uid)


def due(s: PlanSet, last_max_seq: int, patient_last: float, now: float,
        settle: float, deadline: float) -> str | None:
    """Why ``s`` is to be checked now ("complete" or "deadline"), or None.

    ``last_max_seq``: the highest receipt number its last check covered (0: never
    checked); ``patient_last``: time of the latest receipt for its patient."""
    new = [m for m in s.members if m.seq > last_max_seq]
    if not new:
        return None
    if s.complete:
        return "complete" if now - patient_last >= settle else None
    anchors = [m.received for m in new if m.kind in ("RTPLAN", "RTDOSE")]
    since = min(anchors) if anchors else min(m.received for m in new)
    return "deadline" if now - since >= deadline else None

"""``rtqa batch`` with the ``rtqa check`` options it shares (--sum-plans, --roi-type,
--lesion-organ, --plan, --delivery, --end-caps): each gives the same report, row for row,
as ``rtqa check`` with the same option on the same export; and discovery reads data sets
written without the Part 10 header, whatever their file names, as ``rtqa check`` does.

Each export is a small variant of a sample case (about 1 s per check); both commands run
through their command-line interfaces.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from batch_helpers import KEEP, bare_dataset, small
from click.testing import CliRunner

import e2e_cases as e2e
from rtqa.batch import discover
from rtqa.batch.model import CheckSettings
from rtqa.checks.options import check_options
from rtqa.cli.batch import batch
from rtqa.cli.check import check
from rtqa.sample import hcc_pass, write_case


def _rows(doc: dict) -> list[tuple]:
    return [(c["id"], c["status"], c["value"], c["reason"]) for c in doc["checks"]]


def _check_cli(folder: Path, args: list[str], tmp: Path) -> dict:
    tmp.mkdir(parents=True, exist_ok=True)
    out = tmp / "check.json"
    res = CliRunner().invoke(check, [str(folder), "--json", str(out), "-q", *args])
    assert res.exit_code in (0, 1, 2), res.output
    doc = json.loads(out.read_text())
    doc["exit_code"] = res.exit_code
    return doc


def _batch_cli(root: Path, args: list[str], tmp: Path) -> dict:
    out = tmp / "batch-out"
    res = CliRunner().invoke(batch, [str(root), "--out", str(out), "-q", "--workers", "1",
                                     *args])
    summary = json.loads((out / "summary.json").read_text())
    (row,) = summary["plans"]
    doc = json.loads((out / "plans" / f"{row['name']}.json").read_text())
    doc["exit_code"] = res.exit_code
    doc["summary"] = summary
    return doc


def _node_case():
    """The lymph-node case, small (the node is kept as a lesion)."""
    case = e2e.node_outside_liver()
    plans = tuple(replace(p, grid=replace(p.grid, spacing_mm=(6.0,) * 3),
                          targets=tuple(t for t in p.targets
                                        if t.lesion in ("Liver", "T10", "LN")))
                  for p in case.plans)
    return replace(case, name="o-node", seed="o-node", patient_id="OPT-NODE", plans=plans,
                   contour_spacing_mm=4.0, min_contour_points=12,
                   structures=tuple(s for s in case.structures if s.name in KEEP),
                   lesions=tuple(les for les in case.lesions
                                 if les.name in ("Liver", "T10", "LN")))


def _write(kind: str, folder: Path) -> Path:
    if kind == "alternatives":
        write_case(small(e2e.alternative_plans(), "o-alt", "OPT-ALT"), folder)
    elif kind == "mistyped":
        write_case(small(e2e.mistyped_target_and_ring(), "o-typ", "OPT-TYP"), folder)
        e2e.retype_roi(folder, "T10_PTV", "ORGAN")
    elif kind == "node":
        write_case(_node_case(), folder)
    else:
        write_case(small(hcc_pass(), "o-pass", "OPT-PASS"), folder)
    return folder


# (export, option arguments, the same export's report without them must differ)
CASES = {
    "sum-plans": ("alternatives", ["--sum-plans"]),
    "plan": ("alternatives", ["--plan", "SBRT_5fx_v2"]),
    "delivery": ("alternatives", ["--sum-plans", "--delivery", "sequential"]),
    "roi-type": ("mistyped", ["--roi-type", "T10_PTV=PTV"]),
    "lesion-organ": ("node", ["--lesion-organ", "PTV_LN=LymphNode"]),
    "end-caps": ("pass", ["--end-caps", "none"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_batch_with_an_option_reports_as_check_with_it(name, tmp_path):
    kind, args = CASES[name]
    root = tmp_path / "root"
    folder = _write(kind, root / "export")
    base = ["--sum-plans"] if name == "delivery" else []
    by_check = _check_cli(folder, args, tmp_path / "c1")
    by_batch = _batch_cli(root, args, tmp_path / "b1")
    assert by_batch["status"] == by_check["status"]
    assert by_batch["exit_code"] == by_check["exit_code"]
    assert _rows(by_batch) == _rows(by_check)
    assert by_batch["conventions"] == by_check["conventions"]
    # the option changed the report: it reached the batch worker
    without = _check_cli(folder, base, tmp_path / "c0")
    assert _rows(without) != _rows(by_check)
    # the batch records it (summary and settings fingerprint)
    settings = by_batch["summary"]["settings"]
    flag = args[0].lstrip("-").replace("-", "_")
    key = {"roi_type": "roi_types", "lesion_organ": "lesion_organs"}.get(flag, flag)
    assert key in settings


def test_settings_give_the_check_options_by_keyword():
    s = CheckSettings(protocol="oligo-hcc", constraints=("x.toml",),
                      overrides=(("Heart", "Herz"),), sum_plans=True, delivery="sequential",
                      end_caps="none", plan="P2", roi_types=(("T10_PTV", "PTV"),),
                      lesion_organs=(("PTV_LN", "LymphNode"),))
    o = s.options()
    assert (o.protocol, o.constraints, o.fractions, o.overrides) == \
        ("oligo-hcc", ("x.toml",), None, {"Heart": "Herz"})
    assert (o.sum_plans, o.delivery, o.end_caps, o.plan) == (True, "sequential", "none", "P2")
    assert o.roi_types == {"T10_PTV": "PTV"} and o.lesion_organs == {"PTV_LN": "LymphNode"}
    assert CheckSettings().options() == check_options()
    assert CheckSettings().check_args() == {}
    assert s.check_args() == {"sum_plans": True, "delivery": "sequential", "end_caps": "none",
                              "plan": "P2", "roi_types": [["T10_PTV", "PTV"]],
                              "lesion_organs": [["PTV_LN", "LymphNode"]]}
    with pytest.raises(ValueError):
        check_options(end_caps="full")
    with pytest.raises(ValueError):
        check_options(delivery="weekly")


def test_batch_refuses_a_malformed_option(tmp_path):
    res = CliRunner().invoke(batch, [str(tmp_path), "--roi-type", "T10_PTV", "-q"])
    assert res.exit_code == 2 and "--roi-type" in res.output


# --- data sets without the Part 10 header --------------------------------------------

def _bare(path: Path, dest: Path, implicit: bool) -> bytes:
    """Write ``path``'s data set alone (no preamble, 'DICM' or File Meta) to ``dest``."""
    data = bare_dataset(path, implicit)
    dest.write_bytes(data)
    if dest != path:
        path.unlink()
    return data


@pytest.fixture(scope="module")
def bare_tree(tmp_path_factory):
    """One small plan written twice: as Part 10 files, and as data sets without header
    under names without .dcm (implicit VR for the RT objects, explicit for the CT)."""
    root = tmp_path_factory.mktemp("bare")
    ref = write_case(small(hcc_pass(), "o-bare", "OPT-BARE"), root / "part10" / "x")
    r = write_case(small(hcc_pass(), "o-bare", "OPT-BARE"), root / "bare" / "x")
    folder = Path(r["outdir"])
    for i, f in enumerate(r["ct"]):
        _bare(Path(f), folder / f"IMG{i:04d}", implicit=False)
    _bare(Path(r["rtstruct"]), folder / "structures", implicit=True)
    _bare(Path(r["plans"][0]["rtplan"]), folder / "plan.bin", implicit=True)
    _bare(Path(r["plans"][0]["rtdose"][0]), folder / "DOSE", implicit=True)
    # a file that only resembles a data set without header: cut short, not named .dcm
    data = (folder / "DOSE").read_bytes()
    (folder / "DOSE.partial").write_bytes(data[:len(data) // 2])
    return root, ref


def test_discovery_reads_data_sets_without_header_whatever_their_names(bare_tree):
    root, ref = bare_tree
    part10 = discover(root / "part10")
    bare = discover(root / "bare")
    assert bare.n_dicom == part10.n_dicom == len(ref["files"])
    (u,) = bare.units
    (v,) = part10.units
    assert (u.plan_uids, u.dose_uids, u.rtstruct_uids, u.ct_series_uids) == \
        (v.plan_uids, v.dose_uids, v.rtstruct_uids, v.ct_series_uids)
    assert sorted(u.kinds) == sorted(v.kinds) and not u.problem
    assert not any(f.endswith("DOSE.partial") for f in u.files)     # not DICOM: ignored
    assert bare.unassigned == []


@pytest.mark.slow
def test_batch_of_data_sets_without_header_reports_as_check(bare_tree, tmp_path):
    root, _ = bare_tree
    by_batch = _batch_cli(root / "bare", [], tmp_path / "b")
    by_check = _check_cli(root / "bare" / "x", [], tmp_path / "c")
    by_part10 = _check_cli(root / "part10" / "x", [], tmp_path / "p")
    assert by_batch["status"] == by_check["status"] == by_part10["status"]
    assert _rows(by_batch) == _rows(by_check) == _rows(by_part10)
    assert any("not a DICOM Part 10 file" in w for w in by_batch["warnings"])

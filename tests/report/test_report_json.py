"""JSON report (schema rtqa-report/2): layout, schema validation, determinism, nulls for
non-finite numbers, fail-closed consistency check; and atomic report writing."""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import datetime, timezone
from importlib import resources

import jsonschema
import pytest

from report_fixtures import (
    NONASCII, SCRIPT, error_report, hcc_report, hostile_report, passing_report,
)
from rtqa.report import atomic
from rtqa.report.atomic import write_atomic
from rtqa.errors import RtqaError
from rtqa.report.json_report import TOP_LEVEL_KEYS, check_report, dumps, schema_path, to_dict
from rtqa.results import (
    FAIL, PASS, SCHEMA, Check, Curve, DoseFileInfo, InputFile, LesionResult, PlanInfo, Report,
    RoiInfo, StructureInfo,
)

#: How the ROIs of a plan were interpreted (Report.rois), for the schema tests.
ROIS = (RoiInfo("PTV_L1", 4, "PTV", "target", "PTV", "name says PTV"),
        RoiInfo("PTV1_WALL", 9, "ORGAN", "helper", None, "helper name"),
        RoiInfo("ptv4", 10, "ISOCENTER", "ignored", None, "RTROIInterpretedType ISOCENTER"),
        RoiInfo("Herz", 11, "ORGAN", "unmatched", None, "matches no TG-263 name; may be "
                "Heart", "--map Heart='Herz'"))

ALL_REPORTS = [hcc_report, passing_report, error_report, hostile_report]


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema,
                                           format_checker=jsonschema.FormatChecker())


# --- schema ------------------------------------------------------------------------

@pytest.mark.parametrize("make", ALL_REPORTS, ids=lambda f: f.__name__)
def test_full_report_validates_against_schema(validator, make):
    doc = json.loads(dumps(make()))
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_schema_is_package_data():
    shipped = resources.files("rtqa.report") / "schema" / "rtqa-report-2.json"
    assert shipped.is_file()
    assert json.loads(shipped.read_text(encoding="utf-8"))["properties"]["schema"]["const"] == SCHEMA


def test_schema_documents_every_field():
    schema = json.loads(schema_path().read_text(encoding="utf-8"))

    def walk(props, where):
        for name, spec in props.items():
            has = "description" in spec or ("$ref" in spec and name == "status")
            assert has, f"{where}.{name} has no description"
            yield f"{where}.{name}"
            items = spec.get("items", {})
            if "properties" in spec:
                yield from walk(spec["properties"], f"{where}.{name}")
            if "properties" in items:
                yield from walk(items["properties"], f"{where}.{name}[]")

    fields = list(walk(schema["properties"], "$"))
    assert len(fields) >= 59
    assert tuple(schema["required"]) == TOP_LEVEL_KEYS
    assert list(schema["properties"]) == list(TOP_LEVEL_KEYS)


def test_schema_records_match_the_result_model():
    """A field added to rtqa/results.py must be added to the JSON and its schema."""
    schema = json.loads(schema_path().read_text(encoding="utf-8"))["properties"]
    model = {"plans": PlanInfo, "doses": DoseFileInfo, "lesions": LesionResult, "checks": Check,
             "structures": StructureInfo, "inputs": InputFile}
    doc = to_dict(hcc_report(rois=ROIS))
    model["rois"] = RoiInfo
    for key, cls in model.items():
        fields = {f.name for f in dataclasses.fields(cls)}
        documented = list(schema[key]["items"]["properties"])
        assert set(documented) == fields, key
        assert set(schema[key]["items"]["required"]) == fields, key
        assert list(doc[key][0]) == documented, key     # JSON key order = schema order
    report_fields = {f.name for f in dataclasses.fields(Report)}
    curve_fields = {f.name for f in dataclasses.fields(Curve)}
    assert set(schema["curves"]["items"]["properties"]) == curve_fields
    assert report_fields | {"schema"} == set(TOP_LEVEL_KEYS)


def test_rois_validate_and_keep_their_order(validator):
    doc = json.loads(dumps(hcc_report(rois=ROIS)))
    assert not list(validator.iter_errors(doc))
    assert [(r["name"], r["role"], r["roi_number"]) for r in doc["rois"]] == [
        ("PTV_L1", "target", 4), ("PTV1_WALL", "helper", 9), ("ptv4", "ignored", 10),
        ("Herz", "unmatched", 11)]
    assert doc["rois"][3]["hint"] == "--map Heart='Herz'"
    doc["rois"][0]["role"] = "lesion"       # not a role of the result model
    assert not validator.is_valid(doc)


def test_schema_rejects_unknown_status(validator):
    doc = to_dict(hcc_report())
    doc["checks"][0]["status"] = "OK"
    assert not validator.is_valid(doc)
    doc = to_dict(hcc_report())
    doc["extra"] = 1
    assert not validator.is_valid(doc)


# --- layout ------------------------------------------------------------------------

def test_top_level_keys_in_fixed_order():
    doc = json.loads(dumps(hcc_report()))
    assert tuple(doc) == TOP_LEVEL_KEYS
    assert doc["schema"] == "rtqa-report/2"
    assert doc["status"] == "FAIL"
    assert doc["protocol"] == {"name": "oligo-hcc",
                               "path": "constraints/protocols/oligo-hcc.toml",
                               "source": hcc_report().protocol["source"]}


def test_records_keep_their_order_and_content():
    report = hcc_report()
    doc = to_dict(report)
    assert [c["id"] for c in doc["checks"]] == [c.id for c in report.checks]
    assert [s["name"] for s in doc["structures"]] == [s.name for s in report.structures]
    les = doc["lesions"][2]
    assert les["plans"] == ["LIVER_SBRT", "PVTT_BOOST"] and les["fractions"] == [4, 5]
    assert les["dose_gy"] is None and les["bed_gy"] == 58.71 and les["status"] == FAIL
    duo = next(c for c in doc["checks"] if c["id"] == "oar.tg101.Duodenum.D5cc")
    assert duo == {"id": "oar.tg101.Duodenum.D5cc", "category": "organs at risk",
                   "structure": "Duodenum", "rois": ["Duodenum"], "metric": "D5cc[Gy]",
                   "value": 19.84, "unit": "Gy", "limit": "< 18", "status": "FAIL",
                   "source": "Benedict et al. Med Phys 2010;37(8):4078, Table III",
                   "note": "Volume max dose: less than 5 cc may reach the limit (5 fx row).",
                   "priority": "mandatory", "dose_view": "physical", "alpha_beta": None,
                   "plans": ["LIVER_SBRT"], "fractions": [5], "reason": None,
                   "derivation": None}
    assert doc["inputs"][0]["sha256"] == report.inputs[0].sha256
    assert doc["conventions"] == report.conventions


def test_curves_are_in_the_json():
    report = hcc_report()
    doc = json.loads(dumps(report))
    assert list(doc)[-2:] == ["curves", "overview"] and len(doc["curves"]) == len(report.curves)
    assert [c["name"] for c in doc["overview"]] == [c.name for c in report.overview]
    assert len(doc["overview"]) == 11 and all(not c["marks"] for c in doc["overview"])
    for cv, out in zip(report.curves, doc["curves"]):
        assert out["name"] == cv.name and out["dose_gy"] == list(cv.dose_gy)
        assert out["volume_pct"] == list(cv.volume_pct)
        assert [(m["dose_gy"], m["volume_pct"], m["label"], m["status"])
                for m in out["marks"]] == [tuple(m) for m in cv.marks]


def test_text_format_indent_unicode_final_newline():
    text = dumps(hostile_report())
    assert text.endswith("}\n")
    assert text.startswith('{\n  "schema": "rtqa-report/2",\n  "status": "FAIL",')
    assert NONASCII in text and "\\u00c5" not in text          # ensure_ascii=False
    assert json.loads(text)["checks"][-3]["structure"] == SCRIPT


# --- determinism -------------------------------------------------------------------

def test_two_renders_differ_only_in_created():
    report = hcc_report(created="")
    a = dumps(report, now=datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    b = dumps(report, now=datetime(2026, 6, 7, 8, 9, 10, tzinfo=timezone.utc))
    assert a != b
    da, db = json.loads(a), json.loads(b)
    assert da.pop("created") == "2025-01-02T03:04:05+00:00"
    assert db.pop("created") == "2026-06-07T08:09:10+00:00"
    assert da == db
    assert [x for x in a.splitlines() if '"created"' not in x] == \
           [x for x in b.splitlines() if '"created"' not in x]


def test_same_report_renders_identically():
    assert dumps(hcc_report()) == dumps(hcc_report())
    assert json.loads(dumps(hcc_report()))["created"] == "2025-03-14T09:26:53+00:00"


def test_created_defaults_to_now_utc():
    created = to_dict(hcc_report(created=""))["created"]
    stamp = datetime.fromisoformat(created)
    assert stamp.tzinfo is not None
    assert abs((datetime.now(timezone.utc) - stamp).total_seconds()) < 60


def test_version_defaults_to_this_rtqa():
    import rtqa
    assert to_dict(hcc_report(rtqa_version=""))["rtqa_version"] == rtqa.__version__


# --- non-finite numbers ------------------------------------------------------------

def test_nan_and_infinity_become_null(validator):
    r = hcc_report()
    nan, inf = float("nan"), float("inf")
    checks = (dataclasses.replace(r.checks[0], value=nan),
              dataclasses.replace(r.checks[1], value=-inf)) + r.checks[2:]
    report = dataclasses.replace(
        r, checks=checks,
        plans=(dataclasses.replace(r.plans[0], prescription_gy=inf),) + r.plans[1:],
        lesions=(dataclasses.replace(r.lesions[0], bed_gy=nan, dose_gy=nan),) + r.lesions[1:],
        structures=(dataclasses.replace(r.structures[0], min_gy=nan, volume_cc=inf),),
        conventions={"nested": {"x": [1.5, nan, inf]}, "text": "ok"})
    text = dumps(report)
    assert "NaN" not in text and "Infinity" not in text
    doc = json.loads(text)
    assert doc["checks"][0]["value"] is None and doc["checks"][1]["value"] is None
    assert doc["plans"][0]["prescription_gy"] is None
    assert doc["lesions"][0]["bed_gy"] is None and doc["lesions"][0]["dose_gy"] is None
    assert doc["structures"][0]["min_gy"] is None and doc["structures"][0]["volume_cc"] is None
    assert doc["structures"][0]["mean_gy"] == r.structures[0].mean_gy
    assert doc["conventions"]["nested"]["x"] == [1.5, None, None]
    assert validator.is_valid(doc)


def test_numpy_numbers_are_plain_json():
    np = pytest.importorskip("numpy")
    r = hcc_report()
    report = dataclasses.replace(
        r, checks=(dataclasses.replace(r.checks[0], value=np.float32("nan")),
                   dataclasses.replace(r.checks[1], value=np.float64(1.25))) + r.checks[2:],
        plans=(dataclasses.replace(r.plans[0], fractions=np.int64(4)),) + r.plans[1:])
    doc = json.loads(dumps(report))
    assert doc["checks"][0]["value"] is None and doc["checks"][1]["value"] == 1.25
    assert doc["plans"][0]["fractions"] == 4


def test_non_json_convention_is_refused():
    with pytest.raises(TypeError, match="conventions.bad"):
        to_dict(hcc_report(conventions={"bad": object()}))


# --- fail closed -------------------------------------------------------------------

def test_overall_status_milder_than_the_checks_is_refused():
    with pytest.raises(ValueError, match="imply FAIL"):
        dumps(hcc_report(status="PASS"))
    with pytest.raises(ValueError, match="imply ERROR"):
        dumps(hcc_report(status="FAIL", errors=("plan/RD.dcm: unreadable",)))
    with pytest.raises(ValueError, match="imply ERROR"):
        dumps(dataclasses.replace(error_report(), status="FAIL"))


def test_lesion_failure_counts_even_without_a_check_row():
    r = passing_report()
    lesions = r.lesions[:2] + (dataclasses.replace(r.lesions[2], status=FAIL),)
    with pytest.raises(ValueError, match="imply FAIL"):
        check_report(dataclasses.replace(r, lesions=lesions))


def test_stricter_status_and_optimal_failures_are_accepted():
    check_report(hcc_report(status="ERROR"))            # stricter than implied: allowed
    report = passing_report()
    assert any(c.status == FAIL and c.priority == "optimal" for c in report.checks)
    assert to_dict(report)["status"] == PASS


@pytest.mark.parametrize("field, value", [("status", "OK"), ("category", "dose"),
                                          ("priority", "required")])
def test_values_outside_the_model_are_refused(field, value):
    r = hcc_report()
    bad = dataclasses.replace(r.checks[0], **{field: value})
    with pytest.raises(ValueError, match=field):
        dumps(dataclasses.replace(r, checks=(bad,) + r.checks[1:]))


def test_unknown_overall_status_is_refused():
    with pytest.raises(ValueError, match="overall status"):
        dumps(hcc_report(status="OK"))


# --- atomic writing ----------------------------------------------------------------

def test_write_atomic_writes_and_replaces(tmp_path):
    out = tmp_path / "report.json"
    assert write_atomic(out, dumps(hcc_report())) == out.resolve()
    assert json.loads(out.read_text(encoding="utf-8"))["status"] == "FAIL"
    write_atomic(out, b"second")
    assert out.read_bytes() == b"second"
    assert os.listdir(tmp_path) == ["report.json"]


def test_write_atomic_file_mode_follows_umask(tmp_path):
    old = os.umask(0o022)
    try:
        out = write_atomic(tmp_path / "r.html", "x")
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o644


def test_write_atomic_refuses_an_input_file(tmp_path, monkeypatch):
    src = tmp_path / "plan" / "RP.dcm"
    src.parent.mkdir()
    src.write_bytes(b"DICM original")
    monkeypatch.chdir(tmp_path)
    for target in (src, "plan/RP.dcm", tmp_path / "plan" / ".." / "plan" / "RP.dcm"):
        with pytest.raises(RtqaError, match="refusing to overwrite an input") as err:
            write_atomic(target, "report", refuse={str(src)})
        assert str(target) in str(err.value)
    # the refused path given relatively, the target absolutely
    with pytest.raises(RtqaError):
        write_atomic(src, "report", refuse=["plan/RP.dcm"])
    # through a symbolic link and a hard link
    (tmp_path / "link.json").symlink_to(src)
    os.link(src, tmp_path / "hard.json")
    for target in (tmp_path / "link.json", tmp_path / "hard.json"):
        with pytest.raises(RtqaError, match="input"):
            write_atomic(target, "report", refuse=[src])
    assert src.read_bytes() == b"DICM original"
    assert sorted(os.listdir(tmp_path / "plan")) == ["RP.dcm"]
    assert sorted(os.listdir(tmp_path)) == ["hard.json", "link.json", "plan"]


def test_write_atomic_leaves_no_temp_file_on_error(tmp_path, monkeypatch):
    out = tmp_path / "report.html"
    out.write_text("previous report")

    def broken_replace(a, b):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", broken_replace)
    with pytest.raises(RtqaError, match="No space left") as err:
        write_atomic(out, "new report")
    assert str(out) in str(err.value)
    assert out.read_text() == "previous report"
    assert os.listdir(tmp_path) == ["report.html"]


def test_write_atomic_interrupted_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "report.json", "{}")
    assert os.listdir(tmp_path) == []


def test_write_atomic_bad_destinations(tmp_path):
    with pytest.raises(RtqaError, match="folder"):
        write_atomic(tmp_path, "x")
    with pytest.raises(RtqaError, match="cannot write") as err:
        write_atomic(tmp_path / "missing" / "r.json", "x")
    assert "missing" in str(err.value)
    with pytest.raises(TypeError):
        write_atomic(tmp_path / "r.json", 42)
    assert os.listdir(tmp_path) == []


def test_exported_curves_carry_their_dose_view_as_fields(fail_dir):
    """Review finding: an EQD2 curve said so only in its name. Each EQD2 row of the
    failing sample is marked on a curve whose structured fields give EQD2 and the row's
    α/β; physical curves and the overview have dose_view physical, alpha_beta null."""
    import json as _json

    from rtqa.api import check
    from rtqa.report.json_report import dumps
    from rtqa.results import Category

    report = check(fail_dir)
    data = _json.loads(dumps(report))
    eqd2_rows = [c for c in report.checks if str(c.dose_view) == "EQD2" and c.value is not None
                 and c.category == Category.OARS]
    assert eqd2_rows
    for row in eqd2_rows:
        label = f"{row.metric} {row.limit}"
        hits = [cv for cv in data["curves"] if any(m["label"] == label for m in cv["marks"])
                and cv["name"].startswith(row.structure)]
        assert any(cv["dose_view"] == "EQD2" and cv["alpha_beta"] == row.alpha_beta
                   for cv in hits), (row.id, [(h["name"], h["dose_view"]) for h in hits])
    assert all(cv["alpha_beta"] is None for cv in data["curves"]
               if cv["dose_view"] == "physical")
    assert {cv["dose_view"] for cv in data["overview"]} == {"physical"}


# --- the fast indented writer is json.dumps(indent=2), character for character ---------

from hypothesis import given, settings, strategies as st  # noqa: E402

from rtqa.report.json_report import _dumps_indented  # noqa: E402


def _std(doc) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False)


@pytest.mark.parametrize("make", [hcc_report, hostile_report, passing_report, error_report])
def test_fast_writer_gives_json_dumps_text(make):
    doc = to_dict(make())
    assert _dumps_indented(doc) == _std(doc)


_leaf = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                                                                  allow_infinity=False)
         | st.text())
_doc = st.recursive(_leaf, lambda kids: st.lists(kids, max_size=5)
                    | st.tuples(kids, kids)
                    | st.dictionaries(st.text(max_size=6), kids, max_size=5), max_leaves=40)


@settings(max_examples=300, deadline=None)
@given(_doc)
def test_fast_writer_equals_json_dumps_on_any_json_data(doc):
    assert _dumps_indented(doc) == _std(doc)


@pytest.mark.parametrize("doc", [{"a": [1.0, float("nan")]}, {"a": float("inf")},
                                 {1: "int key"}, {"a": {1, 2}}, [[0.5, -float("inf")]]])
def test_fast_writer_leaves_unusual_values_to_json_dumps(doc):
    try:
        expected = _std(doc)
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc), match=str(exc)[:20]):
            _dumps_indented(doc)
    else:
        assert _dumps_indented(doc) == expected

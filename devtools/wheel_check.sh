#!/usr/bin/env bash
# Build rtqa's wheel from this tree, install it into a fresh venv, and check the bundled
# samples from a temporary folder that holds copies of the plans and nothing else: the
# installed rtqa must need no checkout (constraint library and templates are package data).
set -euo pipefail
python=${1:-python3}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --upgrade pip
"$work/venv/bin/python" -m pip wheel -q --no-deps -w "$work/dist" "$repo"
"$work/venv/bin/python" -m pip install -q "$work"/dist/rtqa-*.whl
cp -r "$repo/plans_sample/hcc_pass" "$repo/plans_sample/hcc_fail" "$work/"
cd "$work"
unset RTQA_CONSTRAINTS_DIR PYTHONPATH
echo "wheel: $(ls "$work"/dist)"
"$work/venv/bin/rtqa" --version
# the wheel carries the compiled kernels when this machine has a C compiler
"$work/venv/bin/python" -c "from rtqa import _native; s = _native.status(); print('compiled kernels:', s); import os, sys; sys.exit(1 if os.environ.get('RTQA_REQUIRE_NATIVE') == '1' and not all(s.values()) else 0)"
set +e
"$work/venv/bin/rtqa" check hcc_pass --quiet --html pass.html; pass=$?
"$work/venv/bin/rtqa" check hcc_fail --quiet --json fail.json; fail=$?
set -e
echo "rtqa check hcc_pass: exit $pass (expected 0); hcc_fail: exit $fail (expected 1)"
if "$work/venv/bin/python" -c "import rtqa, sys; sys.exit(0 if hasattr(rtqa, 'check') else 1)"; then
  status=$("$work/venv/bin/python" -c "import rtqa; print(rtqa.check('hcc_pass').status)")
  echo "python -c \"import rtqa; print(rtqa.check('hcc_pass').status)\": $status"
  [ "$status" = "PASS" ]
fi
"$work/venv/bin/python" - <<'PY'
import importlib.util, sys
for dev in ("rtqa_fuzz", "rtqa.fuzz", "rtqa.validation.fuzz"):
    if importlib.util.find_spec(dev.split(".")[0]) and importlib.util.find_spec(dev):
        sys.exit(f"development tool {dev} is importable from the installed wheel")
PY
[ "$pass" = 0 ] && [ "$fail" = 1 ]
echo "wheel check: OK"

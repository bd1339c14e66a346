"""``rtqa.report.pdf._import_weasyprint``: WeasyPrint imported without the subprocesses of
``ctypes.util.find_library`` (issue 16), the real look-up restored after, and used again
when the import needs it. Each case runs in a fresh interpreter (WeasyPrint, or a stand-in
package of the same name, imported once per process)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

_PROBE = textwrap.dedent("""
    import ctypes.util, json, subprocess, sys
    real = ctypes.util.find_library
    started = []
    popen_init = subprocess.Popen.__init__
    def counting(self, *a, **k):
        started.append(a[0] if a else k.get("args"))
        return popen_init(self, *a, **k)
    subprocess.Popen.__init__ = counting
    from rtqa.report.pdf import _import_weasyprint
    mod = _import_weasyprint()
    print(json.dumps({"name": mod.__name__, "started": len(started),
                      "restored": ctypes.util.find_library is real,
                      "seen": getattr(mod, "SEEN", None)}))
""")


def _probe(tmp_path, package: str | None = None) -> dict:
    import json
    env_path = []
    if package is not None:
        (tmp_path / "weasyprint").mkdir()
        (tmp_path / "weasyprint" / "__init__.py").write_text(textwrap.dedent(package))
        env_path = [str(tmp_path)]
    code = "import sys; sys.path[:0] = %r\n" % env_path + _PROBE
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.splitlines()[-1])


def test_import_starts_no_process_and_restores_the_lookup(tmp_path):
    from rtqa.report.pdf import pdf_available
    if pdf_available():
        pytest.skip("WeasyPrint is absent")
    got = _probe(tmp_path)
    assert got["name"] == "weasyprint"
    if sys.platform.startswith("linux"):
        assert got["started"] == 0  # was ~50: ldconfig, gcc, ld per library name tried
    assert got["restored"]


def test_import_that_needs_the_lookup_is_done_again_with_it(tmp_path):
    # a stand-in WeasyPrint that loads only through find_library
    got = _probe(tmp_path, """
        import ctypes.util
        SEEN = ctypes.util.find_library("c")
        if SEEN is None:
            raise OSError("cannot load library 'c'")
    """)
    assert got["name"] == "weasyprint" and got["restored"]
    assert got["seen"] and "libc" in got["seen"]


def test_other_threads_keep_the_real_lookup(tmp_path):
    got = _probe(tmp_path, """
        import ctypes.util, threading
        out = []
        t = threading.Thread(target=lambda: out.append(ctypes.util.find_library("c")))
        t.start(); t.join()
        SEEN = [out[0], ctypes.util.find_library("c")]
    """)
    other, mine = got["seen"]
    if sys.platform.startswith("linux"):
        assert other and "libc" in other and mine is None
    assert got["restored"]


def test_import_errors_are_weasyprints_own(tmp_path):
    # tried twice (the second time with the real look-up); the error is the import's
    (tmp_path / "weasyprint").mkdir()
    (tmp_path / "weasyprint" / "__init__.py").write_text("raise OSError('no libpango')\n")
    got = subprocess.run([sys.executable, "-c", "import sys; sys.path[:0] = [%r]\n" % str(tmp_path)
                          + "from rtqa.report.pdf import pdf_available; print(pdf_available())"],
                         capture_output=True, text=True, check=True).stdout
    assert "pip install 'rtqa[pdf]'" in got and "OSError: no libpango" in got


def test_concurrent_imports_put_the_real_lookup_back(tmp_path):
    # two threads import a slow stand-in at once: each gets the module, the look-up of
    # the process is the real one after both
    (tmp_path / "weasyprint").mkdir()
    (tmp_path / "weasyprint" / "__init__.py").write_text("import time\ntime.sleep(0.2)\n")
    code = textwrap.dedent(f"""
        import sys; sys.path[:0] = [{str(tmp_path)!r}]
        import ctypes.util, threading
        real = ctypes.util.find_library
        from rtqa.report.pdf import _import_weasyprint
        got = []
        ts = [threading.Thread(target=lambda: got.append(_import_weasyprint().__name__))
              for _ in range(2)]
        [t.start() for t in ts]; [t.join() for t in ts]
        print(got, ctypes.util.find_library is real)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "['weasyprint', 'weasyprint'] True"

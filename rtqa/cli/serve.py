"""``rtqa serve`` (a DICOM node) and ``rtqa watch`` (a folder): check plans as they arrive."""

from __future__ import annotations

import click

from rtqa.cli.batch import more_check_options, settings_from_cli
from rtqa.cli.common import handle_errors

_DEFAULT_SETTLE = 10.0
_DEFAULT_DEADLINE = 600.0


def _common(func):
    """Options shared by serve and watch (check options, timing, output, web view)."""
    opts = [
        click.option("--out", "-o", default="rtqa-serve", show_default=True, metavar="DIR",
                     type=click.Path(file_okay=False, path_type=str),
                     help="Folder for the reports (OUT/plans/) and, by default, the "
                          "database and the spool."),
        click.option("--spool", metavar="DIR", type=click.Path(file_okay=False, path_type=str),
                     help="Where received instances are kept (default OUT/spool)."),
        click.option("--db", "db", metavar="FILE|URL",
                     help="Database of receipts and results: a SQLite file (default "
                          "OUT/rtqa-serve.sqlite) or a PostgreSQL URL, "
                          "postgresql://USER:PASSWORD@HOST:5432/DBNAME (needs "
                          "pip install 'rtqa[pg]'; the tables are created on first use)."),
        click.option("--keep-days", type=click.FloatRange(min=0), metavar="DAYS",
                     help="Spool retention: remove a plan's received files once it is "
                          "checked with nothing pending and its last instance is older "
                          "than DAYS (0: as soon as its reports and database row are "
                          "written); files no plan uses go after DAYS too (never before "
                          "--deadline). Reports and database rows are kept. A plan sent "
                          "again after its files went must be sent whole. Default: keep "
                          "everything."),
        click.option("--pdf/--no-pdf", "pdf", default=True, show_default=True,
                     help="Also write a PDF report per check (as rtqa check --pdf) when "
                          "WeasyPrint is installed (pip install 'rtqa[pdf]'); without it "
                          "JSON and HTML only, and the log says so."),
        click.option("--protocol", "-p", default="oligo-hcc", show_default=True,
                     metavar="NAME|FILE", help="Protocol, as for rtqa check."),
        click.option("--constraints", "-c", "constraint_files", multiple=True, metavar="FILE",
                     help="Extra constraint file added to the protocol (repeatable)."),
        click.option("--map", "maps", multiple=True, metavar="STD=ROI",
                     help="Map a TG-263 name to a plan ROI in every plan (repeatable)."),
        click.option("--settle", type=click.FloatRange(min=0), default=_DEFAULT_SETTLE,
                     show_default=True, metavar="SECONDS",
                     help="A complete plan is checked once nothing new has arrived for its "
                          "patient for this long."),
        click.option("--deadline", type=click.FloatRange(min=0), default=_DEFAULT_DEADLINE,
                     show_default=True, metavar="SECONDS",
                     help="A plan still incomplete this long after it arrived is checked "
                          "anyway: ERROR, with what is missing."),
        click.option("--timeout", type=click.FloatRange(min=0), default=900,
                     show_default=True, metavar="SECONDS",
                     help="Time limit per check (0: none); then ERROR 'timed out'."),
        click.option("--workers", "-j", type=click.IntRange(min=1), default=1,
                     show_default=True, metavar="N", help="Plans checked at once."),
        click.option("--http", "http_port", type=click.IntRange(min=0, max=65535),
                     metavar="PORT", help="Serve the read-only web view on this port."),
        click.option("--http-host", default="127.0.0.1", show_default=True, metavar="HOST",
                     help="Address of the web view."),
        click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"],
                                                      case_sensitive=False),
                     default="INFO", show_default=True, help="Log detail (on stderr)."),
    ]
    for o in reversed(opts[8:]):       # timing, web view, log
        func = o(func)
    func = more_check_options(func)     # the other rtqa check options
    for o in reversed(opts[:8]):       # output, protocol, constraints, map
        func = o(func)
    return func


def _engine(out, spool, db, keep_days, pdf, protocol, constraint_files, maps, settle,
            deadline, timeout, workers, **check):
    from rtqa.constraints import load_protocol
    from rtqa.serve.db import display_target, is_url
    from rtqa.serve.engine import Engine, EngineOptions
    settings = settings_from_cli(protocol=protocol, constraint_files=constraint_files,
                                 maps=maps, **check)
    load_protocol(settings.resolved().protocol)      # a typo stops before listening
    options = EngineOptions(out=out, spool=spool, db=db, settings=settings, settle=settle,
                            deadline=deadline, timeout=timeout or None, workers=workers,
                            keep_days=keep_days, pdf=pdf)
    try:
        return Engine(options)
    except Exception as exc:  # noqa: BLE001 - no server, one line naming the database
        if not (db and is_url(db)):
            raise
        from rtqa.errors import RtqaError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RtqaError(f"--db {display_target(db)}: cannot be used ({first})") from None


def _logging(level: str) -> None:
    import logging
    logging.basicConfig(level=getattr(logging, level.upper()),
                        format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)


def _run_until_signal(engine, stoppers, web) -> None:
    import signal
    import threading
    done = threading.Event()

    def on_signal(signum, _frame):
        done.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not done.wait(1.0):
            pass
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        click.echo("rtqa: stopping (checks still running are done again at the next start)",
                   err=True)
        for stop in stoppers:
            stop()
        if web is not None:
            web.shutdown()
        engine.stop()


def _start_web(engine, http_port, http_host):
    if http_port is None:
        return None
    from rtqa.serve.web import start_web
    web = start_web(engine.db.path, engine.out, http_host, http_port)
    host, port = web.server_address[:2]
    click.echo(f"rtqa: web view on http://{host}:{port}/", err=True)
    return web


@click.command("serve")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=11112,
              show_default=True, help="TCP port of the DICOM node (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True, metavar="ADDRESS",
              help="Address to listen on (0.0.0.0: every interface).")
@click.option("--ae-title", default="RTQA", show_default=True, metavar="AE",
              help="This node's AE title (the planning system's destination).")
@click.option("--allow-ae", "allow", multiple=True, metavar="AE",
              help="Accept associations only from this calling AE title (repeatable; "
                   "default: any).")
@click.option("--max-associations", type=click.IntRange(min=1), default=4, show_default=True,
              metavar="N", help="Associations at once; more are rejected.")
@click.option("--max-dataset-mb", type=click.FloatRange(min=0, min_open=True), default=1024,
              show_default=True, metavar="MB", help="Largest data set accepted (MiB).")
@_common
@handle_errors
def serve(port, host, ae_title, allow, max_associations, max_dataset_mb, out, spool, db,
          keep_days, pdf, protocol, constraint_files, maps, settle, deadline, timeout,
          workers, http_port, http_host, log_level, **check):
    """Run a DICOM node that checks every plan sent to it (Storage SCP).

    \b
    Configure it as a DICOM destination in the planning system (AE title, host, port)
    and send the plan with its CT, RTSTRUCT and RTDOSE. It accepts CT, RTSTRUCT, RTPLAN,
    RT Ion Plan and RTDOSE (uncompressed, deflated; CT also RLE and lossless JPEG) and
    answers C-ECHO. Every instance is written to the spool and flushed to disk before
    Success is returned; one that cannot be stored (full disk, corrupt data set, too
    large) gets a failure status and is logged.

    \b
    A plan is checked when its set is complete, following the UID links RTPLAN ->
    RTSTRUCT -> CT series (every image the RTSTRUCT lists) and RTDOSE -> RTPLAN, and
    nothing new has arrived for its patient for --settle seconds. A set still incomplete
    --deadline seconds after it arrived is checked anyway and is ERROR, listing what is
    missing. Each plan gets the check of `rtqa check` (same check options) in a worker
    process with the --timeout limit; reports in OUT/plans/ (JSON and HTML, and PDF when
    WeasyPrint is installed), one row per check in the database (SQLite, or PostgreSQL
    with --db postgresql://...: verdict, failing rows, report paths, input SHA-256).
    A plan received again is checked again; the new report says which check it
    supersedes. After a crash or restart, plans received but not checked are checked.
    The spool keeps every received file unless --keep-days says how long.

    \b
    Listens on 127.0.0.1 unless --host says otherwise; no TLS: keep it on a trusted
    network and restrict senders with --allow-ae.

    \b
    Examples:
      rtqa serve --port 11112 --ae-title RTQA --out /data/rtqa
      rtqa serve --host 0.0.0.0 --allow-ae ECLIPSE --allow-ae RAYSTATION --http 8080
      rtqa serve --db postgresql://rtqa:secret@dbhost/rtqa --keep-days 30
    """
    try:
        from rtqa.serve.scp import ScpOptions, start_scp
    except ImportError:
        raise click.ClickException("rtqa serve needs pynetdicom: pip install 'rtqa[serve]'")
    _logging(log_level)
    engine = _engine(out, spool, db, keep_days, pdf, protocol, constraint_files, maps,
                     settle, deadline, timeout, workers, **check)
    engine.start()
    try:
        server = start_scp(engine, ScpOptions(host=host, port=port, ae_title=ae_title,
                                              allow=tuple(allow),
                                              max_associations=max_associations,
                                              max_bytes=int(max_dataset_mb * 2**20)))
    except OSError as exc:
        engine.stop()
        raise click.ClickException(f"cannot listen on {host}:{port} ({exc.strerror or exc})")
    web = _start_web(engine, http_port, http_host)
    h, p = server.server_address[:2]
    click.echo(f"rtqa: DICOM node {ae_title} listening on {h}:{p}"
               + (f", calling AE titles {', '.join(allow)}" if allow else "")
               + f"; reports in {engine.plans_dir}", err=True)
    _run_until_signal(engine, [server.shutdown], web)


@click.command("watch")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option("--poll", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              metavar="SECONDS", help="How often the folder is looked at.")
@click.option("--stable", type=click.FloatRange(min=0), default=2.0, show_default=True,
              metavar="SECONDS", help="A file is read once its size and time have not "
                                      "changed for this long.")
@_common
@handle_errors
def watch(folder, poll, stable, out, spool, db, keep_days, pdf, protocol, constraint_files, maps, settle,
          deadline, timeout, workers, http_port, http_host, log_level, **check):
    """Check every plan exported into FOLDER (a planning system's export folder).

    \b
    A file is taken once it is complete: its size and modification time have not
    changed for --stable seconds, it did not change while it was read, and it passes
    the completeness walk (every element ends where its length says, the stream ends at
    the end of the file). A half-written file is never read as if whole. The bytes taken
    are copied to the spool and the check reads that copy. From there it is `rtqa serve`:
    plan sets linked by UID, --settle, --deadline, one check per plan in a worker
    process, reports in OUT/plans/, the database, re-exports superseding earlier checks.
    A file written again is taken again. FOLDER is only read, never changed.
    DICOM files are recognised by content, whatever their names: Part 10 files, and
    data sets written without the Part 10 header (as Elekta Monaco writes them), read
    as `rtqa check` reads them.

    \b
    Examples:
      rtqa watch /mnt/tps-export --out /data/rtqa
      rtqa watch /mnt/tps-export --out /data/rtqa --settle 30 --http 8080
    """
    _logging(log_level)
    import os
    engine = _engine(out, spool, db, keep_days, pdf, protocol, constraint_files, maps,
                     settle, deadline, timeout, workers, **check)
    if os.path.realpath(folder) in (os.path.realpath(engine.out),) or \
            os.path.realpath(engine.out).startswith(os.path.realpath(folder) + os.sep):
        exclude = [str(engine.out), str(engine.spool.root)]
    else:
        exclude = [str(engine.spool.root)]
    from rtqa.serve.watch import Watcher
    engine.start()
    watcher = Watcher(engine, folder, poll=poll, stable=stable, exclude=exclude)
    watcher.start()
    web = _start_web(engine, http_port, http_host)
    click.echo(f"rtqa: watching {folder}; reports in {engine.plans_dir}", err=True)
    _run_until_signal(engine, [watcher.stop], web)

"""The DICOM Storage SCP of ``rtqa serve`` (pynetdicom).

Accepted: Verification (C-ECHO) and C-STORE of CT Image, RT Structure Set, RT Plan,
RT Ion Plan and RT Dose, in Implicit VR Little Endian, Explicit VR Little Endian,
Explicit VR Big Endian and Deflated Explicit VR Little Endian; CT images also in RLE
Lossless, JPEG Lossless (SV1), JPEG 2000 Lossless and JPEG Baseline (rtqa reads the
CT's geometry, not its pixels).

Every C-STORE is handed to :meth:`rtqa.serve.engine.Engine.receive` with the encoded
data set exactly as received (and the File Meta Information of its presentation
context): Success (0000) is answered only after the instance is in the spool on disk.
Failure statuses, with the reason in the Error Comment and the log:

* A700 Refused: Out of Resources — cannot be stored (full disk, spool not writable) or
  larger than the size limit;
* A900 Error: Data Set does not match SOP Class — its SOP Class/Instance UID differ from
  the request;
* C000 Error: Cannot understand — corrupt: the element stream is cut short or damaged,
  or the header cannot be read.

Associations: calling AE titles can be restricted to an allow-list (others are
rejected, "calling AE title not recognised"); at most ``max_associations`` at once
(others are rejected, "local limit exceeded"); a data set larger than
``max_bytes`` is refused (A700), and an association that sends more than that in one
message is aborted before it can fill the memory.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from rtqa.serve.engine import STATUS, Engine, Refused

__all__ = ["ScpOptions", "start_scp", "STORAGE_CLASSES"]

log = logging.getLogger("rtqa.serve")

STORAGE_CLASSES = {
    "CT Image Storage": "1.2.840.10008.5.1.4.1.1.2",
    "RT Structure Set Storage": "1.2.840.10008.5.1.4.1.1.481.3",
    "RT Plan Storage": "1.2.840.10008.5.1.4.1.1.481.5",
    "RT Ion Plan Storage": "1.2.840.10008.5.1.4.1.1.481.8",
    "RT Dose Storage": "1.2.840.10008.5.1.4.1.1.481.2",
}
_UNCOMPRESSED = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
                 "1.2.840.10008.1.2.1.99"]
_IMAGE_EXTRA = ["1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.90",
                "1.2.840.10008.1.2.4.50"]


@dataclass
class ScpOptions:
    host: str = "127.0.0.1"
    port: int = 11112
    ae_title: str = "RTQA"
    allow: tuple[str, ...] = ()          # calling AE titles; empty: any
    max_associations: int = 4
    max_bytes: int = 1024 * 2**20        # per data set


class _SizeGuard:
    """Aborts an association whose current message exceeds the limit (memory bound)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.sizes: dict[int, int] = {}
        self.lock = threading.Lock()

    def __call__(self, event) -> None:
        pdu = event.pdu
        items = getattr(pdu, "presentation_data_value_items", None)
        if not items:
            return
        key = id(event.assoc)
        for item in items:
            value = item.presentation_data_value
            header = value[0]
            if header & 0x01:          # command fragment
                continue
            with self.lock:
                n = self.sizes.get(key, 0) + len(value) - 1
                self.sizes[key] = 0 if header & 0x02 else n
            if n > self.limit + 2**20:
                log.error("association from %s aborted: data set larger than the limit "
                          "of %d bytes", event.assoc.requestor.ae_title, self.limit)
                event.assoc.abort()
                return

    def forget(self, event) -> None:
        with self.lock:
            self.sizes.pop(id(event.assoc), None)


def start_scp(engine: Engine, options: ScpOptions):
    """Start the server (non-blocking); returns the pynetdicom server (``.server_address``
    gives the port when ``options.port`` is 0; ``.shutdown()`` stops it)."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=options.ae_title)
    ae.maximum_associations = max(1, options.max_associations)
    ae.require_calling_aet = list(options.allow)
    ae.add_supported_context(Verification)
    for name, uid in STORAGE_CLASSES.items():
        extra = _IMAGE_EXTRA if name == "CT Image Storage" else []
        ae.add_supported_context(uid, _UNCOMPRESSED + extra)

    def on_echo(event) -> int:
        return 0x0000

    def on_store(event):
        req = event.request
        calling = event.assoc.requestor.ae_title.strip()
        try:
            size = len(req.DataSet.getvalue())
        except AttributeError:
            size = 0
        try:
            if size > options.max_bytes:
                raise Refused(STATUS["out_of_resources"],
                              f"data set of {size} bytes is larger than the limit of "
                              f"{options.max_bytes} bytes (--max-dataset-mb)")
            data = event.encoded_dataset(include_meta=True)
            engine.receive(data, source=calling, sop_class=str(req.AffectedSOPClassUID),
                           sop_uid=str(req.AffectedSOPInstanceUID))
        except Refused as exc:
            log.error("C-STORE from %s refused (%04X): %s [SOP Instance %s]", calling,
                      exc.status, exc.reason, req.AffectedSOPInstanceUID)
            return _status(exc.status, exc.reason)
        except Exception as exc:  # noqa: BLE001 - never Success when unsure
            log.exception("C-STORE from %s failed", calling)
            return _status(STATUS["out_of_resources"], f"internal error ({exc})")
        return 0x0000

    def on_accepted(event) -> None:
        log.info("association from %s (%s:%s) accepted",
                 event.assoc.requestor.ae_title.strip(), event.assoc.requestor.address,
                 event.assoc.requestor.port)

    def on_rejected(event) -> None:
        log.warning("association from %s (%s) rejected",
                    event.assoc.requestor.ae_title.strip(), event.assoc.requestor.address)

    guard = _SizeGuard(options.max_bytes)
    handlers = [(evt.EVT_C_ECHO, on_echo), (evt.EVT_C_STORE, on_store),
                (evt.EVT_ACCEPTED, on_accepted), (evt.EVT_REJECTED, on_rejected),
                (evt.EVT_PDU_RECV, guard), (evt.EVT_CONN_CLOSE, guard.forget)]
    return ae.start_server((options.host, options.port), block=False, evt_handlers=handlers)


def _status(code: int, comment: str):
    from pydicom.dataset import Dataset
    ds = Dataset()
    ds.Status = code
    ds.ErrorComment = comment[:64]
    return ds

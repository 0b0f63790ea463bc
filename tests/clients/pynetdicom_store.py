"""A PACS as pynetdicom (a DICOM stack we did not write) plays it: C-ECHO, then
C-STORE of each file, over plain TCP or TLS. Prints one JSON line:
{"echo": status, "stored": [status per file]} (statuses as integers; null when the
association was refused).

usage: pynetdicom_store.py HOST PORT CALLED_AE [--tls CA_PEM] FILE...
"""
import json
import ssl
import sys

from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import Verification


def main() -> None:
    args = sys.argv[1:]
    host, port, called = args[0], int(args[1]), args[2]
    rest = args[3:]
    tls = None
    if rest and rest[0] == "--tls":
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=rest[1])
        # The test certificate names no host (no SAN); the chain is still checked.
        context.check_hostname = False
        tls = (context, "localhost")
        rest = rest[2:]
    ae = AE(ae_title="PYNETDICOM")
    ae.add_requested_context(Verification)
    # One context per SOP class and transfer syntax the files use: the provider
    # accepts one syntax per context, and each file travels in its own.
    datasets = [dcmread(path) for path in rest]
    pairs = sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for ds in datasets})
    for sop_class, syntax in pairs:
        ae.add_requested_context(sop_class, [syntax])
    assoc = ae.associate(host, port, ae_title=called, tls_args=tls)
    if not assoc.is_established:
        print(json.dumps({"echo": None, "stored": []}))
        return
    echo = assoc.send_c_echo()
    stored = []
    for ds in datasets:
        status = assoc.send_c_store(ds)
        stored.append(int(status.Status) if status else None)
    assoc.release()
    print(json.dumps({"echo": int(echo.Status) if echo else None, "stored": stored}))


if __name__ == "__main__":
    main()

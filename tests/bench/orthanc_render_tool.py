"""Helper of orthanc_render.sh: writes the test images, uploads them to Orthanc, puts
load on a rendering endpoint and prints the comparison. Standard library, pydicom and
numpy only, so it runs wherever the benchmark does.

  generate DIR MG_COUNT            rewrites DIR/{ct,j2k,jls} into one study, adds DIR/mg
                                   and DIR/us; prints the index (JSON)
  orthanc-upload URL INDEX         POST /instances per file; prints {sop_uid: orthanc id}
  load --server S --endpoint E ... one JSON line per image type and pass (first, repeat)
  summary RESULTS                  the table with the ratios
"""

import argparse
import http.client
import json
import os
import queue
import statistics
import sys
import threading
import time
import urllib.parse

TYPES = ["ct", "j2k", "jls", "mg", "us"]
LABEL = {
    "ct": "CT 512² native",
    "j2k": "CT 512² JPEG 2000",
    "jls": "CT 512² JPEG-LS",
    "mg": "MG 3328×4096 16 bit",
    "us": "US 60×600×800 8 bit",
}
# Study-level attributes every file gets from the first CT, so all five series form
# one study of one (generated) patient and a single patient grant covers them.
SHARED = [
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
    "StudyDate", "StudyTime", "AccessionNumber", "StudyID", "StudyDescription",
    "ReferringPhysicianName",
]


def generate(root, mg_count, us_count):
    import numpy as np
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    def files(t):
        d = os.path.join(root, t)
        return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".dcm"))

    first = pydicom.dcmread(files("ct")[0], stop_before_pixels=True)
    shared = {k: first.get(k) for k in SHARED if k in first}
    index = {"study_uid": str(first.StudyInstanceUID), "types": {t: [] for t in TYPES}}

    def add(t, path, ds, frames):
        index["types"][t].append({
            "path": path, "series": str(ds.SeriesInstanceUID),
            "sop": str(ds.SOPInstanceUID), "frames": frames,
        })

    for t in ["ct", "j2k", "jls"]:
        for path in files(t):
            ds = pydicom.dcmread(path)
            for k, v in shared.items():
                setattr(ds, k, v)
            ds.save_as(path)
            add(t, path, ds, 1)

    def new(sop_class, modality, series_uid, number):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        for k, v in shared.items():
            setattr(ds, k, v)
        ds.Modality = modality
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = 10 if modality == "MG" else 20
        ds.InstanceNumber = number
        ds.SamplesPerPixel = 1
        ds.PixelRepresentation = 0
        return ds

    rng = np.random.default_rng()
    # Mammogram-like: 14 bits stored in 16, a bright half-ellipse on a dark ground.
    rows, cols = 4096, 3328
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    d = ((yy - rows / 2) / (rows * 0.45)) ** 2 + (xx / (cols * 0.85)) ** 2
    tissue = np.clip(1.0 - d, 0, 1) ** 0.35
    series = generate_uid()
    os.makedirs(os.path.join(root, "mg"), exist_ok=True)
    for i in range(mg_count):
        ds = new("1.2.840.10008.5.1.4.1.1.1.2", "MG", series, i + 1)
        img = 600 + tissue * 9000 + rng.normal(0, 250, (rows, cols)).astype(np.float32)
        px = np.clip(img, 0, 16383).astype(np.uint16)
        ds.Rows, ds.Columns = rows, cols
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 14, 13
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.PixelSpacing = [0.07, 0.07]
        ds.WindowCenter, ds.WindowWidth = 6000, 9000
        ds.PixelData = px.tobytes()
        path = os.path.join(root, "mg", f"MG{i:04d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        add("mg", path, ds, 1)

    # Ultrasound cine loop: 60 frames of speckle in a sector that drifts.
    frames, rows, cols = 60, 600, 800
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    r = np.hypot(yy, xx - cols / 2)
    angle = np.abs(np.arctan2(xx - cols / 2, yy + 1))
    sector = (r < rows * 0.95) & (angle < 0.7)
    series = generate_uid()
    os.makedirs(os.path.join(root, "us"), exist_ok=True)
    for i in range(us_count):
        loop = np.empty((frames, rows, cols), np.uint8)
        for f in range(frames):
            speckle = rng.rayleigh(40, (rows, cols))
            band = 60 * np.sin(r / 25 - f / 5) + 80
            loop[f] = np.where(sector, np.clip(speckle + band, 0, 255), 0).astype(np.uint8)
        ds = new("1.2.840.10008.5.1.4.1.1.3.1", "US", series, i + 1)
        ds.Rows, ds.Columns = rows, cols
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.NumberOfFrames = frames
        ds.FrameTime = 33.3
        ds.FrameIncrementPointer = 0x00181063
        ds.PixelData = loop.tobytes()
        path = os.path.join(root, "us", f"US{i:04d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        add("us", path, ds, frames)
    json.dump(index, sys.stdout)


def orthanc_upload(url, index_path):
    index = json.load(open(index_path))
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=300)
    ids = {}
    for t in TYPES:
        for item in index["types"][t]:
            with open(item["path"], "rb") as f:
                body = f.read()
            conn.request("POST", "/instances", body, {"Content-Type": "application/dicom"})
            res = conn.getresponse()
            answer = res.read()
            if res.status != 200:
                print(f"Orthanc refused {t} {item['sop']}: {res.status} {answer[:300]!r}",
                      file=sys.stderr)
                continue
            ids[item["sop"]] = json.loads(answer)["ID"]
    print(f"Orthanc POST /instances: {len(ids)} stored", file=sys.stderr)
    json.dump(ids, sys.stdout)


def jpeg_size(b):
    """Width and height from a JPEG's SOF marker (or PNG's IHDR)."""
    if b[:8] == b"\x89PNG\r\n\x1a\n":
        return int.from_bytes(b[16:20], "big"), int.from_bytes(b[20:24], "big")
    i = 2
    while i + 9 < len(b):
        if b[i] != 0xFF:
            return None
        marker, length = b[i + 1], int.from_bytes(b[i + 2:i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            return int.from_bytes(b[i + 7:i + 9], "big"), int.from_bytes(b[i + 5:i + 7], "big")
        i += 2 + length
    return None


def targets(args, t):
    """(path, headers) of every image (frame) of one type for the endpoint."""
    index = json.load(open(args.index))
    ids = json.load(open(args.ids))
    if args.server == "lichtkasten":
        ids = {i["sop_uid"]: i["id"] for s in ids["series"] for i in s["instances"]}
    out = []
    st = index["study_uid"]
    for item in index["types"][t]:
        for n in range(1, item["frames"] + 1):
            multi = item["frames"] > 1
            if args.server == "lichtkasten" and args.endpoint == "full":
                p = f"/dicomweb/studies/{st}/series/{item['series']}/instances/{item['sop']}"
                p += f"/frames/{n}/rendered" if multi else "/rendered"
            elif args.server == "lichtkasten" and args.endpoint == "preview768":
                p = (f"/view/api/instances/{ids[item['sop']]}/frames/{n}/rendered"
                     "?viewport=768,768&format=jpeg")
            elif args.endpoint == "full":
                p = f"/instances/{ids[item['sop']]}/frames/{n - 1}/rendered?quality=85"
            elif args.endpoint == "preview768":
                p = (f"/instances/{ids[item['sop']]}/frames/{n - 1}/rendered"
                     "?width=768&height=768&quality=85")
            else:  # orthanc-preview
                p = (f"/instances/{ids[item['sop']]}/frames/{n - 1}/preview?quality=85" if multi
                     else f"/instances/{ids[item['sop']]}/preview?quality=85")
            out.append(p)
    return out


def one_pass(base, paths, headers, clients):
    u = urllib.parse.urlsplit(base)
    work = queue.Queue()
    for p in paths:
        work.put(p)
    results = []

    def worker():
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=300)
        while True:
            try:
                p = work.get_nowait()
            except queue.Empty:
                return
            t0 = time.perf_counter()
            try:
                conn.request("GET", p, headers=headers)
                res = conn.getresponse()
                body = res.read()
                status, ctype = res.status, res.getheader("Content-Type", "")
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=300)
                body, status, ctype = str(e).encode(), 0, ""
            results.append((time.perf_counter() - t0, status, ctype, body))

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.perf_counter() - start, results


def cpu_seconds(pid):
    """User + system CPU time of a process so far (0 without a pid)."""
    if not pid:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(args):
    headers = {"Accept": "image/jpeg"}
    for h in args.header:
        k, v = h.split(":", 1)
        headers[k.strip()] = v.strip()
    for t in args.types.split(","):
        paths = targets(args, t)
        for name in ["first", "repeat"]:
            cpu0 = cpu_seconds(args.pid)
            wall, results = one_pass(args.base, paths, headers, args.clients)
            cpu = cpu_seconds(args.pid) - cpu0
            ok = [r for r in results if r[1] == 200]
            lat = sorted(r[0] * 1000 for r in ok)
            errors = {}
            for _, status, _, body in results:
                if status != 200:
                    errors.setdefault(str(status), [0, body[:400].decode("utf-8", "replace")])
                    errors[str(status)][0] += 1
            line = {
                "server": args.server, "endpoint": args.endpoint, "type": t, "pass": name,
                "n": len(results), "ok": len(ok), "wall_s": round(wall, 3),
                "rps": round(len(ok) / wall, 2) if ok else 0,
                "p50_ms": round(lat[len(lat) // 2], 1) if lat else None,
                "p95_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.95))], 1) if lat else None,
                "bytes": int(statistics.median(len(r[3]) for r in ok)) if ok else 0,
                "format": ok[0][2] if ok else "",
                "size": jpeg_size(ok[0][3]) if ok else None,
                "errors": errors,
                # The server's own CPU per answered request: what a render costs it,
                # whatever the load tool (which shares the machine) costs itself.
                "cpu_ms": round(cpu * 1000 / len(ok), 2) if ok and args.pid else None,
            }
            print(json.dumps(line), flush=True)
            print(f"  {args.server:11} {args.endpoint:15} {t:4} {name:6} "
                  f"{line['ok']}/{line['n']} ok  p50 {line['p50_ms']} ms  p95 {line['p95_ms']} ms"
                  f"  {line['rps']} req/s  server CPU {line['cpu_ms']} ms/req", file=sys.stderr, flush=True)


def summary(path):
    rows = [json.loads(x) for x in open(path) if x.strip()]
    get = {(r["server"], r["endpoint"], r["type"], r["pass"]): r for r in rows}
    pairs = [
        ("full", "full", "full-size JPEG q85: Lichtkasten DICOMweb .../rendered vs Orthanc "
                         ".../frames/N/rendered?quality=85"),
        ("full", "orthanc-preview", "full-size JPEG q85: Lichtkasten DICOMweb .../rendered vs "
                                    "Orthanc .../preview?quality=85"),
        ("preview768", "preview768", "768×768 box, JPEG: Lichtkasten patient route "
                                     "(render cache) vs Orthanc .../rendered?width=768&height=768"),
    ]
    errors_seen = {}
    for lk_ep, or_ep, title in pairs:
        print(f"\n{title}")
        print(f"  {'type':22} {'pass':6} | {'Lichtkasten p50/p95 ms':>22} {'req/s':>6} | "
              f"{'Orthanc p50/p95 ms':>18} {'req/s':>6} | {'p50 LK/Or':>9} {'req/s LK/Or':>11} | "
              f"{'CPU ms/req LK ; Or':>18} {'Or/LK':>5} | output LK ; Orthanc")
        for t in TYPES:
            for p in ["first", "repeat"]:
                a = get.get(("lichtkasten", lk_ep, t, p))
                b = get.get(("orthanc", or_ep, t, p))
                if not a or not b:
                    continue

                def cell(r):
                    if not r["ok"]:
                        return f"{'failed (' + ','.join(r['errors']) + ')':>22} {'':>6}"
                    return f"{r['p50_ms']:>10} / {r['p95_ms']:<9} {r['rps']:>6}"

                def out(r):
                    if not r["ok"]:
                        return "-"
                    s = r["size"]
                    dim = f"{s[0]}×{s[1]}" if s else "?"
                    return f"{r['format'].split('/')[-1]} {dim} {r['bytes'] // 1000} kB"

                if a["ok"] and b["ok"]:
                    ratio = f"{a['p50_ms'] / b['p50_ms']:>9.2f} {a['rps'] / b['rps']:>11.2f}"
                else:
                    ratio = f"{'-':>9} {'-':>11}"
                if a.get("cpu_ms") and b.get("cpu_ms"):
                    cpu = f"{a['cpu_ms']:>8} ; {b['cpu_ms']:<7} {b['cpu_ms'] / a['cpu_ms']:>5.2f}"
                else:
                    cpu = f"{'-':>18} {'-':>5}"
                print(f"  {LABEL[t]:22} {p:6} | {cell(a)} | {cell(b)[4:]} | {ratio} | {cpu} | "
                      f"{out(a)} ; {out(b)}")
                for srv, r in (("Lichtkasten", a), ("Orthanc", b)):
                    for status, (count, body) in r["errors"].items():
                        errors_seen[(srv, r["endpoint"], t, status)] = (count, r["n"], body)
    if errors_seen:
        print("\nerror answers (first body of each kind):")
        for (srv, ep, t, status), (count, n, body) in errors_seen.items():
            print(f"  {srv} {ep} {LABEL[t]}: HTTP {status} for {count} of {n}: {body}")
    print("\np50/p95: latency per request with the given number of concurrent clients;"
          " LK/Or below 1 for latency and above 1 for req/s means Lichtkasten is faster."
          "\nCPU ms/req: the server process's user + system CPU time during the pass per"
          " answered request (/proc/PID/stat, 10 ms ticks); Or/LK above 1 means Lichtkasten"
          " spends less.")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("dir")
    g.add_argument("mg_count", type=int)
    g.add_argument("us_count", type=int, nargs="?", default=1)
    u = sub.add_parser("orthanc-upload")
    u.add_argument("url")
    u.add_argument("index")
    lo = sub.add_parser("load")
    lo.add_argument("--server", required=True, choices=["lichtkasten", "orthanc"])
    lo.add_argument("--endpoint", required=True, choices=["full", "preview768", "orthanc-preview"])
    lo.add_argument("--clients", type=int, default=4)
    lo.add_argument("--index", required=True)
    lo.add_argument("--ids", required=True)
    lo.add_argument("--base", required=True)
    lo.add_argument("--header", action="append", default=[])
    lo.add_argument("--types", default=",".join(TYPES))
    lo.add_argument("--pid", type=int, default=0, help="the server's pid, for its CPU time")
    s = sub.add_parser("summary")
    s.add_argument("results")
    a = ap.parse_args()
    if a.cmd == "generate":
        generate(a.dir, a.mg_count, a.us_count)
    elif a.cmd == "orthanc-upload":
        orthanc_upload(a.url, a.index)
    elif a.cmd == "load":
        load(a)
    else:
        summary(a.results)


if __name__ == "__main__":
    main()

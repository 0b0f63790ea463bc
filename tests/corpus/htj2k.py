#!/usr/bin/env python3
"""Re-encode a native single-frame DICOM file as High-Throughput JPEG 2000 (lossless).

No DICOM tool in the registries writes HTJ2K yet, so the pixels go through OpenJPH's
own encoder (Debian's openjph-tools, `ojph_compress -reversible true`) and the
codestream is wrapped into the file by pydicom. Usage: htj2k.py IN.dcm OUT.dcm
"""
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import pydicom
from encapsulated import save_encapsulated
from pydicom.uid import UID

HTJ2K_LOSSLESS = UID("1.2.840.10008.1.2.4.201")


def main(source, target):
    ds = pydicom.dcmread(source)
    pixels = ds.pixel_array
    if getattr(ds, "NumberOfFrames", 1) not in (None, 1):
        sys.exit("single-frame images only")
    samples = int(ds.SamplesPerPixel)
    signed = int(ds.PixelRepresentation) == 1
    bits = int(ds.BitsStored)
    with tempfile.TemporaryDirectory() as tmp:
        raw = pathlib.Path(tmp) / "in.yuv"
        out = pathlib.Path(tmp) / "out.j2c"
        # The raw reader takes one plane per component, little-endian when wider than a byte.
        planes = [pixels] if samples == 1 else [pixels[..., c] for c in range(samples)]
        dtype = ("<i2" if signed else "<u2") if ds.BitsAllocated > 8 else ("i1" if signed else "u1")
        raw.write_bytes(b"".join(np.ascontiguousarray(p).astype(dtype).tobytes() for p in planes))
        subprocess.run(
            [
                "ojph_compress", "-i", str(raw), "-o", str(out), "-reversible", "true",
                "-dims", f"{{{ds.Columns},{ds.Rows}}}", "-num_comps", str(samples),
                "-signed", ",".join(["true" if signed else "false"] * samples),
                "-bit_depth", ",".join([str(bits)] * samples),
                "-downsamp", ",".join(["{1,1}"] * samples),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        codestream = out.read_bytes()
    save_encapsulated(ds, codestream, HTJ2K_LOSSLESS, target)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

#!/usr/bin/env python3
"""Re-encode a native single-frame DICOM file as JPEG XL Lossless (1.2.840.10008.1.2.4.110).

No DICOM tool in the registries writes JPEG XL yet, so the pixels go through libjxl's
own encoder (Debian's libjxl-tools, `cjxl -d 0`, i.e. lossless) as a PGM or PPM image
and the codestream is wrapped into the file by pydicom. JPEG XL has no signed samples,
so signed images are refused. Usage: jpegxl.py IN.dcm OUT.dcm
"""
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import pydicom
from encapsulated import save_encapsulated
from pydicom._uid_dict import UID_dictionary
from pydicom.uid import UID

JPEG_XL_LOSSLESS = UID("1.2.840.10008.1.2.4.110")
# pydicom 3.0 does not list it yet and refuses to write a syntax it does not know.
UID_dictionary.setdefault(
    JPEG_XL_LOSSLESS, ("JPEG XL Lossless", "Transfer Syntax", "", "", "JPEGXLLossless")
)


def netpbm(pixels, samples, bits):
    """A binary PGM (grey) or PPM (RGB) image; 16-bit big-endian samples above 8 bits.

    Wider samples are declared as 16 bits whatever BitsStored says: cjxl 0.7 does not
    keep e.g. a 12-bit PGM (maxval 4095) exact, off by up to 8 after `djxl`, while the
    same values declared 16-bit come back unchanged.
    """
    height, width = pixels.shape[:2]
    magic = b"P5" if samples == 1 else b"P6"
    dtype = ">u2" if bits > 8 else "u1"
    maxval = 65535 if bits > 8 else 255
    head = b"%s\n%d %d\n%d\n" % (magic, width, height, maxval)
    return head + np.ascontiguousarray(pixels).astype(dtype).tobytes()


def main(source, target):
    ds = pydicom.dcmread(source)
    if getattr(ds, "NumberOfFrames", 1) not in (None, 1):
        sys.exit("single-frame images only")
    if int(ds.PixelRepresentation) == 1:
        sys.exit("JPEG XL has no signed samples")
    samples = int(ds.SamplesPerPixel)
    bits = int(ds.BitsStored)
    pixels = ds.pixel_array
    with tempfile.TemporaryDirectory() as tmp:
        image = pathlib.Path(tmp) / ("in.pgm" if samples == 1 else "in.ppm")
        out = pathlib.Path(tmp) / "out.jxl"
        image.write_bytes(netpbm(pixels, samples, bits))
        subprocess.run(
            ["cjxl", str(image), str(out), "-d", "0", "-e", "3"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        codestream = out.read_bytes()
    save_encapsulated(ds, codestream, JPEG_XL_LOSSLESS, target)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

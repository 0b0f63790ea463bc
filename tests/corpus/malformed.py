"""Writes the malformed-input corpus into the folder given as the first argument:
files made with pydicom and the standard library, each bad in one way. The Rust test
tests/it/malformed.rs uploads them beside a good file.

    python3 tests/corpus/malformed.py OUT_DIR
"""
import io
import os
import stat
import sys
import zipfile

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT = "1.2.840.10008.5.1.4.1.1.2"


def dataset(name="Muster^Max", rows=8, cols=8):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CT
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CT
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = name
    ds.PatientID = "MAL-1"
    ds.Modality = "CT"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(rows * cols * 2)
    return ds


def to_bytes(ds):
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def write(name, data):
    with open(os.path.join(out_dir, name), "wb") as f:
        f.write(data)


out_dir = sys.argv[1]
os.makedirs(out_dir, exist_ok=True)
good = to_bytes(dataset())

write("truncated.dcm", good[: len(good) // 2])

# The PatientName element claims far more bytes than the file has.
lying = bytearray(good)
at = lying.find(b"\x10\x00\x10\x00PN")
lying[at + 6 : at + 8] = (0xFFF0).to_bytes(2, "little")
write("lying-length.dcm", bytes(lying))

absurd = dataset()
absurd.Rows, absurd.Columns = 65535, 65535
absurd.NumberOfFrames = 100000
write("absurd-dimensions.dcm", to_bytes(absurd))

deep = dataset()
inner = Dataset()
inner.PatientID = "deep"
for _ in range(40):
    outer = Dataset()
    outer.ReferencedStudySequence = Sequence([inner])
    inner = outer
deep.ReferencedStudySequence = Sequence([inner])
write("deep-nesting.dcm", to_bytes(deep))

# Another format in the preamble (a polyglot): accepted, the preamble zeroed.
polyglot = bytearray(good)
polyglot[:29] = b"<html><script>x()</script>  "[:29].ljust(29)
write("polyglot-preamble.dcm", bytes(polyglot))

write("not-dicom.dcm", b"\x89PNG\r\n\x1a\n" + bytes(200))

write("script-name.dcm", to_bytes(dataset(name="<img src=x onerror=alert(1)>")))

bomb = io.BytesIO()
with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("zeros.dcm", bytes(200 * 1024 * 1024))
write("bomb.zip", bomb.getvalue())

slip = io.BytesIO()
with zipfile.ZipFile(slip, "w") as z:
    z.writestr("../../evil.dcm", good)
    z.writestr("/abs/evil.dcm", good)
write("slip.zip", slip.getvalue())

link = io.BytesIO()
with zipfile.ZipFile(link, "w") as z:
    info = zipfile.ZipInfo("link.dcm")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    z.writestr(info, "/etc/passwd")
write("symlink.zip", link.getvalue())

write("good.dcm", good)

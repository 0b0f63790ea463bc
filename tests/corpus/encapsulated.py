"""Wrap an encoder's codestream into a DICOM file as encapsulated pixel data (pydicom).

Shared by htj2k.py and jpegxl.py: no DICOM tool in the registries writes those
transfer syntaxes yet, so the codestream comes from the codec's own encoder.
"""
from pydicom.encaps import encapsulate


def save_encapsulated(ds, codestream, transfer_syntax, target):
    """`ds` with `codestream` as its one frame, saved as `transfer_syntax`."""
    ds.PixelData = encapsulate([codestream])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    if int(ds.SamplesPerPixel) > 1:
        ds.PlanarConfiguration = 0
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.save_as(target, enforce_file_format=True)

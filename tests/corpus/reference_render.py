"""Render references computed independently of the server's renderer.

usage:
  reference_render.py generate DIR   write test images (pydicom + numpy)
  reference_render.py render FILE OUT.pnm [FRAME]   reference 8-bit image of FILE

The reference follows the standard, step by step, with numpy only: the stored
values (BitsStored, signed or not), the modality LUT (RescaleSlope/Intercept),
then the file's first window with the linear VOI function of PS3.3 C.11.2.1.2, or,
without a window, the windows the product documents: for 8 stored bits their whole
range (shown as stored), else the 1st-99th percentile of the values;
MONOCHROME1 inverted; RGB as stored (either planar configuration); YBR_FULL
converted with the ITU-R BT.601 full-range matrix of PS3.3 C.7.6.3.1.2; PALETTE
COLOR through its lookup tables. Output is PGM (grey) or PPM (colour).
"""
import pathlib
import sys

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT = "1.2.840.10008.5.1.4.1.1.2"
SC = "1.2.840.10008.5.1.4.1.1.7"
MG = "1.2.840.10008.5.1.4.1.1.1.2"
US_MF = "1.2.840.10008.5.1.4.1.1.3.1"


def base(sop_class, rows, cols, photometric, samples, bits, stored, signed, frames=1):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Referenz^Bild"
    ds.PatientID = "REF-1"
    ds.Modality = "OT"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, stored, stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    if samples > 1:
        ds.PlanarConfiguration = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    return ds


def save(ds, pixels, path):
    if ds.get("PlanarConfiguration", 0) == 1 and ds.SamplesPerPixel == 3:
        # Colour planes one after the other instead of interleaved samples.
        pixels = np.ascontiguousarray(np.moveaxis(pixels, -1, -3))
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)


def gradient(rows, cols, lo, hi, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols]
    values = lo + (hi - lo) * ((x / cols) * 0.7 + (y / rows) * 0.3)
    values = values + rng.normal(0, (hi - lo) * 0.02, size=values.shape)
    return np.clip(values, lo, hi)


def generate(out):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # CT: 12 of 16 bits, rescale to HU, the file's window.
    ds = base(CT, 96, 80, "MONOCHROME2", 1, 16, 12, False)
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.WindowCenter, ds.WindowWidth = 40, 400
    save(ds, gradient(96, 80, 0, 4095, 1).astype(np.uint16), out / "ct_u12_window.dcm")
    # Signed 16 bits, slope 2, no window: the percentile window.
    ds = base(CT, 64, 72, "MONOCHROME2", 1, 16, 16, True)
    ds.RescaleSlope, ds.RescaleIntercept = 2, -100
    save(ds, gradient(64, 72, -2000, 3000, 2).astype(np.int16), out / "s16_slope_nowindow.dcm")
    # MONOCHROME1 (white is low), 16 bits, a window, a mammogram class.
    ds = base(MG, 120, 90, "MONOCHROME1", 1, 16, 14, False)
    ds.WindowCenter, ds.WindowWidth = 8000, 12000
    save(ds, gradient(120, 90, 0, 16383, 3).astype(np.uint16), out / "mg_mono1_window.dcm")
    # 8 bits without a window.
    ds = base(SC, 50, 70, "MONOCHROME2", 1, 8, 8, False)
    save(ds, gradient(50, 70, 10, 240, 4).astype(np.uint8), out / "u8_nowindow.dcm")
    # Several windows: the first counts.
    ds = base(CT, 40, 40, "MONOCHROME2", 1, 16, 16, True)
    ds.WindowCenter, ds.WindowWidth = [300, 40], [1500, 400]
    save(ds, gradient(40, 40, -1000, 2000, 5).astype(np.int16), out / "s16_two_windows.dcm")
    # RGB interleaved and planar.
    rgb = np.stack(
        [gradient(48, 64, 0, 255, 6), gradient(48, 64, 30, 200, 7)[:, ::-1], gradient(48, 64, 90, 160, 8)],
        axis=-1,
    ).astype(np.uint8)
    ds = base(SC, 48, 64, "RGB", 3, 8, 8, False)
    save(ds, rgb, out / "rgb_interleaved.dcm")
    ds = base(SC, 48, 64, "RGB", 3, 8, 8, False)
    ds.PlanarConfiguration = 1
    save(ds, rgb, out / "rgb_planar.dcm")
    # YBR_FULL.
    ds = base(SC, 48, 64, "YBR_FULL", 3, 8, 8, False)
    save(ds, rgb, out / "ybr_full.dcm")
    # PALETTE COLOR with 8-bit indices and 16-bit table entries.
    ds = base(SC, 32, 48, "PALETTE COLOR", 1, 8, 8, False)
    ramp = np.arange(256)
    for name, table in (("Red", ramp), ("Green", 255 - ramp), ("Blue", (ramp * 3) % 256)):
        setattr(ds, f"{name}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(ds, f"{name}PaletteColorLookupTableData", (table.astype(np.uint16) * 257).tobytes())
    save(ds, gradient(32, 48, 0, 255, 9).astype(np.uint8), out / "palette.dcm")
    # A multi-frame loop: each frame its own picture.
    frames = np.stack([gradient(40, 56, 0, 255, 10 + f) for f in range(3)]).astype(np.uint8)
    frames[1] = 255 - frames[1]
    ds = base(US_MF, 40, 56, "MONOCHROME2", 1, 8, 8, False, frames=3)
    save(ds, frames, out / "us_multiframe.dcm")


def voi_linear(x, center, width):
    # PS3.3 C.11.2.1.2.1
    lo = center - 0.5 - (width - 1) / 2
    hi = center - 0.5 + (width - 1) / 2
    y = ((x - (center - 0.5)) / (width - 1) + 0.5) * 255
    y = np.where(x <= lo, 0, np.where(x > hi, 255, y))
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def first(value):
    if isinstance(value, pydicom.multival.MultiValue):
        return float(value[0])
    return float(value)


def stored_values(ds, frame):
    bits, stored = ds.BitsAllocated, ds.BitsStored
    samples = ds.SamplesPerPixel
    rows, cols = ds.Rows, ds.Columns
    per_frame = rows * cols * samples
    dtype = {8: np.uint8, 16: np.uint16, 32: np.uint32}[bits]
    raw = np.frombuffer(ds.PixelData, dtype=dtype)[frame * per_frame:(frame + 1) * per_frame]
    values = raw.astype(np.int64) & ((1 << stored) - 1)
    if ds.PixelRepresentation == 1:
        sign = 1 << (stored - 1)
        values = np.where(values & sign, values - (1 << stored), values)
    if samples == 3:
        if ds.get("PlanarConfiguration", 0) == 1:
            values = values.reshape(3, rows, cols).transpose(1, 2, 0)
        else:
            values = values.reshape(rows, cols, 3)
    else:
        values = values.reshape(rows, cols)
    return values


def reference(path, frame):
    ds = pydicom.dcmread(path)
    photometric = ds.PhotometricInterpretation
    values = stored_values(ds, frame)
    if photometric == "RGB":
        return values.astype(np.uint8)
    if photometric == "YBR_FULL":
        y, cb, cr = (values[..., i].astype(np.float64) for i in range(3))
        r = y + 1.402 * (cr - 128)
        g = y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128)
        b = y + 1.772 * (cb - 128)
        return np.clip(np.rint(np.stack([r, g, b], axis=-1)), 0, 255).astype(np.uint8)
    if photometric == "PALETTE COLOR":
        channels = []
        for name in ("Red", "Green", "Blue"):
            n, first_mapped, bits = getattr(ds, f"{name}PaletteColorLookupTableDescriptor")
            n = n or 65536
            table = np.frombuffer(getattr(ds, f"{name}PaletteColorLookupTableData"), dtype=np.uint16 if bits == 16 else np.uint8)
            index = np.clip(values - first_mapped, 0, n - 1)
            channel = table[index].astype(np.int64)
            channels.append(channel >> 8 if bits == 16 else channel)
        return np.stack(channels, axis=-1).astype(np.uint8)
    slope = float(ds.get("RescaleSlope", 1))
    intercept = float(ds.get("RescaleIntercept", 0))
    modality = values * slope + intercept
    if "WindowCenter" in ds and "WindowWidth" in ds:
        center, width = first(ds.WindowCenter), first(ds.WindowWidth)
    elif ds.BitsStored <= 8:
        # 8 stored bits without a window: the whole range the stored bits can hold.
        bits = ds.BitsStored
        raw = np.arange(-(1 << (bits - 1)), 1 << (bits - 1)) if ds.PixelRepresentation else np.arange(1 << bits)
        ends = raw[[0, -1]] * slope + intercept
        lo, hi = ends.min(), ends.max()
        width = max(hi - lo, 1) + 1
        center = lo + (hi - lo) / 2 + 0.5
    else:
        # The documented automatic window: 1st to 99th percentile of the values.
        flat = np.sort(modality.ravel())
        lo = flat[len(flat) // 100]
        hi = flat[min(len(flat) * 99 // 100, len(flat) - 1)]
        width = max(hi - lo, 1) + 1
        center = lo + (hi - lo) / 2 + 0.5
    grey = voi_linear(modality, center, width)
    if photometric == "MONOCHROME1":
        grey = 255 - grey
    return grey


def write_pnm(image, out):
    with open(out, "wb") as f:
        if image.ndim == 2:
            f.write(b"P5\n%d %d\n255\n" % (image.shape[1], image.shape[0]))
        else:
            f.write(b"P6\n%d %d\n255\n" % (image.shape[1], image.shape[0]))
        f.write(np.ascontiguousarray(image).tobytes())


if __name__ == "__main__":
    if sys.argv[1] == "generate":
        generate(sys.argv[2])
    elif sys.argv[1] == "render":
        frame = int(sys.argv[4]) if len(sys.argv) > 4 else 0
        write_pnm(reference(sys.argv[2], frame), sys.argv[3])
    else:
        sys.exit(__doc__)

//! Renders one frame to 8-bit pixels: native or encapsulated (JPEG baseline,
//! extended and lossless, JPEG 2000, RLE, decoded by dicom-pixeldata; JPEG XL by
//! [`super::jpegxl`], 12-bit JPEG extended by [`super::jpeg12`]),
//! modality LUT (rescale), VOI window (from the file, else its VOI LUT, else for 8
//! stored bits their whole range, else a robust automatic one),
//! MONOCHROME1 inverted, RGB in either planar configuration, YBR_FULL and
//! YBR_FULL_422, PALETTE COLOR. Anything else answers [`DicomError::Unsupported`].

use super::DicomError;
use super::parse::{int, text};
use dicom_dictionary_std::tags;

const NATIVE_SYNTAXES: &[&str] = &[
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.1.99",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub width: u32,
    pub height: u32,
    /// 1 (gray) or 3 (RGB) bytes per pixel.
    pub channels: u8,
    pub pixels: Vec<u8>,
}

impl Rendered {
    /// Scaled down (area average) to fit inside `max_w` × `max_h`; never enlarged.
    pub fn fit_within(&self, max_w: u32, max_h: u32) -> Rendered {
        let (max_w, max_h) = (max_w.max(1), max_h.max(1));
        if self.width <= max_w && self.height <= max_h {
            return self.clone();
        }
        let scale = f64::min(
            f64::from(max_w) / f64::from(self.width),
            f64::from(max_h) / f64::from(self.height),
        );
        let out_w = ((f64::from(self.width) * scale).round() as u32).max(1);
        let out_h = ((f64::from(self.height) * scale).round() as u32).max(1);
        let ch = usize::from(self.channels);
        let (sw, sh) = (self.width as usize, self.height as usize);
        let mut pixels = Vec::with_capacity(out_w as usize * out_h as usize * ch);
        for oy in 0..out_h as usize {
            let y0 = oy * sh / out_h as usize;
            let y1 = ((oy + 1) * sh / out_h as usize).max(y0 + 1);
            for ox in 0..out_w as usize {
                let x0 = ox * sw / out_w as usize;
                let x1 = ((ox + 1) * sw / out_w as usize).max(x0 + 1);
                let count = ((y1 - y0) * (x1 - x0)) as u32;
                for c in 0..ch {
                    let mut sum = 0u32;
                    for y in y0..y1 {
                        let row = y * sw;
                        for x in x0..x1 {
                            sum += u32::from(self.pixels[(row + x) * ch + c]);
                        }
                    }
                    pixels.push(((sum + count / 2) / count) as u8);
                }
            }
        }
        Rendered {
            width: out_w,
            height: out_h,
            channels: self.channels,
            pixels,
        }
    }

    /// Lossy, for previews and downloads; `quality` 1–100.
    pub fn to_jpeg(&self, quality: u8) -> Result<Vec<u8>, DicomError> {
        super::jpeg_out::encode(
            &self.pixels,
            self.width,
            self.height,
            self.channels,
            quality,
        )
    }

    /// Lossless WebP: the same pixels as the PNG, usually in fewer bytes.
    pub fn to_webp(&self) -> Result<Vec<u8>, DicomError> {
        let color = if self.channels == 3 {
            image_webp::ColorType::Rgb8
        } else {
            image_webp::ColorType::L8
        };
        if self.pixels.len()
            != self.width as usize * self.height as usize * usize::from(self.channels)
        {
            // The encoder panics on a buffer of the wrong size.
            return Err(DicomError::Malformed(
                "image buffer of the wrong size".into(),
            ));
        }
        let mut out = Vec::new();
        image_webp::WebPEncoder::new(&mut out)
            .encode(&self.pixels, self.width, self.height, color)
            .map_err(|e| DicomError::Unsupported(e.to_string()))?;
        Ok(out)
    }

    pub fn to_png(&self) -> Result<Vec<u8>, DicomError> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, self.width, self.height);
            enc.set_color(if self.channels == 3 {
                png::ColorType::Rgb
            } else {
                png::ColorType::Grayscale
            });
            enc.set_depth(png::BitDepth::Eight);
            enc.set_compression(png::Compression::Fast);
            let mut w = enc
                .write_header()
                .map_err(|e| DicomError::Unsupported(e.to_string()))?;
            w.write_image_data(&self.pixels)
                .map_err(|e| DicomError::Unsupported(e.to_string()))?;
        }
        Ok(out)
    }
}

fn float(obj: &dicom_object::DefaultDicomObject, tag: dicom_core::Tag) -> Option<f64> {
    let s = text(obj, tag);
    s.split('\\').next()?.trim().parse().ok()
}

/// One frame's samples as stored (native) or as decoded, and what describes them.
pub(super) struct Samples<'a> {
    pub(super) bytes: std::borrow::Cow<'a, [u8]>,
    pub(super) photometric: String,
    samples_per_pixel: i64,
    pub(super) bits_allocated: i64,
    bits_stored: i64,
    signed: bool,
    planar: i64,
    pub(super) big_endian: bool,
}

/// The frame's bytes: sliced from native pixel data, or decoded from an encapsulated
/// transfer syntax (JPEG, JPEG 2000 and HTJ2K, RLE, and JPEG-LS when built with the
/// `jpeg-ls` feature, by dicom-pixeldata; JPEG XL by [`super::jpegxl`]), colour as
/// interleaved RGB.
pub(super) fn samples<'a>(
    parsed: &'a ForRender,
    ts: &str,
    frame: u32,
    (w, h): (usize, usize),
) -> Result<Samples<'a>, DicomError> {
    let obj = &parsed.obj;
    let spp = int(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let bits_alloc = int(obj, tags::BITS_ALLOCATED).ok_or(DicomError::Missing("BitsAllocated"))?;
    let bits_stored = int(obj, tags::BITS_STORED).unwrap_or(bits_alloc);
    let signed = int(obj, tags::PIXEL_REPRESENTATION).unwrap_or(0) == 1;
    let photometric = text(obj, tags::PHOTOMETRIC_INTERPRETATION).to_uppercase();
    if !(bits_alloc == 8 || bits_alloc == 16) || !(1..=bits_alloc).contains(&bits_stored) {
        return Err(DicomError::Unsupported(format!("{bits_alloc}-bit pixels")));
    }
    if !(spp == 1 || spp == 3) {
        return Err(DicomError::Unsupported(format!("{spp} samples per pixel")));
    }
    if NATIVE_SYNTAXES.contains(&ts) {
        let bpp = (bits_alloc / 8) as usize;
        // YBR_FULL_422 stores two luma samples per chroma pair: 2 samples per pixel.
        let per_pixel = if photometric == "YBR_FULL_422" {
            2
        } else {
            spp as usize
        };
        let frame_len = w * h * per_pixel * bpp;
        let start = frame as usize * frame_len;
        let (bytes, big_endian) = match &parsed.pixels {
            Pixels::InFile { file, value } => {
                let frame = file[value.clone()]
                    .get(start..start + frame_len)
                    .ok_or_else(short_pixel_data)?;
                (std::borrow::Cow::Borrowed(frame), false)
            }
            Pixels::Parsed => {
                let element = obj
                    .element(tags::PIXEL_DATA)
                    .map_err(|_| DicomError::Missing("PixelData"))?;
                // Words the parser read are numbers now, and their bytes come out
                // little-endian whatever the file's order; only raw bytes keep it.
                let file_order = matches!(
                    element.value(),
                    dicom_core::value::Value::Primitive(dicom_core::PrimitiveValue::U8(_))
                );
                let big_endian = file_order && ts == "1.2.840.10008.1.2.2";
                let data = element
                    .to_bytes()
                    .map_err(|_| DicomError::Malformed("pixel data is not native".into()))?;
                let bytes = match data {
                    std::borrow::Cow::Borrowed(d) => std::borrow::Cow::Borrowed(
                        d.get(start..start + frame_len)
                            .ok_or_else(short_pixel_data)?,
                    ),
                    std::borrow::Cow::Owned(mut d) => {
                        if d.len() < start + frame_len {
                            return Err(short_pixel_data());
                        }
                        // The frame, kept in the buffer just made: no second copy.
                        d.truncate(start + frame_len);
                        d.drain(..start);
                        std::borrow::Cow::Owned(d)
                    }
                };
                (bytes, big_endian)
            }
        };
        return Ok(Samples {
            bytes,
            photometric,
            samples_per_pixel: spp,
            bits_allocated: bits_alloc,
            bits_stored,
            signed,
            planar: int(obj, tags::PLANAR_CONFIGURATION).unwrap_or(0),
            big_endian,
        });
    }
    // The decoders index by what the file declares; a damaged file can make one
    // panic, which is caught here and reported like any undecodable frame.
    let undecodable = || DicomError::Malformed("the pixel data cannot be decoded".into());
    // A 12-bit JPEG extended frame, which the library's JPEG decoder cannot read.
    let twelve_bit_jpeg = if ts == "1.2.840.10008.1.2.4.51" && spp == 1 && bits_alloc == 16 {
        let jpeg = frame_fragment(obj, frame)?;
        super::jpeg12::is_twelve_bit(&jpeg).then_some(jpeg)
    } else {
        None
    };
    let (mut bytes, photometric) = if super::jpegxl::is_jpeg_xl(ts) {
        let codestream = frame_fragment(obj, frame)?;
        let bytes = std::panic::catch_unwind(|| {
            super::jpegxl::decode(&codestream, (w, h), spp as usize, bits_alloc as usize)
        })
        .map_err(|_| undecodable())??;
        (bytes, if spp == 3 { "RGB".into() } else { photometric })
    } else if let Some(jpeg) = twelve_bit_jpeg {
        let bytes = std::panic::catch_unwind(|| super::jpeg12::decode(&jpeg, (w, h)))
            .map_err(|_| undecodable())??;
        (bytes, photometric)
    } else {
        decode_by_library(obj, ts, frame, (w, h), spp, photometric)?
    };
    let expected = w * h * spp as usize * (bits_alloc / 8) as usize;
    if bytes.len() < expected {
        return Err(short_pixel_data());
    }
    bytes.truncate(expected);
    Ok(Samples {
        bytes: std::borrow::Cow::Owned(bytes),
        photometric,
        samples_per_pixel: spp,
        bits_allocated: bits_alloc,
        bits_stored,
        signed,
        planar: 0,
        big_endian: false,
    })
}

/// One frame decoded by dicom-pixeldata (JPEG, JPEG 2000 and HTJ2K, RLE, JPEG-LS),
/// after the checks its decoders need, and the photometric interpretation of the
/// result.
fn decode_by_library(
    obj: &dicom_object::DefaultDicomObject,
    ts: &str,
    frame: u32,
    (w, h): (usize, usize),
    spp: i64,
    photometric: String,
) -> Result<(Vec<u8>, String), DicomError> {
    use dicom_pixeldata::PixelDecoder;
    let (fragments, frames) = encapsulated(obj);
    let rle = ts == "1.2.840.10008.1.2.5";
    let j2k = ts.starts_with("1.2.840.10008.1.2.4.9") || ts.starts_with("1.2.840.10008.1.2.4.20");
    if rle {
        // The RLE decoder sizes its segment table by the header's count: at most
        // 15 segments fit the 64-byte header the standard defines.
        let sane = fragments
            .get(frame as usize)
            .is_some_and(|f| f.len() >= 64 && u32::from_le_bytes([f[0], f[1], f[2], f[3]]) <= 15);
        if !sane {
            return Err(DicomError::Malformed("the RLE header is damaged".into()));
        }
    }
    if j2k {
        // The fragment that starts this frame: the first of a single-frame file, else
        // the frame's own when there is one fragment per frame (otherwise the frame
        // boundaries are not known here and the decoder is left to it).
        let start = match (frames, fragments.len()) {
            (1, _) => fragments.first(),
            (n, m) if n == m => fragments.get(frame as usize),
            _ => None,
        };
        if let Some(start) = start {
            j2k_fits(start, (w, h))?;
        }
    }
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        obj.decode_pixel_data_frame(frame)
    }))
    .map_err(|_| DicomError::Malformed("the pixel data cannot be decoded".into()))?
    .map_err(|e| DicomError::Unsupported(format!("transfer syntax {ts}: {e}")))?;
    // The decoding library calls every colour result RGB. JPEG decoders do turn YBR
    // into RGB (and JPEG 2000 does for YBR_ICT/YBR_RCT), but RLE hands back the
    // samples as stored, and so does JPEG 2000 for a file labelled YBR_FULL.
    let photometric = match spp {
        3 if photometric == "YBR_FULL" && (rle || j2k) => photometric,
        3 => "RGB".to_string(),
        _ => photometric,
    };
    Ok((decoded.into_data(), photometric))
}

/// The fragments of encapsulated pixel data (none for native data) and the number
/// of frames the file declares.
fn encapsulated(obj: &dicom_object::DefaultDicomObject) -> (&[Vec<u8>], usize) {
    let frames = int(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1) as usize;
    let fragments: &[Vec<u8>] = obj
        .element(tags::PIXEL_DATA)
        .ok()
        .and_then(|e| e.value().fragments())
        .unwrap_or(&[]);
    (fragments, frames)
}

/// The encapsulated data of one frame: its own fragment when there is one per frame,
/// all fragments of a single-frame file joined.
fn frame_fragment(
    obj: &dicom_object::DefaultDicomObject,
    frame: u32,
) -> Result<std::borrow::Cow<'_, [u8]>, DicomError> {
    let (fragments, frames) = encapsulated(obj);
    match (frames, fragments.len()) {
        (_, 0) => Err(DicomError::Missing("PixelData")),
        (1, 1) => Ok(std::borrow::Cow::Borrowed(&fragments[0])),
        (1, _) => Ok(std::borrow::Cow::Owned(fragments.concat())),
        (n, m) if n == m => Ok(std::borrow::Cow::Borrowed(&fragments[frame as usize])),
        _ => Err(DicomError::Unsupported(
            "frames spread over several fragments".into(),
        )),
    }
}

/// A JPEG 2000 codestream's own size (its SIZ marker) must not exceed the frame the
/// file declares: the decoder allocates by the codestream, and a fuzzed file asked it
/// for gigabytes that way.
fn j2k_fits(fragment: &[u8], (w, h): (usize, usize)) -> Result<(), DicomError> {
    let damaged = || DicomError::Malformed("the JPEG 2000 data does not fit the image".into());
    // The codestream starts with SOC and SIZ, in a JP2 file after its boxes.
    let head = &fragment[..fragment.len().min(4096)];
    let at = head
        .windows(4)
        .position(|m| m == [0xFF, 0x4F, 0xFF, 0x51])
        .ok_or_else(damaged)?;
    let siz = head.get(at + 4..at + 4 + 38).ok_or_else(damaged)?;
    let u32_at = |i: usize| {
        u64::from(u32::from_be_bytes([
            siz[i],
            siz[i + 1],
            siz[i + 2],
            siz[i + 3],
        ]))
    };
    // Lsiz(2) Rsiz(2) Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz Csiz(2)
    let (x, y, x0, y0) = (u32_at(4), u32_at(8), u32_at(12), u32_at(16));
    let components = u16::from_be_bytes([siz[36], siz[37]]);
    let fits = x >= x0
        && y >= y0
        && x - x0 <= w as u64
        && y - y0 <= h as u64
        && (1..=4).contains(&components);
    if fits { Ok(()) } else { Err(damaged()) }
}

fn short_pixel_data() -> DicomError {
    DicomError::Malformed("pixel data shorter than its dimensions".into())
}

/// The usual CT windows (centre, width in Hounsfield units) by name.
pub fn window_preset(name: &str) -> Option<(f64, f64)> {
    match name {
        "soft" => Some((40.0, 400.0)),
        "lung" => Some((-600.0, 1500.0)),
        "bone" => Some((400.0, 1800.0)),
        "brain" => Some((40.0, 80.0)),
        _ => None,
    }
}

/// What the caller asks of a render beyond the frame.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RenderOptions {
    /// Window centre and width in modality units; `None`: the file's, else automatic.
    pub window: Option<(f64, f64)>,
    /// Fit inside this many columns and rows (never enlarged); `None`: full size.
    pub viewport: Option<(u32, u32)>,
}

/// `frame` is zero-based.
pub fn render_frame(bytes: &[u8], frame: u32) -> Result<Rendered, DicomError> {
    render_frame_with(bytes, frame, RenderOptions::default())
}

/// [`render_frame`] with a window and an output size.
pub fn render_frame_with(
    bytes: &[u8],
    frame: u32,
    options: RenderOptions,
) -> Result<Rendered, DicomError> {
    render_parsed(&parse_for_render(bytes.to_vec())?, frame, options)
}

/// A file parsed to render frames from (one parse serves every frame of a loop).
pub struct ForRender {
    obj: dicom_object::DefaultDicomObject,
    pixels: Pixels,
}

/// Where a parsed file's pixel data is.
enum Pixels {
    /// Native pixel data in a little-endian syntax is read where it lies in the
    /// file's bytes: the attributes are parsed up to it, and its value is not copied
    /// (a mammogram's is 27 MB, which the parser would copy and hold again).
    InFile {
        file: Vec<u8>,
        value: std::ops::Range<usize>,
    },
    /// Parsed with the rest (encapsulated frames, big-endian and deflated files).
    Parsed,
}

impl ForRender {
    pub(super) fn object(&self) -> &dicom_object::DefaultDicomObject {
        &self.obj
    }

    /// Whether frames are read where they lie in the file (native, little-endian).
    pub fn reads_in_place(&self) -> bool {
        matches!(self.pixels, Pixels::InFile { .. })
    }

    pub(super) fn transfer_syntax(&self) -> String {
        let ts = self.obj.meta().transfer_syntax();
        ts.trim_end_matches('\0').trim().to_string()
    }

    /// Columns, rows and frames, checked against the limits every render keeps.
    pub(super) fn geometry(&self) -> Result<(usize, usize, usize), DicomError> {
        let obj = &self.obj;
        let rows = int(obj, tags::ROWS).ok_or(DicomError::Missing("Rows"))?;
        let cols = int(obj, tags::COLUMNS).ok_or(DicomError::Missing("Columns"))?;
        let frames = int(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
        if !(1..=65535).contains(&rows) || !(1..=65535).contains(&cols) {
            return Err(DicomError::TooLarge);
        }
        Ok((cols as usize, rows as usize, frames as usize))
    }
}

/// Parses a file to render frames from.
pub fn parse_for_render(bytes: Vec<u8>) -> Result<ForRender, DicomError> {
    let (obj, value) = super::parse::open_for_render(&bytes)?;
    let pixels = match value {
        Some(value) => Pixels::InFile { file: bytes, value },
        None => Pixels::Parsed,
    };
    Ok(ForRender { obj, pixels })
}

/// One frame of a file already parsed by [`parse_for_render`].
pub fn render_parsed(
    parsed: &ForRender,
    frame: u32,
    options: RenderOptions,
) -> Result<Rendered, DicomError> {
    let full = render_full(parsed, frame, options.window)?;
    Ok(match options.viewport {
        Some((w, h)) => full.fit_within(w, h),
        None => full,
    })
}

fn render_full(
    parsed: &ForRender,
    frame: u32,
    window_override: Option<(f64, f64)>,
) -> Result<Rendered, DicomError> {
    let obj = &parsed.obj;
    let ts = parsed.transfer_syntax();
    let (w, h, frames) = parsed.geometry()?;
    if frame as usize >= frames {
        return Err(DicomError::Missing("frame"));
    }
    let s = samples(parsed, &ts, frame, (w, h))?;
    let bpp = (s.bits_allocated / 8) as usize;
    let frame_bytes: &[u8] = &s.bytes;

    match (s.photometric.as_str(), s.samples_per_pixel) {
        ("MONOCHROME1" | "MONOCHROME2", 1) => {
            // Every stored value maps to one grey level, so the mapping (modality
            // LUT, VOI, inversion) is worked out once per possible value (at most
            // 2^16) and each pixel is a table look-up: no per-pixel arithmetic and
            // no copy of the image in floating point.
            let bits = s.bits_stored as u32;
            let signed = s.signed;
            let modality = modality_lut(obj, bits, signed);
            let file_window = match (
                float(obj, tags::WINDOW_CENTER),
                float(obj, tags::WINDOW_WIDTH),
            ) {
                (Some(c), Some(w)) if w >= 1.0 => Some((c, w)),
                _ => None,
            };
            // Asked for, else the file's window, else its VOI LUT, else automatic.
            let voi_lut = match (window_override, file_window) {
                (None, None) => voi_lut(obj),
                _ => None,
            };
            let window = window_override
                .filter(|(c, w)| *w >= 1.0 && c.is_finite() && w.is_finite())
                .or(file_window)
                .unwrap_or_else(|| match voi_lut {
                    // The VOI LUT maps the values; no window is used.
                    Some(_) => (0.0, 1.0),
                    // An image of 8 stored bits was made to be shown as stored (an
                    // ultrasound loop, an endoscopy still): its whole range, the same
                    // for every frame, so a loop keeps its brightness while it plays.
                    None if bits <= 8 => full_range_window(bits, modality),
                    None => {
                        let counts = histogram(frame_bytes, bpp, bits, s.big_endian);
                        auto_window(&counts, modality)
                    }
                });
            let invert = s.photometric == "MONOCHROME1";
            let table = grey_table(bits, signed, &modality, voi_lut.as_ref(), window, invert);
            let pixels = map_through(frame_bytes, bpp, bits, s.big_endian, &table);
            Ok(Rendered {
                width: w as u32,
                height: h as u32,
                channels: 1,
                pixels,
            })
        }
        ("RGB" | "YBR_FULL", 3) if bpp == 1 => {
            let n = w * h;
            let mut pixels = if s.planar == 1 {
                let mut out = Vec::with_capacity(n * 3);
                for i in 0..n {
                    out.extend_from_slice(&[
                        frame_bytes[i],
                        frame_bytes[n + i],
                        frame_bytes[2 * n + i],
                    ]);
                }
                out
            } else {
                frame_bytes.to_vec()
            };
            if s.photometric == "YBR_FULL" {
                for p in pixels.chunks_exact_mut(3) {
                    let rgb = ybr_to_rgb(p[0], p[1], p[2]);
                    p.copy_from_slice(&rgb);
                }
            }
            Ok(Rendered {
                width: w as u32,
                height: h as u32,
                channels: 3,
                pixels,
            })
        }
        ("YBR_FULL_422", 3) if bpp == 1 => {
            // Y1 Y2 Cb Cr per pair of pixels along a row (PS3.3 C.7.6.3.1.2).
            let mut pixels = Vec::with_capacity(w * h * 3);
            for row in frame_bytes.chunks_exact(w * 2).take(h) {
                for (x, pair) in row.chunks(4).enumerate() {
                    if pair.len() < 4 {
                        break;
                    }
                    pixels.extend_from_slice(&ybr_to_rgb(pair[0], pair[2], pair[3]));
                    if 2 * x + 1 < w {
                        pixels.extend_from_slice(&ybr_to_rgb(pair[1], pair[2], pair[3]));
                    }
                }
            }
            if pixels.len() != w * h * 3 {
                return Err(short_pixel_data());
            }
            Ok(Rendered {
                width: w as u32,
                height: h as u32,
                channels: 3,
                pixels,
            })
        }
        ("PALETTE COLOR", 1) => {
            let stored = read_samples(frame_bytes, bpp, s.bits_stored as u32, false, s.big_endian);
            let luts = [
                palette(
                    obj,
                    tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                    tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                )?,
                palette(
                    obj,
                    tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                    tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                )?,
                palette(
                    obj,
                    tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                    tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                )?,
            ];
            let mut pixels = Vec::with_capacity(stored.len() * 3);
            for v in stored {
                for lut in &luts {
                    pixels.push(lut.look_up(v));
                }
            }
            Ok(Rendered {
                width: w as u32,
                height: h as u32,
                channels: 3,
                pixels,
            })
        }
        (other, _) => Err(DicomError::Unsupported(format!(
            "photometric interpretation {other}"
        ))),
    }
}

/// ITU-R BT.601 full range, as YBR_FULL defines it (PS3.3 C.7.6.3.1.2).
fn ybr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let (y, cb, cr) = (f32::from(y), f32::from(cb) - 128.0, f32::from(cr) - 128.0);
    let clamp = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    [
        clamp(y + 1.402 * cr),
        clamp(y - 0.344_136 * cb - 0.714_136 * cr),
        clamp(y + 1.772 * cb),
    ]
}

/// One palette colour table: first mapped value, entries, 8 bits out.
struct Palette {
    first: i64,
    entries: Vec<u8>,
}

impl Palette {
    fn look_up(&self, v: i64) -> u8 {
        let i = (v - self.first).clamp(0, self.entries.len() as i64 - 1);
        self.entries[i as usize]
    }
}

/// The first VOI LUT of the file's VOI LUT Sequence, scaled to 8 bits.
fn voi_lut(obj: &dicom_object::DefaultDicomObject) -> Option<Palette> {
    let items = obj.element(tags::VOILUT_SEQUENCE).ok()?.items()?;
    let item = items.first()?;
    let d: Vec<i64> = item
        .element(tags::LUT_DESCRIPTOR)
        .ok()?
        .to_multi_int::<i64>()
        .ok()?;
    if d.len() != 3 || !(8..=16).contains(&d[2]) {
        return None;
    }
    let count = if d[0] == 0 { 65_536 } else { d[0] as usize };
    // The first mapped value follows the pixel representation; small tables as sent.
    let first = if d[1] > 32_767 { d[1] - 65_536 } else { d[1] };
    let bits = d[2] as u32;
    let bytes = item.element(tags::LUT_DATA).ok()?.to_bytes().ok()?;
    let max = f64::from((1u32 << bits) - 1);
    let raw: Vec<u32> = if bits == 8 && bytes.len() == count {
        bytes.iter().map(|&b| u32::from(b)).collect()
    } else {
        bytes
            .chunks_exact(2)
            .take(count)
            .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))
            .collect()
    };
    if raw.len() != count {
        return None;
    }
    let entries = raw
        .iter()
        .map(|&v| (f64::from(v) * 255.0 / max).round().clamp(0.0, 255.0) as u8)
        .collect();
    Some(Palette { first, entries })
}

fn palette(
    obj: &dicom_object::DefaultDicomObject,
    descriptor: dicom_core::Tag,
    data: dicom_core::Tag,
) -> Result<Palette, DicomError> {
    let missing = || DicomError::Missing("palette colour lookup table");
    let d: Vec<i64> = obj
        .element(descriptor)
        .map_err(|_| missing())?
        .to_multi_int::<i64>()
        .map_err(|_| missing())?;
    if d.len() != 3 {
        return Err(missing());
    }
    // 0 entries means 65536 (PS3.3 C.7.6.3.1.5); the first value is unsigned.
    let count = if d[0] == 0 { 65_536 } else { d[0] as usize };
    let first = d[1] & 0xFFFF;
    let bits = d[2];
    let bytes = obj
        .element(data)
        .map_err(|_| missing())?
        .to_bytes()
        .map_err(|_| missing())?;
    let entries: Vec<u8> = if bits == 8 && bytes.len() < count * 2 && bytes.len() >= count {
        // 8-bit entries packed two to a word.
        bytes[..count].to_vec()
    } else if bits == 8 && bytes.len() >= count * 2 {
        // 8-bit entries one to a 16-bit word.
        bytes.chunks_exact(2).take(count).map(|c| c[0]).collect()
    } else if bits == 16 && bytes.len() >= count * 2 {
        bytes
            .chunks_exact(2)
            .take(count)
            .map(|c| (u16::from_le_bytes([c[0], c[1]]) >> 8) as u8)
            .collect()
    } else {
        return Err(DicomError::Malformed(
            "palette table shorter than its descriptor".into(),
        ));
    };
    Ok(Palette { first, entries })
}

fn read_samples(
    bytes: &[u8],
    bpp: usize,
    bits_stored: u32,
    signed: bool,
    big_endian: bool,
) -> Vec<i64> {
    raw_samples(bytes, bpp, bits_stored, big_endian)
        .into_iter()
        .map(|r| stored_value(u32::from(r), bits_stored, signed))
        .collect()
}

/// DICOM PS3.3 C.11.2.1.2 linear VOI function, to 0..=255.
pub fn voi_linear(x: f64, center: f64, width: f64) -> u8 {
    let lo = center - 0.5 - (width - 1.0) / 2.0;
    let hi = center - 0.5 + (width - 1.0) / 2.0;
    if x <= lo {
        0
    } else if x > hi {
        255
    } else {
        (((x - (center - 0.5)) / (width - 1.0) + 0.5) * 255.0)
            .round()
            .clamp(0.0, 255.0) as u8
    }
}

/// The grey level of every stored value: modality LUT (`modality`), then the VOI
/// LUT or the linear window, then inversion for MONOCHROME1. An entry for every
/// 16-bit value, so no look-up needs a bounds check; only those the stored bits can
/// reach are worked out.
fn grey_table(
    bits: u32,
    signed: bool,
    modality: &impl Fn(usize) -> f64,
    voi_lut: Option<&Palette>,
    window: (f64, f64),
    invert: bool,
) -> Box<[u8; 1 << 16]> {
    let grey = |r: usize| {
        let v = modality(r);
        let g = match voi_lut {
            Some(lut) => lut.look_up(v.round() as i64),
            None => voi_linear(v, window.0, window.1),
        };
        if invert { 255 - g } else { g }
    };
    let mut table = Box::new([0u8; 1 << 16]);
    let reachable = &mut table[..1 << bits];
    if voi_lut.is_some() {
        // A VOI LUT may go up and down: every entry is worked out.
        for (r, entry) in reachable.iter_mut().enumerate() {
            *entry = grey(r);
        }
    } else {
        // Signed values wrap at the sign bit; each half is a straight line through
        // the window, so its greys only rise or only fall.
        let split = if signed { 1 << (bits - 1) } else { 1 << bits };
        let (low, high) = reachable.split_at_mut(split);
        fill_monotone(low, 0, grey);
        fill_monotone(high, split, grey);
    }
    table
}

/// `table[i] = grey(first + i)` for a `grey` that only rises or only falls. Most
/// entries lie outside the window, where it is 0 or 255: those runs at both ends are
/// found by bisection and filled, and only the ramp between is worked out (a 16-bit
/// table is 65536 entries; a CT window a few hundred).
fn fill_monotone(table: &mut [u8], first: usize, grey: impl Fn(usize) -> u8) {
    let len = table.len();
    let Some(last) = len.checked_sub(1) else {
        return;
    };
    // How many entries, counted inwards from the first one (or the last), equal it;
    // with a monotone `grey` the equal entries are contiguous.
    let run = |from_end: bool| {
        let at = |offset: usize| grey(first + if from_end { last - offset } else { offset });
        let value = at(0);
        let (mut same, mut differs) = (1, len);
        while same < differs {
            let mid = same + (differs - same) / 2;
            if at(mid) == value {
                same = mid + 1;
            } else {
                differs = mid;
            }
        }
        (value, same)
    };
    let (start_value, start_run) = run(false);
    table[..start_run].fill(start_value);
    if start_run == len {
        return;
    }
    let (end_value, end_run) = run(true);
    let ramp_end = len - end_run;
    table[ramp_end..].fill(end_value);
    for (i, entry) in table.iter_mut().enumerate().take(ramp_end).skip(start_run) {
        *entry = grey(first + i);
    }
}

/// The stored bits of each sample, as unsigned numbers (the index into a table of
/// every possible value), handed to `each` in order.
fn for_each_raw(
    bytes: &[u8],
    bpp: usize,
    bits_stored: u32,
    big_endian: bool,
    mut each: impl FnMut(u16),
) {
    let mask = ((1u32 << bits_stored) - 1) as u16;
    match (bpp, big_endian) {
        (1, _) => bytes.iter().for_each(|&b| each(u16::from(b) & mask)),
        (_, false) => bytes
            .chunks_exact(2)
            .for_each(|c| each(u16::from_le_bytes([c[0], c[1]]) & mask)),
        (_, true) => bytes
            .chunks_exact(2)
            .for_each(|c| each(u16::from_be_bytes([c[0], c[1]]) & mask)),
    }
}

/// [`for_each_raw`] collected.
fn raw_samples(bytes: &[u8], bpp: usize, bits_stored: u32, big_endian: bool) -> Vec<u16> {
    let mut out = Vec::with_capacity(bytes.len() / bpp.max(1));
    for_each_raw(bytes, bpp, bits_stored, big_endian, |r| out.push(r));
    out
}

/// Each sample's stored bits looked up in `table` (an entry per possible stored
/// value), straight from the frame's bytes.
fn map_through(
    bytes: &[u8],
    bpp: usize,
    bits_stored: u32,
    big_endian: bool,
    table: &[u8; 1 << 16],
) -> Vec<u8> {
    // 8 stored bits shown as stored (an ultrasound loop's frames): a copy.
    if bpp == 1
        && bits_stored == 8
        && table[..256]
            .iter()
            .enumerate()
            .all(|(i, &g)| usize::from(g) == i)
    {
        return bytes.to_vec();
    }
    let mask = ((1u32 << bits_stored) - 1) as u16;
    let look_up = |r: u16| table[usize::from(r & mask)];
    match (bpp, big_endian) {
        (1, _) => bytes.iter().map(|&b| look_up(u16::from(b))).collect(),
        (_, false) => bytes
            .chunks_exact(2)
            .map(|c| look_up(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        (_, true) => bytes
            .chunks_exact(2)
            .map(|c| look_up(u16::from_be_bytes([c[0], c[1]])))
            .collect(),
    }
}

/// A sample's stored bits as the number they stand for (two's complement when the
/// pixel representation is signed).
fn stored_value(raw: u32, bits_stored: u32, signed: bool) -> i64 {
    if signed && bits_stored > 0 && raw & (1 << (bits_stored - 1)) != 0 {
        i64::from(raw) - (1i64 << bits_stored)
    } else {
        i64::from(raw)
    }
}

/// How often each stored value occurs, counted straight from the frame's bytes (a
/// mammogram's samples would be another 27 MB as a list).
fn histogram(bytes: &[u8], bpp: usize, bits_stored: u32, big_endian: bool) -> Vec<u64> {
    match (bpp, big_endian) {
        (1, _) => count_in_four(bytes, 1, bits_stored, |c| u16::from(c[0])),
        (_, false) => count_in_four(bytes, 2, bits_stored, |c| u16::from_le_bytes([c[0], c[1]])),
        (_, true) => count_in_four(bytes, 2, bits_stored, |c| u16::from_be_bytes([c[0], c[1]])),
    }
}

/// Counts the samples into four counters per value, in turn, and adds them up at the
/// end: neighbouring pixels often share a value (a black background), and with one
/// counter each count waits for the one before it (a quarter of an ultrasound
/// frame's render time went there).
fn count_in_four(
    bytes: &[u8],
    bpp: usize,
    bits_stored: u32,
    sample: impl Fn(&[u8]) -> u16,
) -> Vec<u64> {
    let mask = ((1u32 << bits_stored) - 1) as u16;
    // A quarter of a frame's pixels (at most 65535² / 4) fits a u32.
    let mut counts = vec![[0u32; 4]; 1 << bits_stored];
    let mut quads = bytes.chunks_exact(4 * bpp);
    for quad in &mut quads {
        for (lane, c) in quad.chunks_exact(bpp).enumerate() {
            counts[usize::from(sample(c) & mask)][lane] += 1;
        }
    }
    for c in quads.remainder().chunks_exact(bpp) {
        counts[usize::from(sample(c) & mask)][0] += 1;
    }
    counts
        .iter()
        .map(|lanes| lanes.iter().map(|&n| u64::from(n)).sum())
        .collect()
}

/// The window a grey image of at most 8 stored bits is drawn with when its file
/// gives neither a window nor a VOI LUT: see [`full_range_window`]. `None` for other
/// images (colour; more stored bits, whose automatic window depends on the pixels).
/// Known without the pixels, so the viewer can start window/level from it.
pub fn as_stored_window(obj: &dicom_object::DefaultDicomObject) -> Option<(f64, f64)> {
    let photometric = text(obj, tags::PHOTOMETRIC_INTERPRETATION).to_uppercase();
    let grey = matches!(photometric.as_str(), "MONOCHROME1" | "MONOCHROME2")
        && int(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1) == 1;
    let allocated = int(obj, tags::BITS_ALLOCATED)?;
    let bits = int(obj, tags::BITS_STORED).unwrap_or(allocated);
    if !grey || !(1..=8).contains(&bits) || voi_lut(obj).is_some() {
        return None;
    }
    let bits = bits as u32;
    let signed = int(obj, tags::PIXEL_REPRESENTATION).unwrap_or(0) == 1;
    Some(full_range_window(bits, modality_lut(obj, bits, signed)))
}

/// The modality LUT as the file's rescale gives it: a raw stored value (its low
/// `bits`) to the value it stands for.
fn modality_lut(
    obj: &dicom_object::DefaultDicomObject,
    bits: u32,
    signed: bool,
) -> impl Fn(usize) -> f64 + Copy {
    let slope = float(obj, tags::RESCALE_SLOPE).unwrap_or(1.0);
    let intercept = float(obj, tags::RESCALE_INTERCEPT).unwrap_or(0.0);
    move |r: usize| stored_value(r as u32, bits, signed) as f64 * slope + intercept
}

/// The window over every value the stored bits can hold (in modality units): for 8
/// stored bits with the identity rescale, each stored value is its own grey.
fn full_range_window(bits: u32, value_of: impl Fn(usize) -> f64) -> (f64, f64) {
    let (lo, hi) = (0..1usize << bits)
        .map(value_of)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    let width = (hi - lo).max(1.0) + 1.0;
    (lo + (hi - lo) / 2.0 + 0.5, width)
}

/// A window over the 1st–99th percentile of the values (in modality units), so a
/// few extreme pixels (metal, air outside the patient) do not wash out the image.
/// Taken from the histogram: the same percentiles as sorting every pixel, without
/// the sort.
fn auto_window(counts: &[u64], value_of: impl Fn(usize) -> f64) -> (f64, f64) {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return (0.0, 1.0);
    }
    // A negative rescale slope reverses the order, so sort the values themselves.
    let mut bins: Vec<(f64, u64)> = counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(r, c)| (value_of(r), *c))
        .collect();
    bins.sort_by(|a, b| a.0.total_cmp(&b.0));
    let at_rank = |rank: u64| {
        let mut seen = 0;
        for (value, count) in &bins {
            seen += count;
            if seen > rank {
                return *value;
            }
        }
        bins.last().map_or(0.0, |b| b.0)
    };
    let lo = at_rank(total / 100);
    let hi = at_rank((total * 99 / 100).min(total - 1));
    let width = (hi - lo).max(1.0) + 1.0;
    (lo + (hi - lo) / 2.0 + 0.5, width)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pixel data read where it lies in the file renders exactly as pixel data
    /// parsed with the rest: grey 16-bit slices and an RGB image.
    #[test]
    fn pixels_in_the_file_render_as_parsed_ones() {
        let mut rng = rand::thread_rng();
        let spec = crate::dicom::synth::StudySpec::demo(&mut rng);
        let files = crate::dicom::synth::demo_study(&mut rng, &spec, 2, 48);
        for file in &files {
            let in_file = parse_for_render(file.clone()).expect("parse");
            let Pixels::InFile { value, .. } = &in_file.pixels else {
                panic!("a native little-endian file keeps its pixels in place");
            };
            let rows = int(&in_file.obj, tags::ROWS).expect("rows") as usize;
            let cols = int(&in_file.obj, tags::COLUMNS).expect("cols") as usize;
            let spp = int(&in_file.obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1) as usize;
            let bytes = int(&in_file.obj, tags::BITS_ALLOCATED).expect("bits") as usize / 8;
            assert_eq!(value.len(), rows * cols * spp * bytes);
            let parsed = ForRender {
                obj: crate::dicom::parse::open(file, true).expect("open"),
                pixels: Pixels::Parsed,
            };
            for options in [
                RenderOptions::default(),
                RenderOptions {
                    window: Some((40.0, 400.0)),
                    viewport: Some((20, 20)),
                },
            ] {
                assert_eq!(
                    render_parsed(&in_file, 0, options).expect("in file"),
                    render_parsed(&parsed, 0, options).expect("parsed")
                );
            }
        }
    }

    #[test]
    fn voi_matches_the_standard() {
        assert_eq!(voi_linear(-1000.0, 40.0, 400.0), 0);
        assert_eq!(voi_linear(1000.0, 40.0, 400.0), 255);
        let mid = voi_linear(40.0, 40.0, 400.0);
        assert!((126..=129).contains(&mid), "{mid}");
    }

    /// 8 stored bits without a window are shown as stored: every value its own grey,
    /// whatever the frame holds (a dark frame of a loop stays dark).
    #[test]
    fn eight_stored_bits_without_a_window_are_shown_as_stored() {
        let window = full_range_window(8, |r| r as f64);
        assert_eq!(window, (128.0, 256.0));
        for v in 0..=255u8 {
            assert_eq!(voi_linear(f64::from(v), window.0, window.1), v);
        }
        let signed = full_range_window(8, |r| stored_value(r as u32, 8, true) as f64);
        assert_eq!(signed, (0.0, 256.0));
        let bytes = tiny("MONOCHROME2", 1, vec![10, 60], &[]);
        let r = render_frame(&bytes, 0).expect("render");
        assert_eq!(
            r.pixels,
            vec![10, 60],
            "no stretch to the frame's own range"
        );
        // The viewer is told that window, so window/level can start from it.
        let parsed = parse_for_render(bytes.clone()).expect("parse");
        assert_eq!(as_stored_window(&parsed.obj), Some((128.0, 256.0)));
        let spec = crate::dicom::synth::StudySpec::demo(&mut rand::thread_rng());
        let us = crate::dicom::synth::us_loop(&spec, "2.25.7", "2.25.8", 2, 8);
        let view = crate::dicom::parse::parse(&us).expect("parse").view;
        assert_eq!(view.window, Some([128.0, 256.0]), "a loop without a window");
        // A width under 1 is no window, for the renderer and the viewer alike.
        let mut obj =
            dicom_object::from_reader(std::io::Cursor::new(us[128..].to_vec())).expect("read");
        for (tag, value) in [(tags::WINDOW_CENTER, "40"), (tags::WINDOW_WIDTH, "0.5")] {
            obj.put(dicom_core::DataElement::new(
                tag,
                dicom_core::VR::DS,
                dicom_core::PrimitiveValue::from(value),
            ));
        }
        let mut narrow = Vec::new();
        obj.write_all(&mut narrow).expect("write");
        let view = crate::dicom::parse::parse(&narrow).expect("parse").view;
        assert_eq!(view.window, Some([128.0, 256.0]), "width 0.5 is ignored");
        let colour = tiny("RGB", 3, vec![1, 2, 3, 4, 5, 6], &[]);
        let parsed = parse_for_render(colour).expect("parse");
        assert_eq!(as_stored_window(&parsed.obj), None, "colour has no window");
    }

    /// The histogram's percentiles are those of sorting every pixel, also when a
    /// negative rescale slope reverses the order.
    #[test]
    fn auto_window_matches_sorting() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let raw: Vec<u16> = (0..10_001).map(|_| rng.gen_range(0..4096u16)).collect();
        for slope in [1.0, 0.5, -2.0] {
            let value_of = |r: usize| stored_value(r as u32, 12, true) as f64 * slope - 1024.0;
            let mut sorted: Vec<f64> = raw.iter().map(|&r| value_of(usize::from(r))).collect();
            sorted.sort_by(|a, b| a.total_cmp(b));
            let lo = sorted[sorted.len() / 100];
            let hi = sorted[sorted.len() * 99 / 100];
            let expected = (lo + (hi - lo) / 2.0 + 0.5, (hi - lo).max(1.0) + 1.0);
            let bytes: Vec<u8> = raw.iter().flat_map(|r| r.to_le_bytes()).collect();
            let counts = histogram(&bytes, 2, 12, false);
            assert_eq!(auto_window(&counts, value_of), expected);
        }
        assert_eq!(auto_window(&[0; 16], |r| r as f64), (0.0, 1.0));
    }

    /// Filling the runs outside the window gives the table that working out every
    /// entry gives: signed and unsigned, rising and falling and flat rescales,
    /// inverted, windows inside, across and outside the values, odd windows.
    #[test]
    fn grey_table_equals_every_entry_worked_out() {
        let windows = [
            (40.0, 400.0),
            (-600.0, 1500.0),
            (0.0, 1.0),
            (1e9, 10.0),
            (-1e9, 10.0),
            (2048.0, 4096.0),
            (0.3, 1.5),
            (f64::NAN, 400.0),
            (40.0, f64::INFINITY),
        ];
        for bits in [1u32, 8, 12, 16] {
            for signed in [false, true] {
                for (slope, intercept) in [(1.0, -1024.0), (-2.5, 7.0), (0.0, 40.0), (0.01, 0.0)] {
                    let modality =
                        |r: usize| stored_value(r as u32, bits, signed) as f64 * slope + intercept;
                    for window in windows {
                        for invert in [false, true] {
                            let table = grey_table(bits, signed, &modality, None, window, invert);
                            let (reachable, beyond) = table.split_at(1 << bits);
                            assert!(beyond.iter().all(|&g| g == 0));
                            for (r, &got) in reachable.iter().enumerate() {
                                let g = voi_linear(modality(r), window.0, window.1);
                                let want = if invert { 255 - g } else { g };
                                assert_eq!(
                                    got, want,
                                    "value {r}, {bits} bits, signed {signed}, slope {slope}, \
                                     window {window:?}, invert {invert}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn histogram_counts_every_sample_once() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for n in [0usize, 1, 3, 4, 5, 1001] {
            // Few distinct values: runs of equal neighbours, as on a black background.
            let grey: Vec<u8> = (0..n).map(|_| rng.gen_range(0..4u8)).collect();
            let mut want = vec![0u64; 256];
            grey.iter().for_each(|&v| want[usize::from(v)] += 1);
            assert_eq!(histogram(&grey, 1, 8, false), want, "8 bit, {n}");
            // Bits above the stored 12 are not part of the value.
            let words: Vec<u16> = (0..n).map(|_| rng.gen_range(0..8192u16)).collect();
            let mut want = vec![0u64; 1 << 12];
            words
                .iter()
                .for_each(|&v| want[usize::from(v & 0x0fff)] += 1);
            let le: Vec<u8> = words.iter().flat_map(|v| v.to_le_bytes()).collect();
            let be: Vec<u8> = words.iter().flat_map(|v| v.to_be_bytes()).collect();
            assert_eq!(histogram(&le, 2, 12, false), want, "little endian, {n}");
            assert_eq!(histogram(&be, 2, 12, true), want, "big endian, {n}");
        }
    }

    #[test]
    fn signed_samples() {
        let bytes = [0xff, 0x0f, 0x00, 0x08];
        // 12 bits stored, signed: 0x0fff = -1, 0x0800 = -2048.
        assert_eq!(read_samples(&bytes, 2, 12, true, false), vec![-1, -2048]);
        assert_eq!(read_samples(&bytes, 2, 12, false, false), vec![4095, 2048]);
    }

    /// A 2×1 image of the given photometric interpretation, explicit VR LE.
    fn tiny(
        photometric: &str,
        spp: u16,
        pixels: Vec<u8>,
        extra: &[(dicom_core::Tag, dicom_core::VR, Vec<u16>)],
    ) -> Vec<u8> {
        use dicom_core::value::PrimitiveValue;
        use dicom_core::{DataElement, VR};
        let mut obj = dicom_object::InMemDicomObject::new_empty();
        let put_us = |obj: &mut dicom_object::InMemDicomObject, tag, v: u16| {
            obj.put(DataElement::new(tag, VR::US, PrimitiveValue::from(v)));
        };
        obj.put(DataElement::new(
            tags::SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.7"),
        ));
        obj.put(DataElement::new(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from("2.25.1"),
        ));
        obj.put(DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            PrimitiveValue::from(photometric),
        ));
        put_us(&mut obj, tags::ROWS, 1);
        put_us(&mut obj, tags::COLUMNS, 2);
        put_us(&mut obj, tags::SAMPLES_PER_PIXEL, spp);
        put_us(&mut obj, tags::BITS_ALLOCATED, 8);
        put_us(&mut obj, tags::BITS_STORED, 8);
        put_us(&mut obj, tags::HIGH_BIT, 7);
        put_us(&mut obj, tags::PIXEL_REPRESENTATION, 0);
        put_us(&mut obj, tags::PLANAR_CONFIGURATION, 0);
        for (tag, vr, values) in extra {
            obj.put(DataElement::new(
                *tag,
                *vr,
                PrimitiveValue::U16(values.clone().into()),
            ));
        }
        obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PrimitiveValue::U8(pixels.into()),
        ));
        let file = obj
            .with_meta(
                dicom_object::meta::FileMetaTableBuilder::new()
                    .transfer_syntax("1.2.840.10008.1.2.1")
                    .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
                    .media_storage_sop_instance_uid("2.25.1"),
            )
            .expect("meta");
        let mut out = Vec::new();
        file.write_all(&mut out).expect("write");
        out
    }

    #[test]
    fn ybr_full_becomes_rgb() {
        // Pure red and mid gray in YCbCr (BT.601 full range).
        let bytes = tiny("YBR_FULL", 3, vec![76, 85, 255, 128, 128, 128], &[]);
        let r = render_frame(&bytes, 0).expect("render");
        assert_eq!(r.channels, 3);
        assert!(
            r.pixels[0] >= 253 && r.pixels[1] <= 2 && r.pixels[2] <= 2,
            "{:?}",
            &r.pixels[..3]
        );
        assert_eq!(&r.pixels[3..], &[128, 128, 128]);
    }

    #[test]
    fn ybr_full_422_shares_chroma_between_two_pixels() {
        // Y1 Y2 Cb Cr: two grays of different brightness.
        let bytes = tiny("YBR_FULL_422", 3, vec![50, 200, 128, 128], &[]);
        let r = render_frame(&bytes, 0).expect("render");
        assert_eq!(r.pixels, vec![50, 50, 50, 200, 200, 200]);
    }

    #[test]
    fn palette_colour_looks_up_each_channel() {
        use dicom_core::VR;
        // Entries for stored values 10 and 11 (first mapped value 10), 16-bit.
        let lut = |a: u16, b: u16| vec![a, b];
        let bytes = tiny(
            "PALETTE COLOR",
            1,
            vec![10, 11],
            &[
                (
                    tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                    VR::US,
                    vec![2, 10, 16],
                ),
                (
                    tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                    VR::US,
                    vec![2, 10, 16],
                ),
                (
                    tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                    VR::US,
                    vec![2, 10, 16],
                ),
                (
                    tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                    VR::OW,
                    lut(0xFFFF, 0),
                ),
                (
                    tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                    VR::OW,
                    lut(0, 0xFFFF),
                ),
                (
                    tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                    VR::OW,
                    lut(0, 0x8000),
                ),
            ],
        );
        let r = render_frame(&bytes, 0).expect("render");
        assert_eq!(r.pixels, vec![255, 0, 0, 0, 255, 128]);
    }

    #[test]
    fn fitting_averages_areas_and_never_enlarges() {
        let image = Rendered {
            width: 4,
            height: 2,
            channels: 1,
            pixels: vec![0, 100, 200, 200, 100, 200, 0, 0],
        };
        let half = image.fit_within(2, 2);
        assert_eq!((half.width, half.height), (2, 1));
        assert_eq!(half.pixels, vec![100, 100]);
        assert_eq!(image.fit_within(100, 100), image);
    }

    #[test]
    fn a_voi_lut_sequence_is_applied_when_the_file_has_no_window() {
        use dicom_core::value::{DataSetSequence, PrimitiveValue};
        use dicom_core::{DataElement, VR};
        // 8-bit MONOCHROME2 with values 0 and 1; the LUT maps 0 → 4095 and 1 → 0.
        let mut bytes = tiny("MONOCHROME2", 1, vec![0, 1], &[]);
        let mut obj =
            dicom_object::from_reader(std::io::Cursor::new(bytes[128..].to_vec())).expect("read");
        let mut item = dicom_object::InMemDicomObject::new_empty();
        item.put(DataElement::new(
            tags::LUT_DESCRIPTOR,
            VR::US,
            PrimitiveValue::U16(vec![2, 0, 12].into()),
        ));
        item.put(DataElement::new(
            tags::LUT_DATA,
            VR::OW,
            PrimitiveValue::U16(vec![4095, 0].into()),
        ));
        obj.put(DataElement::new(
            tags::VOILUT_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![item]),
        ));
        bytes.truncate(0);
        obj.write_all(&mut bytes).expect("write");
        let r = render_frame(&bytes, 0).expect("render");
        assert_eq!(r.pixels, vec![255, 0], "the LUT, not the automatic window");
        // A window asked for wins over the LUT.
        let r = render_frame_with(
            &bytes,
            0,
            RenderOptions {
                window: Some((10.0, 2.0)),
                viewport: None,
            },
        )
        .expect("render");
        assert_eq!(r.pixels, vec![0, 0], "both values lie below that window");
    }
}

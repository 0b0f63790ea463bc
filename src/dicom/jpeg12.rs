//! 12-bit JPEG (the extended sequential process, SOF1, Huffman coded), as older CT and
//! MR send it in "JPEG Extended" (1.2.840.10008.1.2.4.51). The JPEG decoder the DICOM
//! crates use reads 8-bit and lossless only, and none in the registries reads 12-bit
//! DCT data, so this is a small decoder of our own: one grey component, sequential,
//! restart markers, 8- or 16-bit quantisation tables. Anything else is refused.

use super::DicomError;

const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

fn damaged(what: &str) -> DicomError {
    DicomError::Malformed(format!("the 12-bit JPEG data is damaged: {what}"))
}

/// Whether a JPEG stream is a 12-bit extended sequential one (its first frame header
/// is SOF1 with 12 bits of precision).
pub fn is_twelve_bit(jpeg: &[u8]) -> bool {
    let mut at = 2;
    while at + 4 < jpeg.len() {
        if jpeg[at] != 0xFF {
            return false;
        }
        let marker = jpeg[at + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
        match marker {
            0xC1 => return jpeg.get(at + 4) == Some(&12),
            0xC0 | 0xC2..=0xCF if marker != 0xC4 && marker != 0xC8 && marker != 0xCC => {
                return false;
            }
            0xDA => return false,
            _ => at += 2 + len,
        }
    }
    false
}

/// A canonical Huffman table: for each code length, the first code and where its
/// symbols start.
#[derive(Clone, Default)]
struct Huffman {
    /// `max_code[l]`: the largest code of length `l` (or -1), `l` in 1..=16.
    max_code: [i32; 18],
    /// `offset[l]`: index of the first symbol of length `l` minus its first code.
    offset: [i32; 17],
    symbols: Vec<u8>,
}

impl Huffman {
    fn new(counts: &[u8; 16], symbols: Vec<u8>) -> Result<Huffman, DicomError> {
        let mut t = Huffman {
            max_code: [-1; 18],
            offset: [0; 17],
            symbols,
        };
        let (mut code, mut k) = (0i32, 0i32);
        for l in 1..=16 {
            let n = i32::from(counts[l - 1]);
            t.offset[l] = k - code;
            if n > 0 {
                code += n;
                k += n;
                t.max_code[l] = code - 1;
            }
            if code > (1 << l) {
                return Err(damaged("Huffman table"));
            }
            code <<= 1;
        }
        // Sentinel: no code is longer than 16 bits.
        t.max_code[17] = i32::MAX;
        Ok(t)
    }
}

/// Reads entropy-coded bits; a marker ends the data (zeros are read past it).
struct Bits<'a> {
    data: &'a [u8],
    at: usize,
    acc: u32,
    count: u32,
}

impl<'a> Bits<'a> {
    fn fill(&mut self) {
        while self.count <= 24 {
            let mut byte = 0u32;
            if self.at < self.data.len() {
                let b = self.data[self.at];
                if b == 0xFF {
                    // 0xFF 0x00 is a stuffed 0xFF; anything else is a marker, left
                    // for `restart`, and zeros are fed meanwhile.
                    if self.data.get(self.at + 1) == Some(&0) {
                        byte = 0xFF;
                        self.at += 2;
                    }
                } else {
                    byte = u32::from(b);
                    self.at += 1;
                }
            }
            self.acc |= byte << (24 - self.count);
            self.count += 8;
        }
    }

    fn bit(&mut self) -> u32 {
        self.fill();
        let b = self.acc >> 31;
        self.acc <<= 1;
        self.count -= 1;
        b
    }

    fn bits(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        self.fill();
        let v = self.acc >> (32 - n);
        self.acc <<= n;
        self.count -= n;
        v
    }

    fn decode(&mut self, t: &Huffman) -> Result<u8, DicomError> {
        let mut code = 0i32;
        for l in 1..=16 {
            code = (code << 1) | self.bit() as i32;
            if code <= t.max_code[l] {
                let i = (t.offset[l] + code) as usize;
                return t
                    .symbols
                    .get(i)
                    .copied()
                    .ok_or_else(|| damaged("Huffman code"));
            }
        }
        Err(damaged("Huffman code"))
    }

    /// Skips to just after the next RSTn marker and forgets buffered bits.
    fn restart(&mut self) {
        while self.at + 1 < self.data.len()
            && !(self.data[self.at] == 0xFF && (0xD0..=0xD7).contains(&self.data[self.at + 1]))
        {
            self.at += 1;
        }
        self.at = (self.at + 2).min(self.data.len());
        self.acc = 0;
        self.count = 0;
    }
}

/// The value of `n` received bits as JPEG codes differences (F.2.2.1 EXTEND).
fn extend(v: u32, n: u32) -> i32 {
    if n == 0 {
        0
    } else if v < (1 << (n - 1)) {
        v as i32 - (1 << n) + 1
    } else {
        v as i32
    }
}

/// Decodes one 12-bit grey frame to little-endian 16-bit samples (0..=4095), `w`
/// columns by `h` rows as the DICOM file declares them.
pub fn decode(jpeg: &[u8], (w, h): (usize, usize)) -> Result<Vec<u8>, DicomError> {
    if jpeg.len() < 4 || jpeg[..2] != [0xFF, 0xD8] {
        return Err(damaged("no start of image"));
    }
    let mut quant = [[0u16; 64]; 4];
    let mut dc_tables: [Option<Huffman>; 4] = Default::default();
    let mut ac_tables: [Option<Huffman>; 4] = Default::default();
    let mut frame: Option<(usize, usize, usize)> = None; // width, height, quant table
    let mut restart_interval = 0usize;
    let mut at = 2;
    loop {
        if at + 4 > jpeg.len() || jpeg[at] != 0xFF {
            return Err(damaged("marker expected"));
        }
        let marker = jpeg[at + 1];
        if marker == 0xFF {
            at += 1; // fill byte
            continue;
        }
        if marker == 0xD9 {
            return Err(damaged("no scan"));
        }
        let len = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
        let body = jpeg
            .get(at + 4..at + 2 + len)
            .filter(|_| len >= 2)
            .ok_or_else(|| damaged("segment length"))?;
        match marker {
            0xDB => {
                let mut b = body;
                while !b.is_empty() {
                    let (precision, id) = (b[0] >> 4, usize::from(b[0] & 15));
                    let size = if precision == 0 { 64 } else { 128 };
                    let table = b.get(1..1 + size).ok_or_else(|| damaged("DQT"))?;
                    let q = quant.get_mut(id).ok_or_else(|| damaged("DQT"))?;
                    for (k, slot) in q.iter_mut().enumerate() {
                        *slot = if precision == 0 {
                            u16::from(table[k])
                        } else {
                            u16::from_be_bytes([table[2 * k], table[2 * k + 1]])
                        };
                    }
                    b = &b[1 + size..];
                }
            }
            0xC4 => {
                let mut b = body;
                while !b.is_empty() {
                    let (class, id) = (b[0] >> 4, usize::from(b[0] & 15));
                    let counts: [u8; 16] = b
                        .get(1..17)
                        .and_then(|c| c.try_into().ok())
                        .ok_or_else(|| damaged("DHT"))?;
                    let n: usize = counts.iter().map(|&c| usize::from(c)).sum();
                    let symbols = b.get(17..17 + n).ok_or_else(|| damaged("DHT"))?.to_vec();
                    let table = Some(Huffman::new(&counts, symbols)?);
                    match class {
                        0 => *dc_tables.get_mut(id).ok_or_else(|| damaged("DHT"))? = table,
                        1 => *ac_tables.get_mut(id).ok_or_else(|| damaged("DHT"))? = table,
                        _ => return Err(damaged("DHT")),
                    }
                    b = &b[17 + n..];
                }
            }
            0xDD => {
                let interval = body.get(..2).ok_or_else(|| damaged("DRI"))?;
                restart_interval = usize::from(u16::from_be_bytes([interval[0], interval[1]]));
            }
            0xC1 => {
                if body.len() < 9 || body[0] != 12 {
                    return Err(damaged("SOF1"));
                }
                if body[5] != 1 {
                    return Err(DicomError::Unsupported(
                        "12-bit JPEG with more than one component".into(),
                    ));
                }
                let fh = usize::from(u16::from_be_bytes([body[1], body[2]]));
                let fw = usize::from(u16::from_be_bytes([body[3], body[4]]));
                if fw != w || fh != h {
                    return Err(damaged("its size is not the image's"));
                }
                frame = Some((fw, fh, usize::from(body[8] & 3)));
            }
            0xC0 | 0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                return Err(DicomError::Unsupported("this JPEG process".into()));
            }
            0xDA => {
                let (fw, fh, q) = frame.ok_or_else(|| damaged("scan before frame"))?;
                if body.len() < 3 || body[0] != 1 {
                    return Err(damaged("SOS"));
                }
                let (dc, ac) = (usize::from(body[2] >> 4), usize::from(body[2] & 15));
                let dc = dc_tables
                    .get(dc)
                    .cloned()
                    .flatten()
                    .ok_or_else(|| damaged("no DC table"))?;
                let ac = ac_tables
                    .get(ac)
                    .cloned()
                    .flatten()
                    .ok_or_else(|| damaged("no AC table"))?;
                let data = &jpeg[at + 2 + len..];
                return scan(data, (fw, fh), &quant[q], &dc, &ac, restart_interval);
            }
            _ => {}
        }
        at += 2 + len;
    }
}

/// Decodes the one scan: blocks left to right, top to bottom.
fn scan(
    data: &[u8],
    (w, h): (usize, usize),
    quant: &[u16; 64],
    dc: &Huffman,
    ac: &Huffman,
    restart_interval: usize,
) -> Result<Vec<u8>, DicomError> {
    let (bw, bh) = (w.div_ceil(8), h.div_ceil(8));
    // Every block takes at least two bits (a DC code and an end of block); checked
    // before the image is allocated, so a few bytes cannot claim a huge one.
    if data.len().saturating_mul(4) < bw * bh {
        return Err(damaged("too short for its size"));
    }
    let mut out = vec![0u8; w * h * 2];
    let mut bits = Bits {
        data,
        at: 0,
        acc: 0,
        count: 0,
    };
    let mut pred = 0i32;
    let mut coef = [0i32; 64];
    let mut block = [0f32; 64];
    for n in 0..bw * bh {
        if restart_interval > 0 && n > 0 && n % restart_interval == 0 {
            bits.restart();
            pred = 0;
        }
        coef.fill(0);
        let t = u32::from(bits.decode(dc)?);
        if t > 15 {
            return Err(damaged("DC difference"));
        }
        // Real data stays far inside these bounds; damaged data must not overflow.
        pred = (pred + extend(bits.bits(t), t)).clamp(-(1 << 20), 1 << 20);
        coef[0] = pred.saturating_mul(i32::from(quant[0]));
        let mut k = 1;
        while k < 64 {
            let rs = bits.decode(ac)?;
            let (r, s) = (usize::from(rs >> 4), u32::from(rs & 15));
            if s == 0 {
                if r != 15 {
                    break; // end of block
                }
                k += 16;
                continue;
            }
            k += r;
            if k > 63 {
                return Err(damaged("AC run"));
            }
            coef[ZIGZAG[k]] = extend(bits.bits(s), s).saturating_mul(i32::from(quant[k]));
            k += 1;
        }
        idct(&coef, &mut block);
        let (bx, by) = (n % bw, n / bw);
        for y in 0..8 {
            let row = by * 8 + y;
            if row >= h {
                break;
            }
            for x in 0..8 {
                let col = bx * 8 + x;
                if col >= w {
                    break;
                }
                let v = (block[y * 8 + x] + 2048.0).round().clamp(0.0, 4095.0) as u16;
                let i = (row * w + col) * 2;
                out[i..i + 2].copy_from_slice(&v.to_le_bytes());
            }
        }
    }
    Ok(out)
}

/// `C(u)/2 · cos((2a+1)uπ/16)` for sample `a` and frequency `u`.
fn idct_table() -> &'static [[f32; 8]; 8] {
    static TABLE: std::sync::OnceLock<[[f32; 8]; 8]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = [[0f32; 8]; 8];
        for (a, row) in table.iter_mut().enumerate() {
            for (u, v) in row.iter_mut().enumerate() {
                let c = if u == 0 {
                    std::f32::consts::FRAC_1_SQRT_2
                } else {
                    1.0
                };
                let angle = ((2 * a + 1) * u) as f32 * std::f32::consts::PI / 16.0;
                *v = c * angle.cos() / 2.0;
            }
        }
        table
    })
}

/// The 8×8 inverse DCT (A.3.3), separable, in floating point.
fn idct(coef: &[i32; 64], out: &mut [f32; 64]) {
    let table = idct_table();
    let mut tmp = [0f32; 64];
    for v in 0..8 {
        for x in 0..8 {
            tmp[v * 8 + x] = (0..8).map(|u| table[x][u] * coef[v * 8 + u] as f32).sum();
        }
    }
    for y in 0..8 {
        for x in 0..8 {
            out[y * 8 + x] = (0..8).map(|v| table[y][v] * tmp[v * 8 + x]).sum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JPEG stream of a 16×16 CT slice made by dcmtk's `dcmcjpeg +ee` (a fuzz seed).
    fn sample() -> &'static [u8] {
        let file: &'static [u8] = include_bytes!("../../fuzz/seeds/dicom/ct-jpeg12.dcm");
        let start = file
            .windows(3)
            .position(|w| w == [0xFF, 0xD8, 0xFF])
            .expect("a JPEG stream");
        let end = file
            .windows(2)
            .rposition(|w| w == [0xFF, 0xD9])
            .expect("EOI");
        &file[start..end + 2]
    }

    #[test]
    fn a_dcmtk_stream_decodes_to_twelve_bit_samples() {
        let jpeg = sample();
        assert!(is_twelve_bit(jpeg));
        let out = decode(jpeg, (16, 16)).expect("decodes");
        assert_eq!(out.len(), 16 * 16 * 2);
        let values: Vec<u16> = out
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert!(values.iter().all(|&v| v <= 4095));
        assert!(values.iter().any(|&v| v != values[0]), "not a flat image");
    }

    #[test]
    fn damaged_streams_are_refused_without_panicking() {
        let jpeg = sample();
        assert!(matches!(
            decode(jpeg, (32, 16)),
            Err(DicomError::Malformed(m)) if m.contains("not the image's")
        ));
        assert!(decode(&jpeg[2..], (16, 16)).is_err());
        // Every cut-off point: refused, or decoded with the missing data as zeros.
        for len in 0..jpeg.len() {
            let _ = decode(&jpeg[..len], (16, 16));
        }
        // Every single flipped byte in the headers.
        for i in 2..jpeg.len().min(400) {
            let mut bad = jpeg.to_vec();
            bad[i] ^= 0xA5;
            let _ = decode(&bad, (16, 16));
        }
    }
}

//! A ZIP written front to back, one whole entry at a time, so a study of any size
//! streams out without being held: entries are stored (DICOM and JPEG do not shrink),
//! each header carries its real CRC and sizes, and ZIP64 records appear only when an
//! offset or the entry count needs them.

const LOCAL_HEADER: u32 = 0x0403_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_CENTRAL: u32 = 0x0605_4b50;
const ZIP64_END: u32 = 0x0606_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
/// 4.5: ZIP64; entry names are UTF-8 (flag bit 11).
const VERSION: u16 = 45;
const UTF8_NAMES: u16 = 1 << 11;
/// 1980-01-01 00:00 in DOS time: entries carry no timestamps of the patient's visit.
const DOS_DATE: u16 = (1 << 5) | 1;

struct CentralEntry {
    name: String,
    crc: u32,
    size: u64,
    offset: u64,
}

/// Produces the bytes of a ZIP piece by piece; the caller sends each piece on.
#[derive(Default)]
pub struct ZipStream {
    written: u64,
    entries: Vec<CentralEntry>,
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// A 32-bit field, or the ZIP64 marker when the value does not fit.
fn field32(v: u64) -> u32 {
    u32::try_from(v)
        .ok()
        .filter(|&v| v != u32::MAX)
        .unwrap_or(u32::MAX)
}

impl ZipStream {
    pub fn new() -> Self {
        Self::default()
    }

    /// The local header for an entry; send it, then `data`, then nothing else for it.
    pub fn entry_header(&mut self, name: &str, data: &[u8]) -> Vec<u8> {
        let size = data.len() as u64;
        let crc = crc32fast::hash(data);
        let big = size >= u64::from(u32::MAX);
        let mut out = Vec::with_capacity(30 + name.len() + 20);
        put32(&mut out, LOCAL_HEADER);
        put16(&mut out, VERSION);
        put16(&mut out, UTF8_NAMES);
        put16(&mut out, 0); // stored
        put16(&mut out, 0);
        put16(&mut out, DOS_DATE);
        put32(&mut out, crc);
        put32(&mut out, if big { u32::MAX } else { size as u32 });
        put32(&mut out, if big { u32::MAX } else { size as u32 });
        put16(&mut out, name.len() as u16);
        put16(&mut out, if big { 20 } else { 0 });
        out.extend_from_slice(name.as_bytes());
        if big {
            put16(&mut out, 1);
            put16(&mut out, 16);
            put64(&mut out, size);
            put64(&mut out, size);
        }
        self.entries.push(CentralEntry {
            name: name.to_string(),
            crc,
            size,
            offset: self.written,
        });
        self.written += out.len() as u64 + size;
        out
    }

    /// The central directory and end records; the last piece of the archive.
    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::new();
        let central_start = self.written;
        for e in &self.entries {
            let mut extra = Vec::new();
            if e.size >= u64::from(u32::MAX) {
                put64(&mut extra, e.size);
                put64(&mut extra, e.size);
            }
            if e.offset >= u64::from(u32::MAX) {
                put64(&mut extra, e.offset);
            }
            put32(&mut out, CENTRAL_HEADER);
            put16(&mut out, VERSION);
            put16(&mut out, VERSION);
            put16(&mut out, UTF8_NAMES);
            put16(&mut out, 0);
            put16(&mut out, 0);
            put16(&mut out, DOS_DATE);
            put32(&mut out, e.crc);
            put32(&mut out, field32(e.size));
            put32(&mut out, field32(e.size));
            put16(&mut out, e.name.len() as u16);
            put16(
                &mut out,
                if extra.is_empty() {
                    0
                } else {
                    extra.len() as u16 + 4
                },
            );
            put16(&mut out, 0); // comment
            put16(&mut out, 0); // disk
            put16(&mut out, 0); // internal attributes
            put32(&mut out, 0); // external attributes
            put32(&mut out, field32(e.offset));
            out.extend_from_slice(e.name.as_bytes());
            if !extra.is_empty() {
                put16(&mut out, 1);
                put16(&mut out, extra.len() as u16);
                out.extend_from_slice(&extra);
            }
        }
        let central_size = out.len() as u64;
        let count = self.entries.len() as u64;
        let needs64 = count >= 0xFFFF
            || central_start >= u64::from(u32::MAX)
            || central_size >= u64::from(u32::MAX);
        if needs64 {
            let zip64_end_at = central_start + central_size;
            put32(&mut out, ZIP64_END);
            put64(&mut out, 44);
            put16(&mut out, VERSION);
            put16(&mut out, VERSION);
            put32(&mut out, 0);
            put32(&mut out, 0);
            put64(&mut out, count);
            put64(&mut out, count);
            put64(&mut out, central_size);
            put64(&mut out, central_start);
            put32(&mut out, ZIP64_LOCATOR);
            put32(&mut out, 0);
            put64(&mut out, zip64_end_at);
            put32(&mut out, 1);
        }
        put32(&mut out, END_OF_CENTRAL);
        put16(&mut out, 0);
        put16(&mut out, 0);
        let count16 = u16::try_from(count).ok().filter(|&c| c != 0xFFFF);
        put16(&mut out, count16.unwrap_or(0xFFFF));
        put16(&mut out, count16.unwrap_or(0xFFFF));
        put32(&mut out, field32(central_size));
        put32(&mut out, field32(central_start));
        put16(&mut out, 0);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_standard_reader_opens_what_is_written() {
        let mut zip = ZipStream::new();
        let mut bytes = Vec::new();
        let files: Vec<(String, Vec<u8>)> = (0..3)
            .map(|i| (format!("DICOM/SER0001/IMG{i:05}"), vec![i as u8; 1000 + i]))
            .chain([("README.TXT".to_string(), b"hello".to_vec())])
            .collect();
        for (name, data) in &files {
            bytes.extend(zip.entry_header(name, data));
            bytes.extend(data);
        }
        bytes.extend(zip.finish());
        let mut archive = ::zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(archive.len(), files.len());
        for (name, data) in &files {
            let mut f = archive.by_name(name).unwrap();
            let mut got = Vec::new();
            f.read_to_end(&mut got).unwrap();
            assert_eq!(&got, data, "{name}");
        }
    }
}

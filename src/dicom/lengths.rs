//! A pass over a Part 10 file's element headers before the real parser sees it:
//! every declared length must fit in the bytes that are left. The parser reserves
//! memory for a value by its declared length, so one lying header in a 1 KB file
//! would otherwise ask for gigabytes (found by the `parse` fuzz target).

use super::DicomError;
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::{Tag, VR};

const UNDEFINED: u32 = 0xFFFF_FFFF;
const IMPLICIT_LE: &[u8] = b"1.2.840.10008.1.2";
const EXPLICIT_BE: &[u8] = b"1.2.840.10008.1.2.2";
const EXPLICIT_LE: &[u8] = b"1.2.840.10008.1.2.1";

/// Explicit VRs whose length field has 2 bytes; every other VR, unknown ones too,
/// has 2 reserved bytes and a 4-byte length (as the parser reads them).
fn short_vr(vr: &[u8]) -> bool {
    matches!(
        vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    )
}

/// One of the standard's value representations (PS3.5 6.2), as dicom-core knows
/// them. The parser reads others in its own lenient way, and a fuzzed file used that
/// to make it read a different structure than this walk sees; so an explicit VR must
/// be one of these.
fn known_vr(vr: &[u8]) -> bool {
    matches!(vr, [a, b] if VR::from_binary([*a, *b]).is_some())
}

/// Bytes per value of the binary VRs. The parser reads whole values only, so a
/// length that is not a multiple would leave it reading the rest as a header.
fn value_size(vr: &[u8]) -> usize {
    match vr {
        b"SS" | b"US" | b"OW" => 2,
        b"SL" | b"UL" | b"FL" | b"AT" | b"OF" | b"OL" => 4,
        b"FD" | b"SV" | b"UV" | b"OD" | b"OV" => 8,
        _ => 1,
    }
}

/// The VR the parser assumes for an implicit-VR element: the dictionary's.
fn implicit_vr(group: u16, element: u16) -> Option<[u8; 2]> {
    let entry = dicom_dictionary_std::StandardDataDictionary.by_tag(Tag(group, element))?;
    let vr: VR = entry.vr().relaxed();
    let name = vr.to_string();
    let b = name.as_bytes();
    (b.len() == 2).then(|| [b[0], b[1]])
}

/// `file` starts at the 128-byte preamble. Deflated data sets are not walked (their
/// bytes are compressed); everything else is, to its end. Returns where the value of
/// the data set's pixel data lies in `file` when the syntax is native little-endian
/// (the bytes are then the samples as a render reads them), so a render can read
/// it there.
pub fn check(file: &[u8]) -> Result<Option<std::ops::Range<usize>>, DicomError> {
    let lying = || DicomError::Malformed("an element is longer than the file".into());
    let malformed = |what: &str| DicomError::Malformed(what.into());
    // The meta group starts with its length, which says where the data set begins
    // (this is how the parser finds it too).
    if file.len() < 144 || file[132..138] != [0x02, 0x00, 0x00, 0x00, b'U', b'L'] {
        return Err(malformed("the file meta information has no group length"));
    }
    let group_len = u32::from_le_bytes([file[140], file[141], file[142], file[143]]) as usize;
    let meta_end = 144usize
        .checked_add(group_len)
        .filter(|end| *end <= file.len())
        .ok_or_else(lying)?;
    let mut syntax: Option<Vec<u8>> = None;
    // The group length, read above, counts as seen: a second one once told the
    // parser a different end of the meta group than this walk used.
    let mut seen = std::collections::HashSet::from([0x0000u16]);
    let mut pos = 144;
    while meta_end - pos >= 8 {
        let (group, element) = (
            u16::from_le_bytes([file[pos], file[pos + 1]]),
            u16::from_le_bytes([file[pos + 2], file[pos + 3]]),
        );
        // A repeated element (two transfer syntaxes, say) would let this walk and
        // the parser, which keeps the last, read the data set differently.
        if group != 0x0002 || !seen.insert(element) {
            return Err(malformed("the file meta information is damaged"));
        }
        let vr = &file[pos + 4..pos + 6];
        if !known_vr(vr) {
            return Err(malformed("the file meta information is damaged"));
        }
        let (len, header) = if short_vr(vr) {
            (
                u16::from_le_bytes([file[pos + 6], file[pos + 7]]) as usize,
                8,
            )
        } else {
            if meta_end - pos < 12 {
                return Err(lying());
            }
            let b = &file[pos + 8..pos + 12];
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
        };
        pos += header;
        if len > meta_end - pos {
            return Err(lying());
        }
        if element == 0x0010 && syntax.is_none() {
            let value = &file[pos..pos + len];
            let end = value
                .iter()
                .rposition(|b| *b != 0 && *b != b' ')
                .map_or(0, |i| i + 1);
            syntax = Some(value[..end].to_vec());
        }
        pos += len;
    }
    // The meta elements fill the group exactly, and the data set holds none: the
    // parser may end the group where its elements stop rather than by its length,
    // and both must then start the data set at the same byte.
    if pos != meta_end || data_set_starts_with_meta(&file[meta_end..]) {
        return Err(malformed("the file meta information is damaged"));
    }
    let ts = syntax.ok_or_else(|| malformed("the transfer syntax is missing"))?;
    if ts != IMPLICIT_LE && ts != EXPLICIT_BE && !ts.starts_with(b"1.2.840.10008.1.2.") {
        return Err(malformed("unknown transfer syntax"));
    }
    // Deflated (1.2.840.10008.1.2.1.99): the parser reads the inflated bytes, so
    // those are walked (a lying header inside the stream once made it reserve
    // gigabytes, found by the `render` fuzz target). Pixels are never read in place.
    if ts.ends_with(b".99") {
        data_set(&inflate_capped(&file[meta_end..])?, true, false)?;
        return Ok(None);
    }
    let pixels = data_set(&file[meta_end..], ts != IMPLICIT_LE, ts == EXPLICIT_BE)?;
    let native_le = ts == IMPLICIT_LE || ts == EXPLICIT_LE;
    Ok(pixels
        .filter(|_| native_le)
        .map(|r| meta_end + r.start..meta_end + r.end))
}

/// A deflated data set is walked only up to this size inflated; a bigger one is
/// refused. (Reading it grows the buffer to at most 256 MiB.)
const MAX_INFLATED: u64 = 192 * 1024 * 1024;

/// The data set of a deflated file, inflated (raw deflate, PS3.5 A.5).
fn inflate_capped(deflated: &[u8]) -> Result<Vec<u8>, DicomError> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(deflated)
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut out)
        .map_err(|_| DicomError::Malformed("the deflated data set is damaged".into()))?;
    if out.len() as u64 > MAX_INFLATED {
        return Err(DicomError::Malformed(
            "the deflated data set inflates to more than 192 MiB".into(),
        ));
    }
    Ok(out)
}

/// Whether the data set's first element is of the meta group (0002), in either byte
/// order.
fn data_set_starts_with_meta(data: &[u8]) -> bool {
    data.len() >= 2 && (data[..2] == [0x02, 0x00] || data[..2] == [0x00, 0x02])
}

/// What a level of the data set holds next.
#[derive(Clone, Copy, PartialEq)]
enum Holds {
    /// Data elements: the data set itself, or one item of a sequence.
    Elements,
    /// The items of a sequence.
    Items,
    /// The fragments of encapsulated pixel data (compressed bytes, not elements).
    Fragments,
}

struct Level {
    holds: Holds,
    /// Where a defined-length sequence or item ends.
    end: Option<usize>,
    /// A sequence of VR UN with undefined length holds implicit-VR data sets.
    explicit: bool,
}

/// Walks the element headers of a data set (items and sequences included), keeping
/// track of which sequence or item each header belongs to: an item where an element
/// belongs, an element where an item belongs, or anything running past the end of
/// its sequence or item is refused. The parser reads such structure in its own way,
/// and a fuzzed file once made it reserve gigabytes that way. Returns the value
/// range of the first top-level pixel data of defined length.
fn data_set(
    data: &[u8],
    explicit: bool,
    big: bool,
) -> Result<Option<std::ops::Range<usize>>, DicomError> {
    let lying = || DicomError::Malformed("an element is longer than the file".into());
    let misplaced = || DicomError::Malformed("the file's sequences are damaged".into());
    let u16_at = |at: usize| {
        let b = [data[at], data[at + 1]];
        if big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    };
    let u32_at = |at: usize| {
        let b = [data[at], data[at + 1], data[at + 2], data[at + 3]];
        if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let mut stack = vec![Level {
        holds: Holds::Elements,
        end: None,
        explicit,
    }];
    let mut pos = 0;
    let mut pixels = None;
    loop {
        // Defined-length sequences and items that end here are done.
        while stack.len() > 1 && stack.last().is_some_and(|l| l.end == Some(pos)) {
            stack.pop();
        }
        let (holds, limit, explicit) = match stack.last() {
            Some(l) => (l.holds, l.end.unwrap_or(data.len()), l.explicit),
            None => return Err(misplaced()),
        };
        if pos > limit {
            return Err(misplaced());
        }
        if limit - pos < 8 {
            if limit == data.len() {
                return Ok(pixels);
            }
            return Err(misplaced());
        }
        let (group, element) = (u16_at(pos), u16_at(pos + 2));
        if group == 0xFFFE {
            let len = u32_at(pos + 4);
            pos += 8;
            match (element, holds) {
                (0xE000, Holds::Fragments) => {
                    if len == UNDEFINED || len as usize > limit - pos {
                        return Err(lying());
                    }
                    pos += len as usize;
                }
                (0xE000, Holds::Items) => {
                    let end = if len == UNDEFINED {
                        None
                    } else if len as usize > limit - pos {
                        return Err(lying());
                    } else {
                        Some(pos + len as usize)
                    };
                    stack.push(Level {
                        holds: Holds::Elements,
                        end,
                        explicit,
                    });
                }
                // Item delimiter: ends an item of undefined length.
                (0xE00D, Holds::Elements) if stack.len() > 1 => {
                    if stack.last().is_some_and(|l| l.end.is_some()) {
                        return Err(misplaced());
                    }
                    stack.pop();
                }
                // Sequence delimiter: ends a sequence or pixel data of undefined length.
                (0xE0DD, Holds::Items | Holds::Fragments) => {
                    if stack.last().is_some_and(|l| l.end.is_some()) {
                        return Err(misplaced());
                    }
                    stack.pop();
                }
                _ => return Err(misplaced()),
            }
            continue;
        }
        if holds != Holds::Elements {
            return Err(misplaced());
        }
        let (len, header, vr) = if explicit {
            let vr = &data[pos + 4..pos + 6];
            if !known_vr(vr) {
                return Err(DicomError::Malformed(
                    "an element has an unknown type".into(),
                ));
            }
            if short_vr(vr) {
                (u32::from(u16_at(pos + 6)), 8, Some(vr))
            } else {
                if limit - pos < 12 {
                    return Err(lying());
                }
                (u32_at(pos + 8), 12, Some(vr))
            }
        } else {
            (u32_at(pos + 4), 8, None)
        };
        let binary_vr = match vr {
            Some(vr) => Some([vr[0], vr[1]]),
            None => implicit_vr(group, element),
        };
        if len != UNDEFINED
            && binary_vr.is_some_and(|v| !(len as usize).is_multiple_of(value_size(&v)))
        {
            return Err(DicomError::Malformed(
                "a value's length does not fit its type".into(),
            ));
        }
        pos += header;
        if len == UNDEFINED {
            // A sequence (an undefined-length UN holds implicit-VR items) or
            // encapsulated pixel data: its items follow.
            let pixels = (group, element) == (0x7FE0, 0x0010);
            stack.push(Level {
                holds: if pixels {
                    Holds::Fragments
                } else {
                    Holds::Items
                },
                end: None,
                explicit: explicit && vr != Some(b"UN"),
            });
            continue;
        }
        let len = len as usize;
        if len > limit - pos {
            return Err(lying());
        }
        let sequence = match vr {
            Some(vr) => vr == b"SQ",
            // Implicit VR: a defined-length sequence starts with an item tag.
            None => len >= 8 && u16_at(pos) == 0xFFFE && u16_at(pos + 2) == 0xE000,
        };
        if sequence {
            stack.push(Level {
                holds: Holds::Items,
                end: Some(pos + len),
                explicit,
            });
        } else {
            if (group, element) == (0x7FE0, 0x0010) && stack.len() == 1 && pixels.is_none() {
                pixels = Some(pos..pos + len);
            }
            pos += len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lying_length_is_refused_and_real_files_pass() {
        let mut rng = rand::thread_rng();
        let spec = crate::dicom::synth::StudySpec::demo(&mut rng);
        let files = crate::dicom::synth::demo_study(&mut rng, &spec, 1, 16);
        for f in &files {
            check(f).expect("a generated file passes");
        }
        // PatientName (explicit VR, 2-byte length) claiming more than is left.
        let mut bad = files[0].clone();
        let at = bad
            .windows(6)
            .position(|w| w == [0x10, 0x00, 0x10, 0x00, b'P', b'N'])
            .expect("PatientName");
        bad[at + 6..at + 8].copy_from_slice(&0xFFF0u16.to_le_bytes());
        let cut = bad.len().min(at + 200);
        assert!(check(&bad[..cut]).is_err());
        // Pixel data (4-byte length) claiming 1.9 GB.
        let mut huge = files[0].clone();
        let at = huge
            .windows(6)
            .position(|w| w == [0xE0, 0x7F, 0x10, 0x00, b'O', b'W'])
            .expect("PixelData");
        huge[at + 8..at + 12].copy_from_slice(&1_919_903_828u32.to_le_bytes());
        assert!(check(&huge).is_err());
    }

    /// Two transfer syntaxes: the walk would take the first (implicit VR, where
    /// this data set is one short element), the parser the last (explicit VR, where
    /// it is an OB value of 2 GB). A repeated meta element is refused.
    #[test]
    fn a_repeated_meta_element_is_refused() {
        let mut meta = Vec::new();
        for syntax in [&b"1.2.840.10008.1.2\0"[..], &b"1.2.840.10008.1.2.1\0"[..]] {
            meta.extend_from_slice(&[0x02, 0x00, 0x10, 0x00, b'U', b'I']);
            meta.extend_from_slice(&(syntax.len() as u16).to_le_bytes());
            meta.extend_from_slice(syntax);
        }
        let mut file = vec![0u8; 128];
        file.extend_from_slice(b"DICM");
        file.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0]);
        file.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        file.extend_from_slice(&meta);
        file.extend_from_slice(&[0x09, 0x00, 0x00, 0x10, b'O', b'B', 0, 0]);
        file.extend_from_slice(&[0xF0, 0xFF, 0xFF, 0x7F]);
        file.resize(file.len() + 0x424F - 4, 0);
        assert!(check(&file).is_err());
        assert!(crate::dicom::parse::parse(&file).is_err());
    }
}

#[cfg(test)]
mod found_by_fuzzing {
    /// Inputs the fuzz targets once choked on; each must be refused quickly.
    #[test]
    fn inputs_found_by_fuzzing_are_refused() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/fuzz-found");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).expect("corpus") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .to_string();
            let bytes = std::fs::read(&path).expect("read");
            let normalized = crate::dicom::parse::normalize_preamble(&bytes).expect("DICM");
            if name.starts_with("render-") {
                // Accepted at ingest, but no frame can be drawn from it.
                assert!(
                    crate::dicom::render::render_frame(&normalized, 0).is_err(),
                    "{name}"
                );
            } else {
                assert!(super::check(&normalized).is_err(), "{name}");
                assert!(crate::dicom::parse::parse(&normalized).is_err(), "{name}");
            }
            seen += 1;
        }
        assert!(seen >= 1);
    }
}

//! The DICOMDIR of a patient CD (PS3.10 / PS3.3 F): one patient, one study, its
//! series and their instances, written as explicit VR little endian with defined
//! lengths so every record's byte offset is known before anything is written.

/// One instance as the DICOMDIR lists it.
pub struct DirInstance {
    /// File ID components, e.g. `["DICOM", "SER0001", "IMG00001"]`.
    pub file_id: Vec<String>,
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub transfer_syntax_uid: String,
    pub instance_number: i64,
}

pub struct DirSeries {
    pub series_uid: String,
    pub modality: String,
    pub number: i64,
    pub instances: Vec<DirInstance>,
}

pub struct DirStudy {
    pub patient_name: String,
    pub patient_id: String,
    pub patient_birth_date: String,
    pub patient_sex: String,
    pub study_uid: String,
    pub study_date: String,
    pub study_description: String,
    pub accession: String,
    pub series: Vec<DirSeries>,
}

const PREAMBLE_AND_MAGIC: usize = 132;
use crate::dicom::parse::ENCAPSULATED_PDF;

/// Element with a 2-byte length (most VRs) or a 4-byte one (OB, SQ, UN, ...).
fn element(out: &mut Vec<u8>, group: u16, elem: u16, vr: &[u8; 2], value: &[u8]) {
    let pad = if vr == b"UI" || vr == b"OB" {
        0u8
    } else {
        b' '
    };
    let len = value.len() + value.len() % 2;
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&elem.to_le_bytes());
    out.extend_from_slice(vr);
    if matches!(vr, b"OB" | b"SQ" | b"UN" | b"OW" | b"UT") {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(len as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&(len as u16).to_le_bytes());
    }
    out.extend_from_slice(value);
    if value.len() % 2 == 1 {
        out.push(pad);
    }
}

fn text(out: &mut Vec<u8>, group: u16, elem: u16, vr: &[u8; 2], value: &str) {
    // Values from the study's own files; each value (between backslashes) is cut to
    // what the VR allows, never inside a character.
    let max = match vr {
        b"CS" | b"SH" | b"DA" => 16,
        b"UI" | b"LO" => 64,
        b"IS" => 12,
        _ => 64 * 5,
    };
    let cut: Vec<&str> = value
        .split('\\')
        .map(|v| {
            let mut end = v.len().min(max);
            while !v.is_char_boundary(end) {
                end -= 1;
            }
            &v[..end]
        })
        .collect();
    element(out, group, elem, vr, cut.join("\\").as_bytes());
}

fn ul(out: &mut Vec<u8>, elem: u16, v: u32) {
    element(out, 0x0004, elem, b"UL", &v.to_le_bytes());
}

/// A directory record: the four link fields (filled in later) and its keys.
struct Record {
    kind: &'static str,
    keys: Vec<u8>,
    next: u32,
    lower: u32,
}

impl Record {
    fn bytes(&self) -> Vec<u8> {
        let mut body = Vec::new();
        ul(&mut body, 0x1400, self.next);
        element(&mut body, 0x0004, 0x1410, b"US", &0xFFFFu16.to_le_bytes());
        ul(&mut body, 0x1420, self.lower);
        text(&mut body, 0x0004, 0x1430, b"CS", self.kind);
        body.extend_from_slice(&self.keys);
        let mut out = Vec::with_capacity(body.len() + 8);
        out.extend_from_slice(&0xFFFEu16.to_le_bytes());
        out.extend_from_slice(&0xE000u16.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend(body);
        out
    }
}

fn meta_group(instance_uid: &str) -> Vec<u8> {
    let mut body = Vec::new();
    element(&mut body, 0x0002, 0x0001, b"OB", &[0, 1]);
    text(&mut body, 0x0002, 0x0002, b"UI", "1.2.840.10008.1.3.10");
    text(&mut body, 0x0002, 0x0003, b"UI", instance_uid);
    text(&mut body, 0x0002, 0x0010, b"UI", "1.2.840.10008.1.2.1");
    text(
        &mut body,
        0x0002,
        0x0012,
        b"UI",
        crate::dicom::IMPLEMENTATION_CLASS_UID,
    );
    text(&mut body, 0x0002, 0x0013, b"SH", "LICHTKASTEN");
    let mut out = Vec::new();
    element(
        &mut out,
        0x0002,
        0x0000,
        b"UL",
        &(body.len() as u32).to_le_bytes(),
    );
    out.extend(body);
    out
}

/// The whole DICOMDIR file. `instance_uid` names this file set.
pub fn build(study: &DirStudy, instance_uid: &str) -> Vec<u8> {
    // Records in file order: patient, study, then each series followed by its
    // instances. Links are indexes first, byte offsets once sizes are known.
    let mut records = Vec::new();
    let mut patient = Vec::new();
    text(&mut patient, 0x0008, 0x0005, b"CS", "ISO_IR 192");
    text(&mut patient, 0x0010, 0x0010, b"PN", &study.patient_name);
    text(&mut patient, 0x0010, 0x0020, b"LO", &study.patient_id);
    text(
        &mut patient,
        0x0010,
        0x0030,
        b"DA",
        &study.patient_birth_date,
    );
    text(&mut patient, 0x0010, 0x0040, b"CS", &study.patient_sex);
    records.push(Record {
        kind: "PATIENT",
        keys: patient,
        next: 0,
        lower: 0,
    });
    let mut st = Vec::new();
    text(&mut st, 0x0008, 0x0005, b"CS", "ISO_IR 192");
    text(&mut st, 0x0008, 0x0020, b"DA", &study.study_date);
    text(&mut st, 0x0008, 0x0030, b"TM", "000000");
    text(&mut st, 0x0008, 0x0050, b"SH", &study.accession);
    text(&mut st, 0x0008, 0x1030, b"LO", &study.study_description);
    text(&mut st, 0x0020, 0x000D, b"UI", &study.study_uid);
    text(&mut st, 0x0020, 0x0010, b"SH", "1");
    records.push(Record {
        kind: "STUDY",
        keys: st,
        next: 0,
        lower: 0,
    });
    // (series record index, its instance record indexes)
    let mut layout: Vec<(usize, Vec<usize>)> = Vec::new();
    for s in &study.series {
        let mut keys = Vec::new();
        text(&mut keys, 0x0008, 0x0060, b"CS", &s.modality);
        text(&mut keys, 0x0020, 0x000E, b"UI", &s.series_uid);
        text(&mut keys, 0x0020, 0x0011, b"IS", &s.number.to_string());
        let series_at = records.len();
        records.push(Record {
            kind: "SERIES",
            keys,
            next: 0,
            lower: 0,
        });
        let mut children = Vec::new();
        for i in &s.instances {
            let mut keys = Vec::new();
            text(&mut keys, 0x0004, 0x1500, b"CS", &i.file_id.join("\\"));
            text(&mut keys, 0x0004, 0x1510, b"UI", &i.sop_class_uid);
            text(&mut keys, 0x0004, 0x1511, b"UI", &i.sop_instance_uid);
            text(&mut keys, 0x0004, 0x1512, b"UI", &i.transfer_syntax_uid);
            text(
                &mut keys,
                0x0020,
                0x0013,
                b"IS",
                &i.instance_number.to_string(),
            );
            children.push(records.len());
            records.push(Record {
                kind: if i.sop_class_uid == ENCAPSULATED_PDF {
                    "ENCAP DOC"
                } else if i.sop_class_uid.starts_with("1.2.840.10008.5.1.4.1.1.88.") {
                    "SR DOCUMENT"
                } else {
                    "IMAGE"
                },
                keys,
                next: 0,
                lower: 0,
            });
        }
        layout.push((series_at, children));
    }
    let meta = meta_group(instance_uid);
    // Everything before the first record: preamble, meta, the four header elements
    // and the sequence's own header. Their sizes do not depend on the values.
    let mut header_probe = Vec::new();
    text(&mut header_probe, 0x0004, 0x1130, b"CS", "LICHTKASTEN");
    ul(&mut header_probe, 0x1200, 0);
    ul(&mut header_probe, 0x1202, 0);
    element(
        &mut header_probe,
        0x0004,
        0x1212,
        b"US",
        &0u16.to_le_bytes(),
    );
    let sequence_header = 12;
    let first_record_at = PREAMBLE_AND_MAGIC + meta.len() + header_probe.len() + sequence_header;
    let mut offsets = Vec::with_capacity(records.len());
    let mut at = first_record_at;
    for r in &records {
        offsets.push(at as u32);
        at += r.bytes().len();
    }
    records[0].lower = offsets[1];
    if let Some((first_series, _)) = layout.first() {
        records[1].lower = offsets[*first_series];
    }
    for (n, (series_at, children)) in layout.iter().enumerate() {
        if let Some((next_series, _)) = layout.get(n + 1) {
            records[*series_at].next = offsets[*next_series];
        }
        if let Some(first) = children.first() {
            records[*series_at].lower = offsets[*first];
        }
        for pair in children.windows(2) {
            records[pair[0]].next = offsets[pair[1]];
        }
    }
    let body: Vec<u8> = records.iter().flat_map(Record::bytes).collect();
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    out.extend(meta);
    text(&mut out, 0x0004, 0x1130, b"CS", "LICHTKASTEN");
    ul(&mut out, 0x1200, offsets[0]);
    ul(&mut out, 0x1202, offsets[0]);
    element(&mut out, 0x0004, 0x1212, b"US", &0u16.to_le_bytes());
    out.extend_from_slice(&0x0004u16.to_le_bytes());
    out.extend_from_slice(&0x1220u16.to_le_bytes());
    out.extend_from_slice(b"SQ\0\0");
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    debug_assert_eq!(out.len(), first_record_at);
    out.extend(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DirStudy {
        DirStudy {
            patient_name: "Müller^Jürgen".into(),
            patient_id: "P1".into(),
            patient_birth_date: "19600101".into(),
            patient_sex: "M".into(),
            study_uid: "1.2.3".into(),
            study_date: "20260101".into(),
            study_description: "CT Thorax".into(),
            accession: "A1".into(),
            series: (1..=2)
                .map(|s| DirSeries {
                    series_uid: format!("1.2.3.{s}"),
                    modality: "CT".into(),
                    number: s,
                    instances: (1..=3)
                        .map(|i| DirInstance {
                            file_id: vec![
                                "DICOM".into(),
                                format!("SER{s:04}"),
                                format!("IMG{i:05}"),
                            ],
                            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
                            sop_instance_uid: format!("1.2.3.{s}.{i}"),
                            transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
                            instance_number: i,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn dicom_rs_reads_it_and_the_links_point_at_records() {
        let bytes = build(&sample(), "2.25.1");
        let obj = dicom_object::from_reader(std::io::Cursor::new(&bytes[128..])).unwrap();
        let seq = obj
            .element(dicom_core::Tag(0x0004, 0x1220))
            .unwrap()
            .items()
            .unwrap()
            .to_vec();
        assert_eq!(seq.len(), 1 + 1 + 2 + 6);
        let kinds: Vec<String> = seq
            .iter()
            .map(|r| {
                r.element(dicom_core::Tag(0x0004, 0x1430))
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .trim()
                    .to_string()
            })
            .collect();
        assert_eq!(kinds[..4], ["PATIENT", "STUDY", "SERIES", "IMAGE"]);
        // Every non-zero link lands on an item tag.
        for r in &seq {
            for tag in [0x1400u16, 0x1420] {
                let v = r
                    .element(dicom_core::Tag(0x0004, tag))
                    .unwrap()
                    .to_int::<u32>()
                    .unwrap() as usize;
                if v != 0 {
                    assert_eq!(&bytes[v..v + 4], &[0xFE, 0xFF, 0x00, 0xE0]);
                }
            }
        }
    }
}

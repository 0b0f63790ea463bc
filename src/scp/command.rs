//! DIMSE command sets (PS3.7 E): read a request, write a response. Commands are
//! always implicit VR little endian.

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, Tag, VR};
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

pub const C_STORE_RQ: u16 = 0x0001;
pub const C_ECHO_RQ: u16 = 0x0030;
const RESPONSE_BIT: u16 = 0x8000;
/// CommandDataSetType: no data set follows.
const NO_DATA_SET: u16 = 0x0101;

pub const STATUS_SUCCESS: u16 = 0x0000;
/// Refused: out of resources.
pub const STATUS_OUT_OF_RESOURCES: u16 = 0xA700;
/// Error: data set does not match SOP class (here: another patient's study).
pub const STATUS_DATASET_MISMATCH: u16 = 0xA900;
/// Error: cannot understand.
pub const STATUS_CANNOT_UNDERSTAND: u16 = 0xC000;
/// Refused: SOP class not supported.
pub const STATUS_SOP_CLASS_NOT_SUPPORTED: u16 = 0x0122;

const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";

#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub command_field: u16,
    pub message_id: u16,
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub has_data_set: bool,
}

fn trimmed(obj: &InMemDicomObject, tag: Tag) -> String {
    obj.element(tag)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        .unwrap_or_default()
}

fn int(obj: &InMemDicomObject, tag: Tag) -> Option<u16> {
    obj.element(tag).ok()?.to_int::<u16>().ok()
}

/// Reads a command set; `None` for anything that is not one.
pub fn read(bytes: &[u8]) -> Option<Request> {
    let ts = TransferSyntaxRegistry.get(IMPLICIT_VR_LE)?;
    let obj = InMemDicomObject::read_dataset_with_ts(bytes, ts).ok()?;
    Some(Request {
        command_field: int(&obj, Tag(0x0000, 0x0100))?,
        message_id: int(&obj, Tag(0x0000, 0x0110)).unwrap_or(0),
        sop_class_uid: trimmed(&obj, Tag(0x0000, 0x0002)),
        sop_instance_uid: trimmed(&obj, Tag(0x0000, 0x1000)),
        has_data_set: int(&obj, Tag(0x0000, 0x0800)).is_some_and(|v| v != NO_DATA_SET),
    })
}

/// The response to `request` with `status`, group length first.
pub fn response(request: &Request, status: u16) -> Vec<u8> {
    let mut obj = InMemDicomObject::new_empty();
    let us = |v: u16| PrimitiveValue::from(v);
    if !request.sop_class_uid.is_empty() {
        obj.put(DataElement::new(
            Tag(0x0000, 0x0002),
            VR::UI,
            PrimitiveValue::from(request.sop_class_uid.as_str()),
        ));
    }
    obj.put(DataElement::new(
        Tag(0x0000, 0x0100),
        VR::US,
        us(request.command_field | RESPONSE_BIT),
    ));
    obj.put(DataElement::new(
        Tag(0x0000, 0x0120),
        VR::US,
        us(request.message_id),
    ));
    obj.put(DataElement::new(
        Tag(0x0000, 0x0800),
        VR::US,
        us(NO_DATA_SET),
    ));
    obj.put(DataElement::new(Tag(0x0000, 0x0900), VR::US, us(status)));
    if !request.sop_instance_uid.is_empty() {
        obj.put(DataElement::new(
            Tag(0x0000, 0x1000),
            VR::UI,
            PrimitiveValue::from(request.sop_instance_uid.as_str()),
        ));
    }
    let mut body = Vec::new();
    if let Some(ts) = TransferSyntaxRegistry.get(IMPLICIT_VR_LE) {
        // Writing a small in-memory command set to a Vec does not fail.
        let _ = obj.write_dataset_with_ts(&mut body, ts);
    }
    let mut out = Vec::with_capacity(body.len() + 12);
    out.extend_from_slice(&0x0000u16.to_le_bytes());
    out.extend_from_slice(&0x0000u16.to_le_bytes());
    out.extend_from_slice(&4u32.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_reads_back_as_the_answer_to_its_request() {
        let rq = Request {
            command_field: C_STORE_RQ,
            message_id: 7,
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
            sop_instance_uid: "2.25.42".into(),
            has_data_set: true,
        };
        let rsp = read(&response(&rq, STATUS_SUCCESS)).expect("a command");
        assert_eq!(rsp.command_field, 0x8001);
        assert_eq!(
            rsp.message_id, 0,
            "responses carry MessageIDBeingRespondedTo"
        );
        assert_eq!(rsp.sop_instance_uid, "2.25.42");
        assert!(!rsp.has_data_set);
        assert!(read(b"garbage").is_none());
    }
}

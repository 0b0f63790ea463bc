//! The DICOM door: a C-STORE and C-ECHO service class provider, so a practice's PACS
//! or modality can push studies. Each practice has a called AE title and a list of
//! calling AE titles it accepts; anything else is rejected at association. Every
//! received instance goes through the same ingest pipeline as uploads.

pub mod command;

use crate::app::Services;
use crate::audit::Actor;

use command::Request;
use dicom_ul::association::server::AccessControl;
use dicom_ul::pdu::{
    AssociationRJServiceUserReason, PDataValue, PDataValueType, Pdu, UserIdentity,
};
use std::collections::HashMap;
use std::sync::Arc;

/// Largest instance taken over DICOM (same bound as a single upload).
const MAX_INSTANCE_BYTES: usize = 512 * 1024 * 1024;
/// The largest PDU a sender may send us: with dicom-ul's default (32 KiB) a CT slice
/// comes in 16 PDUs, each read, parsed and copied on its own; with 256 KiB in 2–3.
/// Each association's read buffer grows to at most this.
const MAX_PDU_BYTES: u32 = 256 * 1024;
/// A DIMSE command is a few hundred bytes; anything far larger is not one.
const MAX_COMMAND_BYTES: usize = 64 * 1024;
const VERIFICATION: &str = "1.2.840.10008.1.1";

/// Storage SOP classes accepted: CT, MR, CR, DX (both), MG (both), US (single and
/// multi-frame), XA, NM, PET, secondary capture (all), encapsulated PDF.
pub const STORAGE_SOP_CLASSES: &[&str] = &[
    "1.2.840.10008.5.1.4.1.1.2",
    "1.2.840.10008.5.1.4.1.1.2.1",
    "1.2.840.10008.5.1.4.1.1.4",
    "1.2.840.10008.5.1.4.1.1.4.1",
    "1.2.840.10008.5.1.4.1.1.1",
    "1.2.840.10008.5.1.4.1.1.1.1",
    "1.2.840.10008.5.1.4.1.1.1.1.1",
    "1.2.840.10008.5.1.4.1.1.1.2",
    "1.2.840.10008.5.1.4.1.1.1.2.1",
    "1.2.840.10008.5.1.4.1.1.6.1",
    "1.2.840.10008.5.1.4.1.1.3.1",
    "1.2.840.10008.5.1.4.1.1.12.1",
    "1.2.840.10008.5.1.4.1.1.20",
    "1.2.840.10008.5.1.4.1.1.128",
    "1.2.840.10008.5.1.4.1.1.7",
    "1.2.840.10008.5.1.4.1.1.7.1",
    "1.2.840.10008.5.1.4.1.1.7.2",
    "1.2.840.10008.5.1.4.1.1.7.3",
    "1.2.840.10008.5.1.4.1.1.7.4",
    "1.2.840.10008.5.1.4.1.1.104.1",
];

/// Called AE title → (practice, calling AE titles it accepts; `*` accepts any).
type AeTable = HashMap<String, (String, Vec<String>)>;

/// The practices' AE titles as they are when an association starts.
struct PracticeAes(AeTable);

impl AccessControl for PracticeAes {
    fn check_access(
        &self,
        _this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        let Some((_, allowed)) = self.0.get(called_ae_title.trim()) else {
            return Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized);
        };
        let calling = calling_ae_title.trim();
        if allowed.iter().any(|a| a == "*" || a == calling) {
            Ok(())
        } else {
            Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized)
        }
    }
}

async fn ae_table(svc: &Services) -> Result<AeTable, crate::db::DbError> {
    Ok(svc
        .db
        .dicom_nodes()
        .await?
        .into_iter()
        .map(|n| (n.ae_title, (n.practice_id, n.calling_ae_titles)))
        .collect())
}

/// The TLS settings of the DICOM TLS listener, from PEM files.
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| anyhow::anyhow!("cannot read the DICOM TLS certificate: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("cannot read the DICOM TLS certificate: {e}"))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "the DICOM TLS certificate file holds no certificate"
    );
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("cannot read the DICOM TLS key: {e}"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

/// Accepts associations until the task is dropped; over TLS when `tls` is given.
pub async fn serve(
    svc: Arc<Services>,
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    loop {
        let Ok((socket, peer)) = listener.accept().await else {
            continue;
        };
        // Nagle's algorithm would hold back every small response.
        let _ = socket.set_nodelay(true);
        let (svc, tls) = (svc.clone(), tls.clone());
        tokio::spawn(async move {
            if let Err(e) = association(&svc, socket, tls).await {
                tracing::info!(%peer, error = %e, "DICOM association ended with an error");
            }
        });
    }
}

async fn association(
    svc: &Arc<Services>,
    socket: tokio::net::TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> anyhow::Result<()> {
    let table = ae_table(svc).await?;
    let mut options = dicom_ul::association::server::ServerAssociationOptions::new()
        .ae_access_control(PracticeAes(table.clone()))
        .ae_title("LICHTKASTEN")
        .max_pdu_length(MAX_PDU_BYTES)
        .with_abstract_syntax(VERIFICATION);
    for class in STORAGE_SOP_CLASSES {
        options = options.with_abstract_syntax(*class);
    }
    match tls {
        None => served(svc, options.establish_async(socket).await?, &table).await,
        Some(config) => {
            let assoc = options
                .tls_config(config)
                .establish_tls_async(socket)
                .await?;
            served(svc, assoc, &table).await
        }
    }
}

/// An established association: its practice, then its commands.
async fn served<S>(
    svc: &Arc<Services>,
    mut assoc: dicom_ul::association::server::AsyncServerAssociation<S>,
    table: &AeTable,
) -> anyhow::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    let called = assoc.called_ae_title().trim().to_string();
    let Some((practice_id, _)) = table.get(&called).cloned() else {
        return Ok(());
    };
    let calling = dicom_ul::association::Association::peer_ae_title(&assoc)
        .trim()
        .to_string();
    let contexts: HashMap<u8, String> = assoc
        .presentation_contexts()
        .iter()
        .map(|pc| (pc.id, pc.transfer_syntax.clone()))
        .collect();
    // One intake per association: one audit entry per study, the quota read once.
    let mut intake =
        crate::studies::ingest::Intake::open(svc, &practice_id, Actor::DicomNode(calling)).await?;
    let outcome = exchange(&mut assoc, &mut intake, &contexts).await;
    if let Err(e) = intake.finish().await {
        tracing::error!(error = %e, "recording a DICOM association failed");
    }
    outcome
}

/// An instance being received: the Part 10 file grows as its data arrives (made
/// whole here, so it is never copied into a file afterwards).
struct Incoming {
    context_id: u8,
    request: Request,
    /// Preamble (zeros), `DICM`, the meta group made from the association, then the
    /// data set as received; `None` when no file can be made of it.
    file: Option<Vec<u8>>,
    received: usize,
}

impl Incoming {
    fn new(context_id: u8, request: Request, transfer_syntax: &str) -> Incoming {
        Incoming {
            file: file_head(&request, transfer_syntax),
            context_id,
            request,
            received: 0,
        }
    }

    fn take(&mut self, data: &[u8]) -> anyhow::Result<()> {
        self.received += data.len();
        if self.received > MAX_INSTANCE_BYTES {
            anyhow::bail!("instance larger than the limit");
        }
        if let Some(file) = self.file.as_mut() {
            file.extend_from_slice(data);
        }
        Ok(())
    }
}

/// Answers the association's commands until it is released or aborted.
async fn exchange<S>(
    assoc: &mut dicom_ul::association::server::AsyncServerAssociation<S>,
    intake: &mut crate::studies::ingest::Intake,
    contexts: &HashMap<u8, String>,
) -> anyhow::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    let mut command_bytes = Vec::new();
    let mut incoming: Option<Incoming> = None;
    loop {
        match assoc.receive().await? {
            Pdu::PData { data } => {
                for pdv in data {
                    let ctx_id = pdv.presentation_context_id;
                    match pdv.value_type {
                        PDataValueType::Command => {
                            command_bytes.extend_from_slice(&pdv.data);
                            if command_bytes.len() > MAX_COMMAND_BYTES {
                                anyhow::bail!("command larger than the limit");
                            }
                            if !pdv.is_last {
                                continue;
                            }
                            let request = command::read(&std::mem::take(&mut command_bytes))
                                .ok_or_else(|| anyhow::anyhow!("unreadable command"))?;
                            if request.has_data_set {
                                let transfer_syntax =
                                    contexts.get(&ctx_id).map_or("", String::as_str);
                                incoming = Some(Incoming::new(ctx_id, request, transfer_syntax));
                                continue;
                            }
                            let status = if request.command_field == command::C_ECHO_RQ {
                                command::STATUS_SUCCESS
                            } else {
                                command::STATUS_CANNOT_UNDERSTAND
                            };
                            respond(assoc, ctx_id, &request, status).await?;
                        }
                        PDataValueType::Data => {
                            let Some(current) = incoming.as_mut() else {
                                anyhow::bail!("data set without a command");
                            };
                            current.take(&pdv.data)?;
                            if !pdv.is_last {
                                continue;
                            }
                            let Some(done) = incoming.take() else {
                                continue;
                            };
                            let status = store(intake, &done.request, done.file).await;
                            respond(assoc, done.context_id, &done.request, status).await?;
                        }
                    }
                }
            }
            Pdu::ReleaseRQ => {
                assoc.send(&Pdu::ReleaseRP).await?;
                return Ok(());
            }
            Pdu::AbortRQ { .. } => return Ok(()),
            _ => {}
        }
    }
}

async fn respond<S>(
    assoc: &mut dicom_ul::association::server::AsyncServerAssociation<S>,
    ctx_id: u8,
    request: &Request,
    status: u16,
) -> anyhow::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    assoc
        .send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: ctx_id,
                value_type: PDataValueType::Command,
                is_last: true,
                data: command::response(request, status),
            }],
        })
        .await?;
    Ok(())
}

/// The start of the Part 10 file an instance becomes: a zeroed preamble, `DICM` and
/// a meta group made from the command and the association's transfer syntax.
fn file_head(request: &Request, transfer_syntax: &str) -> Option<Vec<u8>> {
    let meta = dicom_object::meta::FileMetaTableBuilder::new()
        .transfer_syntax(transfer_syntax)
        .media_storage_sop_class_uid(request.sop_class_uid.as_str())
        .media_storage_sop_instance_uid(request.sop_instance_uid.as_str())
        .build()
        .ok()?;
    let mut file = vec![0u8; 128];
    file.extend_from_slice(b"DICM");
    meta.write(&mut file).ok()?;
    Some(file)
}

/// One received instance, ingested like an upload. Returns the DIMSE status.
async fn store(
    intake: &mut crate::studies::ingest::Intake,
    request: &Request,
    file: Option<Vec<u8>>,
) -> u16 {
    if request.command_field != command::C_STORE_RQ {
        return command::STATUS_CANNOT_UNDERSTAND;
    }
    if !STORAGE_SOP_CLASSES.contains(&request.sop_class_uid.as_str()) {
        return command::STATUS_SOP_CLASS_NOT_SUPPORTED;
    }
    let Some(file) = file else {
        return command::STATUS_CANNOT_UNDERSTAND;
    };
    use crate::studies::ingest::FileOutcome;
    match intake.store_file("instance", file).await {
        Ok(FileOutcome::Stored { .. } | FileOutcome::Duplicate { .. }) => command::STATUS_SUCCESS,
        Ok(FileOutcome::Rejected(code)) => match code {
            "patient_mismatch" => command::STATUS_DATASET_MISMATCH,
            "storage_error" | "quota_exceeded" => command::STATUS_OUT_OF_RESOURCES,
            _ => command::STATUS_CANNOT_UNDERSTAND,
        },
        Err(e) => {
            tracing::error!(error = %e, "DICOM store failed");
            command::STATUS_OUT_OF_RESOURCES
        }
    }
}

fn valid_ae_title(s: &str) -> bool {
    (1..=16).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'_' | b'-' | b'.'))
}

/// Checks a practice's DICOM settings as typed: the AE title (empty: the door is
/// closed for this practice) and the calling AE titles (comma-separated, `*` for any).
pub fn parse_node(
    ae_title: &str,
    calling: &str,
) -> Result<(Option<String>, Vec<String>), &'static str> {
    let ae_title = ae_title.trim();
    let calling = crate::db::practices::split_ae_titles(calling);
    if calling.len() > 50 {
        return Err("At most 50 calling AE titles.");
    }
    if calling.iter().any(|c| c != "*" && !valid_ae_title(c)) {
        return Err("Calling AE titles have 1–16 characters: letters, digits, space, _ - or .");
    }
    if ae_title.is_empty() {
        return Ok((None, calling));
    }
    if !valid_ae_title(ae_title) {
        return Err("The AE title has 1–16 characters: letters, digits, space, _ - or .");
    }
    Ok((Some(ae_title.to_string()), calling))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_settings_are_checked() {
        assert_eq!(
            parse_node(" PRAXIS ", "PACS1, MODALITY_2"),
            Ok((
                Some("PRAXIS".into()),
                vec!["PACS1".to_string(), "MODALITY_2".to_string()]
            ))
        );
        assert_eq!(parse_node("", "*"), Ok((None, vec!["*".to_string()])));
        assert!(parse_node("WAY-TOO-LONG-AE-TITLE", "").is_err());
        assert!(parse_node("OK", "BAD\\TITLE").is_err());
        assert!(parse_node("<script>", "").is_err());
    }
}

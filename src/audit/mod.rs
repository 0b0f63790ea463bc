//! Who did what, when: every use case that touches patient data records an event.
//! Details never hold patient data, only ids and counts.

use crate::app::Services;
use crate::db::audit::NewAuditEvent;

/// Who acted. Ids only; names are looked up when the log is shown.
#[derive(Debug, Clone)]
pub enum Actor {
    ApiClient(String),
    Staff(String),
    Patient {
        grant_id: String,
    },
    Referrer {
        grant_id: String,
    },
    Operator,
    /// A PACS or modality, by its calling AE title.
    DicomNode(String),
}

impl Actor {
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::ApiClient(_) => "api_client",
            Actor::Staff(_) => "staff",
            Actor::Patient { .. } => "patient",
            Actor::Referrer { .. } => "referrer",
            Actor::Operator => "operator",
            Actor::DicomNode(_) => "dicom_node",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Actor::ApiClient(id) | Actor::Staff(id) | Actor::DicomNode(id) => id,
            Actor::Patient { grant_id } | Actor::Referrer { grant_id } => grant_id,
            Actor::Operator => "cli",
        }
    }
}

pub async fn record(
    svc: &Services,
    practice_id: &str,
    actor: &Actor,
    action: &str,
    study_id: Option<&str>,
    detail: &str,
) -> Result<(), crate::db::DbError> {
    svc.db
        .append_audit(&NewAuditEvent {
            practice_id,
            at: svc.clock.now(),
            actor_kind: actor.kind(),
            actor_id: actor.id(),
            action,
            study_id,
            detail,
        })
        .await
}

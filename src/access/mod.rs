//! Patient and referrer grants: issue, redeem, revoke; and the sessions they open.

pub mod ratelimit;
pub mod sessions;

use crate::app::Services;
use crate::audit::{self, Actor};
use crate::auth::passwords::HashError;
use crate::db::DbError;
use crate::db::access::{GrantRow, NewGrant};
use crate::domain::codes::{AccessCode, GrantPassword};
use crate::domain::{Audience, new_id, new_token, token_hash};

/// Wrong passwords before each further try has to wait (growing delay).
pub const DELAY_AFTER_FAILURES: i64 = 5;
/// Failures within [`FAILURE_WINDOW_SECS`] that lock the grant until the practice
/// reissues it: ten wrong passwords a day are tolerated, the eleventh locks.
pub const LOCK_AFTER_FAILURES: i64 = 11;
pub const FAILURE_WINDOW_SECS: i64 = 24 * 3600;
/// Longest grant a practice can issue.
pub const MAX_GRANT_DAYS: i64 = 5 * 365;

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// One answer for unknown code, wrong password, expired, revoked and locked.
    #[error("access denied")]
    Denied,
    #[error("not found")]
    NotFound,
    #[error("invalid request: {0}")]
    Invalid(&'static str),
    #[error("not allowed: {0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Study(#[from] crate::studies::StudyError),
}

/// What a letter prints; sealed under the study key in the grant row.
#[derive(serde::Serialize, serde::Deserialize)]
struct LetterData {
    access_code: String,
    password: String,
    link: String,
}

fn seal_letter(
    dek: &crate::crypto::Key32,
    study_id: &str,
    grant_id: &str,
    data: &LetterData,
) -> Result<Vec<u8>, AccessError> {
    let json = serde_json::to_vec(data).map_err(|_| AccessError::Invalid("letter"))?;
    Ok(crate::keys::seal_record(
        dek,
        study_id,
        &format!("letter:{grant_id}"),
        &json,
    ))
}

/// What the practice prints on the letter. Lookups use hashes of code and link; the
/// letter's contents are kept sealed under the study key so the letter can be printed
/// again, and are shredded with the study.
#[derive(Debug, serde::Serialize)]
pub struct IssuedGrant {
    pub id: String,
    pub access_code: String,
    pub password: String,
    pub link: String,
    pub expires_at: i64,
}

pub async fn issue_grant(
    svc: &Services,
    practice_id: &str,
    study_id: &str,
    audience: Audience,
    expires_at: Option<i64>,
    allow_download: Option<bool>,
    actor: &Actor,
) -> Result<IssuedGrant, AccessError> {
    issue(
        svc,
        practice_id,
        study_id,
        audience,
        GrantTerms {
            expires_at,
            allow_download,
            parent_grant_id: None,
        },
        actor,
    )
    .await
}

/// What the issuer chose; `None` takes the practice's default.
struct GrantTerms<'a> {
    expires_at: Option<i64>,
    allow_download: Option<bool>,
    parent_grant_id: Option<&'a str>,
}

async fn issue(
    svc: &Services,
    practice_id: &str,
    study_id: &str,
    audience: Audience,
    terms: GrantTerms<'_>,
    actor: &Actor,
) -> Result<IssuedGrant, AccessError> {
    let practice = svc
        .db
        .practice(practice_id)
        .await?
        .ok_or(AccessError::NotFound)?;
    let record = svc
        .db
        .study_record(practice_id, study_id)
        .await?
        .ok_or(AccessError::NotFound)?;
    let (_, dek) = crate::studies::open_record(svc, record).await?;
    let now = svc.clock.now();
    let expires_at = terms
        .expires_at
        .unwrap_or(now + practice.default_access_days * 86_400);
    let allow_download = match terms.allow_download {
        Some(allowed) => allowed,
        None => svc
            .db
            .practice_settings(practice_id)
            .await?
            .is_some_and(|s| s.downloads_default),
    };
    if expires_at <= now || expires_at > now + MAX_GRANT_DAYS * 86_400 {
        return Err(AccessError::Invalid(
            "expires_at must lie in the future, at most five years ahead",
        ));
    }
    let mut rng = rand::rngs::OsRng;
    let code = AccessCode::generate(&mut rng);
    let password = GrantPassword::generate(&mut rng);
    let link_token = new_token(&mut rng);
    let id = new_id(&mut rng);
    let password_hash = svc.hasher.hash(password.expose()).await?;
    let issued = IssuedGrant {
        id: id.clone(),
        access_code: code.display(),
        password: password.expose().to_string(),
        link: format!("{}/s/{}", svc.public_url, link_token),
        expires_at,
    };
    svc.db
        .insert_grant(
            &NewGrant {
                id: &id,
                practice_id,
                study_id,
                audience: audience.as_str(),
                code_hash: &token_hash("access-code", code.normalized()),
                link_hash: &token_hash("grant-link", &link_token),
                password_hash: &password_hash,
                expires_at,
                parent_grant_id: terms.parent_grant_id,
                allow_download,
            },
            now,
        )
        .await?;
    let sealed = seal_letter(
        &dek,
        study_id,
        &id,
        &LetterData {
            access_code: issued.access_code.clone(),
            password: issued.password.clone(),
            link: issued.link.clone(),
        },
    )?;
    svc.db.set_grant_letter(&id, &sealed).await?;
    audit::record(
        svc,
        practice_id,
        actor,
        "grant.issue",
        Some(study_id),
        &format!("grant={id} audience={}", audience.as_str()),
    )
    .await?;
    Ok(issued)
}

/// How long a grant with `failures` recent failures makes the next try wait.
fn retry_delay(failures: i64) -> i64 {
    if failures < DELAY_AFTER_FAILURES {
        0
    } else {
        (1i64 << (failures - DELAY_AFTER_FAILURES).min(8)).min(300)
    }
}

/// Checks a password against a grant found by code or link. Always spends one
/// argon2 verification, so every refusal takes the same time.
async fn redeem(
    svc: &Services,
    grant: Option<GrantRow>,
    password: &str,
) -> Result<GrantRow, AccessError> {
    let now = svc.clock.now();
    let normalized = GrantPassword::normalize_input(password).unwrap_or_default();
    let ok = svc
        .hasher
        .verify(
            grant.as_ref().map(|g| g.password_hash.as_str()),
            &normalized,
        )
        .await?;
    let Some(grant) = grant else {
        return Err(AccessError::Denied);
    };
    let usable = grant.revoked_at.is_none() && grant.locked_at.is_none() && grant.expires_at > now;
    let waiting = now < grant.last_failed_at + retry_delay(grant.failed_count);
    if !usable {
        return Err(AccessError::Denied);
    }
    if waiting {
        // Tries during the wait count too, so hammering only lengthens it.
        svc.db
            .record_grant_failure(&grant.id, now, FAILURE_WINDOW_SECS, LOCK_AFTER_FAILURES)
            .await?;
        return Err(AccessError::Denied);
    }
    if !ok {
        svc.db
            .record_grant_failure(&grant.id, now, FAILURE_WINDOW_SECS, LOCK_AFTER_FAILURES)
            .await?;
        let refreshed = svc.db.grant_by_id(&grant.id).await?;
        if let Some(g) = refreshed.filter(|g| g.locked_at.is_some()) {
            audit::record(
                svc,
                &g.practice_id,
                &actor_of(&g),
                "grant.locked",
                Some(&g.study_id),
                &format!("grant={}", g.id),
            )
            .await?;
        }
        return Err(AccessError::Denied);
    }
    // The checks above used the row as read before the (slow) password check; tries
    // in flight meanwhile may have locked or revoked the grant.
    let fresh = svc
        .db
        .grant_by_id(&grant.id)
        .await?
        .ok_or(AccessError::Denied)?;
    if fresh.revoked_at.is_some() || fresh.locked_at.is_some() || fresh.expires_at <= now {
        return Err(AccessError::Denied);
    }
    svc.db.record_grant_success(&grant.id, now).await?;
    audit::record(
        svc,
        &grant.practice_id,
        &actor_of(&grant),
        "grant.redeem",
        Some(&grant.study_id),
        &format!("grant={}", grant.id),
    )
    .await?;
    Ok(grant)
}

/// Who a live patient or referrer session acts as, for the audit log.
pub fn actor_of_scope(scope: &sessions::PatientScope) -> Actor {
    if scope.audience == "referrer" {
        Actor::Referrer {
            grant_id: scope.grant_id.clone(),
        }
    } else {
        Actor::Patient {
            grant_id: scope.grant_id.clone(),
        }
    }
}

pub fn actor_of(g: &GrantRow) -> Actor {
    if g.audience == "referrer" {
        Actor::Referrer {
            grant_id: g.id.clone(),
        }
    } else {
        Actor::Patient {
            grant_id: g.id.clone(),
        }
    }
}

/// Code + password from the start page. Opens a session; returns its cookie value.
pub async fn redeem_code(
    svc: &Services,
    code_input: &str,
    password: &str,
) -> Result<String, AccessError> {
    let grant = match AccessCode::parse(code_input) {
        Some(code) => {
            svc.db
                .grant_by_code_hash(&token_hash("access-code", code.normalized()))
                .await?
        }
        None => None,
    };
    let grant = redeem(svc, grant, password).await?;
    Ok(sessions::open_patient_session(svc, &grant).await?)
}

/// Link token + password from the QR code page.
pub async fn redeem_link(
    svc: &Services,
    link_token: &str,
    password: &str,
) -> Result<String, AccessError> {
    let grant = if link_token.len() <= 128 {
        svc.db
            .grant_by_link_hash(&token_hash("grant-link", link_token))
            .await?
    } else {
        None
    };
    let grant = redeem(svc, grant, password).await?;
    Ok(sessions::open_patient_session(svc, &grant).await?)
}

/// Sets a new end date for a live grant (later or earlier; it must lie ahead). An
/// expired grant can be brought back this way; a revoked one cannot.
pub async fn extend_grant(
    svc: &Services,
    practice_id: &str,
    grant_id: &str,
    expires_at: i64,
    actor: &Actor,
) -> Result<(), AccessError> {
    let now = svc.clock.now();
    if expires_at <= now || expires_at > now + MAX_GRANT_DAYS * 86_400 {
        return Err(AccessError::Invalid(
            "the new end must lie in the future, at most five years ahead",
        ));
    }
    let grant = svc
        .db
        .grant(practice_id, grant_id)
        .await?
        .ok_or(AccessError::NotFound)?;
    if !svc
        .db
        .set_grant_expiry(practice_id, grant_id, expires_at)
        .await?
    {
        return Err(AccessError::NotFound);
    }
    audit::record(
        svc,
        practice_id,
        actor,
        "grant.extend",
        Some(&grant.study_id),
        &format!(
            "grant={grant_id} until={}",
            crate::clock::format_date(expires_at)
        ),
    )
    .await?;
    Ok(())
}

pub async fn revoke_grant(
    svc: &Services,
    practice_id: &str,
    grant_id: &str,
    actor: &Actor,
) -> Result<(), AccessError> {
    let grant = svc
        .db
        .grant(practice_id, grant_id)
        .await?
        .ok_or(AccessError::NotFound)?;
    svc.db
        .revoke_grant(practice_id, grant_id, svc.clock.now())
        .await?;
    svc.db.revoke_forwards_of(grant_id, svc.clock.now()).await?;
    audit::record(
        svc,
        practice_id,
        actor,
        "grant.revoke",
        Some(&grant.study_id),
        &format!("grant={grant_id}"),
    )
    .await?;
    Ok(())
}

/// A new password for a grant (letter lost, or the grant locked): the old password
/// dies, live sessions end, code and link stay.
pub async fn reissue_grant(
    svc: &Services,
    practice_id: &str,
    grant_id: &str,
    actor: &Actor,
) -> Result<IssuedGrant, AccessError> {
    let grant = svc
        .db
        .grant(practice_id, grant_id)
        .await?
        .ok_or(AccessError::NotFound)?;
    if grant.revoked_at.is_some() || grant.expires_at <= svc.clock.now() {
        return Err(AccessError::Invalid(
            "a revoked or expired grant cannot be reissued",
        ));
    }
    let record = svc
        .db
        .study_record(practice_id, &grant.study_id)
        .await?
        .ok_or(AccessError::NotFound)?;
    let (_, dek) = crate::studies::open_record(svc, record).await?;
    let old = open_letter(svc, &dek, &grant).await?;
    let password = GrantPassword::generate(&mut rand::rngs::OsRng);
    let hash = svc.hasher.hash(password.expose()).await?;
    let data = LetterData {
        access_code: old.access_code,
        password: password.expose().to_string(),
        link: old.link,
    };
    let sealed = seal_letter(&dek, &grant.study_id, &grant.id, &data)?;
    if !svc
        .db
        .reissue_grant(practice_id, grant_id, &hash, &sealed, svc.clock.now())
        .await?
    {
        return Err(AccessError::NotFound);
    }
    audit::record(
        svc,
        practice_id,
        actor,
        "grant.reissue",
        Some(&grant.study_id),
        &format!("grant={grant_id}"),
    )
    .await?;
    Ok(IssuedGrant {
        id: grant.id,
        access_code: data.access_code,
        password: data.password,
        link: data.link,
        expires_at: grant.expires_at,
    })
}

async fn open_letter(
    svc: &Services,
    dek: &crate::crypto::Key32,
    grant: &GrantRow,
) -> Result<LetterData, AccessError> {
    let sealed = svc
        .db
        .grant_letter(&grant.id)
        .await?
        .ok_or(AccessError::NotFound)?;
    let plain = crate::keys::open_record(
        dek,
        &grant.study_id,
        &format!("letter:{}", grant.id),
        &sealed,
    )
    .map_err(|_| AccessError::NotFound)?;
    serde_json::from_slice(&plain).map_err(|_| AccessError::NotFound)
}

/// The access letter of a live grant as PDF.
pub async fn grant_letter(
    svc: &Services,
    practice_id: &str,
    grant_id: &str,
    actor: &Actor,
) -> Result<Vec<u8>, AccessError> {
    let grant = svc
        .db
        .grant(practice_id, grant_id)
        .await?
        .ok_or(AccessError::NotFound)?;
    if grant.revoked_at.is_some() || grant.expires_at <= svc.clock.now() {
        return Err(AccessError::Invalid(
            "a revoked or expired grant has no letter",
        ));
    }
    let practice = svc
        .db
        .practice(practice_id)
        .await?
        .ok_or(AccessError::NotFound)?;
    let record = svc
        .db
        .study_record(practice_id, &grant.study_id)
        .await?
        .ok_or(AccessError::NotFound)?;
    let (study, dek) = crate::studies::open_record(svc, record).await?;
    let data = open_letter(svc, &dek, &grant).await?;
    let start_url = format!("{}/access", svc.public_url);
    let pdf = crate::letters::access_letter(&crate::letters::AccessLetter {
        practice: crate::letters::PracticeHeader {
            name: &practice.name,
            address: &practice.address,
            logo: crate::letters::practice_logo(&svc.db, practice_id).await?,
        },
        patient_name: &crate::dicom::display_person_name(&study.patient_name),
        birth_date: &crate::dicom::display_date_de(&study.patient_birth_date),
        study_date: &crate::dicom::display_date_de(&study.study_date),
        study_description: &study.description,
        link: &data.link,
        access_code: &data.access_code,
        password: &data.password,
        expires: &crate::clock::format_date_de(grant.expires_at),
        start_url: &start_url,
    });
    audit::record(
        svc,
        practice_id,
        actor,
        "grant.letter",
        Some(&grant.study_id),
        &format!("grant={grant_id}"),
    )
    .await?;
    Ok(pdf)
}

/// One study's part of a patient's combined letter, as printed.
struct LetterBlock {
    study_id: String,
    grant_id: String,
    study_date: String,
    description: String,
    expires: String,
    data: LetterData,
}

/// One page for all of a patient's studies that have a live patient grant (the
/// newest grant of each, the newest studies first, as many as fit on the page).
pub async fn patient_letter(
    svc: &Services,
    practice_id: &str,
    any_study_id: &str,
    actor: &Actor,
) -> Result<Vec<u8>, AccessError> {
    let now = svc.clock.now();
    // Another practice's study answers like a missing one.
    svc.db
        .study_record(practice_id, any_study_id)
        .await?
        .ok_or(AccessError::NotFound)?;
    let practice = svc
        .db
        .practice(practice_id)
        .await?
        .ok_or(AccessError::NotFound)?;
    let mut blocks = Vec::new();
    let mut patient = None;
    for study_id in svc
        .db
        .studies_of_same_patient(practice_id, any_study_id)
        .await?
    {
        if blocks.len() == crate::letters::STUDIES_PER_LETTER {
            break;
        }
        let newest_live = svc
            .db
            .grants_of_study(practice_id, &study_id)
            .await?
            .into_iter()
            .rev()
            .find(|g| {
                g.audience == "patient"
                    && g.parent_grant_id.is_none()
                    && g.revoked_at.is_none()
                    && g.expires_at > now
            });
        let Some(grant) = newest_live else { continue };
        let record = svc
            .db
            .study_record(practice_id, &study_id)
            .await?
            .ok_or(AccessError::NotFound)?;
        let (study, dek) = crate::studies::open_record(svc, record).await?;
        let data = open_letter(svc, &dek, &grant).await?;
        patient.get_or_insert((study.patient_name.clone(), study.patient_birth_date.clone()));
        blocks.push(LetterBlock {
            study_id: study.id,
            grant_id: grant.id,
            study_date: crate::dicom::display_date_de(&study.study_date),
            description: study.description,
            expires: crate::clock::format_date_de(grant.expires_at),
            data,
        });
    }
    let Some((name, birth)) = patient else {
        return Err(AccessError::Invalid(
            "this patient has no live access to print; issue one first",
        ));
    };
    let studies: Vec<crate::letters::StudyAccess<'_>> = blocks
        .iter()
        .map(|b| crate::letters::StudyAccess {
            study_date: &b.study_date,
            study_description: &b.description,
            link: &b.data.link,
            access_code: &b.data.access_code,
            password: &b.data.password,
            expires: &b.expires,
        })
        .collect();
    let start_url = format!("{}/access", svc.public_url);
    let pdf = crate::letters::patient_letter(&crate::letters::PatientLetter {
        practice: crate::letters::PracticeHeader {
            name: &practice.name,
            address: &practice.address,
            logo: crate::letters::practice_logo(&svc.db, practice_id).await?,
        },
        patient_name: &crate::dicom::display_person_name(&name),
        birth_date: &crate::dicom::display_date_de(&birth),
        studies: &studies,
        start_url: &start_url,
    });
    for b in &blocks {
        audit::record(
            svc,
            practice_id,
            actor,
            "grant.letter",
            Some(&b.study_id),
            &format!("grant={}", b.grant_id),
        )
        .await?;
    }
    Ok(pdf)
}

/// A patient forwards their study to a doctor: a referrer grant of its own, ending no
/// later than the patient's own access. Only if the practice allows it.
pub async fn forward_grant(
    svc: &Services,
    scope: &sessions::PatientScope,
    days: i64,
) -> Result<IssuedGrant, AccessError> {
    if scope.audience != "patient" {
        return Err(AccessError::Forbidden(
            "only the patient can forward the study",
        ));
    }
    if !svc
        .db
        .practice_allows_forwarding(&scope.practice_id)
        .await?
    {
        return Err(AccessError::Forbidden(
            "the practice does not allow forwarding",
        ));
    }
    if !(1..=MAX_GRANT_DAYS).contains(&days) {
        return Err(AccessError::Invalid("days must be between 1 and 1825"));
    }
    let expires_at = (svc.clock.now() + days * 86_400).min(scope.grant_expires_at);
    let actor = Actor::Patient {
        grant_id: scope.grant_id.clone(),
    };
    let issued = issue(
        svc,
        &scope.practice_id,
        &scope.study_id,
        Audience::Referrer,
        GrantTerms {
            expires_at: Some(expires_at),
            allow_download: Some(scope.allow_download),
            parent_grant_id: Some(&scope.grant_id),
        },
        &actor,
    )
    .await?;
    audit::record(
        svc,
        &scope.practice_id,
        &actor,
        "grant.forward",
        Some(&scope.study_id),
        &format!("grant={}", issued.id),
    )
    .await?;
    Ok(issued)
}

/// The forwards a patient made, for their list.
pub async fn forwards(
    svc: &Services,
    scope: &sessions::PatientScope,
) -> Result<Vec<GrantRow>, AccessError> {
    Ok(svc.db.forwards_of(&scope.grant_id).await?)
}

/// A forward of this patient's grant, or NotFound.
async fn own_forward(
    svc: &Services,
    scope: &sessions::PatientScope,
    grant_id: &str,
) -> Result<GrantRow, AccessError> {
    svc.db
        .grant(&scope.practice_id, grant_id)
        .await?
        .filter(|g| g.parent_grant_id.as_deref() == Some(scope.grant_id.as_str()))
        .ok_or(AccessError::NotFound)
}

pub async fn revoke_forward(
    svc: &Services,
    scope: &sessions::PatientScope,
    grant_id: &str,
) -> Result<(), AccessError> {
    let g = own_forward(svc, scope, grant_id).await?;
    revoke_grant(
        svc,
        &scope.practice_id,
        &g.id,
        &Actor::Patient {
            grant_id: scope.grant_id.clone(),
        },
    )
    .await
}

pub async fn forward_letter(
    svc: &Services,
    scope: &sessions::PatientScope,
    grant_id: &str,
) -> Result<Vec<u8>, AccessError> {
    let g = own_forward(svc, scope, grant_id).await?;
    grant_letter(
        svc,
        &scope.practice_id,
        &g.id,
        &Actor::Patient {
            grant_id: scope.grant_id.clone(),
        },
    )
    .await
}

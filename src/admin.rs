//! Operator use cases: create a practice with its first admin, add API clients.

use crate::app::Services;
use crate::audit::{self, Actor};
use crate::auth::{api_clients, totp};
use crate::crypto::wrap::{WrapPurpose, seal};
use crate::db::practices::{NewStaffUser, PracticeRow};
use crate::domain::new_id;
use rand::Rng;

/// The first admin's credentials: printed once (later: on the admin letter).
#[derive(Debug, serde::Serialize)]
pub struct NewPractice {
    pub practice_id: String,
    pub admin_username: String,
    pub admin_password: String,
    pub totp_secret: String,
}

/// A one-time password for a letter: 16 symbols, no look-alikes.
pub fn one_time_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..16)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

pub async fn create_practice(
    svc: &Services,
    name: &str,
    admin_username: &str,
    admin_display_name: &str,
) -> anyhow::Result<NewPractice> {
    anyhow::ensure!(
        !name.trim().is_empty() && name.len() <= 200,
        "practice name must be 1–200 characters"
    );
    anyhow::ensure!(
        (3..=64).contains(&admin_username.len())
            && admin_username
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b)),
        "username must be 3–64 characters of letters, digits, . _ - @"
    );
    let now = svc.clock.now();
    let mut rng = rand::rngs::OsRng;
    let practice_id = new_id(&mut rng);
    let key = svc.keys.new_practice_key(&practice_id)?;
    let kek = svc.keys.unwrap_practice_key(&key)?;
    svc.db
        .insert_practice(
            &PracticeRow {
                id: practice_id.clone(),
                name: name.trim().to_string(),
                address: String::new(),
                default_access_days: svc.config.default_access_days,
                kek_id: key.id.clone(),
                audit_head: String::new(),
            },
            &key,
            now,
        )
        .await?;
    let user_id = new_id(&mut rng);
    let password = one_time_password();
    let password_hash = svc.hasher.hash(&password).await?;
    let seed = totp::new_secret(&mut rng);
    let sealed_seed = seal(
        &mut rng,
        &kek,
        &key.id,
        WrapPurpose::Secret,
        &user_id,
        &seed,
    );
    svc.db
        .insert_staff_user(&NewStaffUser {
            id: &user_id,
            practice_id: &practice_id,
            username: admin_username,
            display_name: admin_display_name,
            role: "admin",
            password_hash: &password_hash,
            must_change_password: true,
            totp_sealed: Some(&sealed_seed),
            created_at: now,
        })
        .await?;
    audit::record(
        svc,
        &practice_id,
        &Actor::Operator,
        "practice.create",
        None,
        &format!("admin={user_id}"),
    )
    .await?;
    Ok(NewPractice {
        practice_id,
        admin_username: admin_username.to_string(),
        admin_password: password,
        totp_secret: totp::base32_encode(&seed),
    })
}

pub async fn create_api_client(
    svc: &Services,
    practice_id: &str,
    name: &str,
) -> anyhow::Result<api_clients::IssuedClient> {
    let issued = api_clients::create_client(&svc.db, practice_id, name, svc.clock.now()).await?;
    audit::record(
        svc,
        practice_id,
        &Actor::Operator,
        "api_client.create",
        None,
        &format!("client={}", issued.client_id),
    )
    .await?;
    Ok(issued)
}

/// Fresh first-login credentials for a user: a one-time password (hashed) and a
/// TOTP seed (sealed under the practice key).
pub struct FreshCredentials {
    pub password: String,
    pub password_hash: String,
    pub totp_secret: String,
    pub totp_sealed: Vec<u8>,
}

pub async fn fresh_credentials(
    svc: &Services,
    practice_id: &str,
    user_id: &str,
) -> anyhow::Result<FreshCredentials> {
    let practice = svc
        .db
        .practice(practice_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("unknown practice"))?;
    let kek = svc.keys.practice_key(&svc.db, &practice.kek_id).await?;
    let mut rng = rand::rngs::OsRng;
    let password = one_time_password();
    let password_hash = svc.hasher.hash(&password).await?;
    let seed = totp::new_secret(&mut rng);
    let totp_sealed = seal(
        &mut rng,
        &kek,
        &practice.kek_id,
        WrapPurpose::Secret,
        user_id,
        &seed,
    );
    Ok(FreshCredentials {
        password,
        password_hash,
        totp_secret: totp::base32_encode(&seed),
        totp_sealed,
    })
}

/// A staff member's first-login letter (one-time password, TOTP QR code, sign-in address).
pub async fn staff_letter(
    svc: &Services,
    practice_id: &str,
    display_name: &str,
    username: &str,
    password: &str,
    totp_secret: &str,
) -> anyhow::Result<Vec<u8>> {
    let practice = svc
        .db
        .practice(practice_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("unknown practice"))?;
    let uri = format!(
        "otpauth://totp/Lichtkasten:{username}?secret={totp_secret}&issuer=Lichtkasten&algorithm=SHA1&digits=6&period=30"
    );
    let login_url = format!("{}/login", svc.public_url);
    Ok(crate::letters::staff_letter(&crate::letters::StaffLetter {
        practice: crate::letters::PracticeHeader {
            name: &practice.name,
            address: &practice.address,
            logo: crate::letters::practice_logo(&svc.db, practice_id).await?,
        },
        display_name,
        username,
        one_time_password: password,
        totp_uri: &uri,
        totp_secret,
        login_url: &login_url,
    }))
}

/// The first admin's letter.
pub async fn admin_letter(svc: &Services, created: &NewPractice) -> anyhow::Result<Vec<u8>> {
    staff_letter(
        svc,
        &created.practice_id,
        &created.admin_username,
        &created.admin_username,
        &created.admin_password,
        &created.totp_secret,
    )
    .await
}

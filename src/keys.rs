//! The key hierarchy at run time: root keys from files, practice keys and study keys
//! unwrapped from the database on demand. Rotation rewraps the level below and
//! never touches stored objects.

use crate::crypto::Key32;
use crate::crypto::wrap::{WrapPurpose, unwrap_key, wrap_key};
use crate::db::practices::PracticeKeyRow;
use crate::db::studies::StudyKeyRow;
use crate::db::{Db, DbError};
use crate::domain::new_id;
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "root key {id} is missing from {dir}: restore the key file (without it no stored study can be read)"
    )]
    Missing { id: String, dir: PathBuf },
    #[error(
        "key file {path} is readable by group or others (mode {mode:o}); run `chmod 0400 {path}`"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("key file {path} is not a valid root key")]
    Malformed { path: PathBuf },
    #[error("several root key files in {dir} but none recorded in the database")]
    Ambiguous { dir: PathBuf },
    #[error("key store io: {0}")]
    Io(#[from] std::io::Error),
    #[error("a wrapped key did not verify: wrong root key or tampered database row")]
    Unwrap,
    #[error("practice key {0} not found")]
    UnknownKey(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

pub struct KeyRing {
    dir: PathBuf,
    roots: HashMap<String, Key32>,
    current: String,
}

fn key_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("root-{id}.key"))
}

fn read_key_file(path: &Path) -> Result<Key32, KeyError> {
    let meta = std::fs::metadata(path)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            path: path.into(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path)?;
    let bytes = hex::decode(text.trim()).map_err(|_| KeyError::Malformed { path: path.into() })?;
    Key32::from_slice(&bytes).ok_or(KeyError::Malformed { path: path.into() })
}

fn write_key_file(dir: &Path, key: &Key32) -> Result<String, KeyError> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let id = key.fingerprint();
    let path = key_path(dir, &id);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(&path)?;
    f.write_all(hex::encode(key.expose()).as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok(id)
}

/// Root key files present in the directory, by id.
fn scan_dir(dir: &Path) -> Result<Vec<(String, PathBuf)>, KeyError> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    for entry in rd {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(id) = name
            .strip_prefix("root-")
            .and_then(|n| n.strip_suffix(".key"))
        {
            out.push((id.to_string(), entry.path()));
        }
    }
    Ok(out)
}

impl KeyRing {
    /// Loads the root keys; on the very first start (no root key recorded and no key
    /// file) generates one. Refuses to start when a recorded key is missing or any
    /// key file is readable by others.
    pub async fn open(dir: &Path, db: &Db, now: i64) -> Result<Self, KeyError> {
        let recorded = db.root_key_ids().await?;
        let files = scan_dir(dir)?;
        let mut roots = HashMap::new();
        for (id, path) in &files {
            let key = read_key_file(path)?;
            if key.fingerprint() != *id {
                return Err(KeyError::Malformed { path: path.clone() });
            }
            roots.insert(id.clone(), key);
        }
        if recorded.is_empty() {
            let id = match files.len() {
                0 => write_key_file(dir, &Key32::generate(&mut rand::rngs::OsRng))?,
                1 => files[0].0.clone(),
                _ => return Err(KeyError::Ambiguous { dir: dir.into() }),
            };
            if !roots.contains_key(&id) {
                roots.insert(id.clone(), read_key_file(&key_path(dir, &id))?);
            }
            db.insert_root_key(&id, now).await?;
            return Ok(KeyRing {
                dir: dir.into(),
                roots,
                current: id,
            });
        }
        let current = recorded
            .iter()
            .find(|(_, state)| state == "current")
            .map(|(id, _)| id.clone())
            .ok_or(KeyError::Unwrap)?;
        let mut needed = db.root_keys_in_use().await?;
        needed.push(current.clone());
        for id in needed {
            if !roots.contains_key(&id) {
                return Err(KeyError::Missing {
                    id,
                    dir: dir.into(),
                });
            }
        }
        Ok(KeyRing {
            dir: dir.into(),
            roots,
            current,
        })
    }

    pub fn current_root_id(&self) -> &str {
        &self.current
    }

    fn root(&self, id: &str) -> Result<&Key32, KeyError> {
        self.roots.get(id).ok_or_else(|| KeyError::Missing {
            id: id.into(),
            dir: self.dir.clone(),
        })
    }

    /// A fresh practice key, wrapped under the current root.
    pub fn new_practice_key(&self, practice_id: &str) -> Result<PracticeKeyRow, KeyError> {
        let mut rng = rand::rngs::OsRng;
        let id = new_id(&mut rng);
        let kek = Key32::generate(&mut rng);
        let wrapped = wrap_key(
            &mut rng,
            self.root(&self.current)?,
            &self.current,
            WrapPurpose::PracticeKey,
            &id,
            &kek,
        );
        Ok(PracticeKeyRow {
            id,
            practice_id: practice_id.into(),
            root_key_id: self.current.clone(),
            wrapped,
        })
    }

    pub fn unwrap_practice_key(&self, row: &PracticeKeyRow) -> Result<Key32, KeyError> {
        unwrap_key(
            self.root(&row.root_key_id)?,
            &row.root_key_id,
            WrapPurpose::PracticeKey,
            &row.id,
            &row.wrapped,
        )
        .map_err(|_| KeyError::Unwrap)
    }

    pub async fn practice_key(&self, db: &Db, kek_id: &str) -> Result<Key32, KeyError> {
        let row = db
            .practice_key(kek_id)
            .await?
            .ok_or_else(|| KeyError::UnknownKey(kek_id.into()))?;
        self.unwrap_practice_key(&row)
    }

    /// A fresh study data key and its wrapped form under the practice's current key.
    pub async fn new_study_key(
        &self,
        db: &Db,
        kek_id: &str,
        study_id: &str,
    ) -> Result<(Key32, Vec<u8>), KeyError> {
        let kek = self.practice_key(db, kek_id).await?;
        let mut rng = rand::rngs::OsRng;
        let dek = Key32::generate(&mut rng);
        let wrapped = wrap_key(
            &mut rng,
            &kek,
            kek_id,
            WrapPurpose::StudyKey,
            study_id,
            &dek,
        );
        Ok((dek, wrapped))
    }

    pub async fn study_key(&self, db: &Db, study: &StudyKeyRow) -> Result<Key32, KeyError> {
        let kek = match &study.practice_key {
            // Read with the study; used only if it is the study's key of its practice.
            Some(row) if row.id == study.kek_id && row.practice_id == study.practice_id => {
                self.unwrap_practice_key(row)?
            }
            _ => self.practice_key(db, &study.kek_id).await?,
        };
        unwrap_key(
            &kek,
            &study.kek_id,
            WrapPurpose::StudyKey,
            &study.id,
            &study.wrapped_dek,
        )
        .map_err(|_| KeyError::Unwrap)
    }

    /// Rotates the root key: a new key file, every practice key rewrapped under it in
    /// one transaction. Returns the ids of root keys no longer needed (their files
    /// may then be removed).
    pub async fn rotate_root(&mut self, db: &Db, now: i64) -> Result<Vec<String>, KeyError> {
        let new_root = Key32::generate(&mut rand::rngs::OsRng);
        let mut rewrapped = Vec::new();
        let new_id_str = new_root.fingerprint();
        for row in db.all_practice_keys().await? {
            let kek = self.unwrap_practice_key(&row)?;
            let w = wrap_key(
                &mut rand::rngs::OsRng,
                &new_root,
                &new_id_str,
                WrapPurpose::PracticeKey,
                &row.id,
                &kek,
            );
            rewrapped.push((row.id, w));
        }
        let written = write_key_file(&self.dir, &new_root)?;
        db.rotate_root(&written, &rewrapped, now).await?;
        let old: Vec<String> = self.roots.keys().cloned().collect();
        self.roots.insert(written.clone(), new_root);
        self.current = written;
        Ok(old)
    }

    /// Rotates one practice's key: a new key, every study key of the practice
    /// rewrapped under it, the old practice key destroyed.
    pub async fn rotate_practice(
        &self,
        db: &Db,
        practice_id: &str,
        now: i64,
    ) -> Result<usize, KeyError> {
        let new_key = self.new_practice_key(practice_id)?;
        let new_kek = self.unwrap_practice_key(&new_key)?;
        let mut resealed = Vec::new();
        for (patient_id, kek_id, sealed) in db.patients_of_practice(practice_id).await? {
            let old = self.practice_key(db, &kek_id).await?;
            let plain = open_record(&old, &kek_id, &patient_id, &sealed)?;
            let details: crate::domain::PatientDetails =
                serde_json::from_slice(&plain).map_err(|_| KeyError::Unwrap)?;
            resealed.push((
                patient_id.clone(),
                patient_index(&new_kek, &details.match_text()),
                seal_record(&new_kek, &new_key.id, &patient_id, &plain),
            ));
        }
        // TOTP seeds are sealed under the current practice key.
        let practice = db
            .practice(practice_id)
            .await?
            .ok_or_else(|| KeyError::UnknownKey(practice_id.into()))?;
        let old_kek = self.practice_key(db, &practice.kek_id).await?;
        let mut resealed_seeds = Vec::new();
        for user in db.staff_of_practice(practice_id).await? {
            if let Some(sealed) = &user.totp_sealed {
                let seed = crate::crypto::wrap::open(
                    &old_kek,
                    &practice.kek_id,
                    WrapPurpose::Secret,
                    &user.id,
                    sealed,
                )
                .map_err(|_| KeyError::Unwrap)?;
                let again = crate::crypto::wrap::seal(
                    &mut rand::rngs::OsRng,
                    &new_kek,
                    &new_key.id,
                    WrapPurpose::Secret,
                    &user.id,
                    &seed,
                );
                resealed_seeds.push((user.id.clone(), again));
            }
        }
        let mut rewrapped = Vec::new();
        for study in db.study_keys_of_practice(practice_id).await? {
            let dek = self.study_key(db, &study).await?;
            let w = wrap_key(
                &mut rand::rngs::OsRng,
                &new_kek,
                &new_key.id,
                WrapPurpose::StudyKey,
                &study.id,
                &dek,
            );
            rewrapped.push((study.id, w));
        }
        db.rotate_practice_key(
            practice_id,
            &new_key,
            &rewrapped,
            &resealed,
            &resealed_seeds,
            now,
        )
        .await?;
        Ok(rewrapped.len())
    }

    pub fn key_file(&self, id: &str) -> PathBuf {
        key_path(&self.dir, id)
    }
}

/// Seals a database record (patient or study details) under `key`, bound to the
/// row's id so a sealed value copied to another row does not open.
pub fn seal_record(key: &Key32, key_id: &str, record_id: &str, plain: &[u8]) -> Vec<u8> {
    crate::crypto::wrap::seal(
        &mut rand::rngs::OsRng,
        key,
        key_id,
        WrapPurpose::Record,
        record_id,
        plain,
    )
}

pub fn open_record(
    key: &Key32,
    key_id: &str,
    record_id: &str,
    sealed: &[u8],
) -> Result<Vec<u8>, KeyError> {
    crate::crypto::wrap::open(key, key_id, WrapPurpose::Record, record_id, sealed)
        .map_err(|_| KeyError::Unwrap)
}

/// Blind index for matching patients without storing who they are: HMAC under a
/// key derived from the practice key.
pub fn patient_index(kek: &Key32, match_text: &str) -> String {
    use hmac::{Hmac, Mac};
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(None, kek.expose());
    let mut index_key = zeroize::Zeroizing::new([0u8; 32]);
    hk.expand(b"lichtkasten/patient-index/v1", index_key.as_mut())
        .unwrap_or(());
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(index_key.as_ref()) else {
        return String::new();
    };
    mac.update(match_text.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

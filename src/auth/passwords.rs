//! argon2id password hashing (m = 64 MiB, t = 3, p = 1) off the async threads, at most
//! one hash per core at a time; callers that would have to wait too long get
//! [`HashError::Busy`] (503) instead of piling up memory.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("too many password checks in progress")]
    Busy,
    #[error("password hashing failed")]
    Internal,
}

#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// Callers waiting for a permit; beyond `max_waiting` the answer is Busy at once,
    /// so a flood cannot queue up minutes of work.
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    max_waiting: usize,
    params: Params,
    /// Verified against when a user or grant does not exist, so timing does not tell.
    dummy_hash: Arc<String>,
}

const WAIT_FOR_PERMIT: Duration = Duration::from_secs(3);

impl PasswordHasher {
    pub fn new() -> Result<Self, HashError> {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let params = Params::new(64 * 1024, 3, 1, None).map_err(|_| HashError::Internal)?;
        let dummy = hash_blocking(&params, "lichtkasten-dummy-password")?;
        Ok(PasswordHasher {
            permits: Arc::new(Semaphore::new(cores)),
            waiting: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            max_waiting: 4 * cores,
            params,
            dummy_hash: Arc::new(dummy),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(Params) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        use std::sync::atomic::Ordering;
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(HashError::Busy);
        }
        let acquired =
            tokio::time::timeout(WAIT_FOR_PERMIT, self.permits.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let permit = acquired
            .map_err(|_| HashError::Busy)?
            .map_err(|_| HashError::Internal)?;
        let params = self.params.clone();
        let out = tokio::task::spawn_blocking(move || {
            let out = work(params);
            drop(permit);
            out
        })
        .await
        .map_err(|_| HashError::Internal)?;
        Ok(out)
    }

    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let password = zeroize::Zeroizing::new(password.to_string());
        self.run(move |params| hash_blocking(&params, &password))
            .await?
    }

    /// Verifies; with `hash = None` it burns the same time on the dummy hash and says no.
    pub async fn verify(&self, hash: Option<&str>, password: &str) -> Result<bool, HashError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or(&self.dummy_hash).to_string();
        let password = zeroize::Zeroizing::new(password.to_string());
        let ok = self
            .run(move |params| {
                let Ok(parsed) = PasswordHash::new(&hash) else {
                    return false;
                };
                Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .await?;
        Ok(ok && known)
    }
}

fn hash_blocking(params: &Params, password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| HashError::Internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify() {
        let h = PasswordHasher::new().expect("hasher");
        let hash = h.hash("correct horse battery").await.expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=65536,t=3,p=1$"));
        assert!(
            h.verify(Some(&hash), "correct horse battery")
                .await
                .expect("verify")
        );
        assert!(!h.verify(Some(&hash), "wrong").await.expect("verify"));
        assert!(
            !h.verify(None, "lichtkasten-dummy-password")
                .await
                .expect("verify")
        );
    }
}

//! Configuration: an optional TOML file, then `LICHTKASTEN_*` environment variables
//! on top. Secrets are wrapped in [`Secret`] so that printing the config never shows them.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A string that never prints.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("<redacted>")
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Holds the SQLite database, the filesystem blob store and the root key.
    pub data_dir: PathBuf,
    pub listen: String,
    /// Prometheus metrics listener; off when empty. Keep it off the public network.
    pub metrics_listen: String,
    /// DICOM C-STORE/C-ECHO listener (`host:port`); empty: off.
    pub dicom_listen: String,
    /// DICOM over TLS (`host:port`, e.g. port 2762); needs the two files below.
    pub dicom_tls_listen: String,
    /// PEM certificate chain and private key of the DICOM TLS listener.
    pub dicom_tls_cert: Option<PathBuf>,
    pub dicom_tls_key: Option<PathBuf>,
    /// The address patients and staff use; links in letters start with it.
    pub public_url: String,
    /// `sqlite://...` or `postgres://...`; empty means SQLite in the data directory.
    pub database_url: Secret,
    /// Where root keys live; defaults to `<data_dir>/keys`.
    pub keys_dir: Option<PathBuf>,
    pub s3: Option<S3Config>,
    /// Largest accepted upload request, in bytes.
    pub max_upload_bytes: u64,
    /// Most files accepted in one upload (ZIP entries or multipart parts).
    pub max_upload_files: usize,
    /// Default lifetime of a patient grant, in days.
    pub default_access_days: i64,
    /// Background workers preparing renders at ingest (0: this node prepares none,
    /// another node of the same database does).
    pub render_workers: usize,
    /// Requests one API client may send per minute (all its tokens together); more
    /// get 429 with `Retry-After`. 0: no limit (for benchmarks only).
    pub api_requests_per_minute: u32,
    pub log: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub endpoint: Option<String>,
    #[serde(default = "default_region")]
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    #[serde(default)]
    pub prefix: String,
}

fn default_region() -> String {
    "us-east-1".into()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("lichtkasten-data"),
            listen: "127.0.0.1:8080".into(),
            metrics_listen: String::new(),
            dicom_listen: String::new(),
            dicom_tls_listen: String::new(),
            dicom_tls_cert: None,
            dicom_tls_key: None,
            public_url: String::new(),
            database_url: Secret::default(),
            keys_dir: None,
            s3: None,
            max_upload_bytes: 512 * 1024 * 1024,
            max_upload_files: 5000,
            default_access_days: 90,
            render_workers: 1,
            api_requests_per_minute: 600,
            log: "info".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value for {name}: {message}")]
    Env { name: String, message: String },
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn env_parse<T: std::str::FromStr>(name: &str) -> Result<Option<T>, ConfigError> {
    match env_var(name) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| ConfigError::Env {
            name: name.into(),
            message: "not a number".into(),
        }),
    }
}

impl Config {
    /// Loads the file (if given) and applies the environment on top.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut cfg = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.into(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.into(),
                    message: e.message().to_string(),
                })?
            }
            None => Config::default(),
        };
        cfg.apply_env()?;
        Ok(cfg)
    }

    fn apply_env(&mut self) -> Result<(), ConfigError> {
        if let Some(v) = env_var("LICHTKASTEN_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = env_var("LICHTKASTEN_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = env_var("LICHTKASTEN_METRICS_LISTEN") {
            self.metrics_listen = v;
        }
        if let Some(v) = env_var("LICHTKASTEN_DICOM_LISTEN") {
            self.dicom_listen = v;
        }
        if let Some(v) = env_var("LICHTKASTEN_DICOM_TLS_LISTEN") {
            self.dicom_tls_listen = v;
        }
        if let Some(v) = env_var("LICHTKASTEN_DICOM_TLS_CERT") {
            self.dicom_tls_cert = Some(v.into());
        }
        if let Some(v) = env_var("LICHTKASTEN_DICOM_TLS_KEY") {
            self.dicom_tls_key = Some(v.into());
        }
        if let Some(v) = env_var("LICHTKASTEN_PUBLIC_URL") {
            self.public_url = v;
        }
        if let Some(v) = env_var("LICHTKASTEN_DATABASE_URL") {
            self.database_url = Secret::new(v);
        }
        if let Some(v) = env_var("LICHTKASTEN_KEYS_DIR") {
            self.keys_dir = Some(v.into());
        }
        if let Some(v) = env_parse("LICHTKASTEN_MAX_UPLOAD_BYTES")? {
            self.max_upload_bytes = v;
        }
        if let Some(v) = env_parse("LICHTKASTEN_MAX_UPLOAD_FILES")? {
            self.max_upload_files = v;
        }
        if let Some(v) = env_parse("LICHTKASTEN_RENDER_WORKERS")? {
            self.render_workers = v;
        }
        if let Some(v) = env_parse("LICHTKASTEN_API_REQUESTS_PER_MINUTE")? {
            self.api_requests_per_minute = v;
        }
        if let Some(v) = env_parse("LICHTKASTEN_DEFAULT_ACCESS_DAYS")? {
            self.default_access_days = v;
        }
        if let Some(v) = env_var("LICHTKASTEN_LOG") {
            self.log = v;
        }
        if let Some(bucket) = env_var("LICHTKASTEN_S3_BUCKET") {
            let missing = |n: &str| ConfigError::Env {
                name: n.into(),
                message: "required when LICHTKASTEN_S3_BUCKET is set".into(),
            };
            self.s3 = Some(S3Config {
                endpoint: env_var("LICHTKASTEN_S3_ENDPOINT"),
                region: env_var("LICHTKASTEN_S3_REGION").unwrap_or_else(default_region),
                bucket,
                access_key_id: env_var("LICHTKASTEN_S3_ACCESS_KEY_ID")
                    .ok_or_else(|| missing("LICHTKASTEN_S3_ACCESS_KEY_ID"))?,
                secret_access_key: Secret::new(
                    env_var("LICHTKASTEN_S3_SECRET_ACCESS_KEY")
                        .ok_or_else(|| missing("LICHTKASTEN_S3_SECRET_ACCESS_KEY"))?,
                ),
                prefix: env_var("LICHTKASTEN_S3_PREFIX").unwrap_or_default(),
            });
        }
        Ok(())
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.keys_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys"))
    }

    pub fn database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("lichtkasten.db").display()
            )
        } else {
            self.database_url.expose().to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let c = Config {
            database_url: Secret::new("postgres://user:hunter2@db/x"),
            s3: Some(S3Config {
                endpoint: None,
                region: "r".into(),
                bucket: "b".into(),
                access_key_id: "AK".into(),
                secret_access_key: Secret::new("topsecret"),
                prefix: String::new(),
            }),
            ..Config::default()
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"));
        assert!(!shown.contains("topsecret"));
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn file_values_parse() {
        let c: Config = toml::from_str(
            "data_dir = \"/srv/lk\"\nlisten = \"0.0.0.0:9000\"\n[s3]\nbucket = \"b\"\naccess_key_id = \"a\"\nsecret_access_key = \"s\"\n",
        )
        .expect("parse");
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!(c.s3.expect("s3").region, "us-east-1");
        assert!(toml::from_str::<Config>("nonsense = 1").is_err());
    }
}

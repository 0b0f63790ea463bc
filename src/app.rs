//! Builds the application from configuration, binds, and runs until stopped.
//! Tests call [`start`] with `listen = 127.0.0.1:0`.

use crate::auth::passwords::PasswordHasher;
use crate::blob::BlobStore;
use crate::blob::fs::FsStore;
use crate::blob::s3::{S3Settings, S3Store};
use crate::blob::sealed::SealedStore;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::db::Db;
use crate::keys::KeyRing;
use anyhow::Context;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

/// Everything a request handler or use case needs.
pub struct Services {
    pub config: Config,
    pub db: Db,
    pub blobs: SealedStore,
    pub keys: KeyRing,
    pub clock: SharedClock,
    pub hasher: PasswordHasher,
    /// Base of every link we hand out (letters, grant links), without trailing slash.
    pub public_url: String,
    /// Cookies get `Secure` and the `__Host-` prefix (HTTPS, or a loopback address
    /// where browsers treat plain HTTP as secure).
    pub secure_cookies: bool,
    pub signin_limiter: crate::access::ratelimit::IpLimiter,
    /// Staff password attempts per address: keeps a flood from one address away
    /// from the bounded argon2 queue, so others can still sign in.
    pub staff_login_limiter: crate::access::ratelimit::IpLimiter,
    /// Password checks in progress per address (sign-in pages of staff and patients).
    pub password_checks: crate::access::ratelimit::InFlight,
    /// Requests per API client and minute (`api_requests_per_minute`).
    pub api_limiter: crate::access::ratelimit::KeyLimiter,
    /// Wakes the node's render preparer after an ingest.
    pub preparer: Arc<crate::studies::prepared::Preparer>,
    /// Originals read a moment ago, for the renders that follow (memory only).
    pub recent_originals: crate::studies::recent::RecentOriginals,
    pub recent_renders: crate::studies::recent::RecentRenders,
    pub pending_keeps: crate::studies::recent::PendingKeeps,
}

pub async fn open_blob_store(config: &Config) -> anyhow::Result<Arc<dyn BlobStore>> {
    Ok(match &config.s3 {
        Some(s3) => Arc::new(S3Store::new(&S3Settings {
            endpoint: s3.endpoint.clone(),
            region: s3.region.clone(),
            bucket: s3.bucket.clone(),
            access_key_id: s3.access_key_id.clone(),
            secret_access_key: s3.secret_access_key.expose().to_string(),
            prefix: s3.prefix.clone(),
        })),
        None => Arc::new(FsStore::open(&config.data_dir.join("blobs")).await?),
    })
}

/// Opens the database (migrating it), the blob store and the key ring.
pub async fn build(
    config: Config,
    clock: SharedClock,
    public_url: String,
) -> anyhow::Result<Services> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700))
        .context("cannot restrict the data directory to its owner")?;
    let db = Db::connect(&config.database_url())
        .await
        .context("cannot open the database")?;
    db.migrate().await.context("database migration failed")?;
    let store = open_blob_store(&config).await?;
    let keys = KeyRing::open(&config.keys_dir(), &db, clock.now()).await?;
    let secure_cookies = public_url.starts_with("https://")
        || public_url.starts_with("http://127.0.0.1")
        || public_url.starts_with("http://localhost")
        || public_url.starts_with("http://[::1]");
    Ok(Services {
        db,
        blobs: SealedStore::new(store),
        keys,
        clock,
        hasher: PasswordHasher::new()?,
        public_url: public_url.trim_end_matches('/').to_string(),
        secure_cookies,
        signin_limiter: crate::access::ratelimit::IpLimiter::new(30, 600),
        staff_login_limiter: crate::access::ratelimit::IpLimiter::new(60, 600),
        password_checks: crate::access::ratelimit::InFlight::new(2),
        api_limiter: crate::access::ratelimit::KeyLimiter::new(config.api_requests_per_minute),
        preparer: Arc::default(),
        recent_originals: Default::default(),
        recent_renders: Default::default(),
        pending_keeps: Default::default(),
        config,
    })
}

pub struct Running {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    /// The DICOM listener, if `dicom_listen` is set.
    pub dicom_addr: Option<SocketAddr>,
    /// The DICOM TLS listener, if `dicom_tls_listen` is set.
    pub dicom_tls_addr: Option<SocketAddr>,
    pub services: Arc<Services>,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    preparers: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.task.await;
        // A job cut off here keeps its lease until it runs out, then runs again.
        for p in self.preparers {
            p.abort();
        }
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub async fn wait_for_signal(self) -> anyhow::Result<()> {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        self.stop().await;
        Ok(())
    }
}

/// Binds `config.listen` and serves. The public URL defaults to the bound address.
pub async fn start(config: Config, clock: SharedClock) -> anyhow::Result<Running> {
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let public_url = if config.public_url.is_empty() {
        format!("http://{addr}")
    } else {
        config.public_url.clone()
    };
    let metrics_listener = if config.metrics_listen.is_empty() {
        None
    } else {
        Some(
            tokio::net::TcpListener::bind(&config.metrics_listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.metrics_listen))?,
        )
    };
    let dicom_listener = if config.dicom_listen.is_empty() {
        None
    } else {
        Some(
            tokio::net::TcpListener::bind(&config.dicom_listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.dicom_listen))?,
        )
    };
    let dicom_tls = if config.dicom_tls_listen.is_empty() {
        None
    } else {
        let (Some(cert), Some(key)) = (&config.dicom_tls_cert, &config.dicom_tls_key) else {
            anyhow::bail!("dicom_tls_listen needs dicom_tls_cert and dicom_tls_key");
        };
        let tls = crate::scp::tls_config(cert, key)?;
        let listener = tokio::net::TcpListener::bind(&config.dicom_tls_listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.dicom_tls_listen))?;
        Some((listener, tls))
    };
    let services = Arc::new(build(config, clock, public_url).await?);
    let dicom_addr = dicom_listener.as_ref().and_then(|l| l.local_addr().ok());
    if let Some(listener) = dicom_listener {
        tracing::info!(addr = %listener.local_addr()?, "DICOM listening");
        tokio::spawn(crate::scp::serve(services.clone(), listener, None));
    }
    let dicom_tls_addr = dicom_tls.as_ref().and_then(|(l, _)| l.local_addr().ok());
    if let Some((listener, tls)) = dicom_tls {
        tracing::info!(addr = %listener.local_addr()?, "DICOM TLS listening");
        tokio::spawn(crate::scp::serve(services.clone(), listener, Some(tls)));
    }
    let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
    if let Some(listener) = metrics_listener {
        let metrics = axum::Router::new().route(
            "/metrics",
            axum::routing::get(|| async { crate::metrics::render() }),
        );
        tracing::info!(addr = %listener.local_addr()?, "metrics listening");
        tokio::spawn(async move { axum::serve(listener, metrics).await });
    }
    let preparers = (0..services.config.render_workers.min(16))
        .map(|_| {
            crate::studies::prepared::spawn_worker(services.clone(), services.preparer.clone())
        })
        .collect();
    let router = crate::web::router(services.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = rx.await;
        })
        .await
    });
    tracing::info!(%addr, store = %services.blobs.raw().describe(), "listening");
    Ok(Running {
        addr,
        metrics_addr,
        dicom_addr,
        dicom_tls_addr,
        services,
        shutdown: tx,
        task,
        preparers,
    })
}

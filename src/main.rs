//! The `lichtkasten` command: a thin shell over the library.

use clap::{Parser, Subcommand};
use lichtkasten::clock::{Clock, SystemClock};
use lichtkasten::config::Config;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "lichtkasten",
    version,
    about = "Secure sharing of medical images with patients and their doctors"
)]
struct Cli {
    /// TOML config file; LICHTKASTEN_* environment variables override it.
    #[arg(long, global = true, env = "LICHTKASTEN_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Run with embedded defaults, a demo practice and study; prints one JSON line.
    Demo {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Remove dead sessions and tokens, and stored objects no row refers to.
    Purge {
        /// Leave objects younger than this alone (an upload may be in progress).
        #[arg(long, default_value_t = lichtkasten::purge::ORPHAN_MIN_AGE_SECS)]
        orphans_older_than: i64,
    },
    /// Read back every stored object and check it against its checksum; prints a
    /// JSON report and exits with 1 if anything is damaged.
    Verify,
    /// Manage practices.
    Practice {
        #[command(subcommand)]
        command: PracticeCommand,
    },
    /// Manage encryption keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Write a generated sample study (CT series + RGB key image) as DICOM files, for trying uploads.
    Synth {
        /// Folder to write to (created if missing).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 12)]
        slices: usize,
        /// Rows and columns of each slice.
        #[arg(long, default_value_t = 256)]
        size: u16,
        /// PatientName in DICOM form (`Family^Given`), instead of the demo patient.
        #[arg(long)]
        patient_name: Option<String>,
    },
    /// Measure encryption throughput (compared with `openssl speed` when available).
    Bench {
        /// Megabytes to encrypt per run.
        #[arg(long, default_value_t = 256)]
        mib: usize,
    },
}

#[derive(Subcommand)]
enum PracticeCommand {
    /// Create a practice and its first admin; prints the admin's one-time credentials.
    Create {
        #[arg(long)]
        name: String,
        /// Username of the first admin.
        #[arg(long)]
        admin: String,
        #[arg(long, default_value = "")]
        admin_name: String,
        /// Folder for the admin's letter (PDF with one-time password and TOTP QR code).
        #[arg(long, default_value = ".")]
        letter_dir: PathBuf,
    },
    /// Set the practice's DICOM node: the AE title its PACS sends to (empty: none) and
    /// the calling AE titles accepted (comma-separated, `*` for any).
    Dicom {
        #[arg(long)]
        practice: String,
        #[arg(long)]
        ae_title: String,
        #[arg(long, default_value = "")]
        calling: String,
    },
    /// Set the practice's storage quota in MB (0: none).
    Quota {
        #[arg(long)]
        practice: String,
        #[arg(long)]
        mb: i64,
    },
    /// Add an API client to a practice; prints its id and secret once.
    ApiClient {
        #[arg(long)]
        practice: String,
        #[arg(long, default_value = "API client")]
        name: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Rotate the root key (default) or one practice's key. Stored objects are not touched.
    Rotate {
        /// Rotate this practice's key instead of the root key.
        #[arg(long)]
        practice: Option<String>,
    },
}

fn init_logging(filter: &str) {
    let mut filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // The PDF libraries log the text they read (findings are patient data): never.
    for quiet in [
        "pdf_extract=off",
        "lopdf=off",
        "hayro=off",
        "hayro_interpret=off",
    ] {
        if let Ok(d) = quiet.parse() {
            filter = filter.add_directive(d);
        }
    }
    // Logs go to stderr: stdout carries only machine-readable output.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn public_url(config: &Config) -> String {
    if config.public_url.is_empty() {
        format!("http://{}", config.listen)
    } else {
        config.public_url.clone()
    }
}

/// Buffers of 4 MiB and more (a mammogram's samples, a loop's frames) are mapped on
/// their own and go back to the system when freed: glibc's default threshold rises
/// to the largest block freed, after which such buffers come from the heap arenas,
/// which keep them resident. Smaller buffers (a CT slice's half megabyte) stay on
/// the heap, and up to 4 MiB of free heap (per arena) is kept rather than trimmed
/// after each request, so the next render reuses it without page faults. Set first
/// thing in `main`, while the runtime's threads have allocated next to nothing.
/// BENCHMARKS.md has the figures.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_the_allocator() {
    // SAFETY: mallopt only sets tuning values of the allocator, under its own lock;
    // it touches no memory of ours.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 4 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_the_allocator() {}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tune_the_allocator();
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lichtkasten: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    init_logging(&config.log);
    match run(cli.command, config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lichtkasten: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, mut config: Config) -> anyhow::Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match command {
        Command::Serve => {
            let running = lichtkasten::app::start(config, clock).await?;
            running.wait_for_signal().await
        }
        Command::Demo { data_dir, listen } => {
            config.data_dir = match data_dir {
                Some(d) => d,
                None => {
                    std::env::temp_dir().join(format!("lichtkasten-demo-{}", std::process::id()))
                }
            };
            config.listen = listen;
            if config.dicom_listen.is_empty() {
                // The demo takes PACS pushes at once, on a free port it prints.
                config.dicom_listen = "127.0.0.1:0".into();
            }
            // Browser tests move the demo's clock; a real server never reads this.
            let clock: Arc<dyn Clock> = match std::env::var_os("LICHTKASTEN_CLOCK_OFFSET_FILE") {
                Some(path) => Arc::new(lichtkasten::clock::OffsetFileClock { path: path.into() }),
                None => clock,
            };
            if let Some(dir) = std::env::var_os("LICHTKASTEN_VIEWER_DIR") {
                lichtkasten::web::assets::serve_viewer_from(dir.into());
            }
            let running = lichtkasten::app::start(config, clock).await?;
            let line = lichtkasten::demo::set_up(&running).await?;
            println!("{line}");
            running.wait_for_signal().await
        }
        Command::Verify => {
            let url = public_url(&config);
            let svc = lichtkasten::app::build(config, clock, url).await?;
            let report = lichtkasten::verify::verify(&svc).await?;
            println!("{}", serde_json::to_string(&report)?);
            if !report.is_clean() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Purge { orphans_older_than } => {
            let url = public_url(&config);
            let svc = lichtkasten::app::build(config, clock, url).await?;
            let report = lichtkasten::purge::purge(&svc, orphans_older_than.max(0)).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Migrate => {
            let db = lichtkasten::db::Db::connect(&config.database_url()).await?;
            let ran = db.migrate().await?;
            eprintln!("applied {ran} migration(s)");
            Ok(())
        }
        Command::Practice { command } => {
            let url = public_url(&config);
            let svc = lichtkasten::app::build(config, clock, url).await?;
            match command {
                PracticeCommand::Create {
                    name,
                    admin,
                    admin_name,
                    letter_dir,
                } => {
                    let display = if admin_name.is_empty() {
                        admin.clone()
                    } else {
                        admin_name
                    };
                    let created =
                        lichtkasten::admin::create_practice(&svc, &name, &admin, &display).await?;
                    let pdf = lichtkasten::admin::admin_letter(&svc, &created).await?;
                    let path = letter_dir
                        .join(format!("lichtkasten-zugang-{}.pdf", created.admin_username));
                    write_private(&path, &pdf)?;
                    // The letter holds the secrets; stdout only says where it is.
                    println!(
                        "{}",
                        serde_json::json!({"practice_id": created.practice_id, "admin_username": created.admin_username, "letter": path})
                    );
                }
                PracticeCommand::Dicom {
                    practice,
                    ae_title,
                    calling,
                } => {
                    let (title, calling) = lichtkasten::scp::parse_node(&ae_title, &calling)
                        .map_err(|e| anyhow::anyhow!(e))?;
                    anyhow::ensure!(
                        svc.db.practice(&practice).await?.is_some(),
                        "no practice with that id"
                    );
                    anyhow::ensure!(
                        svc.db
                            .set_dicom_node(&practice, title.as_deref(), &calling)
                            .await?,
                        "another practice already uses that AE title"
                    );
                    println!(
                        "{}",
                        serde_json::json!({"practice_id": practice, "dicom_ae_title": title, "calling_ae_titles": calling})
                    );
                }
                PracticeCommand::Quota { practice, mb } => {
                    anyhow::ensure!(
                        (0..=1_000_000_000).contains(&mb),
                        "mb: 0 (no quota) up to 1000000000"
                    );
                    anyhow::ensure!(
                        svc.db.set_practice_quota(&practice, mb).await?,
                        "no practice with that id"
                    );
                    println!(
                        "{}",
                        serde_json::json!({"practice_id": practice, "quota_mb": mb})
                    );
                }
                PracticeCommand::ApiClient { practice, name } => {
                    let issued =
                        lichtkasten::admin::create_api_client(&svc, &practice, &name).await?;
                    println!(
                        "{}",
                        serde_json::json!({"client_id": issued.client_id, "client_secret": issued.client_secret})
                    );
                }
            }
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Rotate { practice },
        } => {
            let url = public_url(&config);
            let mut svc = lichtkasten::app::build(config, clock.clone(), url).await?;
            match practice {
                Some(p) => {
                    let n = svc.keys.rotate_practice(&svc.db, &p, clock.now()).await?;
                    eprintln!("practice key rotated; {n} study key(s) rewrapped");
                }
                None => {
                    let old = svc.keys.rotate_root(&svc.db, clock.now()).await?;
                    eprintln!("root key rotated; new key {}", svc.keys.current_root_id());
                    for id in old {
                        eprintln!("no longer needed: {}", svc.keys.key_file(&id).display());
                    }
                }
            }
            Ok(())
        }
        Command::Bench { mib } => lichtkasten::bench::encryption(mib),
        Command::Synth {
            out,
            slices,
            size,
            patient_name,
        } => {
            anyhow::ensure!((1..=2000).contains(&slices), "slices must be 1–2000");
            anyhow::ensure!((16..=4096).contains(&size), "size must be 16–4096");
            std::fs::create_dir_all(&out)?;
            let mut rng = rand::rngs::OsRng;
            let mut spec = lichtkasten::dicom::synth::StudySpec::demo(&mut rng);
            if let Some(name) = patient_name {
                anyhow::ensure!(
                    name.chars().count() <= 64,
                    "patient name: at most 64 characters"
                );
                spec.patient_name = name;
            }
            let files = lichtkasten::dicom::synth::demo_study(&mut rng, &spec, slices, size);
            for (i, bytes) in files.iter().enumerate() {
                std::fs::write(out.join(format!("IMG{i:04}.dcm")), bytes)?;
            }
            eprintln!("wrote {} files to {}", files.len(), out.display());
            Ok(())
        }
    }
}

/// Writes a file only its owner can read: it carries a one-time password.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

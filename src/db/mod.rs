//! The only place with SQL. One set of queries runs on SQLite and PostgreSQL through
//! sqlx's `Any` driver (both understand `$1` placeholders); the schema differs per
//! dialect and lives in `migrations/<dialect>/`.

/// The tables and conditions of a live API bearer token (`$1`: its hash, `$2`: now)
/// of an enabled, unexpired client, as `t` and `c`: written once for the token check
/// and for the render lookup that makes that check itself.
macro_rules! live_api_token {
    () => {
        "api_tokens t JOIN api_clients c ON c.id = t.api_client_id
         WHERE t.token_hash = $1 AND t.expires_at > $2
           AND c.disabled_at IS NULL AND c.expires_at > $2"
    };
}

/// The variant a decoded copy is recorded under among an instance's renders: a macro,
/// so the instance queries can join on it ([`renders::DECODED_COPY`]).
macro_rules! decoded_copy_variant {
    () => {
        "decoded.1"
    };
}

pub mod access;
pub mod audit;
pub mod practices;
pub mod renders;
pub mod staff;
pub mod studies;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("row conflicts with an existing one")]
    Conflict,
    #[error("unsupported database url (use sqlite:// or postgres://)")]
    UnsupportedUrl,
}

impl DbError {
    pub fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Conflict => true,
            DbError::Sqlx(sqlx::Error::Database(e)) => e.is_unique_violation(),
            _ => false,
        }
    }
}

pub type DbResult<T> = Result<T, DbError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

const SQLITE_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../../migrations/sqlite/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "staff_login",
        sql: include_str!("../../migrations/sqlite/0002_staff_login.sql"),
    },
    Migration {
        version: 3,
        name: "grant_letters",
        sql: include_str!("../../migrations/sqlite/0003_grant_letters.sql"),
    },
    Migration {
        version: 4,
        name: "admin",
        sql: include_str!("../../migrations/sqlite/0004_admin.sql"),
    },
    Migration {
        version: 5,
        name: "logo",
        sql: include_str!("../../migrations/sqlite/0005_logo.sql"),
    },
    Migration {
        version: 6,
        name: "findings",
        sql: include_str!("../../migrations/sqlite/0006_findings.sql"),
    },
    Migration {
        version: 7,
        name: "tab_close",
        sql: include_str!("../../migrations/sqlite/0007_tab_close.sql"),
    },
    Migration {
        version: 8,
        name: "forwarding",
        sql: include_str!("../../migrations/sqlite/0008_forwarding.sql"),
    },
    Migration {
        version: 9,
        name: "referrer_findings",
        sql: include_str!("../../migrations/sqlite/0009_referrer_findings.sql"),
    },
    Migration {
        version: 10,
        name: "downloads",
        sql: include_str!("../../migrations/sqlite/0010_downloads.sql"),
    },
    Migration {
        version: 11,
        name: "dicom_nodes",
        sql: include_str!("../../migrations/sqlite/0011_dicom_nodes.sql"),
    },
    Migration {
        version: 12,
        name: "prepared_renders",
        sql: include_str!("../../migrations/sqlite/0012_prepared_renders.sql"),
    },
];

const POSTGRES_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "staff_login",
        sql: include_str!("../../migrations/postgres/0002_staff_login.sql"),
    },
    Migration {
        version: 3,
        name: "grant_letters",
        sql: include_str!("../../migrations/postgres/0003_grant_letters.sql"),
    },
    Migration {
        version: 4,
        name: "admin",
        sql: include_str!("../../migrations/postgres/0004_admin.sql"),
    },
    Migration {
        version: 5,
        name: "logo",
        sql: include_str!("../../migrations/postgres/0005_logo.sql"),
    },
    Migration {
        version: 6,
        name: "findings",
        sql: include_str!("../../migrations/postgres/0006_findings.sql"),
    },
    Migration {
        version: 7,
        name: "tab_close",
        sql: include_str!("../../migrations/postgres/0007_tab_close.sql"),
    },
    Migration {
        version: 8,
        name: "forwarding",
        sql: include_str!("../../migrations/postgres/0008_forwarding.sql"),
    },
    Migration {
        version: 9,
        name: "referrer_findings",
        sql: include_str!("../../migrations/postgres/0009_referrer_findings.sql"),
    },
    Migration {
        version: 10,
        name: "downloads",
        sql: include_str!("../../migrations/postgres/0010_downloads.sql"),
    },
    Migration {
        version: 11,
        name: "dicom_nodes",
        sql: include_str!("../../migrations/postgres/0011_dicom_nodes.sql"),
    },
    Migration {
        version: 12,
        name: "prepared_renders",
        sql: include_str!("../../migrations/postgres/0012_prepared_renders.sql"),
    },
];

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    dialect: Dialect,
    /// SQLite allows one writer; a transaction that reads and then writes fails with
    /// "database is locked" when another writer got in between. Embedded mode is one
    /// process, so write transactions queue here instead. PostgreSQL needs no gate.
    write_gate: std::sync::Arc<tokio::sync::Mutex<()>>,
}

pub type WriteGate = Option<tokio::sync::OwnedMutexGuard<()>>;

impl Db {
    pub async fn connect(url: &str) -> DbResult<Self> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Dialect::Postgres
        } else {
            return Err(DbError::UnsupportedUrl);
        };
        let sqlite = dialect == Dialect::Sqlite;
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 8 } else { 16 })
            // A pooled SQLite connection is a file handle in this process and cannot
            // go stale, so the ping before each use (a round trip to the connection's
            // thread, as long as the query itself) buys nothing there. A PostgreSQL
            // connection can die with its server, so it is still checked.
            .test_before_acquire(!sqlite)
            .connect(url)
            .await?;
        Ok(Db {
            pool,
            dialect,
            write_gate: std::sync::Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// Begins a transaction that will write (see `write_gate`).
    pub async fn begin_write(
        &self,
    ) -> DbResult<(WriteGate, sqlx::Transaction<'static, sqlx::Any>)> {
        let (gate, mut tx) = self.begin_write_with_write().await?;
        if self.dialect == Dialect::Sqlite {
            // Take the write lock now (like BEGIN IMMEDIATE): a transaction that first
            // reads and later writes could otherwise meet a writer outside the gate and
            // fail instead of waiting.
            sqlx::query("UPDATE schema_migrations SET version = version WHERE 1 = 0")
                .execute(&mut *tx)
                .await?;
        }
        Ok((gate, tx))
    }

    /// [`Db::begin_write`] for a transaction whose first statement writes: that
    /// statement takes SQLite's write lock, so no statement is spent on taking it.
    pub async fn begin_write_with_write(
        &self,
    ) -> DbResult<(WriteGate, sqlx::Transaction<'static, sqlx::Any>)> {
        let gate = match self.dialect {
            Dialect::Sqlite => Some(self.write_gate.clone().lock_owned().await),
            Dialect::Postgres => None,
        };
        Ok((gate, self.pool.begin().await?))
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Applies pending migrations; returns how many ran.
    pub async fn migrate(&self) -> DbResult<usize> {
        if self.dialect == Dialect::Sqlite {
            // WAL lets readers go on while one writer commits; the mode is stored in
            // the database file, so setting it once covers every connection.
            sqlx::query("PRAGMA journal_mode = WAL")
                .fetch_optional(&self.pool)
                .await?;
        }
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        let list = match self.dialect {
            Dialect::Sqlite => SQLITE_MIGRATIONS,
            Dialect::Postgres => POSTGRES_MIGRATIONS,
        };
        let mut ran = 0;
        for m in list {
            let done: Option<AnyRow> =
                sqlx::query("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(m.version)
                    .fetch_optional(&self.pool)
                    .await?;
            if done.is_some() {
                continue;
            }
            let (_gate, mut tx) = self.begin_write().await?;
            sqlx::raw_sql(m.sql).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(unix_now())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            ran += 1;
        }
        Ok(ran)
    }

    pub async fn ping(&self) -> DbResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// Only for bookkeeping columns that are not part of any rule (migration times).
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(crate) fn get_str(row: &AnyRow, col: &str) -> DbResult<String> {
    Ok(row.try_get::<String, _>(col)?)
}

pub(crate) fn get_i64(row: &AnyRow, col: &str) -> DbResult<i64> {
    Ok(row.try_get::<i64, _>(col)?)
}

pub(crate) fn get_opt_i64(row: &AnyRow, col: &str) -> DbResult<Option<i64>> {
    Ok(row.try_get::<Option<i64>, _>(col)?)
}

pub(crate) fn get_bytes(row: &AnyRow, col: &str) -> DbResult<Vec<u8>> {
    Ok(row.try_get::<Vec<u8>, _>(col)?)
}

//! The store: one table, in SQLite (embedded, the default) or PostgreSQL
//! (several replicas serving one fleet).
//!
//! Per token it keeps exactly what PROTOCOL.md §10 lists: `auth_key_sha256`,
//! the bundle (its `nonce` and `ciphertext`; `format` is always `lkbt1`), the
//! manifest, `version`, `created_at`, `updated_at` and `revoked`. Nothing of
//! the state lives in the process, so any replica answers any request.
//!
//! Why sqlx: one async crate that speaks both databases with the same SQL
//! (`$N` parameters work in both), pools connections, and runs on the same
//! tokio runtime as hyper; rusqlite would need a blocking thread pool beside
//! it and a second client crate for PostgreSQL. Only the `sqlite`,
//! `postgres` and `runtime-tokio` features are on (no macros, no TLS to the
//! database: reach PostgreSQL over a private network or a Unix socket).
//!
//! Writes are compare-and-swap statements: an update is one
//! `UPDATE … WHERE id = $1 AND version = $2 AND revoked = 0`, a create one
//! `INSERT … ON CONFLICT (id) DO NOTHING`. Each is atomic in both databases
//! (one statement, one implicit transaction), so a PUT is all or nothing, and
//! of concurrent PUTs made against one version exactly one changes a row; the
//! others see the new version and fail their `If-Match` (412). Durability:
//! SQLite in WAL mode with `synchronous = FULL` (a commit is on disk when it
//! returns), PostgreSQL with its defaults (`fsync`, `synchronous_commit`).

use crate::api::{Bundle, Manifest};
use crate::{Error, Result};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;
use std::path::Path;
use std::time::Duration;

/// A token's row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub id: String,
    /// `b64u(SHA-256(auth_key))`.
    pub auth_key_sha256: String,
    /// `None` once revoked.
    pub bundle: Option<Bundle>,
    pub manifest: Manifest,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
    pub revoked: bool,
}

/// What a compare-and-swap write did.
#[derive(Debug, PartialEq, Eq)]
pub enum Write {
    Done,
    /// Another writer got there first; re-read and decide again.
    Lost,
}

/// One of the two databases.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            Store::Sqlite($pool) => $body,
            Store::Postgres($pool) => $body,
        }
    };
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    auth_key_sha256 TEXT NOT NULL,
    nonce TEXT,
    ciphertext TEXT,
    manifest TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revoked INTEGER NOT NULL
)";

const COLUMNS: &str =
    "id, auth_key_sha256, nonce, ciphertext, manifest, version, created_at, updated_at, revoked";

fn db_error(what: &str, e: sqlx::Error) -> Error {
    // sqlx errors name the database's complaint; they never hold bound
    // values, and the values we bind are ciphertext, hashes and names.
    Error::Unavailable(format!("database: {what}: {e}"))
}

impl Store {
    /// Opens (creating if needed) the SQLite database `dir/agent-secrets.db`.
    pub async fn sqlite(dir: &Path, max_connections: u32) -> Result<Store> {
        let opts = SqliteConnectOptions::new()
            .filename(dir.join("agent-secrets.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(opts)
            .await
            .map_err(|e| {
                Error::Config(format!(
                    "cannot open the SQLite database in {}: {e}",
                    dir.display()
                ))
            })?;
        let store = Store::Sqlite(pool);
        store.migrate().await?;
        Ok(store)
    }

    /// Connects to PostgreSQL at `url` (`postgres://…`).
    pub async fn postgres(url: &str, max_connections: u32) -> Result<Store> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            // The URL may hold a password: name the database, not the URL.
            .map_err(|e| {
                Error::Unavailable(format!("cannot connect to the PostgreSQL database: {e}"))
            })?;
        let store = Store::Postgres(pool);
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        // Replicas starting together race on CREATE TABLE IF NOT EXISTS in
        // PostgreSQL (a unique violation in its catalog); the loser retries
        // and then finds the table.
        let mut last = None;
        for _ in 0..5 {
            match on_pool!(self, p => sqlx::query(SCHEMA).execute(p).await.map(|_| ())) {
                Ok(_) => return Ok(()),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(db_error(
            "creating the tokens table",
            last.expect("an error"),
        ))
    }

    /// Which database this is, for the start-up line.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "SQLite",
            Store::Postgres(_) => "PostgreSQL",
        }
    }

    /// The row of `id`, if any.
    pub async fn get(&self, id: &str) -> Result<Option<Record>> {
        let sql = format!("SELECT {COLUMNS} FROM tokens WHERE id = $1");
        let row = on_pool!(self, p => {
            sqlx::query(&sql)
                .bind(id)
                .fetch_optional(p)
                .await
                .map_err(|e| db_error("reading a token", e))?
                .map(|r| r.record())
                .transpose()?
        });
        Ok(row)
    }

    /// Every row, by ID, without bundles.
    pub async fn list(&self) -> Result<Vec<Record>> {
        let sql = "SELECT id, auth_key_sha256, CAST(NULL AS TEXT) AS nonce, CAST(NULL AS TEXT) AS ciphertext, manifest, \
                   version, created_at, updated_at, revoked FROM tokens ORDER BY id";
        on_pool!(self, p => {
            sqlx::query(sql)
                .fetch_all(p)
                .await
                .map_err(|e| db_error("listing tokens", e))?
                .iter()
                .map(|r| r.record())
                .collect()
        })
    }

    /// Creates `rec` (version 1) unless a row with its ID exists.
    pub async fn insert(&self, rec: &Record) -> Result<Write> {
        let sql = format!(
            "INSERT INTO tokens ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0) \
             ON CONFLICT (id) DO NOTHING"
        );
        let (nonce, ct) = parts(rec);
        let manifest = manifest_json(&rec.manifest);
        let n = on_pool!(self, p => {
            sqlx::query(&sql)
                .bind(&rec.id)
                .bind(&rec.auth_key_sha256)
                .bind(nonce)
                .bind(ct)
                .bind(&manifest)
                .bind(rec.version)
                .bind(&rec.created_at)
                .bind(&rec.updated_at)
                .execute(p)
                .await
                .map_err(|e| db_error("creating a token", e))?
                .rows_affected()
        });
        Ok(if n == 1 { Write::Done } else { Write::Lost })
    }

    /// Replaces the bundle and manifest of `rec.id`, setting `rec.version`,
    /// if and only if the row is still at `expected` and not revoked.
    pub async fn replace(&self, rec: &Record, expected: i64) -> Result<Write> {
        let sql = "UPDATE tokens SET nonce = $1, ciphertext = $2, manifest = $3, version = $4, \
                   updated_at = $5 WHERE id = $6 AND version = $7 AND revoked = 0";
        let (nonce, ct) = parts(rec);
        let manifest = manifest_json(&rec.manifest);
        let n = on_pool!(self, p => {
            sqlx::query(sql)
                .bind(nonce)
                .bind(ct)
                .bind(&manifest)
                .bind(rec.version)
                .bind(&rec.updated_at)
                .bind(&rec.id)
                .bind(expected)
                .execute(p)
                .await
                .map_err(|e| db_error("updating a token", e))?
                .rows_affected()
        });
        Ok(if n == 1 { Write::Done } else { Write::Lost })
    }

    /// Revokes `id`: deletes its bundle and marks it revoked. `false` when
    /// there is no such token.
    pub async fn revoke(&self, id: &str, now: &str) -> Result<bool> {
        let sql = "UPDATE tokens SET nonce = NULL, ciphertext = NULL, revoked = 1, \
                   updated_at = CASE WHEN revoked = 1 THEN updated_at ELSE $1 END WHERE id = $2";
        let n = on_pool!(self, p => {
            sqlx::query(sql)
                .bind(now)
                .bind(id)
                .execute(p)
                .await
                .map_err(|e| db_error("revoking a token", e))?
                .rows_affected()
        });
        Ok(n == 1)
    }
}

fn parts(rec: &Record) -> (Option<&str>, Option<&str>) {
    match &rec.bundle {
        Some(b) => (Some(b.nonce.as_str()), Some(b.ciphertext.as_str())),
        None => (None, None),
    }
}

fn manifest_json(m: &Manifest) -> String {
    serde_json::to_string(m).expect("a manifest serializes")
}

trait RecordRow {
    fn record(&self) -> Result<Record>;
}

// The same decoding for both row types; sqlx's generic bounds for it would
// be longer than the code.
macro_rules! record_row {
    ($row:ty) => {
        impl RecordRow for $row {
            fn record(&self) -> Result<Record> {
                let r = self;
                let bad = |e: sqlx::Error| db_error("reading a row", e);
                let nonce: Option<String> = r.try_get("nonce").map_err(bad)?;
                let ciphertext: Option<String> = r.try_get("ciphertext").map_err(bad)?;
                let manifest: String = r.try_get("manifest").map_err(bad)?;
                let id: String = r.try_get("id").map_err(bad)?;
                Ok(Record {
                    bundle: match (nonce, ciphertext) {
                        (Some(nonce), Some(ciphertext)) => Some(Bundle {
                            format: agent_init::protocol::bundle::FORMAT.to_string(),
                            nonce,
                            ciphertext,
                        }),
                        _ => None,
                    },
                    manifest: serde_json::from_str(&manifest).map_err(|e| {
                        Error::Internal(format!(
                            "the stored manifest of token {id} does not parse: {e}"
                        ))
                    })?,
                    auth_key_sha256: r.try_get("auth_key_sha256").map_err(bad)?,
                    version: r.try_get("version").map_err(bad)?,
                    created_at: r.try_get("created_at").map_err(bad)?,
                    updated_at: r.try_get("updated_at").map_err(bad)?,
                    revoked: r.try_get::<i32, _>("revoked").map_err(bad)? != 0,
                    id,
                })
            }
        }
    };
}
record_row!(sqlx::sqlite::SqliteRow);
record_row!(sqlx::postgres::PgRow);

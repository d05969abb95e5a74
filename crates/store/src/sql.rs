//! The registry in SQL: one implementation over sqlx's `Any` driver, for
//! the embedded SQLite file (WAL, `synchronous=FULL`: a write that returned
//! is on disk) and for PostgreSQL (several `serve` replicas on one
//! database). The statements are the same for both; only the schema DDL
//! and the write-transaction opener differ.

use crate::registry::Registry;
use crate::{
    AgentRecord, ApprovalRecord, ApprovalStatus, Change, KeyCustody, PolicyDocument, Registration,
    RegistrationStatus, RevokedCredential, RevokedLink, SponsorRecord, StoreError, ToolPin,
};
use agentmesh_capability::Capability;
use agentmesh_delegation::AgentStatus;
use agentmesh_identity::{Did, SpiffeId, Sponsorship};
use agentmesh_trust::AgentTrust;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Row, Transaction};
use std::path::Path;
use std::time::Duration;

/// Schema migrations, applied in order; the index + 1 is the version.
/// Never edit a released entry: append a new one (to both lists).
const SQLITE_MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE sponsors (
    email        TEXT PRIMARY KEY,
    did          TEXT NOT NULL UNIQUE,
    capabilities TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    active       INTEGER NOT NULL
);
CREATE TABLE agents (
    name          TEXT PRIMARY KEY,
    did           TEXT NOT NULL UNIQUE,
    spiffe_id     TEXT NOT NULL UNIQUE,
    sponsor       TEXT NOT NULL REFERENCES sponsors(email),
    sponsor_did   TEXT NOT NULL,
    parent_did    TEXT REFERENCES agents(did),
    capabilities  TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'revoked')),
    status_reason TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    key_custody   TEXT NOT NULL CHECK (key_custody IN ('home', 'external')),
    sponsorship   TEXT NOT NULL
);
CREATE INDEX agents_by_parent ON agents(parent_did);
CREATE TABLE revoked_links (
    hash       TEXT PRIMARY KEY,
    reason     TEXT NOT NULL,
    revoked_at INTEGER NOT NULL
);
"#,
    r#"
CREATE TABLE trust_state (
    agent      TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
"#,
    r#"
CREATE TABLE approvals (
    id               TEXT PRIMARY KEY,
    caller           TEXT NOT NULL,
    action           TEXT NOT NULL,
    arguments_sha256 TEXT NOT NULL,
    policy_version   TEXT NOT NULL,
    rule             TEXT NOT NULL,
    approvers        TEXT NOT NULL,
    state            TEXT NOT NULL
        CHECK (state IN ('pending', 'approved', 'denied', 'used', 'expired')),
    decided_by       TEXT,
    decided_at       INTEGER,
    reason           TEXT,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    summary          TEXT NOT NULL
);
CREATE INDEX approvals_by_state ON approvals(state, created_at);
CREATE TABLE tool_pins (
    upstream           TEXT NOT NULL,
    tool               TEXT NOT NULL,
    sha256             TEXT NOT NULL,
    definition         TEXT NOT NULL,
    pinned_at          INTEGER NOT NULL,
    changed_sha256     TEXT,
    changed_definition TEXT,
    changed_at         INTEGER,
    PRIMARY KEY (upstream, tool)
);
"#,
    r#"
CREATE TABLE audit_outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    entry      BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
"#,
    r#"
CREATE TABLE revoked_credentials (
    id         TEXT PRIMARY KEY,
    agent      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    revoked_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE challenges (
    nonce      TEXT PRIMARY KEY,
    purpose    TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE registrations (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    sponsor      TEXT NOT NULL,
    agent_did    TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    parent       TEXT,
    expires_at   INTEGER,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected')),
    created_at   INTEGER NOT NULL,
    decided_at   INTEGER,
    decided_by   TEXT,
    reason       TEXT
);
CREATE INDEX registrations_by_state ON registrations(state, created_at);
CREATE TABLE policy_documents (
    name       TEXT PRIMARY KEY,
    yaml       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL
);
CREATE TABLE changes (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    kind    TEXT NOT NULL,
    subject TEXT NOT NULL,
    at      INTEGER NOT NULL
);
"#,
    r#"
CREATE TABLE rate_limits (
    key TEXT PRIMARY KEY,
    tat INTEGER NOT NULL
);
"#,
    // A decision on a held call carries its decider's signature.
    "ALTER TABLE approvals ADD COLUMN proof TEXT;",
];

/// The same schema for PostgreSQL (64-bit integers, BYTEA, identity keys).
const POSTGRES_MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE sponsors (
    email        TEXT PRIMARY KEY,
    did          TEXT NOT NULL UNIQUE,
    capabilities TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    active       BIGINT NOT NULL
);
CREATE TABLE agents (
    name          TEXT PRIMARY KEY,
    did           TEXT NOT NULL UNIQUE,
    spiffe_id     TEXT NOT NULL UNIQUE,
    sponsor       TEXT NOT NULL REFERENCES sponsors(email),
    sponsor_did   TEXT NOT NULL,
    parent_did    TEXT REFERENCES agents(did),
    capabilities  TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'revoked')),
    status_reason TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    key_custody   TEXT NOT NULL CHECK (key_custody IN ('home', 'external')),
    sponsorship   TEXT NOT NULL
);
CREATE INDEX agents_by_parent ON agents(parent_did);
CREATE TABLE revoked_links (
    hash       TEXT PRIMARY KEY,
    reason     TEXT NOT NULL,
    revoked_at BIGINT NOT NULL
);
"#,
    r#"
CREATE TABLE trust_state (
    agent      TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
"#,
    r#"
CREATE TABLE approvals (
    id               TEXT PRIMARY KEY,
    caller           TEXT NOT NULL,
    action           TEXT NOT NULL,
    arguments_sha256 TEXT NOT NULL,
    policy_version   TEXT NOT NULL,
    rule             TEXT NOT NULL,
    approvers        TEXT NOT NULL,
    state            TEXT NOT NULL
        CHECK (state IN ('pending', 'approved', 'denied', 'used', 'expired')),
    decided_by       TEXT,
    decided_at       BIGINT,
    reason           TEXT,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    summary          TEXT NOT NULL
);
CREATE INDEX approvals_by_state ON approvals(state, created_at);
CREATE TABLE tool_pins (
    upstream           TEXT NOT NULL,
    tool               TEXT NOT NULL,
    sha256             TEXT NOT NULL,
    definition         TEXT NOT NULL,
    pinned_at          BIGINT NOT NULL,
    changed_sha256     TEXT,
    changed_definition TEXT,
    changed_at         BIGINT,
    PRIMARY KEY (upstream, tool)
);
"#,
    r#"
CREATE TABLE audit_outbox (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry      BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
"#,
    r#"
CREATE TABLE revoked_credentials (
    id         TEXT PRIMARY KEY,
    agent      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    revoked_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE TABLE challenges (
    nonce      TEXT PRIMARY KEY,
    purpose    TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE TABLE registrations (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    sponsor      TEXT NOT NULL,
    agent_did    TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    parent       TEXT,
    expires_at   BIGINT,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected')),
    created_at   BIGINT NOT NULL,
    decided_at   BIGINT,
    decided_by   TEXT,
    reason       TEXT
);
CREATE INDEX registrations_by_state ON registrations(state, created_at);
CREATE TABLE policy_documents (
    name       TEXT PRIMARY KEY,
    yaml       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);
CREATE TABLE changes (
    seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind    TEXT NOT NULL,
    subject TEXT NOT NULL,
    at      BIGINT NOT NULL
);
"#,
    r#"
CREATE TABLE rate_limits (
    key TEXT PRIMARY KEY,
    tat BIGINT NOT NULL
);
"#,
    // A decision on a held call carries its decider's signature.
    "ALTER TABLE approvals ADD COLUMN proof TEXT;",
];

/// Which database a registry is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The registry on SQLite (embedded) or PostgreSQL.
#[derive(Debug, Clone)]
pub struct SqlRegistry {
    pool: AnyPool,
    backend: Backend,
}

/// The embedded registry's historical name.
pub type SqliteRegistry = SqlRegistry;

/// Percent-encodes a filesystem path for a `sqlite://` URL.
fn sqlite_url(path: &Path) -> String {
    let mut out = String::from("sqlite://");
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/._-~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push_str("?mode=rwc");
    out
}

impl SqlRegistry {
    /// Opens (creating if needed) the SQLite database file and migrates it.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Self::connect_sqlite(&sqlite_url(path), 4).await
    }

    /// An in-memory SQLite database, for tests.
    pub async fn in_memory() -> Result<Self, StoreError> {
        Self::connect_sqlite("sqlite::memory:", 1).await
    }

    async fn connect_sqlite(url: &str, max: u32) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // Durable writes, enforced references, and waiting (not
                    // failing) when another process holds the write lock.
                    sqlx::raw_sql(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                    )
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        let registry = Self {
            pool,
            backend: Backend::Sqlite,
        };
        registry.migrate().await?;
        Ok(registry)
    }

    /// Connects to PostgreSQL (`postgres://…`) and migrates the schema
    /// (concurrent replicas serialise on an advisory lock).
    pub async fn connect_postgres(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        let registry = Self {
            pool,
            backend: Backend::Postgres,
        };
        registry.migrate().await?;
        Ok(registry)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool (for the control plane's own queries and notifications).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A write transaction: SQLite takes the write lock at once (no
    /// upgrade from a read snapshot, which can fail with BUSY_SNAPSHOT).
    async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let migrations = match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7477334)")
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .execute(&mut *tx)
            .await?;
        let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
            .fetch_one(&mut *tx)
            .await?;
        let current = current.unwrap_or(0);
        if current > migrations.len() as i64 {
            return Err(StoreError::Conflict(format!(
                "registry schema version {current} is newer than this build understands ({}); upgrade agentmesh",
                migrations.len()
            )));
        }
        for (i, sql) in migrations.iter().enumerate().skip(current as usize) {
            sqlx::raw_sql(*sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
                .bind(i as i64 + 1)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn did_text(did: &Did) -> String {
    did.to_mesh().to_string()
}

fn caps_json(caps: &[Capability]) -> String {
    serde_json::to_string(caps).unwrap_or_else(|_| "[]".to_owned())
}

fn status_text(s: AgentStatus) -> &'static str {
    match s {
        AgentStatus::Active => "active",
        AgentStatus::Suspended => "suspended",
        AgentStatus::Revoked => "revoked",
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn ts(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn sponsor_from_row(row: &AnyRow) -> Result<SponsorRecord, StoreError> {
    let did: String = row.try_get("did")?;
    let caps: String = row.try_get("capabilities")?;
    Ok(SponsorRecord {
        email: row.try_get("email")?,
        did: Did::parse(&did).map_err(|e| corrupt("sponsor DID", e))?,
        capabilities: serde_json::from_str(&caps)
            .map_err(|e| corrupt("sponsor capabilities", e))?,
        created_at: ts(row.try_get("created_at")?),
        active: row.try_get::<i64, _>("active")? != 0,
    })
}

fn agent_from_row(row: &AnyRow) -> Result<AgentRecord, StoreError> {
    let did: String = row.try_get("did")?;
    let sponsor_did: String = row.try_get("sponsor_did")?;
    let parent: Option<String> = row.try_get("parent_did")?;
    let spiffe: String = row.try_get("spiffe_id")?;
    let caps: String = row.try_get("capabilities")?;
    let status: String = row.try_get("status")?;
    let custody: String = row.try_get("key_custody")?;
    let sponsorship: String = row.try_get("sponsorship")?;
    Ok(AgentRecord {
        name: row.try_get("name")?,
        did: Did::parse(&did).map_err(|e| corrupt("agent DID", e))?,
        spiffe_id: SpiffeId::parse(&spiffe).map_err(|e| corrupt("SPIFFE ID", e))?,
        sponsor: row.try_get("sponsor")?,
        sponsor_did: Did::parse(&sponsor_did).map_err(|e| corrupt("sponsor DID", e))?,
        parent_did: parent
            .map(|p| Did::parse(&p))
            .transpose()
            .map_err(|e| corrupt("parent DID", e))?,
        capabilities: serde_json::from_str(&caps).map_err(|e| corrupt("agent capabilities", e))?,
        status: match status.as_str() {
            "active" => AgentStatus::Active,
            "suspended" => AgentStatus::Suspended,
            "revoked" => AgentStatus::Revoked,
            other => return Err(corrupt("agent status", other)),
        },
        status_reason: row.try_get("status_reason")?,
        created_at: ts(row.try_get("created_at")?),
        updated_at: ts(row.try_get("updated_at")?),
        expires_at: row.try_get::<Option<i64>, _>("expires_at")?.map(ts),
        key_custody: match custody.as_str() {
            "home" => KeyCustody::Home,
            "external" => KeyCustody::External,
            other => return Err(corrupt("key custody", other)),
        },
        sponsorship: serde_json::from_str::<Sponsorship>(&sponsorship)
            .map_err(|e| corrupt("sponsorship attestation", e))?,
    })
}

fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

async fn change_in_tx(
    tx: &mut Transaction<'_, Any>,
    kind: &str,
    subject: &str,
    now: u64,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO changes (kind, subject, at) VALUES ($1, $2, $3)")
        .bind(kind)
        .bind(subject)
        .bind(db_ts(now))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn agent_in_tx(tx: &mut Transaction<'_, Any>, did: &Did) -> Result<AgentRecord, StoreError> {
    let row = sqlx::query("SELECT * FROM agents WHERE did = $1")
        .bind(did_text(did))
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "agent",
            key: did.to_string(),
        })?;
    agent_from_row(&row)
}

#[async_trait::async_trait]
impl Registry for SqlRegistry {
    async fn insert_sponsor(&self, s: &SponsorRecord) -> Result<(), StoreError> {
        let result = sqlx::query(
            "INSERT INTO sponsors (email, did, capabilities, created_at, active) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&s.email)
        .bind(did_text(&s.did))
        .bind(caps_json(&s.capabilities))
        .bind(s.created_at as i64)
        .bind(i64::from(s.active))
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => self.note_change("sponsor", &s.email, s.created_at).await,
            Err(e) if unique_violation(&e) => Err(StoreError::Duplicate {
                what: "sponsor",
                key: s.email.clone(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    async fn sponsor_by_email(&self, email: &str) -> Result<Option<SponsorRecord>, StoreError> {
        sqlx::query("SELECT * FROM sponsors WHERE email = $1")
            .bind(email.to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(sponsor_from_row)
            .transpose()
    }

    async fn sponsor_by_did(&self, did: &Did) -> Result<Option<SponsorRecord>, StoreError> {
        sqlx::query("SELECT * FROM sponsors WHERE did = $1")
            .bind(did_text(did))
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(sponsor_from_row)
            .transpose()
    }

    async fn list_sponsors(&self) -> Result<Vec<SponsorRecord>, StoreError> {
        sqlx::query("SELECT * FROM sponsors ORDER BY email")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(sponsor_from_row)
            .collect()
    }

    async fn insert_agent(&self, a: &AgentRecord) -> Result<(), StoreError> {
        let sponsorship = serde_json::to_string(&a.sponsorship)
            .map_err(|e| corrupt("sponsorship attestation", e))?;
        let result = agent_insert(a, &sponsorship).execute(&self.pool).await;
        match result {
            Ok(_) => self.note_change("agent", &a.name, a.created_at).await,
            Err(e) if unique_violation(&e) => {
                let taken_name = self.agent_by_name(&a.name).await?.is_some();
                Err(StoreError::Duplicate {
                    what: "agent",
                    key: if taken_name {
                        a.name.clone()
                    } else {
                        a.did.to_string()
                    },
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn agent_by_name(&self, name: &str) -> Result<Option<AgentRecord>, StoreError> {
        sqlx::query("SELECT * FROM agents WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(agent_from_row)
            .transpose()
    }

    async fn agent_by_did(&self, did: &Did) -> Result<Option<AgentRecord>, StoreError> {
        sqlx::query("SELECT * FROM agents WHERE did = $1")
            .bind(did_text(did))
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(agent_from_row)
            .transpose()
    }

    async fn list_agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        sqlx::query("SELECT * FROM agents ORDER BY created_at, name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(agent_from_row)
            .collect()
    }

    async fn revoke_agent(
        &self,
        did: &Did,
        reason: &str,
        now: u64,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.begin_write().await?;
        agent_in_tx(&mut tx, did).await?;
        // The agent and all its descendants, the agent first, then by depth.
        let rows = sqlx::query(
            "WITH RECURSIVE subtree(did, depth) AS ( \
                 SELECT did, 0 FROM agents WHERE did = $1 \
                 UNION SELECT a.did, s.depth + 1 FROM agents a JOIN subtree s ON a.parent_did = s.did \
             ) SELECT agents.name AS name FROM agents JOIN subtree ON agents.did = subtree.did \
             ORDER BY subtree.depth, agents.name",
        )
        .bind(did_text(did))
        .fetch_all(&mut *tx)
        .await?;
        let names: Vec<String> = rows
            .iter()
            .map(|r| r.try_get("name"))
            .collect::<Result<_, _>>()?;
        sqlx::query(
            "WITH RECURSIVE subtree(did) AS ( \
                 SELECT did FROM agents WHERE did = $1 \
                 UNION SELECT a.did FROM agents a JOIN subtree s ON a.parent_did = s.did \
             ) UPDATE agents SET status = 'revoked', status_reason = $2, updated_at = $3 \
             WHERE did IN (SELECT did FROM subtree) AND status <> 'revoked'",
        )
        .bind(did_text(did))
        .bind(reason)
        .bind(now as i64)
        .execute(&mut *tx)
        .await?;
        change_in_tx(&mut tx, "revocation", &did_text(did), now).await?;
        tx.commit().await?;
        Ok(names)
    }

    async fn set_agent_status(
        &self,
        did: &Did,
        status: AgentStatus,
        reason: Option<&str>,
        now: u64,
    ) -> Result<(), StoreError> {
        if status == AgentStatus::Revoked {
            return Err(StoreError::Conflict(
                "use revoke_agent to revoke (it also revokes descendants)".into(),
            ));
        }
        let mut tx = self.begin_write().await?;
        let agent = agent_in_tx(&mut tx, did).await?;
        if agent.status == AgentStatus::Revoked {
            return Err(StoreError::Conflict(format!(
                "agent `{}` is revoked; revocation is permanent (create a new agent instead)",
                agent.name
            )));
        }
        if agent.status == status {
            return Err(StoreError::Conflict(format!(
                "agent `{}` is already {}",
                agent.name,
                status_text(status)
            )));
        }
        sqlx::query(
            "UPDATE agents SET status = $1, status_reason = $2, updated_at = $3 WHERE did = $4",
        )
        .bind(status_text(status))
        .bind(reason)
        .bind(now as i64)
        .bind(did_text(did))
        .execute(&mut *tx)
        .await?;
        change_in_tx(&mut tx, "agent", &did_text(did), now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn revoke_link(&self, link: &RevokedLink) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO revoked_links (hash, reason, revoked_at) VALUES ($1, $2, $3) \
             ON CONFLICT (hash) DO NOTHING",
        )
        .bind(&link.hash)
        .bind(&link.reason)
        .bind(link.revoked_at as i64)
        .execute(&self.pool)
        .await?;
        self.note_change("revocation", &link.hash, link.revoked_at)
            .await
    }

    async fn trust_states(&self) -> Result<Vec<(String, AgentTrust)>, StoreError> {
        sqlx::query("SELECT agent, state FROM trust_state ORDER BY agent")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                let agent: String = r.try_get("agent")?;
                let state: String = r.try_get("state")?;
                let state = serde_json::from_str(&state).map_err(|e| corrupt("trust state", e))?;
                Ok((agent, state))
            })
            .collect()
    }

    async fn save_trust_state(&self, agent: &str, state: &AgentTrust) -> Result<(), StoreError> {
        let text = serde_json::to_string(state).map_err(|e| corrupt("trust state", e))?;
        sqlx::query(
            "INSERT INTO trust_state (agent, state, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (agent) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
        )
        .bind(agent)
        .bind(text)
        .bind(i64::try_from(state.at_ms / 1000).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn revoked_links(&self) -> Result<Vec<RevokedLink>, StoreError> {
        sqlx::query("SELECT * FROM revoked_links ORDER BY revoked_at, hash")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(RevokedLink {
                    hash: r.try_get("hash")?,
                    reason: r.try_get("reason")?,
                    revoked_at: ts(r.try_get("revoked_at")?),
                })
            })
            .collect()
    }

    async fn insert_approval(&self, a: &ApprovalRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO approvals (id, caller, action, arguments_sha256, policy_version, rule, \
             approvers, state, decided_by, decided_at, reason, created_at, expires_at, summary) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&a.id)
        .bind(&a.caller)
        .bind(&a.action)
        .bind(&a.arguments_sha256)
        .bind(&a.policy_version)
        .bind(&a.rule)
        .bind(serde_json::to_string(&a.approvers).map_err(|e| corrupt("approvers", e))?)
        .bind(a.state.as_str())
        .bind(&a.decided_by)
        .bind(a.decided_at.map(db_ts))
        .bind(&a.reason)
        .bind(db_ts(a.created_at))
        .bind(db_ts(a.expires_at))
        .bind(a.summary.to_string())
        .execute(&self.pool)
        .await?;
        self.note_change("approval", &a.id, a.created_at).await
    }

    async fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError> {
        sqlx::query("SELECT * FROM approvals WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(approval_from_row)
            .transpose()
    }

    async fn list_approvals(&self, all: bool) -> Result<Vec<ApprovalRecord>, StoreError> {
        let sql = if all {
            "SELECT * FROM approvals ORDER BY created_at, id"
        } else {
            "SELECT * FROM approvals WHERE state = 'pending' ORDER BY created_at, id"
        };
        sqlx::query(sql)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(approval_from_row)
            .collect()
    }

    async fn set_approval_state(
        &self,
        id: &str,
        from: ApprovalStatus,
        to: ApprovalStatus,
        by: Option<&str>,
        reason: Option<&str>,
        now: u64,
    ) -> Result<ApprovalRecord, StoreError> {
        self.decide_approval(id, from, to, by, reason, None, now)
            .await
    }

    async fn decide_approval(
        &self,
        id: &str,
        from: ApprovalStatus,
        to: ApprovalStatus,
        by: Option<&str>,
        reason: Option<&str>,
        proof: Option<&str>,
        now: u64,
    ) -> Result<ApprovalRecord, StoreError> {
        let done = sqlx::query(
            "UPDATE approvals SET state = $1, decided_by = COALESCE($2, decided_by), \
             decided_at = $3, reason = COALESCE($4, reason), proof = COALESCE($5, proof) \
             WHERE id = $6 AND state = $7",
        )
        .bind(to.as_str())
        .bind(by)
        .bind(db_ts(now))
        .bind(reason)
        .bind(proof)
        .bind(id)
        .bind(from.as_str())
        .execute(&self.pool)
        .await?;
        let current = self
            .approval(id)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "approval",
                key: id.to_owned(),
            })?;
        if done.rows_affected() == 1 {
            self.note_change("approval", id, now).await?;
        }
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "approval `{id}` is {}, not {}",
                current.state.as_str(),
                from.as_str()
            )));
        }
        Ok(current)
    }

    async fn enqueue_audit(&self, entry: &[u8], now: u64) -> Result<i64, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO audit_outbox (entry, created_at) VALUES ($1, $2) RETURNING id",
        )
        .bind(entry)
        .bind(db_ts(now))
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    async fn queued_audit(&self, limit: u32) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        sqlx::query("SELECT id, entry FROM audit_outbox ORDER BY id LIMIT $1")
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("entry")?)))
            .collect()
    }

    async fn dequeue_audit(&self, ids: &[i64]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for id in ids {
            sqlx::query("DELETE FROM audit_outbox WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn revoke_credential(&self, r: &RevokedCredential) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO revoked_credentials (id, agent, reason, revoked_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&r.id)
        .bind(&r.agent)
        .bind(&r.reason)
        .bind(db_ts(r.revoked_at))
        .bind(db_ts(r.expires_at))
        .execute(&self.pool)
        .await?;
        self.note_change("credential", &r.id, r.revoked_at).await
    }

    async fn revoked_credentials(&self, now: u64) -> Result<Vec<RevokedCredential>, StoreError> {
        sqlx::query(
            "SELECT * FROM revoked_credentials WHERE expires_at > $1 ORDER BY revoked_at, id",
        )
        .bind(db_ts(now))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(RevokedCredential {
                id: r.try_get("id")?,
                agent: r.try_get("agent")?,
                reason: r.try_get("reason")?,
                revoked_at: ts(r.try_get("revoked_at")?),
                expires_at: ts(r.try_get("expires_at")?),
            })
        })
        .collect()
    }

    async fn tool_pins(&self) -> Result<Vec<ToolPin>, StoreError> {
        sqlx::query("SELECT * FROM tool_pins ORDER BY upstream, tool")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(pin_from_row)
            .collect()
    }

    async fn save_tool_pin(&self, p: &ToolPin) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tool_pins (upstream, tool, sha256, definition, pinned_at, \
             changed_sha256, changed_definition, changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (upstream, tool) DO UPDATE SET sha256 = excluded.sha256, \
             definition = excluded.definition, pinned_at = excluded.pinned_at, \
             changed_sha256 = excluded.changed_sha256, \
             changed_definition = excluded.changed_definition, changed_at = excluded.changed_at",
        )
        .bind(&p.upstream)
        .bind(&p.tool)
        .bind(&p.sha256)
        .bind(p.definition.to_string())
        .bind(db_ts(p.pinned_at))
        .bind(&p.changed_sha256)
        .bind(p.changed_definition.as_ref().map(|d| d.to_string()))
        .bind(p.changed_at.map(db_ts))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

fn db_ts(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn json_column(row: &AnyRow, column: &str) -> Result<serde_json::Value, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| corrupt(column, e))
}

fn approval_from_row(row: &AnyRow) -> Result<ApprovalRecord, StoreError> {
    let approvers: String = row.try_get("approvers")?;
    let state: String = row.try_get("state")?;
    Ok(ApprovalRecord {
        id: row.try_get("id")?,
        caller: row.try_get("caller")?,
        action: row.try_get("action")?,
        arguments_sha256: row.try_get("arguments_sha256")?,
        policy_version: row.try_get("policy_version")?,
        rule: row.try_get("rule")?,
        approvers: serde_json::from_str(&approvers).map_err(|e| corrupt("approvers", e))?,
        state: ApprovalStatus::parse(&state).ok_or_else(|| corrupt("approval state", &state))?,
        decided_by: row.try_get("decided_by")?,
        decided_at: row.try_get::<Option<i64>, _>("decided_at")?.map(ts),
        reason: row.try_get("reason")?,
        created_at: ts(row.try_get("created_at")?),
        expires_at: ts(row.try_get("expires_at")?),
        summary: json_column(row, "summary")?,
        proof: row.try_get("proof")?,
    })
}

fn pin_from_row(row: &AnyRow) -> Result<ToolPin, StoreError> {
    let changed: Option<String> = row.try_get("changed_definition")?;
    Ok(ToolPin {
        upstream: row.try_get("upstream")?,
        tool: row.try_get("tool")?,
        sha256: row.try_get("sha256")?,
        definition: json_column(row, "definition")?,
        pinned_at: ts(row.try_get("pinned_at")?),
        changed_sha256: row.try_get("changed_sha256")?,
        changed_definition: changed
            .map(|t| serde_json::from_str(&t).map_err(|e| corrupt("changed_definition", e)))
            .transpose()?,
        changed_at: row.try_get::<Option<i64>, _>("changed_at")?.map(ts),
    })
}

fn registration_from_row(row: &AnyRow) -> Result<Registration, StoreError> {
    let did: String = row.try_get("agent_did")?;
    let caps: String = row.try_get("capabilities")?;
    let state: String = row.try_get("state")?;
    Ok(Registration {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        sponsor: row.try_get("sponsor")?,
        agent_did: Did::parse(&did).map_err(|e| corrupt("registration DID", e))?,
        capabilities: serde_json::from_str(&caps)
            .map_err(|e| corrupt("registration capabilities", e))?,
        parent: row.try_get("parent")?,
        expires_at: row.try_get::<Option<i64>, _>("expires_at")?.map(ts),
        state: RegistrationStatus::parse(&state)
            .ok_or_else(|| corrupt("registration state", &state))?,
        created_at: ts(row.try_get("created_at")?),
        decided_at: row.try_get::<Option<i64>, _>("decided_at")?.map(ts),
        decided_by: row.try_get("decided_by")?,
        reason: row.try_get("reason")?,
    })
}

/// The control plane's own tables: single-use challenges, pending
/// registrations, distributed policy documents and the change feed that
/// replicas and gateways follow. (Gateways never touch these, so they are
/// not part of the [`Registry`] trait.)
impl SqlRegistry {
    /// Appends to the change feed.
    pub async fn note_change(&self, kind: &str, subject: &str, now: u64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO changes (kind, subject, at) VALUES ($1, $2, $3)")
            .bind(kind)
            .bind(subject)
            .bind(db_ts(now))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Changes after `seq`, oldest first, at most `limit`.
    pub async fn changes_since(&self, seq: i64, limit: u32) -> Result<Vec<Change>, StoreError> {
        sqlx::query("SELECT * FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(seq)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(Change {
                    seq: r.try_get("seq")?,
                    kind: r.try_get("kind")?,
                    subject: r.try_get("subject")?,
                    at: ts(r.try_get("at")?),
                })
            })
            .collect()
    }

    /// The newest change's sequence number (0 when there is none).
    pub async fn last_change(&self) -> Result<i64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM changes")
            .fetch_one(&self.pool)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    /// Stores a single-use challenge nonce.
    pub async fn insert_challenge(
        &self,
        nonce: &str,
        purpose: &str,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO challenges (nonce, purpose, expires_at) VALUES ($1, $2, $3)")
            .bind(nonce)
            .bind(purpose)
            .bind(db_ts(expires_at))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Consumes a challenge: true exactly once for a nonce issued for
    /// `purpose` that has not expired at `now`. Expired ones are swept.
    pub async fn consume_challenge(
        &self,
        nonce: &str,
        purpose: &str,
        now: u64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "DELETE FROM challenges WHERE nonce = $1 AND purpose = $2 AND expires_at > $3",
        )
        .bind(nonce)
        .bind(purpose)
        .bind(db_ts(now))
        .execute(&self.pool)
        .await?;
        sqlx::query("DELETE FROM challenges WHERE expires_at <= $1")
            .bind(db_ts(now))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores a pending registration; the name must be free among agents
    /// and pending registrations.
    pub async fn insert_registration(&self, r: &Registration) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let taken: Option<String> = sqlx::query_scalar(
            "SELECT name FROM agents WHERE name = $1 OR did = $2 \
             UNION SELECT name FROM registrations WHERE (name = $1 OR agent_did = $2) AND state = 'pending'",
        )
        .bind(&r.name)
        .bind(did_text(&r.agent_did))
        .fetch_optional(&mut *tx)
        .await?;
        if taken.is_some() {
            return Err(StoreError::Duplicate {
                what: "agent or pending registration",
                key: r.name.clone(),
            });
        }
        sqlx::query(
            "INSERT INTO registrations (id, name, sponsor, agent_did, capabilities, parent, \
             expires_at, state, created_at, decided_at, decided_by, reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&r.id)
        .bind(&r.name)
        .bind(&r.sponsor)
        .bind(did_text(&r.agent_did))
        .bind(caps_json(&r.capabilities))
        .bind(&r.parent)
        .bind(r.expires_at.map(db_ts))
        .bind(r.state.as_str())
        .bind(db_ts(r.created_at))
        .bind(r.decided_at.map(db_ts))
        .bind(&r.decided_by)
        .bind(&r.reason)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO changes (kind, subject, at) VALUES ('registration', $1, $2)")
            .bind(&r.id)
            .bind(db_ts(r.created_at))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn registration(&self, id: &str) -> Result<Option<Registration>, StoreError> {
        sqlx::query("SELECT * FROM registrations WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(registration_from_row)
            .transpose()
    }

    /// Registrations, oldest first; only pending ones unless `all`.
    pub async fn list_registrations(&self, all: bool) -> Result<Vec<Registration>, StoreError> {
        let sql = if all {
            "SELECT * FROM registrations ORDER BY created_at, id"
        } else {
            "SELECT * FROM registrations WHERE state = 'pending' ORDER BY created_at, id"
        };
        sqlx::query(sql)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(registration_from_row)
            .collect()
    }

    /// Moves a pending registration to `to` (fails with `Conflict` when it
    /// is no longer pending, so two deciders cannot both win).
    pub async fn decide_registration(
        &self,
        id: &str,
        to: RegistrationStatus,
        by: &str,
        reason: Option<&str>,
        now: u64,
    ) -> Result<Registration, StoreError> {
        let done = sqlx::query(
            "UPDATE registrations SET state = $1, decided_by = $2, decided_at = $3, reason = $4 \
             WHERE id = $5 AND state = 'pending'",
        )
        .bind(to.as_str())
        .bind(by)
        .bind(db_ts(now))
        .bind(reason)
        .bind(id)
        .execute(&self.pool)
        .await?;
        let current = self
            .registration(id)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "registration",
                key: id.to_owned(),
            })?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "registration `{id}` is {}, not pending",
                current.state.as_str()
            )));
        }
        self.note_change("registration", id, now).await?;
        Ok(current)
    }

    pub async fn policy_document(&self, name: &str) -> Result<Option<PolicyDocument>, StoreError> {
        sqlx::query("SELECT * FROM policy_documents WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| {
                Ok(PolicyDocument {
                    name: r.try_get("name")?,
                    yaml: r.try_get("yaml")?,
                    sha256: r.try_get("sha256")?,
                    updated_at: ts(r.try_get("updated_at")?),
                    updated_by: r.try_get("updated_by")?,
                })
            })
            .transpose()
    }

    /// Inserts or replaces a policy document and notes the change.
    pub async fn save_policy_document(&self, d: &PolicyDocument) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO policy_documents (name, yaml, sha256, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET yaml = excluded.yaml, \
             sha256 = excluded.sha256, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(&d.name)
        .bind(&d.yaml)
        .bind(&d.sha256)
        .bind(db_ts(d.updated_at))
        .bind(&d.updated_by)
        .execute(&self.pool)
        .await?;
        self.note_change("policy", &d.name, d.updated_at).await
    }

    /// An agent (by name or DID) and its trust state, in one query (the
    /// control plane's lookup path).
    pub async fn agent_with_trust(
        &self,
        name_or_did: &str,
    ) -> Result<Option<(AgentRecord, Option<AgentTrust>)>, StoreError> {
        let (column, key) = match Did::parse(name_or_did) {
            Ok(d) if name_or_did.starts_with("did:") => ("did", did_text(&d)),
            _ => ("name", name_or_did.to_owned()),
        };
        let sql = if column == "did" {
            "SELECT agents.*, trust_state.state AS trust FROM agents \
             LEFT JOIN trust_state ON trust_state.agent = agents.did WHERE agents.did = $1"
        } else {
            "SELECT agents.*, trust_state.state AS trust FROM agents \
             LEFT JOIN trust_state ON trust_state.agent = agents.did WHERE agents.name = $1"
        };
        let Some(row) = sqlx::query(sql)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let agent = agent_from_row(&row)?;
        let trust: Option<String> = row.try_get("trust")?;
        let trust = trust
            .map(|t| serde_json::from_str(&t).map_err(|e| corrupt("trust state", e)))
            .transpose()?;
        Ok(Some((agent, trust)))
    }

    /// Counts one event against a rate limit shared by every process on
    /// this database (GCRA: one theoretical arrival time per key, updated
    /// in a write transaction, so replicas never both take the last slot).
    /// `Ok(Err(retry_after_ns))` when over the limit.
    pub async fn acquire_rate(
        &self,
        key: &str,
        count: u32,
        period_ns: u64,
        now_ns: u64,
    ) -> Result<Result<(), u64>, StoreError> {
        let t = (period_ns / u64::from(count.max(1))).max(1);
        let tau = period_ns.saturating_sub(t);
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO rate_limits (key, tat) VALUES ($1, 0) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .execute(&mut *tx)
        .await?;
        let select = match self.backend {
            Backend::Sqlite => "SELECT tat FROM rate_limits WHERE key = $1",
            Backend::Postgres => "SELECT tat FROM rate_limits WHERE key = $1 FOR UPDATE",
        };
        let tat: i64 = sqlx::query_scalar(select)
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
        let tat = u64::try_from(tat).unwrap_or(0).max(now_ns);
        if tat - now_ns > tau {
            return Ok(Err(tat - now_ns - tau));
        }
        sqlx::query("UPDATE rate_limits SET tat = $1 WHERE key = $2")
            .bind(db_ts(tat + t))
            .bind(key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// One agent's trust state, if it has one.
    pub async fn trust_state(&self, agent: &str) -> Result<Option<AgentTrust>, StoreError> {
        let row: Option<String> =
            sqlx::query_scalar("SELECT state FROM trust_state WHERE agent = $1")
                .bind(agent)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|t| serde_json::from_str(&t).map_err(|e| corrupt("trust state", e)))
            .transpose()
    }

    /// Agents per status (for metrics).
    pub async fn count_agents_by_status(&self) -> Result<Vec<(String, i64)>, StoreError> {
        sqlx::query("SELECT status, COUNT(*) AS n FROM agents GROUP BY status")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
            .collect()
    }

    /// One page of agents by name.
    pub async fn agents_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AgentRecord>, StoreError> {
        sqlx::query("SELECT * FROM agents WHERE name > $1 ORDER BY name LIMIT $2")
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(agent_from_row)
            .collect()
    }

    /// Inserts many agents in one transaction (the bulk registration path),
    /// several hundred rows per statement. All or nothing: a duplicate name
    /// or DID fails the whole batch.
    pub async fn insert_agents(&self, agents: &[AgentRecord]) -> Result<(), StoreError> {
        const COLUMNS: usize = 14;
        // sqlx's SQLite driver looks parameters up by name one by one
        // (quadratic in their number): small statements there; PostgreSQL
        // gains from large ones (fewer round trips).
        let rows = match self.backend {
            Backend::Sqlite => 32,
            Backend::Postgres => 500,
        };
        let mut tx = self.begin_write().await?;
        for chunk in agents.chunks(rows) {
            let mut sql = String::from(
                "INSERT INTO agents (name, did, spiffe_id, sponsor, sponsor_did, parent_did, capabilities, \
                 status, status_reason, created_at, updated_at, expires_at, key_custody, sponsorship) VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push('(');
                for c in 0..COLUMNS {
                    if c > 0 {
                        sql.push(',');
                    }
                    sql.push_str(&format!("${}", i * COLUMNS + c + 1));
                }
                sql.push(')');
            }
            // Only generated placeholders: no input in the text.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for a in chunk {
                let sponsorship = serde_json::to_string(&a.sponsorship)
                    .map_err(|e| corrupt("sponsorship attestation", e))?;
                q = q
                    .bind(a.name.clone())
                    .bind(did_text(&a.did))
                    .bind(a.spiffe_id.as_str().to_owned())
                    .bind(a.sponsor.clone())
                    .bind(did_text(&a.sponsor_did))
                    .bind(a.parent_did.as_ref().map(did_text))
                    .bind(caps_json(&a.capabilities))
                    .bind(status_text(a.status))
                    .bind(a.status_reason.clone())
                    .bind(a.created_at as i64)
                    .bind(a.updated_at as i64)
                    .bind(a.expires_at.map(|e| e as i64))
                    .bind(match a.key_custody {
                        KeyCustody::Home => "home",
                        KeyCustody::External => "external",
                    })
                    .bind(sponsorship);
            }
            match q.execute(&mut *tx).await {
                Ok(_) => {}
                Err(e) if unique_violation(&e) => {
                    drop(tx);
                    let mut taken = None;
                    for a in chunk {
                        if self.agent_by_name(&a.name).await?.is_some()
                            || self.agent_by_did(&a.did).await?.is_some()
                        {
                            taken = Some(a.name.clone());
                            break;
                        }
                    }
                    return Err(StoreError::Duplicate {
                        what: "agent (name or DID, possibly twice in the batch)",
                        key: taken.unwrap_or_else(|| "in the batch".into()),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        let now = agents.iter().map(|a| a.created_at).max().unwrap_or(0);
        sqlx::query("INSERT INTO changes (kind, subject, at) VALUES ('agent', $1, $2)")
            .bind(format!("{} agents", agents.len()))
            .bind(db_ts(now))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

fn agent_insert<'q>(
    a: &'q AgentRecord,
    sponsorship: &'q str,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    sqlx::query(
        "INSERT INTO agents (name, did, spiffe_id, sponsor, sponsor_did, parent_did, capabilities, \
         status, status_reason, created_at, updated_at, expires_at, key_custody, sponsorship) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&a.name)
    .bind(did_text(&a.did))
    .bind(a.spiffe_id.as_str())
    .bind(&a.sponsor)
    .bind(did_text(&a.sponsor_did))
    .bind(a.parent_did.as_ref().map(did_text))
    .bind(caps_json(&a.capabilities))
    .bind(status_text(a.status))
    .bind(a.status_reason.as_deref())
    .bind(a.created_at as i64)
    .bind(a.updated_at as i64)
    .bind(a.expires_at.map(|e| e as i64))
    .bind(match a.key_custody {
        KeyCustody::Home => "home",
        KeyCustody::External => "external",
    })
    .bind(sponsorship)
}

/// For tests: creates a fresh schema in the PostgreSQL database at `base`
/// and returns a URL whose connections use it, so test runs never share
/// tables. (The name is generated here — digits and underscores — never
/// taken from input.)
pub async fn postgres_test_schema(base: &str) -> Result<String, StoreError> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let schema = format!(
        "am_test_{}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    sqlx::any::install_default_drivers();
    let admin = AnyPool::connect(base).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await?;
    admin.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    Ok(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}

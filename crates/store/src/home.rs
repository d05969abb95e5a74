//! The mesh home: a directory with the mesh authority key, `config.toml`,
//! private keys and the registry database.
//!
//! ```text
//! <home>/                 0700
//!   config.toml           trust domain, mesh DID, defaults
//!   mesh.key              mesh authority key (PKCS#8 PEM, 0600)
//!   registry.db           embedded registry (SQLite, WAL)
//!   keys/sponsors/<email>.key
//!   keys/agents/<name>.key
//! ```

use crate::{SqliteRegistry, StoreError};
use agentmesh_identity::{Did, KeyPair, SpiffeId};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the mesh home lives when neither `--home` nor `AGENTMESH_HOME` says.
pub const DEFAULT_HOME: &str = ".agentmesh";
const CONFIG_FILE: &str = "config.toml";
const MESH_KEY_FILE: &str = "mesh.key";
const REGISTRY_FILE: &str = "registry.db";
/// A PEM Ed25519 key is ~120 bytes; anything far larger is not a key.
const MAX_KEY_FILE: u64 = 16 * 1024;

/// `config.toml`. Unknown keys are an error, so a typo never silently
/// leaves a default in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshConfig {
    /// SPIFFE trust domain of this mesh, e.g. `example.org`.
    pub trust_domain: String,
    /// DID of the mesh authority key (`mesh.key`).
    pub mesh_did: Did,
    /// Unix seconds.
    pub created_at: u64,
    #[serde(default)]
    pub defaults: Defaults,
}

/// Defaults for commands that take no explicit value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// Lifetime of a delegation token when `--ttl` is not given, in seconds.
    pub delegation_ttl_secs: u64,
    /// Further delegations a root link allows when `--max-depth` is not given.
    pub delegation_max_depth: u8,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            delegation_ttl_secs: 3600,
            delegation_max_depth: 3,
        }
    }
}

/// Whose private key a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind<'a> {
    Mesh,
    Sponsor(&'a str),
    Agent(&'a str),
}

/// An opened mesh home.
#[derive(Debug, Clone)]
pub struct MeshHome {
    root: PathBuf,
    config: MeshConfig,
}

impl MeshHome {
    /// Creates a new mesh home: directories, the mesh authority key, config
    /// and an empty registry. Refuses to touch an existing home.
    pub async fn init(root: &Path, trust_domain: &str, now: u64) -> Result<Self, StoreError> {
        SpiffeId::validate_trust_domain(trust_domain).map_err(|e| StoreError::Config {
            path: root.join(CONFIG_FILE),
            message: e.to_string(),
        })?;
        if root.join(CONFIG_FILE).exists() {
            return Err(StoreError::HomeExists(root.to_owned()));
        }
        create_private_dir(root)?;
        create_private_dir(&root.join("keys"))?;
        create_private_dir(&root.join("keys/sponsors"))?;
        create_private_dir(&root.join("keys/agents"))?;
        let mesh_key = KeyPair::generate().map_err(|e| StoreError::file(root, e))?;
        let config = MeshConfig {
            trust_domain: trust_domain.to_owned(),
            mesh_did: mesh_key.did(),
            created_at: now,
            defaults: Defaults::default(),
        };
        let home = Self {
            root: root.to_owned(),
            config,
        };
        home.write_key(KeyKind::Mesh, &mesh_key)?;
        // The registry before the config: a home without config.toml is not
        // a home yet, so a crash here leaves something `init` can redo.
        let registry = home.registry().await?;
        registry.close().await;
        let text = toml::to_string_pretty(&home.config).map_err(|e| StoreError::Config {
            path: root.join(CONFIG_FILE),
            message: e.to_string(),
        })?;
        write_new_file(&root.join(CONFIG_FILE), text.as_bytes(), 0o644)?;
        Ok(home)
    }

    /// Opens an existing mesh home and validates its config.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let path = root.join(CONFIG_FILE);
        if !path.exists() {
            return Err(StoreError::NoHome(root.to_owned()));
        }
        let text = read_limited(&path, 64 * 1024)?;
        let config: MeshConfig = toml::from_str(&text).map_err(|e| StoreError::Config {
            path: path.clone(),
            message: e.to_string(),
        })?;
        SpiffeId::validate_trust_domain(&config.trust_domain).map_err(|e| StoreError::Config {
            path,
            message: e.to_string(),
        })?;
        Ok(Self {
            root: root.to_owned(),
            config,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config(&self) -> &MeshConfig {
        &self.config
    }

    /// Opens the embedded registry.
    pub async fn registry(&self) -> Result<SqliteRegistry, StoreError> {
        SqliteRegistry::open(&self.root.join(REGISTRY_FILE)).await
    }

    pub fn registry_path(&self) -> PathBuf {
        self.root.join(REGISTRY_FILE)
    }

    /// Directory of this mesh's audit log.
    pub fn audit_dir(&self) -> PathBuf {
        self.root.join("audit")
    }

    /// Origin (and checkpoint key name) of this mesh's audit log.
    pub fn audit_origin(&self) -> String {
        format!("{}/agentmesh/audit", self.config.trust_domain)
    }

    /// Path of a private key file.
    pub fn key_path(&self, kind: KeyKind<'_>) -> PathBuf {
        match kind {
            KeyKind::Mesh => self.root.join(MESH_KEY_FILE),
            KeyKind::Sponsor(email) => self.root.join("keys/sponsors").join(format!("{email}.key")),
            KeyKind::Agent(name) => self.root.join("keys/agents").join(format!("{name}.key")),
        }
    }

    /// Writes a new private key file with mode 0600. Never overwrites.
    pub fn write_key(&self, kind: KeyKind<'_>, key: &KeyPair) -> Result<PathBuf, StoreError> {
        let path = self.key_path(kind);
        let pem = key.to_pkcs8_pem().map_err(|e| StoreError::file(&path, e))?;
        write_new_file(&path, pem.as_bytes(), 0o600)?;
        Ok(path)
    }

    /// Reads a private key, refusing files that group or others can read.
    pub fn read_key(&self, kind: KeyKind<'_>) -> Result<KeyPair, StoreError> {
        read_private_key(&self.key_path(kind))
    }

    /// Removes a key file (used to undo a failed registration).
    pub fn remove_key(&self, kind: KeyKind<'_>) -> Result<(), StoreError> {
        let path = self.key_path(kind);
        fs::remove_file(&path).map_err(|e| StoreError::file(&path, e))
    }

    /// The mesh authority key.
    pub fn mesh_key(&self) -> Result<KeyPair, StoreError> {
        self.read_key(KeyKind::Mesh)
    }
}

/// Reads a PKCS#8 PEM private key from `path`, refusing one whose mode lets
/// group or others read it.
pub fn read_private_key(path: &Path) -> Result<KeyPair, StoreError> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StoreError::KeyMissing(path.to_owned()));
        }
        Err(e) => return Err(StoreError::file(path, e)),
    };
    if !meta.is_file() {
        return Err(StoreError::file(path, "not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(StoreError::KeyPermissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    let text = zeroize::Zeroizing::new(read_limited(path, MAX_KEY_FILE)?);
    KeyPair::from_pkcs8_pem(&text).map_err(|e| StoreError::file(path, e))
}

fn read_limited(path: &Path, limit: u64) -> Result<String, StoreError> {
    let meta = fs::metadata(path).map_err(|e| StoreError::file(path, e))?;
    if meta.len() > limit {
        return Err(StoreError::file(
            path,
            format!("file is {} bytes; the limit is {limit}", meta.len()),
        ));
    }
    fs::read_to_string(path).map_err(|e| StoreError::file(path, e))
}

fn create_private_dir(path: &Path) -> Result<(), StoreError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path).map_err(|e| StoreError::file(path, e))
}

/// Creates `path` (failing if it exists) with `mode`, writes and fsyncs it.
fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = opts.open(path).map_err(|e| StoreError::file(path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| StoreError::file(path, e))
}

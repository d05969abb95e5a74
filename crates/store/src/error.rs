use std::path::PathBuf;

/// Everything the store can report. Messages say what to do next.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} `{key}` already exists")]
    Duplicate { what: &'static str, key: String },
    #[error("no {what} `{key}`")]
    NotFound { what: &'static str, key: String },
    #[error("{0}")]
    Conflict(String),
    #[error("no mesh home at {0}: run `agentmesh init` (or set AGENTMESH_HOME / --home)")]
    NoHome(PathBuf),
    #[error("a mesh home already exists at {0}")]
    HomeExists(PathBuf),
    #[error(
        "refusing to read private key {path}: it is readable by group or others (mode {mode:o}); run `chmod 600 {path}`"
    )]
    KeyPermissions { path: PathBuf, mode: u32 },
    #[error("private key {0} is missing; this identity's key is not held in this mesh home")]
    KeyMissing(PathBuf),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("config {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    pub(crate) fn file(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        StoreError::File {
            path: path.to_owned(),
            message: e.to_string(),
        }
    }
}

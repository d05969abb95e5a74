//! The durable log: append-only segment files, group commit, derived index
//! and tree files, crash recovery.
//!
//! ```text
//! <dir>/segments/<first index, 20 digits>.seg   records (source of truth)
//! <dir>/index.bin                               u64 BE record offset per entry (derived)
//! <dir>/tree/L00.bin … L63.bin                  complete subtree roots per level (derived)
//! <dir>/state.json                              size up to which derived files are durable
//! <dir>/checkpoints/<size>.note, latest.note    signed checkpoints
//! ```
//!
//! A record is `magic 0xA7 0x4D ‖ seq u64 ‖ len u32 ‖ entry ‖ leaf hash`.
//! Appends are queued in sequence order; one writer thread writes each batch
//! with a single `write` and `fdatasync` of the segment, and only then
//! completes the batch's tickets: an acknowledged entry is on disk. Derived
//! files are written without syncing and made durable every second (or
//! 65,536 entries) before `state.json` records the size they cover; on open,
//! records after that size are replayed, a torn tail (an unacknowledged,
//! partly written batch) is truncated, and damage anywhere else is an error
//! naming the first bad index.

use crate::entry::{Draft, Entry, MAX_ENTRY_BYTES, rfc3339_millis};
use crate::note::{Checkpoint, NoteSigner, NoteVerifier, verify_checkpoint};
use crate::tree::{self, Frontier, Hash, NodeSource, ProofError, leaf_hash};
use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub(crate) const MAGIC: [u8; 2] = [0xA7, 0x4D];
pub(crate) const HEADER: usize = 2 + 8 + 4;

/// Everything the log can report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("audit log I/O error on {path}: {message}")]
    Io { path: String, message: String },
    #[error("audit log is damaged at index {index}: {reason}")]
    Corrupt { index: u64, reason: String },
    #[error("entry {index} does not exist (the log holds {size})")]
    NoSuchEntry { index: u64, size: u64 },
    #[error("entry is {0} bytes encoded; the limit is {MAX_ENTRY_BYTES}")]
    EntryTooLarge(usize),
    #[error("the audit writer stopped: {0}; no further appends are accepted")]
    WriterFailed(String),
    #[error("the audit log is closed (or opened read-only)")]
    Closed,
    #[error(
        "the audit log in {0} is in use; one process writes a mesh home's audit log: give this one its own home (--home), or stop the other"
    )]
    Locked(String),
    #[error("proof: {0}")]
    Proof(#[from] ProofError),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
}

fn io(path: &Path, e: impl std::fmt::Display) -> AuditError {
    AuditError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Tuning knobs; the defaults suit a single node.
#[derive(Debug, Clone)]
pub struct Options {
    /// Start a new segment once the current one reaches this size.
    pub segment_bytes: u64,
    /// Queued appends before `append` blocks (back-pressure).
    pub queue: usize,
    /// Most entries written (and synced) together.
    pub max_batch: usize,
    /// How often derived files are made durable and `state.json` updated.
    pub state_every: Duration,
    pub state_every_entries: u64,
    /// Tiles (256 hashes, 8 KiB each) of tree nodes kept in memory.
    pub cache_tiles: usize,
    /// `false` skips fsync entirely: only for benchmarks of the in-memory
    /// path and for tests that build huge logs. Never in production.
    pub durable: bool,
    /// How long the writer waits for more entries before committing a
    /// small batch. Under a steady trickle (a gateway at a few thousand
    /// calls/s) this turns one fsync per entry into one per batch; each
    /// entry becomes durable at most this much later.
    pub linger: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            segment_bytes: 64 << 20,
            queue: 65_536,
            max_batch: 8192,
            state_every: Duration::from_secs(1),
            state_every_entries: 65_536,
            cache_tiles: 1024,
            durable: true,
            linger: Duration::ZERO,
        }
    }
}

/// The result of a durable append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub index: u64,
    pub leaf_hash: Hash,
}

#[derive(Debug, Default)]
struct CompletionState {
    result: Option<Result<(), String>>,
    waker: Option<Waker>,
}

#[derive(Debug, Default)]
struct Completion {
    state: Mutex<CompletionState>,
    cv: Condvar,
}

impl Completion {
    fn finish(&self, r: Result<(), String>) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.result = Some(r);
        if let Some(w) = s.waker.take() {
            w.wake();
        }
        self.cv.notify_all();
    }
}

/// A queued append. Its index and leaf hash are known at once; `wait()`
/// (or `.await`) returns when the entry is durable.
#[derive(Debug)]
pub struct Ticket {
    pub index: u64,
    pub leaf_hash: Hash,
    done: Arc<Completion>,
}

impl Ticket {
    /// Blocks until the entry is on disk (or the writer failed).
    pub fn wait(self) -> Result<Appended, AuditError> {
        let mut s = self.done.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(r) = s.result.take() {
                return r
                    .map(|()| Appended {
                        index: self.index,
                        leaf_hash: self.leaf_hash,
                    })
                    .map_err(AuditError::WriterFailed);
            }
            s = self.done.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl std::future::Future for Ticket {
    type Output = Result<Appended, AuditError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.done.state.lock().unwrap_or_else(|p| p.into_inner());
        match s.result.take() {
            Some(r) => Poll::Ready(
                r.map(|()| Appended {
                    index: self.index,
                    leaf_hash: self.leaf_hash,
                })
                .map_err(AuditError::WriterFailed),
            ),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

struct Pending {
    seq: u64,
    work: Work,
    done: Arc<Completion>,
}

/// A builder of an entry's draft, run on the writer thread.
type BuildDraft = Box<dyn FnOnce() -> Draft + Send>;

/// An entry ready to write, or one the writer thread still has to build,
/// encode and hash (so the appender does not pay for hashing).
enum Work {
    Ready { bytes: Vec<u8>, leaf: Hash },
    Deferred { time: String, build: BuildDraft },
}

impl Work {
    /// Encodes and hashes a deferred entry. An entry over the size limit is
    /// still recorded, with its detail replaced by a note saying so, so the
    /// event is never lost; a builder that panics is recorded the same way.
    fn materialize(self, seq: u64) -> (Vec<u8>, Hash) {
        match self {
            Work::Ready { bytes, leaf } => (bytes, leaf),
            Work::Deferred { time, build } => {
                let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(build));
                let mut entry = Entry {
                    seq,
                    time,
                    draft: built.unwrap_or_else(|_| Draft {
                        event: crate::Event::AuditError.into(),
                        detail: serde_json::json!({"error": "the entry builder panicked"}),
                        ..Draft::default()
                    }),
                };
                let mut bytes = entry.to_bytes();
                if bytes.len() > MAX_ENTRY_BYTES {
                    entry.draft.detail = serde_json::json!({
                        "error": "entry too large; detail dropped",
                        "encoded_bytes": bytes.len(),
                    });
                    bytes = entry.to_bytes();
                }
                let leaf = leaf_hash(&bytes);
                (bytes, leaf)
            }
        }
    }
}

/// A deferred append: its index is known at once; `wait()` (or `.await`)
/// returns when the entry is durable.
#[derive(Debug)]
pub struct Queued {
    pub index: u64,
    done: Arc<Completion>,
}

impl Queued {
    /// Blocks until the entry is on disk (or the writer failed).
    pub fn wait(self) -> Result<u64, AuditError> {
        let mut s = self.done.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(r) = s.result.take() {
                return r.map(|()| self.index).map_err(AuditError::WriterFailed);
            }
            s = self.done.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl std::future::Future for Queued {
    type Output = Result<u64, AuditError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.done.state.lock().unwrap_or_else(|p| p.into_inner());
        match s.result.take() {
            Some(r) => Poll::Ready(r.map(|()| self.index).map_err(AuditError::WriterFailed)),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// State shared by appenders, the writer and readers.
struct Shared {
    dir: PathBuf,
    durable: AtomicU64,
    fatal: Mutex<Option<String>>,
    segments: RwLock<Vec<u64>>,
    nodes: Nodes,
}

/// A stored entry with its bytes and leaf hash.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEntry {
    pub index: u64,
    pub entry: Entry,
    pub bytes: Vec<u8>,
    pub leaf_hash: Hash,
}

/// The audit log of one node.
pub struct AuditLog {
    shared: Arc<Shared>,
    sender: Mutex<Option<(u64, SyncSender<Pending>)>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Held by the one process that may write (`open`).
    _lock: Option<File>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("dir", &self.shared.dir)
            .field("size", &self.size())
            .finish()
    }
}

fn create_dirs(dir: &Path) -> Result<(), AuditError> {
    for d in [
        dir.to_path_buf(),
        dir.join("segments"),
        dir.join("tree"),
        dir.join("checkpoints"),
    ] {
        fs::create_dir_all(&d).map_err(|e| io(&d, e))?;
    }
    Ok(())
}

/// Takes the writer lock (`<dir>/LOCK`, an OS file lock released when the
/// process exits, even by SIGKILL). `None` when another process holds it.
fn take_lock(dir: &Path) -> Result<Option<File>, AuditError> {
    let p = dir.join("LOCK");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| io(&p, e))?;
    match f.try_lock() {
        Ok(()) => {
            // Who holds it, for the error another process will show. Best
            // effort: the lock is what matters, not this note.
            let holder = format!(
                "process {} ({})",
                std::process::id(),
                std::env::args().collect::<Vec<_>>().join(" ")
            );
            let mut g = &f;
            if g.set_len(0).is_ok() {
                use std::io::Write;
                let _ = g.write_all(holder.as_bytes());
            }
            Ok(Some(f))
        }
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(io(&p, e)),
    }
}

/// The holder a locked log's `LOCK` file names (see [`take_lock`]).
fn lock_holder(dir: &Path) -> String {
    match std::fs::read_to_string(dir.join("LOCK")) {
        Ok(h) if !h.trim().is_empty() => h.chars().take(300).collect(),
        _ => "another process".into(),
    }
}

fn seg_name(first: u64) -> String {
    format!("{first:020}.seg")
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

impl AuditLog {
    /// Opens (creating if needed) the log in `dir`, recovering from a crash.
    pub fn open(dir: &Path, opts: Options) -> Result<Self, AuditError> {
        create_dirs(dir)?;
        let lock = take_lock(dir)?.ok_or_else(|| {
            AuditError::Locked(format!("{} (held by {})", dir.display(), lock_holder(dir)))
        })?;
        let nodes = Nodes::new(dir.join("tree"), opts.cache_tiles);
        let rec = recover(dir, &nodes, opts.durable)?;
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            durable: AtomicU64::new(rec.size),
            fatal: Mutex::new(None),
            segments: RwLock::new(rec.segments.clone()),
            nodes,
        });
        let (tx, rx) = mpsc::sync_channel(opts.queue.max(1));
        let writer = Writer::new(shared.clone(), rec, opts)?;
        let handle = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| io(dir, e))?;
        let size = shared.durable.load(Ordering::Acquire);
        Ok(Self {
            shared,
            sender: Mutex::new(Some((size, tx))),
            writer: Mutex::new(Some(handle)),
            _lock: Some(lock),
        })
    }

    /// Opens the log for reading only. When no writer holds the log, it is
    /// recovered first (as `open` would) and read in full; while a writer
    /// holds it, this reads the consistent prefix recorded in `state.json`
    /// (at most about a second behind). Never blocks a writer.
    pub fn open_read_only(dir: &Path) -> Result<Self, AuditError> {
        if !dir.join("segments").is_dir() {
            return Err(AuditError::Io {
                path: dir.display().to_string(),
                message: "no audit log here".into(),
            });
        }
        let nodes = Nodes::new(dir.join("tree"), 256);
        let (size, segments) = match take_lock(dir)? {
            Some(lock) => {
                let rec = recover(dir, &nodes, true)?;
                drop(lock);
                (rec.size, rec.segments)
            }
            None => {
                let st = read_state(dir).ok_or_else(|| AuditError::Io {
                    path: dir.join("state.json").display().to_string(),
                    message: "missing while another process writes the log".into(),
                })?;
                nodes.size.store(st.size, Ordering::Release);
                (st.size, list_segments(dir)?)
            }
        };
        Ok(Self {
            shared: Arc::new(Shared {
                dir: dir.to_owned(),
                durable: AtomicU64::new(size),
                fatal: Mutex::new(None),
                segments: RwLock::new(segments),
                nodes,
            }),
            sender: Mutex::new(None),
            writer: Mutex::new(None),
            _lock: None,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Why the writer stopped for good, if it did (then every append
    /// fails: a process that needs its records is not ready).
    pub fn failure(&self) -> Option<String> {
        self.shared
            .fatal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Queues an entry. Returns at once with its index and leaf hash; the
    /// ticket completes when the entry is durable. Blocks only when the
    /// queue is full (the disk cannot keep up).
    pub fn append(&self, draft: Draft) -> Result<Ticket, AuditError> {
        if let Some(f) = self
            .shared
            .fatal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Err(AuditError::WriterFailed(f));
        }
        let mut guard = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        let (next, tx) = guard.as_mut().ok_or(AuditError::Closed)?;
        let entry = Entry {
            seq: *next,
            time: rfc3339_millis(now_ns()),
            draft,
        };
        let bytes = entry.to_bytes();
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(AuditError::EntryTooLarge(bytes.len()));
        }
        let leaf = leaf_hash(&bytes);
        let done = Arc::new(Completion::default());
        tx.send(Pending {
            seq: *next,
            work: Work::Ready { bytes, leaf },
            done: done.clone(),
        })
        .map_err(|_| self.writer_gone())?;
        let index = *next;
        *next += 1;
        Ok(Ticket {
            index,
            leaf_hash: leaf,
            done,
        })
    }

    /// Queues an entry whose draft is built, encoded and hashed on the
    /// writer thread: the caller pays for a channel send only. The entry's
    /// time is taken now; its index is known at once. For hot paths (the
    /// gateway's decision leaves), where hashing ~1 KB of arguments on the
    /// caller's thread would dominate.
    pub fn append_deferred(
        &self,
        build: impl FnOnce() -> Draft + Send + 'static,
    ) -> Result<Queued, AuditError> {
        if let Some(f) = self
            .shared
            .fatal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Err(AuditError::WriterFailed(f));
        }
        let time = rfc3339_millis(now_ns());
        let mut guard = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        let (next, tx) = guard.as_mut().ok_or(AuditError::Closed)?;
        let done = Arc::new(Completion::default());
        tx.send(Pending {
            seq: *next,
            work: Work::Deferred {
                time,
                build: Box::new(build),
            },
            done: done.clone(),
        })
        .map_err(|_| self.writer_gone())?;
        let index = *next;
        *next += 1;
        Ok(Queued { index, done })
    }

    fn writer_gone(&self) -> AuditError {
        let f = self
            .shared
            .fatal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        AuditError::WriterFailed(f.unwrap_or_else(|| "writer exited".into()))
    }

    /// Appends and waits until durable.
    pub fn append_wait(&self, draft: Draft) -> Result<Appended, AuditError> {
        self.append(draft)?.wait()
    }

    /// Number of durable entries.
    pub fn size(&self) -> u64 {
        self.shared.durable.load(Ordering::Acquire)
    }

    /// Reads entry `index`, checking its stored hash.
    pub fn entry(&self, index: u64) -> Result<StoredEntry, AuditError> {
        let size = self.size();
        if index >= size {
            return Err(AuditError::NoSuchEntry { index, size });
        }
        let idx_path = self.shared.dir.join("index.bin");
        let idx = File::open(&idx_path).map_err(|e| io(&idx_path, e))?;
        let mut off = [0u8; 8];
        idx.read_exact_at(&mut off, index * 8)
            .map_err(|e| io(&idx_path, e))?;
        let offset = u64::from_be_bytes(off);
        let first = {
            let segs = self
                .shared
                .segments
                .read()
                .unwrap_or_else(|p| p.into_inner());
            let pos = segs.partition_point(|f| *f <= index);
            segs.get(pos.wrapping_sub(1)).copied().unwrap_or(0)
        };
        let path = self.shared.dir.join("segments").join(seg_name(first));
        let f = File::open(&path).map_err(|e| io(&path, e))?;
        let mut header = [0u8; HEADER];
        f.read_exact_at(&mut header, offset)
            .map_err(|e| io(&path, e))?;
        let (seq, len) = parse_header(&header).ok_or_else(|| AuditError::Corrupt {
            index,
            reason: "record header is damaged".into(),
        })?;
        if seq != index || len > MAX_ENTRY_BYTES {
            return Err(AuditError::Corrupt {
                index,
                reason: format!("record holds sequence number {seq}"),
            });
        }
        let mut body = vec![0u8; len + 32];
        f.read_exact_at(&mut body, offset + HEADER as u64)
            .map_err(|e| io(&path, e))?;
        let bytes = body[..len].to_vec();
        let mut stored = [0u8; 32];
        stored.copy_from_slice(&body[len..]);
        if leaf_hash(&bytes) != stored {
            return Err(AuditError::Corrupt {
                index,
                reason: "entry bytes do not match their leaf hash".into(),
            });
        }
        let entry = Entry::from_bytes(&bytes).map_err(|e| AuditError::Corrupt {
            index,
            reason: e.to_string(),
        })?;
        Ok(StoredEntry {
            index,
            entry,
            bytes,
            leaf_hash: stored,
        })
    }

    /// Reads entries `from..to` in order, sequentially through the segment
    /// files (much faster than `entry` one by one), checking each record's
    /// hash. `f` returns `false` to stop early.
    pub fn scan(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &Entry) -> bool,
    ) -> Result<(), AuditError> {
        let to = to.min(self.size());
        if from >= to {
            return Ok(());
        }
        let segs = self
            .shared
            .segments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let idx_path = self.shared.dir.join("index.bin");
        let idx = File::open(&idx_path).map_err(|e| io(&idx_path, e))?;
        let mut off = [0u8; 8];
        idx.read_exact_at(&mut off, from * 8)
            .map_err(|e| io(&idx_path, e))?;
        let mut offset = u64::from_be_bytes(off);
        let mut seq = from;
        let start = segs.partition_point(|s| *s <= from).saturating_sub(1);
        let mut header = [0u8; HEADER];
        let mut body = Vec::with_capacity(4096);
        for &first in &segs[start..] {
            if seq >= to {
                break;
            }
            let path = self.shared.dir.join("segments").join(seg_name(first));
            let mut file = File::open(&path).map_err(|e| io(&path, e))?;
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(offset))
                .map_err(|e| io(&path, e))?;
            let mut r = std::io::BufReader::with_capacity(1 << 20, file);
            while seq < to {
                match r.read_exact(&mut header) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(io(&path, e)),
                }
                let (got, len) = parse_header(&header).ok_or_else(|| AuditError::Corrupt {
                    index: seq,
                    reason: "record header is damaged".into(),
                })?;
                if got != seq || len > MAX_ENTRY_BYTES {
                    return Err(AuditError::Corrupt {
                        index: seq,
                        reason: format!("record holds sequence number {got}"),
                    });
                }
                body.resize(len + 32, 0);
                r.read_exact(&mut body).map_err(|e| io(&path, e))?;
                if leaf_hash(&body[..len]) != body[len..] {
                    return Err(AuditError::Corrupt {
                        index: seq,
                        reason: "entry bytes do not match their leaf hash".into(),
                    });
                }
                let entry = Entry::from_bytes(&body[..len]).map_err(|e| AuditError::Corrupt {
                    index: seq,
                    reason: e.to_string(),
                })?;
                if !f(seq, &entry) {
                    return Ok(());
                }
                seq += 1;
            }
            offset = 0;
        }
        Ok(())
    }

    fn check_size(&self, size: u64) -> Result<(), AuditError> {
        let durable = self.size();
        if size > durable {
            return Err(AuditError::Proof(ProofError::BadSizes {
                old: size,
                new: durable,
            }));
        }
        Ok(())
    }

    /// Root of the first `size` entries.
    pub fn root(&self, size: u64) -> Result<Hash, AuditError> {
        self.check_size(size)?;
        Ok(tree::root(&self.shared.nodes, size)?)
    }

    /// Inclusion proof of entry `index` in the tree of `size` entries.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, AuditError> {
        self.check_size(size)?;
        Ok(tree::inclusion_proof(&self.shared.nodes, index, size)?)
    }

    /// Consistency proof between sizes `old` and `new`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, AuditError> {
        self.check_size(new)?;
        Ok(tree::consistency_proof(&self.shared.nodes, old, new)?)
    }

    /// The latest stored checkpoint note, if any.
    pub fn latest_checkpoint(&self) -> Result<Option<String>, AuditError> {
        let p = self.shared.dir.join("checkpoints/latest.note");
        match fs::read_to_string(&p) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&p, e)),
        }
    }

    /// Signs a checkpoint of the current size, after proving it consistent
    /// with the previous checkpoint, and stores it. Returns the note.
    pub fn checkpoint(&self, signer: &NoteSigner) -> Result<String, AuditError> {
        let size = self.size();
        let root = self.root(size)?;
        let verifier: NoteVerifier = signer.verifier();
        if let Some(prev) = self.latest_checkpoint()? {
            let old = verify_checkpoint(&prev, &verifier)
                .map_err(|e| AuditError::Checkpoint(e.to_string()))?;
            if old.size > size {
                return Err(AuditError::Checkpoint(format!(
                    "the log holds {size} entries but the last checkpoint says {}: entries were lost",
                    old.size
                )));
            }
            if old.size == size && old.root == root {
                return Ok(prev);
            }
            if old.size > 0 {
                let proof = self.consistency_proof(old.size, size)?;
                tree::verify_consistency(old.size, size, &proof, &old.root, &root).map_err(
                    |e| {
                        AuditError::Checkpoint(format!(
                            "the log is not consistent with checkpoint {}: {e}",
                            old.size
                        ))
                    },
                )?;
            }
        }
        let note = Checkpoint {
            origin: verifier.name.clone(),
            size,
            root,
        }
        .sign(signer)
        .map_err(|e| AuditError::Checkpoint(e.to_string()))?;
        let dir = self.shared.dir.join("checkpoints");
        write_atomic(&dir.join(format!("{size:020}.note")), note.as_bytes())?;
        write_atomic(&dir.join("latest.note"), note.as_bytes())?;
        Ok(note)
    }

    /// Stops accepting appends, writes everything queued, makes derived
    /// files durable and joins the writer.
    pub fn close(&self) -> Result<(), AuditError> {
        self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
        match self
            .shared
            .fatal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            Some(f) => Err(AuditError::WriterFailed(f)),
            None => Ok(()),
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

pub(crate) fn parse_header(h: &[u8]) -> Option<(u64, usize)> {
    if h.len() < HEADER || h[..2] != MAGIC {
        return None;
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&h[2..10]);
    let mut len = [0u8; 4];
    len.copy_from_slice(&h[10..14]);
    Some((u64::from_be_bytes(seq), u32::from_be_bytes(len) as usize))
}

pub(crate) fn encode_record(seq: u64, bytes: &[u8], leaf: &Hash, out: &mut Vec<u8>) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
    out.extend_from_slice(leaf);
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AuditError> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| io(&tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

// ------------------------------------------------------------ tree nodes

const TILE: u64 = 256;

/// Complete subtree roots read from the level files, with a bounded cache
/// of complete 256-node tiles.
struct Nodes {
    dir: PathBuf,
    files: Mutex<HashMap<u32, Arc<File>>>,
    cache: Mutex<TileCache>,
    /// Roots of incomplete right-edge ranges (immutable once they exist).
    ranges: Mutex<HashMap<(u64, u64), Hash>>,
    /// Durable tree size, for deciding which tiles are complete.
    size: AtomicU64,
}

struct TileCache {
    cap: usize,
    map: HashMap<(u32, u64), Arc<Vec<Hash>>>,
    order: VecDeque<(u32, u64)>,
}

impl Nodes {
    fn new(dir: PathBuf, cap: usize) -> Self {
        Self {
            dir,
            files: Mutex::new(HashMap::new()),
            cache: Mutex::new(TileCache {
                cap: cap.max(1),
                map: HashMap::new(),
                order: VecDeque::new(),
            }),
            ranges: Mutex::new(HashMap::new()),
            size: AtomicU64::new(0),
        }
    }

    fn path(&self, level: u32) -> PathBuf {
        self.dir.join(format!("L{level:02}.bin"))
    }

    fn file(&self, level: u32) -> Result<Arc<File>, ProofError> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = files.get(&level) {
            return Ok(f.clone());
        }
        let p = self.path(level);
        let f = Arc::new(
            File::open(&p).map_err(|e| ProofError::Storage(format!("{}: {e}", p.display())))?,
        );
        files.insert(level, f.clone());
        Ok(f)
    }

    fn forget_files(&self) {
        self.files.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        c.map.clear();
        c.order.clear();
        self.ranges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

impl NodeSource for Nodes {
    fn node(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        let tile = index / TILE;
        let slot = (index % TILE) as usize;
        if let Some(t) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .get(&(level, tile))
            && slot < t.len()
        {
            return Ok(t[slot]);
        }
        // Read the tile as far as nodes exist now. Nodes never change once
        // written, so a partial tile stays correct for the nodes it holds; a
        // request beyond them reads the tile again.
        let existing = if level >= 64 {
            0
        } else {
            self.size.load(Ordering::Acquire) >> level
        };
        if index >= existing {
            return Err(ProofError::Storage(format!(
                "node ({level}, {index}) does not exist yet"
            )));
        }
        let count = (existing - tile * TILE).min(TILE) as usize;
        let f = self.file(level)?;
        if level < 8 && count == TILE as usize {
            // Low levels of a large tree hold millions of tiles; proofs for
            // random old entries would only churn the cache. Read the one
            // node. (Recent entries, the usual case, sit in partial tiles at
            // the right edge, which are cached below.)
            let mut h = [0u8; 32];
            f.read_exact_at(&mut h, index * 32)
                .map_err(|e| ProofError::Storage(format!("node ({level}, {index}): {e}")))?;
            return Ok(h);
        }
        let mut buf = vec![0u8; count * 32];
        f.read_exact_at(&mut buf, tile * TILE * 32)
            .map_err(|e| ProofError::Storage(format!("level {level} tile {tile}: {e}")))?;
        let hashes: Vec<Hash> = buf
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                h
            })
            .collect();
        let h = hashes[slot];
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if c.map.len() >= c.cap
            && !c.map.contains_key(&(level, tile))
            && let Some(old) = c.order.pop_front()
        {
            c.map.remove(&old);
        }
        if c.map.insert((level, tile), Arc::new(hashes)).is_none() {
            c.order.push_back((level, tile));
        }
        Ok(h)
    }

    fn cached_range(&self, start: u64, end: u64) -> Option<Hash> {
        self.ranges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(start, end))
            .copied()
    }

    fn remember_range(&self, start: u64, end: u64, root: &Hash) {
        let mut r = self.ranges.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: a few hundred sizes' worth of right edges.
        if r.len() >= 16_384 {
            r.clear();
        }
        r.insert((start, end), *root);
    }
}

// ------------------------------------------------------------ recovery

struct Recovered {
    size: u64,
    frontier: Frontier,
    segments: Vec<u64>,
    /// Byte length of the last segment (where appends continue).
    tail_len: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct State {
    size: u64,
    /// First index of the segment holding the end of entry `size - 1`.
    segment: u64,
    /// Byte offset in that segment where entry `size` starts.
    offset: u64,
}

fn list_segments(dir: &Path) -> Result<Vec<u64>, AuditError> {
    let sdir = dir.join("segments");
    let mut out = Vec::new();
    for e in fs::read_dir(&sdir).map_err(|e| io(&sdir, e))? {
        let e = e.map_err(|e| io(&sdir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".seg") {
            let first = stem.parse::<u64>().map_err(|_| AuditError::Corrupt {
                index: 0,
                reason: format!("unexpected file segments/{name}"),
            })?;
            out.push(first);
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn read_state(dir: &Path) -> Option<State> {
    let text = fs::read_to_string(dir.join("state.json")).ok()?;
    serde_json::from_str(&text).ok()
}

fn file_len(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn truncate(p: &Path, len: u64) -> Result<(), AuditError> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(p)
        .map_err(|e| io(p, e))?;
    f.set_len(len).map_err(|e| io(p, e))?;
    f.sync_all().map_err(|e| io(p, e))
}

/// Derived-file writers, shared by recovery and the writer thread.
struct Derived {
    index: File,
    index_path: PathBuf,
    levels: Vec<Option<File>>,
    tree_dir: PathBuf,
    index_buf: Vec<u8>,
    level_bufs: Vec<Vec<u8>>,
}

impl Derived {
    fn open(dir: &Path) -> Result<Self, AuditError> {
        let index_path = dir.join("index.bin");
        let index = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&index_path)
            .map_err(|e| io(&index_path, e))?;
        Ok(Self {
            index,
            index_path,
            levels: (0..64).map(|_| None).collect(),
            tree_dir: dir.join("tree"),
            index_buf: Vec::new(),
            level_bufs: vec![Vec::new(); 64],
        })
    }

    fn add(&mut self, frontier: &mut Frontier, offset: u64, leaf: Hash) {
        self.index_buf.extend_from_slice(&offset.to_be_bytes());
        let bufs = &mut self.level_bufs;
        frontier.push(leaf, |level, _, h| {
            bufs[level as usize].extend_from_slice(h)
        });
    }

    fn flush(&mut self) -> Result<(), AuditError> {
        if !self.index_buf.is_empty() {
            self.index
                .write_all(&self.index_buf)
                .map_err(|e| io(&self.index_path, e))?;
            self.index_buf.clear();
        }
        for (level, buf) in self.level_bufs.iter_mut().enumerate() {
            if buf.is_empty() {
                continue;
            }
            if self.levels[level].is_none() {
                let p = self.tree_dir.join(format!("L{level:02}.bin"));
                let f = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&p)
                    .map_err(|e| io(&p, e))?;
                self.levels[level] = Some(f);
            }
            if let Some(f) = self.levels[level].as_mut() {
                f.write_all(buf).map_err(|e| io(&self.tree_dir, e))?;
            }
            buf.clear();
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), AuditError> {
        self.flush()?;
        self.index
            .sync_data()
            .map_err(|e| io(&self.index_path, e))?;
        for f in self.levels.iter().flatten() {
            f.sync_data().map_err(|e| io(&self.tree_dir, e))?;
        }
        Ok(())
    }
}

fn save_state(dir: &Path, st: &State) -> Result<(), AuditError> {
    let text = serde_json::to_string(st).map_err(|e| io(dir, e))?;
    write_atomic(&dir.join("state.json"), text.as_bytes())
}

fn recover(dir: &Path, nodes: &Nodes, durable: bool) -> Result<Recovered, AuditError> {
    let mut segments = list_segments(dir)?;
    if segments.is_empty() {
        let p = dir.join("segments").join(seg_name(0));
        File::create(&p).map_err(|e| io(&p, e))?;
        sync_dir(&dir.join("segments"))?;
        segments.push(0);
    }
    // Trust derived files up to the recorded size only if they are long
    // enough to hold it; otherwise rebuild everything from the segments.
    let mut state = read_state(dir).unwrap_or(State {
        size: 0,
        segment: segments[0],
        offset: 0,
    });
    let derived_ok = file_len(&dir.join("index.bin")) >= state.size * 8
        && (0..64u32).all(|l| {
            let need = (state.size >> l) * 32;
            need == 0 || file_len(&dir.join("tree").join(format!("L{l:02}.bin"))) >= need
        })
        && segments.binary_search(&state.segment).is_ok();
    if !derived_ok {
        state = State {
            size: 0,
            segment: segments[0],
            offset: 0,
        };
    }
    truncate(&dir.join("index.bin"), state.size * 8)?;
    for l in 0..64u32 {
        let p = dir.join("tree").join(format!("L{l:02}.bin"));
        let need = (state.size >> l) * 32;
        if need > 0 || p.exists() {
            truncate(&p, need)?;
        }
    }
    nodes.forget_files();
    nodes.size.store(state.size, Ordering::Release);
    let mut frontier = Frontier::at(nodes, state.size).map_err(|e| AuditError::Corrupt {
        index: state.size,
        reason: format!("cannot rebuild the tree frontier: {e}"),
    })?;

    let mut derived = Derived::open(dir)?;
    let mut expected = state.size;
    let start_pos = segments.binary_search(&state.segment).unwrap_or(0);
    let mut tail_len = 0;
    for (si, &first) in segments.iter().enumerate().skip(start_pos) {
        let path = dir.join("segments").join(seg_name(first));
        let mut data = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut data))
            .map_err(|e| io(&path, e))?;
        if si == start_pos && (data.len() as u64) < state.offset {
            // Bytes that were acknowledged (state.json records them) are
            // gone: count what is left and report the first missing index.
            let mut p = 0usize;
            let mut seq = first;
            while p < data.len() {
                match parse_record(&data[p..], seq) {
                    Ok((len, _)) => {
                        p += len;
                        seq += 1;
                    }
                    Err(_) => break,
                }
            }
            return Err(AuditError::Corrupt {
                index: seq,
                reason: format!(
                    "segment {} is shorter than recorded ({} of {} bytes): acknowledged entries are missing",
                    seg_name(first),
                    data.len(),
                    state.offset
                ),
            });
        }
        let mut pos = if si == start_pos {
            state.offset as usize
        } else {
            0
        };
        if si != start_pos && first != expected {
            return Err(AuditError::Corrupt {
                index: expected,
                reason: format!(
                    "segment {} starts at {first}, expected {expected}",
                    seg_name(first)
                ),
            });
        }
        let last = si + 1 == segments.len();
        while pos < data.len() {
            match parse_record(&data[pos..], expected) {
                Ok((len, leaf)) => {
                    derived.add(&mut frontier, pos as u64, leaf);
                    pos += len;
                    expected += 1;
                    if derived.index_buf.len() >= 1 << 20 {
                        derived.flush()?;
                    }
                }
                Err(reason) => {
                    if !last || later_valid_record(&data[pos + 1..], expected) {
                        return Err(AuditError::Corrupt {
                            index: expected,
                            reason,
                        });
                    }
                    // A signed checkpoint that covers this index proves the
                    // entry was acknowledged: that is damage, not a torn write.
                    if let Some(cp) = latest_checkpoint_size(dir)
                        && cp > expected
                    {
                        return Err(AuditError::Corrupt {
                            index: expected,
                            reason: format!("{reason}; checkpoint {cp} covers this entry"),
                        });
                    }
                    // A torn tail: the last batch was never acknowledged. Keep
                    // the bytes aside (never destroy evidence), then truncate.
                    let aside = dir
                        .join("segments")
                        .join(format!("{}.torn-{pos}", seg_name(first)));
                    fs::write(&aside, &data[pos..]).map_err(|e| io(&aside, e))?;
                    truncate(&path, pos as u64)?;
                    data.truncate(pos);
                    break;
                }
            }
        }
        if last {
            tail_len = data.len() as u64;
            state = State {
                size: expected,
                segment: first,
                offset: data.len() as u64,
            };
        }
    }
    if durable {
        derived.sync()?;
    } else {
        derived.flush()?;
    }
    save_state(dir, &state)?;
    nodes.size.store(expected, Ordering::Release);
    Ok(Recovered {
        size: expected,
        frontier,
        segments,
        tail_len,
    })
}

fn latest_checkpoint_size(dir: &Path) -> Option<u64> {
    let text = fs::read_to_string(dir.join("checkpoints/latest.note")).ok()?;
    crate::note::parse_unverified(&text).ok().map(|c| c.size)
}

/// Parses one record expected to hold `seq`: its total length and leaf.
pub(crate) fn parse_record(data: &[u8], seq: u64) -> Result<(usize, Hash), String> {
    let (got, len) =
        parse_header(data).ok_or_else(|| "record header is damaged or cut short".to_owned())?;
    if got != seq {
        return Err(format!(
            "record holds sequence number {got}, expected {seq}"
        ));
    }
    if len > MAX_ENTRY_BYTES {
        return Err(format!("record length {len} is over the limit"));
    }
    let total = HEADER + len + 32;
    if data.len() < total {
        return Err("record is cut short".to_owned());
    }
    let bytes = &data[HEADER..HEADER + len];
    let mut stored = [0u8; 32];
    stored.copy_from_slice(&data[HEADER + len..total]);
    if leaf_hash(bytes) != stored {
        return Err("entry bytes do not match their leaf hash".to_owned());
    }
    Ok((total, stored))
}

/// True when a complete, valid record with a sequence number ≥ `seq`
/// appears anywhere in `rest`: then the damage is not a torn tail.
fn later_valid_record(rest: &[u8], seq: u64) -> bool {
    let mut i = 0;
    while i + HEADER + 32 <= rest.len() {
        if rest[i..].starts_with(&MAGIC)
            && let Some((s, _)) = parse_header(&rest[i..])
            && s >= seq
            && parse_record(&rest[i..], s).is_ok()
        {
            return true;
        }
        i += 1;
    }
    false
}

// ------------------------------------------------------------ writer

struct Writer {
    shared: Arc<Shared>,
    opts: Options,
    segment: File,
    segment_first: u64,
    segment_len: u64,
    frontier: Frontier,
    derived: Derived,
    size: u64,
    last_state: Instant,
    since_state: u64,
}

impl Writer {
    fn new(shared: Arc<Shared>, rec: Recovered, opts: Options) -> Result<Self, AuditError> {
        let first = *rec.segments.last().unwrap_or(&0);
        let path = shared.dir.join("segments").join(seg_name(first));
        let segment = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        let derived = Derived::open(&shared.dir)?;
        Ok(Self {
            shared,
            opts,
            segment,
            segment_first: first,
            segment_len: rec.tail_len,
            frontier: rec.frontier,
            derived,
            size: rec.size,
            last_state: Instant::now(),
            since_state: 0,
        })
    }

    fn fail(&self, msg: String, batch: Vec<Arc<Completion>>, rx: &Receiver<Pending>) {
        *self.shared.fatal.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg.clone());
        for done in batch {
            done.finish(Err(msg.clone()));
        }
        while let Ok(p) = rx.recv() {
            p.done.finish(Err(msg.clone()));
        }
    }

    fn run(mut self, rx: Receiver<Pending>) {
        let mut seg_buf = Vec::with_capacity(1 << 20);
        loop {
            // Idle: make the state file current within `state_every`, so
            // readers in other processes see the last entries too.
            let first = match rx.recv_timeout(self.opts.state_every) {
                Ok(p) => p,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if self.since_state > 0
                        && let Err(e) = self.save()
                    {
                        self.fail(e.to_string(), Vec::new(), &rx);
                        return;
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut batch = vec![first];
            if !self.opts.linger.is_zero() {
                // Let the batch fill while asleep: one wake-up (and one
                // fsync) per batch instead of per entry, and appenders never
                // have to wake a parked writer.
                std::thread::sleep(self.opts.linger);
            }
            while batch.len() < self.opts.max_batch {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            if let Err(e) = self.maybe_rotate() {
                self.fail(
                    e.to_string(),
                    batch.into_iter().map(|p| p.done).collect(),
                    &rx,
                );
                return;
            }
            seg_buf.clear();
            let mut dones = Vec::with_capacity(batch.len());
            for p in batch {
                debug_assert_eq!(p.seq, self.size + (self.derived.index_buf.len() / 8) as u64);
                let offset = self.segment_len + seg_buf.len() as u64;
                let (bytes, leaf) = p.work.materialize(p.seq);
                encode_record(p.seq, &bytes, &leaf, &mut seg_buf);
                self.derived.add(&mut self.frontier, offset, leaf);
                dones.push(p.done);
            }
            let batch = dones;
            let seg_path = self
                .shared
                .dir
                .join("segments")
                .join(seg_name(self.segment_first));
            let written = self.segment.write_all(&seg_buf).and_then(|()| {
                if self.opts.durable {
                    self.segment.sync_data()
                } else {
                    Ok(())
                }
            });
            if let Err(e) = written {
                self.fail(format!("{}: {e}", seg_path.display()), batch, &rx);
                return;
            }
            self.segment_len += seg_buf.len() as u64;
            if let Err(e) = self.derived.flush() {
                self.fail(e.to_string(), batch, &rx);
                return;
            }
            self.size += batch.len() as u64;
            self.since_state += batch.len() as u64;
            self.shared.nodes.size.store(self.size, Ordering::Release);
            self.shared.durable.store(self.size, Ordering::Release);
            for done in batch {
                done.finish(Ok(()));
            }
            if (self.since_state >= self.opts.state_every_entries
                || self.last_state.elapsed() >= self.opts.state_every)
                && let Err(e) = self.save()
            {
                self.fail(e.to_string(), Vec::new(), &rx);
                return;
            }
        }
        // All senders are gone: a clean shutdown.
        if let Err(e) = self.save() {
            *self.shared.fatal.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        }
    }

    fn save(&mut self) -> Result<(), AuditError> {
        if self.opts.durable {
            self.derived.sync()?;
        } else {
            self.derived.flush()?;
        }
        save_state(
            &self.shared.dir,
            &State {
                size: self.size,
                segment: self.segment_first,
                offset: self.segment_len,
            },
        )?;
        self.last_state = Instant::now();
        self.since_state = 0;
        Ok(())
    }

    fn maybe_rotate(&mut self) -> Result<(), AuditError> {
        if self.segment_len < self.opts.segment_bytes {
            return Ok(());
        }
        self.save()?;
        let first = self.size;
        let path = self.shared.dir.join("segments").join(seg_name(first));
        let f = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        sync_dir(&self.shared.dir.join("segments"))?;
        self.segment = f;
        self.segment_first = first;
        self.segment_len = 0;
        self.shared
            .segments
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(first);
        self.save()
    }
}

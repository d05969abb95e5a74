//! Offline verification of a whole log: needs only the segment files and,
//! to check checkpoints, the log's public key.

use crate::note::{NoteVerifier, verify_checkpoint};
use crate::store::{HEADER, parse_header, parse_record};
use crate::tree::{Frontier, Hash, hex};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// The outcome of verifying a log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Entries that verified, in order, before any problem.
    pub entries: u64,
    /// Root of those entries (hex).
    pub root: String,
    /// Checkpoints compared with the recomputed tree: (size, verified).
    pub checkpoints: Vec<CheckpointResult>,
    /// The first problem, if any.
    pub problem: Option<Problem>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckpointResult {
    pub size: u64,
    pub root: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The first index that is damaged, missing or out of place.
    pub index: u64,
    pub reason: String,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problem.is_none() && self.checkpoints.iter().all(|c| c.ok)
    }
}

/// Verifies every record of the log in `dir` (framing, sequence, leaf
/// hash, canonical entry form), recomputes the Merkle tree, and compares it
/// with each checkpoint note given (signature checked with `verifier`).
/// `progress(done_bytes, total_bytes)` is called as it goes.
pub fn verify_log(
    dir: &Path,
    checkpoints: &[String],
    verifier: Option<&NoteVerifier>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, crate::AuditError> {
    let mut wanted = Vec::new();
    let mut results = Vec::new();
    for note in checkpoints {
        let parsed = match verifier {
            Some(v) => verify_checkpoint(note, v).map_err(|e| e.to_string()),
            None => crate::note::parse_unverified(note)
                .map_err(|e| e.to_string())
                .and_then(|_| {
                    Err("no public key given, so the signature cannot be checked".to_owned())
                }),
        };
        match parsed {
            Ok(cp) => wanted.push(cp),
            Err(e) => results.push(CheckpointResult {
                size: crate::note::parse_unverified(note)
                    .map(|c| c.size)
                    .unwrap_or(0),
                root: String::new(),
                ok: false,
                detail: format!("checkpoint signature: {e}"),
            }),
        }
    }
    wanted.sort_by_key(|c| c.size);

    let sdir = dir.join("segments");
    let mut segs: Vec<(u64, std::path::PathBuf, u64)> = Vec::new();
    for e in std::fs::read_dir(&sdir).map_err(|e| crate::store_io(&sdir, e))? {
        let e = e.map_err(|e| crate::store_io(&sdir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(first) = name
            .strip_suffix(".seg")
            .and_then(|s| s.parse::<u64>().ok())
        {
            let len = e.metadata().map(|m| m.len()).unwrap_or(0);
            segs.push((first, e.path(), len));
        }
    }
    segs.sort_by_key(|s| s.0);
    let total: u64 = segs.iter().map(|s| s.2).sum();
    let mut done = 0u64;
    let mut frontier = Frontier::new();
    let mut problem = None;
    let mut next_cp = 0usize;
    let check = |frontier: &Frontier,
                 wanted: &[crate::note::Checkpoint],
                 next_cp: &mut usize,
                 results: &mut Vec<CheckpointResult>| {
        while *next_cp < wanted.len() && wanted[*next_cp].size == frontier.size() {
            let cp = &wanted[*next_cp];
            let root = frontier.root();
            results.push(CheckpointResult {
                size: cp.size,
                root: hex(&cp.root),
                ok: root == cp.root,
                detail: if root == cp.root {
                    "root matches".into()
                } else {
                    format!(
                        "recomputed root {} differs: entries before {} were altered or reordered",
                        hex(&root),
                        cp.size
                    )
                },
            });
            *next_cp += 1;
        }
    };
    check(&frontier, &wanted, &mut next_cp, &mut results);
    'segments: for (first, path, _) in &segs {
        if *first != frontier.size() {
            problem = Some(Problem {
                index: frontier.size(),
                reason: format!("segment {} starts at {first}", path.display()),
            });
            break;
        }
        let mut r = BufReader::with_capacity(
            1 << 20,
            File::open(path).map_err(|e| crate::store_io(path, e))?,
        );
        let mut header = [0u8; HEADER];
        let mut rec: Vec<u8> = Vec::with_capacity(4096);
        loop {
            let seq = frontier.size();
            match read_full(&mut r, &mut header) {
                Ok(0) => break,
                Ok(n) if n < HEADER => {
                    problem = Some(Problem {
                        index: seq,
                        reason: "record header is cut short (truncated log)".into(),
                    });
                    break 'segments;
                }
                Ok(_) => {}
                Err(e) => return Err(crate::store_io(path, e)),
            }
            let Some((_, len)) = parse_header(&header) else {
                problem = Some(Problem {
                    index: seq,
                    reason: "record header is damaged".into(),
                });
                break 'segments;
            };
            if len > crate::entry::MAX_ENTRY_BYTES {
                problem = Some(Problem {
                    index: seq,
                    reason: format!("record length {len} is over the limit"),
                });
                break 'segments;
            }
            rec.clear();
            rec.extend_from_slice(&header);
            rec.resize(HEADER + len + 32, 0);
            let n = read_full(&mut r, &mut rec[HEADER..]).map_err(|e| crate::store_io(path, e))?;
            if n < len + 32 {
                problem = Some(Problem {
                    index: seq,
                    reason: "record is cut short (truncated log)".into(),
                });
                break 'segments;
            }
            let leaf: Hash = match parse_record(&rec, seq) {
                Ok((_, leaf)) => leaf,
                Err(reason) => {
                    problem = Some(Problem { index: seq, reason });
                    break 'segments;
                }
            };
            // The entry's own sequence number (covered by its hash) must be
            // its position: a record moved elsewhere, even with a rewritten
            // header, gives itself away here.
            match entry_seq(&rec[HEADER..HEADER + len]) {
                Some(s) if s == seq => {}
                Some(s) => {
                    problem = Some(Problem {
                        index: seq,
                        reason: format!("entry says it is number {s}"),
                    });
                    break 'segments;
                }
                None => {
                    problem = Some(Problem {
                        index: seq,
                        reason: "entry has no sequence number".into(),
                    });
                    break 'segments;
                }
            }
            frontier.push(leaf, |_, _, _| {});
            check(&frontier, &wanted, &mut next_cp, &mut results);
            done += rec.len() as u64;
            if seq.is_multiple_of(16_384) {
                progress(done, total);
            }
        }
    }
    progress(done, total);
    for cp in &wanted[next_cp..] {
        results.push(CheckpointResult {
            size: cp.size,
            root: hex(&cp.root),
            ok: false,
            detail: format!(
                "the checkpoint covers {} entries but only {} verify: entries were removed or damaged",
                cp.size,
                frontier.size()
            ),
        });
    }
    results.sort_by_key(|c| c.size);
    Ok(Report {
        entries: frontier.size(),
        root: hex(&frontier.root()),
        checkpoints: results,
        problem,
    })
}

/// The top-level `seq` of canonical entry bytes without a full parse. Keys
/// are sorted, and every top-level key after `seq` has a string, number or
/// null value (which cannot contain an unescaped `"seq":`), so the last
/// occurrence is the top-level one; a `seq` key nested in `detail` comes
/// earlier.
fn entry_seq(bytes: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"seq\":";
    let at = bytes.windows(KEY.len()).rposition(|w| w == KEY)? + KEY.len();
    let digits = bytes[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&bytes[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

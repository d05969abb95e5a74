//! Argument normalisation before policy: path-like arguments are brought to
//! one canonical form, so `/etc//passwd`, `/tmp/../etc/passwd` and
//! `file:///etc/%70asswd` are all judged — and forwarded — as `/etc/passwd`.
//! What was judged is what is sent upstream.

use serde_json::Value;
use std::path::{Component, Path, PathBuf};

/// Deepest nesting of arguments walked; deeper values are left alone (and
/// the policy sees them as they are).
const MAX_DEPTH: usize = 32;

/// How path arguments are found and normalised.
#[derive(Debug, Clone, Default)]
pub struct PathRules {
    /// Argument names that hold paths. Empty: the built-in heuristic
    /// ([`is_path_key`]).
    pub keys: Vec<String>,
    /// Relative paths are resolved against this directory (the server's
    /// working directory), when set.
    pub base: Option<PathBuf>,
    /// Resolve symbolic links of the existing part of each path (only
    /// meaningful when the server runs on this machine).
    pub resolve_symlinks: bool,
}

/// One argument that changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Normalized {
    /// JSON pointer of the argument (`/path`, `/files/0`).
    pub pointer: String,
    pub from: String,
    pub to: String,
}

/// An argument that cannot be judged: the call is denied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("argument {pointer}: {problem}")]
pub struct ArgumentError {
    pub pointer: String,
    pub problem: String,
}

/// The built-in heuristic for path-like argument names.
pub fn is_path_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    matches!(
        k.as_str(),
        "path"
            | "paths"
            | "file"
            | "files"
            | "filename"
            | "filepath"
            | "dir"
            | "dirs"
            | "directory"
            | "directories"
            | "folder"
            | "source"
            | "destination"
            | "src"
            | "dst"
            | "dest"
            | "root"
            | "cwd"
    ) || k.ends_with("_path")
        || k.ends_with("path") && k.len() > 4
        || k.ends_with("_file")
        || k.ends_with("_dir")
        || k.ends_with("_directory")
}

/// Lexical normalisation of one path: repeated separators collapse, `.`
/// disappears, `..` removes the previous component (and stops at the root
/// of an absolute path), a trailing separator goes. `file:` URIs — any case
/// of the scheme, `file:/abs`, `file:///abs`, `file://localhost/abs` — are
/// percent-decoded once and normalised the same way, as `file:///abs`;
/// one that still holds a percent-encoded byte after decoding (double
/// encoding, which a server decoding twice would read differently) is
/// refused, as are remote hosts and relative `file:` URIs.
pub fn normalize_path(p: &str) -> Result<String, String> {
    if p.contains('\0') {
        return Err("contains a NUL byte".into());
    }
    if let Some(rest) = strip_file_scheme(p) {
        let abs = if let Some(after) = rest.strip_prefix("//") {
            // file://host/abs: only the local host.
            let (host, path) = match after.find('/') {
                Some(i) => after.split_at(i),
                None => (after, ""),
            };
            if !(host.is_empty() || host.eq_ignore_ascii_case("localhost")) {
                return Err("file URI with a remote host".into());
            }
            path
        } else {
            rest
        };
        if !abs.starts_with('/') {
            return Err("file URI without an absolute path".into());
        }
        let decoded = percent_decode(abs)?;
        if decoded.contains('\0') {
            return Err("contains a NUL byte".into());
        }
        if has_percent_escape(&decoded) {
            return Err("double percent-encoding in a file URI".into());
        }
        return Ok(format!("file://{}", lexical(&decoded)));
    }
    Ok(lexical(p))
}

/// What follows `file:` when `p` is a file URI (scheme in any case).
fn strip_file_scheme(p: &str) -> Option<&str> {
    let head = p.get(..5)?;
    head.eq_ignore_ascii_case("file:").then(|| &p[5..])
}

fn has_percent_escape(s: &str) -> bool {
    s.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
}

/// Normalises a resource URI as a path when it is a `file:` URI (or a
/// plain path); other schemes are returned unchanged (`None`).
pub fn normalize_uri(uri: &str) -> Option<Result<String, String>> {
    if strip_file_scheme(uri).is_some() || uri.starts_with('/') {
        Some(normalize_path(uri))
    } else {
        None
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "bad percent-encoding".to_owned())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-encoding is not UTF-8".into())
}

fn lexical(p: &str) -> String {
    if p.is_empty() {
        return String::new();
    }
    let absolute = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if absolute => {}
                _ => parts.push(".."),
            },
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Resolves symbolic links in the longest existing prefix of an absolute
/// path, keeping the rest lexically normalised.
fn resolve_links(p: &str) -> String {
    let path = Path::new(p);
    let mut existing = path.to_path_buf();
    let mut tail: Vec<std::ffi::OsString> = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(&existing) {
            let mut out = real;
            for t in tail.iter().rev() {
                out.push(t);
            }
            return lexical(&out.to_string_lossy());
        }
        match (
            existing.file_name().map(|f| f.to_owned()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                tail.push(name);
                existing = parent.to_path_buf();
            }
            _ => return p.to_owned(),
        }
    }
}

impl PathRules {
    fn is_path(&self, key: &str) -> bool {
        if self.keys.is_empty() {
            is_path_key(key)
        } else {
            self.keys.iter().any(|k| k == key)
        }
    }

    fn one(&self, s: &str) -> Result<String, String> {
        let mut out = normalize_path(s)?;
        if let Some(base) = &self.base
            && !out.starts_with('/')
            && strip_file_scheme(&out).is_none()
        {
            out = lexical(&format!("{}/{out}", base.to_string_lossy()));
        }
        if self.resolve_symlinks && out.starts_with('/') {
            out = resolve_links(&out);
        }
        Ok(out)
    }

    /// Normalises every path-like string in `args` in place; returns what
    /// changed, or the first argument that cannot be judged.
    pub fn apply(&self, args: &mut Value) -> Result<Vec<Normalized>, ArgumentError> {
        let mut changed = Vec::new();
        self.walk(args, &mut String::new(), false, 0, &mut changed)?;
        Ok(changed)
    }

    fn walk(
        &self,
        v: &mut Value,
        pointer: &mut String,
        is_path: bool,
        depth: usize,
        changed: &mut Vec<Normalized>,
    ) -> Result<(), ArgumentError> {
        if depth > MAX_DEPTH {
            return Ok(());
        }
        match v {
            Value::String(s) if is_path => {
                let to = self.one(s).map_err(|problem| ArgumentError {
                    pointer: pointer.clone(),
                    problem,
                })?;
                if &to != s {
                    changed.push(Normalized {
                        pointer: pointer.clone(),
                        from: std::mem::replace(s, to.clone()),
                        to,
                    });
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&i.to_string());
                    self.walk(item, pointer, is_path, depth + 1, changed)?;
                    pointer.truncate(len);
                }
            }
            Value::Object(map) => {
                for (k, item) in map.iter_mut() {
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&k.replace('~', "~0").replace('/', "~1"));
                    let p = self.is_path(k);
                    self.walk(item, pointer, p, depth + 1, changed)?;
                    pointer.truncate(len);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Path components of a normalised absolute path never contain `..`.
pub fn is_clean(p: &str) -> bool {
    Path::new(p)
        .components()
        .all(|c| !matches!(c, Component::ParentDir | Component::CurDir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn the_originals_bypasses_are_closed() {
        for (input, want) in [
            ("/etc//passwd", "/etc/passwd"),
            ("/etc/./passwd", "/etc/passwd"),
            ("/tmp/../etc/passwd", "/etc/passwd"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/etc/passwd/", "/etc/passwd"),
            ("//etc///passwd", "/etc/passwd"),
            ("file:///etc/%70asswd", "file:///etc/passwd"),
            ("file://localhost/etc/../etc/passwd", "file:///etc/passwd"),
            ("a/../../b", "../b"),
            ("./a/./b/", "a/b"),
            ("", ""),
            ("/", "/"),
        ] {
            assert_eq!(normalize_path(input).as_deref(), Ok(want), "{input}");
        }
        assert!(normalize_path("/etc/\0passwd").is_err());
        assert!(normalize_path("file:///etc/%00passwd").is_err());
        assert!(normalize_path("file://evil.example/etc/passwd").is_err());
        assert!(normalize_path("file:///etc/%zz").is_err());
    }

    #[test]
    fn every_spelling_of_a_file_uri_is_one_path() {
        for input in [
            "file:///etc/passwd",
            "file:/etc/passwd",
            "FILE:///etc/passwd",
            "File:/etc//./passwd",
            "file://LOCALHOST/etc/passwd",
            "file:///srv/../etc/%70asswd",
        ] {
            assert_eq!(
                normalize_path(input).as_deref(),
                Ok("file:///etc/passwd"),
                "{input}"
            );
        }
        // Decoded twice by a lenient server, this would be /etc/passwd.
        assert!(normalize_path("file:///etc/%2570asswd").is_err());
        assert!(normalize_path("file:etc/passwd").is_err(), "relative");
        assert!(normalize_path("file://evil/etc/passwd").is_err());
        assert_eq!(
            normalize_uri("FILE:/data/../etc/passwd").map(|r| r.ok()),
            Some(Some("file:///etc/passwd".into()))
        );
        assert_eq!(normalize_uri("https://example.com/a/../b"), None);
    }

    #[test]
    fn nested_arguments_are_normalised_and_reported() {
        let rules = PathRules::default();
        let mut args = json!({
            "path": "/srv/data/../../etc//passwd",
            "options": {"destination": "/tmp/./out", "mode": "../not-a-path"},
            "files": ["/a//b", "/c"],
            "content": "/etc//passwd"
        });
        let changed = rules.apply(&mut args).expect("normalised");
        assert_eq!(args["path"], "/etc/passwd");
        assert_eq!(args["options"]["destination"], "/tmp/out");
        assert_eq!(args["options"]["mode"], "../not-a-path", "not a path key");
        assert_eq!(args["files"][0], "/a/b");
        assert_eq!(args["content"], "/etc//passwd", "content is not a path");
        let pointers: Vec<&str> = changed.iter().map(|c| c.pointer.as_str()).collect();
        assert_eq!(pointers, ["/files/0", "/options/destination", "/path"]);
    }

    #[test]
    fn configured_keys_and_base_directory() {
        let rules = PathRules {
            keys: vec!["target".into()],
            base: Some("/srv/app".into()),
            resolve_symlinks: false,
        };
        let mut args = json!({"target": "../../etc/shadow", "path": "x//y"});
        rules.apply(&mut args).expect("ok");
        assert_eq!(args["target"], "/etc/shadow");
        assert_eq!(args["path"], "x//y", "only configured keys");
    }

    #[test]
    fn symlinks_are_resolved_when_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("real");
        std::fs::create_dir(&real).expect("mkdir");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let rules = PathRules {
            resolve_symlinks: true,
            ..PathRules::default()
        };
        let mut args = json!({"path": format!("{}/missing/../file.txt", link.display())});
        rules.apply(&mut args).expect("ok");
        let want = format!(
            "{}/file.txt",
            std::fs::canonicalize(&real).expect("real").display()
        );
        assert_eq!(args["path"], want.as_str());
    }

    proptest! {
        #[test]
        fn normalisation_is_idempotent_and_clean(
            parts in proptest::collection::vec(
                prop_oneof![Just(".."), Just("."), Just(""), Just("etc"), Just("a b"), Just("passwd")],
                0..12,
            ),
            absolute in any::<bool>(),
        ) {
            let p = format!("{}{}", if absolute { "/" } else { "" }, parts.join("/"));
            let once = normalize_path(&p).expect("no NUL");
            prop_assert_eq!(normalize_path(&once).expect("again"), once.clone());
            prop_assert!(!once.contains("//"));
            if absolute {
                prop_assert!(once.starts_with('/'));
                prop_assert!(is_clean(&once), "{}", once);
            }
        }
    }
}

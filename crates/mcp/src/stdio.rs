//! Supervised stdio servers: spawn, newline-delimited JSON in and out,
//! stderr drained separately (it is logging, not protocol), bounded line
//! lengths, and a graceful stop (close stdin, wait, SIGTERM, SIGKILL) as the
//! MCP spec describes for clients.

use crate::message::MAX_MESSAGE_BYTES;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;

/// How to start a server.
///
/// The server gets a clean environment: only [`BASE_ENV`] (when set in
/// ours), the variables named in `inherit_env` (copied from ours) and
/// those given in `env`. Nothing else of the gateway's or wrapper's own
/// environment reaches it: a server is not trusted with what the
/// operator's shell holds (`AGENTMESH_CONTROL_PLANE_TOKEN`, cloud keys),
/// and an agent can often read a server's environment through its tools.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerCommand {
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Variables set for the server (they win over inherited ones).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Names of variables copied from our own environment when set (a
    /// secret the server needs, without writing it into the config).
    #[serde(default)]
    pub inherit_env: Vec<String>,
    #[serde(default)]
    pub cwd: Option<PathBuf>,
}

/// What every server inherits when set: where programs are (`PATH`), the
/// user and home directory (caches and configs of `npx`, `uvx`, …), the
/// temporary directory, the time zone, the locale (`LANG`, `LANGUAGE` and
/// every `LC_*`). On Windows also what its runtime cannot start without.
pub const BASE_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "TMPDIR",
    "TZ",
    "LANG",
    "LANGUAGE",
    #[cfg(windows)]
    "SYSTEMROOT",
    #[cfg(windows)]
    "WINDIR",
    #[cfg(windows)]
    "COMSPEC",
    #[cfg(windows)]
    "PATHEXT",
    #[cfg(windows)]
    "USERPROFILE",
    #[cfg(windows)]
    "APPDATA",
    #[cfg(windows)]
    "LOCALAPPDATA",
    #[cfg(windows)]
    "TEMP",
    #[cfg(windows)]
    "TMP",
];

impl ServerCommand {
    /// From `argv` (`[program, args…]`).
    pub fn from_argv(argv: &[String]) -> Option<Self> {
        let (program, args) = argv.split_first()?;
        Some(Self {
            command: program.clone(),
            args: args.to_vec(),
            env: Default::default(),
            inherit_env: Vec::new(),
            cwd: None,
        })
    }

    /// The server's whole environment, given ours (`parent`).
    pub fn environment(
        &self,
        parent: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> BTreeMap<OsString, OsString> {
        let mut out: BTreeMap<OsString, OsString> = parent
            .into_iter()
            .filter(|(k, _)| {
                let Some(k) = k.to_str() else { return false };
                BASE_ENV.contains(&k)
                    || k.starts_with("LC_")
                    || self.inherit_env.iter().any(|n| n == k)
            })
            .collect();
        for (k, v) in &self.env {
            out.insert(k.into(), v.into());
        }
        out
    }

    pub fn display(&self) -> String {
        std::iter::once(self.command.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// One line read from a stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line without its terminator.
    Text(Vec<u8>),
    /// A line longer than the limit; it was discarded up to its newline.
    TooLong(usize),
}

/// Reads one `\n`-terminated line of at most `max` bytes (a trailing `\r`
/// is dropped). `None` at end of stream.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    max: usize,
) -> std::io::Result<Option<Line>> {
    let mut line = Vec::new();
    let mut dropped = 0usize;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(match (line.is_empty(), dropped) {
                (true, 0) => None,
                (_, 0) => Some(Line::Text(line)),
                (_, n) => Some(Line::TooLong(n)),
            });
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if dropped > 0 || line.len() + chunk.len() > max {
            dropped += line.len() + chunk.len();
            line.clear();
        } else {
            line.extend_from_slice(chunk);
        }
        let consumed = done.unwrap_or(buf.len());
        r.consume(consumed);
        if done.is_some() {
            if dropped > 0 {
                return Ok(Some(Line::TooLong(dropped)));
            }
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Some(Line::Text(line)));
        }
    }
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    child: Child,
    stdin: Option<mpsc::Sender<Vec<u8>>>,
    pub pid: Option<u32>,
}

/// Starts `cmd`; returns the server and its stdout lines. Stderr lines are
/// written to our stderr prefixed with `[label]`.
pub fn spawn(cmd: &ServerCommand, label: &str) -> std::io::Result<(Server, mpsc::Receiver<Line>)> {
    let mut c = tokio::process::Command::new(&cmd.command);
    c.args(&cmd.args)
        .env_clear()
        .envs(cmd.environment(std::env::vars_os()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(d) = &cmd.cwd {
        c.current_dir(d);
    }
    let mut child = c.spawn()?;
    let pid = child.id();
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>(1024);
    if let Some(stdin) = stdin {
        tokio::spawn(write_lines(stdin, in_rx));
    }
    let (out_tx, out_rx) = mpsc::channel::<Line>(1024);
    if let Some(stdout) = stdout {
        tokio::spawn(async move {
            let mut r = BufReader::new(stdout);
            while let Ok(Some(line)) = read_line(&mut r, MAX_MESSAGE_BYTES).await {
                if out_tx.send(line).await.is_err() {
                    break;
                }
            }
        });
    }
    if let Some(stderr) = stderr {
        let label = label.to_owned();
        tokio::spawn(async move {
            let mut r = BufReader::new(stderr);
            let mut err = tokio::io::stderr();
            while let Ok(Some(line)) = read_line(&mut r, 64 * 1024).await {
                let text = match line {
                    Line::Text(t) => String::from_utf8_lossy(&t).into_owned(),
                    Line::TooLong(n) => format!("<{n} bytes of stderr dropped>"),
                };
                let _ = err
                    .write_all(format!("[{label}] {text}\n").as_bytes())
                    .await;
            }
        });
    }
    Ok((
        Server {
            child,
            stdin: Some(in_tx),
            pid,
        },
        out_rx,
    ))
}

async fn write_lines(mut stdin: ChildStdin, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(mut line) = rx.recv().await {
        line.push(b'\n');
        if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
            break;
        }
    }
    // Dropping stdin closes it: the server sees end of input.
}

impl Server {
    /// Queues one message (without newline) for the server's stdin.
    pub async fn send(&self, message: Vec<u8>) -> bool {
        match &self.stdin {
            Some(tx) => tx.send(message).await.is_ok(),
            None => false,
        }
    }

    /// A handle to write to the server from other tasks.
    pub fn sender(&self) -> Option<mpsc::Sender<Vec<u8>>> {
        self.stdin.clone()
    }

    /// Closes the server's input (it should answer what it has and exit).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the server to exit.
    pub async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait().await
    }

    /// Whether it has exited (without waiting).
    pub fn try_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Closes stdin and waits `grace`; then SIGTERM and `grace` again; then
    /// SIGKILL.
    pub async fn stop(&mut self, grace: Duration) {
        self.stdin = None;
        if tokio::time::timeout(grace, self.child.wait()).await.is_ok() {
            return;
        }
        if let Some(pid) = self.pid {
            // SIGTERM through kill(1): tokio only offers SIGKILL, and this
            // crate has no unsafe code for a direct kill(2).
            let _ = tokio::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
            if tokio::time::timeout(grace, self.child.wait()).await.is_ok() {
                return;
            }
        }
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_bounded_and_split_correctly() {
        let data = b"short\r\nxxxxxxxxxxxxxxxxxxxx\nlast-without-newline".to_vec();
        let mut r = BufReader::with_capacity(4, &data[..]);
        assert_eq!(
            read_line(&mut r, 10).await.expect("io"),
            Some(Line::Text(b"short".to_vec()))
        );
        assert_eq!(
            read_line(&mut r, 10).await.expect("io"),
            Some(Line::TooLong(20))
        );
        assert_eq!(
            read_line(&mut r, 100).await.expect("io"),
            Some(Line::Text(b"last-without-newline".to_vec()))
        );
        assert_eq!(read_line(&mut r, 100).await.expect("io"), None);
    }

    #[test]
    fn a_server_sees_only_the_base_set_and_what_the_config_names() {
        let mut cmd = ServerCommand::from_argv(&["srv".into()]).expect("argv");
        cmd.env.insert("FIXTURE_MODE".into(), "on".into());
        cmd.env.insert("LANG".into(), "C.UTF-8".into());
        cmd.inherit_env.push("GITHUB_TOKEN".into());
        let parent = [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/a"),
            ("LANG", "de_DE.UTF-8"),
            ("LC_TIME", "C"),
            ("AGENTMESH_CONTROL_PLANE_TOKEN", "amadm_secret"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("GITHUB_TOKEN", "ghp_1"),
            ("LCX", "not a locale"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let env = cmd.environment(parent);
        let got: Vec<(&str, &str)> = env
            .iter()
            .map(|(k, v)| (k.to_str().expect("k"), v.to_str().expect("v")))
            .collect();
        assert_eq!(
            got,
            [
                ("FIXTURE_MODE", "on"),
                ("GITHUB_TOKEN", "ghp_1"),
                ("HOME", "/home/a"),
                ("LANG", "C.UTF-8"),
                ("LC_TIME", "C"),
                ("PATH", "/usr/bin"),
            ]
        );
    }

    #[tokio::test]
    async fn a_server_echoes_and_stops_gracefully() {
        let cmd = ServerCommand::from_argv(&["cat".into()]).expect("argv");
        let (mut server, mut out) = spawn(&cmd, "cat").expect("spawn");
        assert!(server.send(b"{\"a\":1}".to_vec()).await);
        assert_eq!(out.recv().await, Some(Line::Text(b"{\"a\":1}".to_vec())));
        server.stop(Duration::from_secs(2)).await;
        assert!(server.try_exited());
    }

    #[tokio::test]
    async fn a_server_that_ignores_eof_is_terminated() {
        let cmd =
            ServerCommand::from_argv(&["sh".into(), "-c".into(), "trap '' TERM; sleep 30".into()])
                .expect("argv");
        let (mut server, _out) = spawn(&cmd, "stubborn").expect("spawn");
        let t = std::time::Instant::now();
        server.stop(Duration::from_millis(200)).await;
        assert!(server.try_exited());
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}

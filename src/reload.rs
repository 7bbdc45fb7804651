//! Where config reloads come from, and how a config's files are fingerprinted.
//!
//! Three sources ask for a reload: SIGHUP, `POST /-/reload`, and a change of the config file or
//! any included file. They all send a [`Request`] down one channel; `app` applies requests one
//! at a time (build the new config, validate it, swap), so two reloads never interleave.
//!
//! The file watcher watches the *directories* of the config files, not the files: editors save
//! by writing a new file and renaming it over the old one (a watch on the old inode goes
//! silent), and Kubernetes updates a ConfigMap volume by swapping its `..data` symlink. Any
//! event on a config file, a `..`-prefixed entry or a `.toml` file in those directories starts
//! a debounce; once the directory has been quiet for [`DEBOUNCE`] a reload is requested. A
//! reload of unchanged files is cheap and reported as `unchanged`.
//!
//! A request may also carry a [`DeployId`] (`POST /-/reload?deploy=ID`), the deploy that new
//! incidents name from then on; `warden run --deploy` sets the first one. It is validated
//! here, where both come in.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// Quiet time after the last file event before a reload is requested.
pub const DEBOUNCE: Duration = Duration::from_millis(300);
/// A burst of events never delays a reload longer than this.
const DEBOUNCE_MAX: Duration = Duration::from_secs(3);

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Signal,
    Http,
    FileChange,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Signal => "SIGHUP",
            Trigger::Http => "POST /-/reload",
            Trigger::FileChange => "file change",
        }
    }
}

/// A request to reload; `reply` (if any) receives the outcome.
#[derive(Debug)]
pub struct Request {
    pub trigger: Trigger,
    /// The deploy new incidents name once the reload succeeded; `None` keeps the current one.
    pub deploy: Option<DeployId>,
    pub reply: Option<oneshot::Sender<Outcome>>,
}

impl Request {
    pub fn new(trigger: Trigger) -> Self {
        Request {
            trigger,
            deploy: None,
            reply: None,
        }
    }
}

/// The longest deploy id, in characters.
pub const DEPLOY_ID_MAX: usize = 128;

/// The deploy pages and hooks name (`deploy`, `{{deploy}}`, `WARDEN_DEPLOY`): 1 to
/// [`DEPLOY_ID_MAX`] printable ASCII characters (space to `~`), not starting or ending with a
/// space. It goes as it is into payloads, mail headers and a hook's environment, so nothing
/// that could break a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployId(String);

/// Why a deploy id was refused. The id itself is never repeated (it may be long or binary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidDeployId {
    Empty,
    /// The first character outside space to `~`, and its position (1-based).
    NotPrintable {
        found: char,
        position: usize,
    },
    TooLong {
        chars: usize,
    },
    EdgeSpace,
}

impl std::fmt::Display for InvalidDeployId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvalidDeployId::Empty => write!(
                f,
                "deploy id is empty; give 1 to {DEPLOY_ID_MAX} printable ASCII characters"
            ),
            InvalidDeployId::NotPrintable { found, position } => write!(
                f,
                "deploy id has {found:?} at character {position}; only printable ASCII (space to ~) is allowed"
            ),
            InvalidDeployId::TooLong { chars } => write!(
                f,
                "deploy id is {chars} characters long; at most {DEPLOY_ID_MAX} are allowed"
            ),
            InvalidDeployId::EdgeSpace => {
                write!(f, "deploy id starts or ends with a space")
            }
        }
    }
}

impl std::error::Error for InvalidDeployId {}

impl DeployId {
    pub fn parse(id: &str) -> Result<DeployId, InvalidDeployId> {
        if id.is_empty() {
            return Err(InvalidDeployId::Empty);
        }
        if let Some((i, found)) = id
            .chars()
            .enumerate()
            .find(|(_, c)| !(' '..='~').contains(c))
        {
            return Err(InvalidDeployId::NotPrintable {
                found,
                position: i + 1,
            });
        }
        // Printable ASCII from here on: bytes are characters.
        if id.len() > DEPLOY_ID_MAX {
            return Err(InvalidDeployId::TooLong { chars: id.len() });
        }
        if id.starts_with(' ') || id.ends_with(' ') {
            return Err(InvalidDeployId::EdgeSpace);
        }
        Ok(DeployId(id.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// How a reload ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The new config is live.
    Applied { hash: u64 },
    /// The files produce the config that is already running; nothing was touched.
    Unchanged { hash: u64 },
    /// The new config was rejected (every error in the message); the old one keeps running.
    Failed { error: String },
}

impl Outcome {
    /// Label value for `warden_config_reloads_total{result}`.
    pub fn result(&self) -> &'static str {
        match self {
            Outcome::Applied { .. } => "applied",
            Outcome::Unchanged { .. } => "unchanged",
            Outcome::Failed { .. } => "failed",
        }
    }
}

/// A stable 48-bit hash of the files' paths and contents (FNV-1a), so it is exact as a
/// Prometheus float. A file that cannot be read hashes as its path plus a marker.
pub fn fingerprint(files: &[PathBuf]) -> u64 {
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    for file in files {
        feed(file.as_os_str().as_encoded_bytes());
        feed(&[0]);
        match std::fs::read(file) {
            Ok(contents) => feed(&contents),
            Err(_) => feed(b"\0unreadable"),
        }
        feed(&[0]);
    }
    hash & ((1 << 48) - 1)
}

/// Sends a [`Trigger::Signal`] request for every SIGHUP until `cancel` fires.
pub async fn on_sighup(requests: mpsc::Sender<Request>, cancel: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install the SIGHUP handler; reload with POST /-/reload");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            got = hup.recv() => {
                if got.is_none() {
                    return;
                }
                tracing::info!("SIGHUP received: reloading the config");
                if requests.send(Request::new(Trigger::Signal)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Watches the directories holding `files` (updated through the watch channel after every
/// reload) and requests a reload, debounced, when something relevant changes there.
pub async fn watch_files(
    mut files: watch::Receiver<Vec<PathBuf>>,
    requests: mpsc::Sender<Request>,
    cancel: CancellationToken,
) {
    // The notify callback runs on its own thread; a full channel already means "changed".
    let (events_tx, mut events) = mpsc::channel::<()>(1);
    let relevant = std::sync::Arc::new(std::sync::RwLock::new(Relevant::default()));
    let filter = relevant.clone();
    let mut watcher = match notify::recommended_watcher(
        move |event: notify::Result<notify::Event>| match event {
            Ok(event) => {
                let hit = filter
                    .read()
                    .map(|r| event.paths.iter().any(|p| r.matches(p)))
                    .unwrap_or(true);
                if hit {
                    let _ = events_tx.try_send(());
                }
            }
            Err(e) => tracing::warn!(error = %e, "config file watch error"),
        },
    ) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch the config files; reload with SIGHUP or POST /-/reload");
            return;
        }
    };
    let mut watched: BTreeSet<PathBuf> = BTreeSet::new();
    let mut rearm = true;
    loop {
        if rearm {
            let current = files.borrow_and_update().clone();
            let wanted = Relevant::of(&current);
            for dir in watched.difference(&wanted.dirs) {
                let _ = watcher.unwatch(dir);
            }
            for dir in wanted.dirs.difference(&watched) {
                if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot watch config directory");
                }
            }
            watched = wanted.dirs.clone();
            if let Ok(mut r) = relevant.write() {
                *r = wanted;
            }
            rearm = false;
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = files.changed() => {
                if changed.is_err() {
                    return;
                }
                rearm = true;
            }
            got = events.recv() => {
                if got.is_none() {
                    return;
                }
                if !debounce(&mut events, &cancel).await {
                    return;
                }
                tracing::info!("config files changed: reloading");
                if requests.send(Request::new(Trigger::FileChange)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Waits until no event arrived for [`DEBOUNCE`] (at most [`DEBOUNCE_MAX`]). False when
/// cancelled or the event source is gone.
async fn debounce(events: &mut mpsc::Receiver<()>, cancel: &CancellationToken) -> bool {
    let deadline = tokio::time::Instant::now() + DEBOUNCE_MAX;
    loop {
        let quiet = tokio::time::sleep(DEBOUNCE);
        tokio::select! {
            _ = cancel.cancelled() => return false,
            _ = tokio::time::sleep_until(deadline) => return true,
            _ = quiet => return true,
            got = events.recv() => {
                if got.is_none() {
                    return false;
                }
            }
        }
    }
}

/// Which paths are worth a reload: the config files themselves, Kubernetes' `..data` swaps,
/// and `.toml` files (a new file an include glob may now match) in the watched directories.
#[derive(Debug, Default)]
struct Relevant {
    files: BTreeSet<PathBuf>,
    dirs: BTreeSet<PathBuf>,
}

impl Relevant {
    fn of(files: &[PathBuf]) -> Relevant {
        let files: BTreeSet<PathBuf> = files.iter().map(|f| absolute(f)).collect();
        let dirs = files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        Relevant { files, dirs }
    }

    fn matches(&self, path: &Path) -> bool {
        if self.files.contains(path) {
            return true;
        }
        let in_watched_dir = path.parent().is_some_and(|d| self.dirs.contains(d));
        let name = path.file_name().and_then(OsStr::to_str).unwrap_or("");
        in_watched_dir && (name.starts_with("..") || name.ends_with(".toml"))
    }
}

/// `path` made absolute against the working directory, without resolving symlinks (a
/// ConfigMap's files are symlinks whose targets change on every update).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_follows_contents() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.toml");
        std::fs::write(&a, "x = 1").unwrap();
        let files = vec![a.clone()];
        let first = fingerprint(&files);
        assert_eq!(first, fingerprint(&files));
        assert!(first < (1 << 48));
        std::fs::write(&a, "x = 2").unwrap();
        assert_ne!(first, fingerprint(&files));
        std::fs::remove_file(&a).unwrap();
        assert_ne!(first, fingerprint(&files));
    }

    #[test]
    fn deploy_ids_are_short_printable_ascii() {
        for ok in [
            "v2",
            "redcube-v2.3.1",
            "2026-11-21 release #42",
            &"a".repeat(128),
        ] {
            assert_eq!(
                DeployId::parse(ok).map(DeployId::into_string).as_deref(),
                Ok(ok)
            );
        }
        let err = |id: &str| DeployId::parse(id).unwrap_err().to_string();
        assert_eq!(
            err(""),
            "deploy id is empty; give 1 to 128 printable ASCII characters"
        );
        assert_eq!(
            err("v2\nX-Injected: 1"),
            "deploy id has '\\n' at character 3; only printable ASCII (space to ~) is allowed"
        );
        assert_eq!(
            err("v\u{1b}[31m"),
            "deploy id has '\\u{1b}' at character 2; only printable ASCII (space to ~) is allowed"
        );
        assert_eq!(
            err("déploiement"),
            "deploy id has 'é' at character 2; only printable ASCII (space to ~) is allowed"
        );
        assert_eq!(
            err(&"a".repeat(129)),
            "deploy id is 129 characters long; at most 128 are allowed"
        );
        assert_eq!(err(" v2"), "deploy id starts or ends with a space");
        assert_eq!(err("   "), "deploy id starts or ends with a space");
    }

    #[test]
    fn relevant_paths() {
        let r = Relevant::of(&[
            PathBuf::from("/etc/warden/warden.toml"),
            PathBuf::from("/etc/warden/alerts/redis.toml"),
        ]);
        assert!(r.matches(Path::new("/etc/warden/warden.toml")));
        assert!(r.matches(Path::new("/etc/warden/alerts/redis.toml")));
        // A new file an include glob may match, and a ConfigMap symlink swap.
        assert!(r.matches(Path::new("/etc/warden/alerts/postgres.toml")));
        assert!(r.matches(Path::new("/etc/warden/..data")));
        // Editor droppings and unrelated files do not cause reloads.
        assert!(!r.matches(Path::new("/etc/warden/.warden.toml.swp")));
        assert!(!r.matches(Path::new("/etc/warden/4913")));
        assert!(!r.matches(Path::new("/etc/other/x.toml")));
    }
}

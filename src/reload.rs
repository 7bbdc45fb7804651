//! Where config reloads come from, and how a config's files are fingerprinted.
//!
//! Three sources ask for a reload: SIGHUP, `POST /-/reload`, and a change of the config file or
//! any included file. They all send a [`Request`] down one channel; `app` applies requests one
//! at a time (build the new config, validate it, swap), so two reloads never interleave.
//!
//! The file watcher watches the *directories* of the config files, not the files: editors save
//! by writing a new file and renaming it over the old one (a watch on the old inode goes
//! silent), and Kubernetes updates a ConfigMap volume by swapping its `..data` symlink. An
//! event that can change content (a write-close, a modification, a create, a rename, a
//! removal; never an open or a read-only close, which warden's own reading causes) on a
//! config file, a `..`-prefixed entry or a `.toml` file in those directories starts a
//! debounce. Once the directory has been quiet for [`DEBOUNCE`], the watcher looks at the
//! files ([`Seen`]: each one's content hash, and which entries exist) and asks for a reload
//! only if that differs from what it saw when it last asked, so an event that changed nothing
//! asks for nothing.
//!
//! A request may also carry a [`DeployId`] (`POST /-/reload?deploy=ID`), the deploy that new
//! incidents name from then on; `warden run --deploy` sets the first one. It is validated
//! here, where both come in.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// Quiet time after the last file event before a reload is requested.
pub const DEBOUNCE: Duration = Duration::from_millis(300);
/// A burst of events never delays a reload longer than this.
const DEBOUNCE_MAX: Duration = Duration::from_secs(3);
/// Bytes of one file the watcher hashes; past that, a file is known by its size and mtime.
const SEEN_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Entries of one watched directory the watcher looks at.
const SEEN_MAX_ENTRIES: usize = 10_000;
/// How long one look at the files may take before the watcher asks for a reload anyway.
const SEEN_TIMEOUT: Duration = Duration::from_secs(10);

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
        match crate::files::read_regular(file, SEEN_MAX_BYTES) {
            Ok(contents) => feed(&contents),
            Err(_) => feed(b"\0unreadable"),
        }
        feed(&[0]);
    }
    hash & ((1 << 48) - 1)
}

/// Sends a [`Trigger::Signal`] request for every SIGHUP until `cancel` fires.
///
/// The SIGHUP handler is installed when this is called (not when the future first runs), so a
/// SIGHUP sent once warden reports ready reloads instead of killing it.
pub fn on_sighup(
    requests: mpsc::Sender<Request>,
    cancel: CancellationToken,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let installed = signal(SignalKind::hangup());
    async move {
        let mut hup = match installed {
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
}

/// Watches the directories holding `files` (updated through the watch channel after every
/// reload) and requests a reload, debounced, when something relevant changes there.
///
/// `armed` is told once the directories are watched and the files first looked at, so that
/// the daemon reports ready only when a change from then on is seen.
pub async fn watch_files(
    mut files: watch::Receiver<Vec<PathBuf>>,
    requests: mpsc::Sender<Request>,
    cancel: CancellationToken,
    armed: oneshot::Sender<()>,
) {
    let mut armed = Some(armed);
    // The notify callback runs on its own thread; a full channel already means "changed".
    let (events_tx, mut events) = mpsc::channel::<()>(1);
    let relevant = std::sync::Arc::new(std::sync::RwLock::new(Relevant::default()));
    let filter = relevant.clone();
    let mut watcher = match notify::recommended_watcher(
        move |event: notify::Result<notify::Event>| match event {
            Ok(event) => {
                // A lost event queue (rescan) may hide anything: look.
                let hit = event.need_rescan()
                    || (may_change_content(&event.kind)
                        && filter
                            .read()
                            .map(|r| event.paths.iter().any(|p| r.matches(p)))
                            .unwrap_or(true));
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
    // What the files looked like when the watcher last asked for a reload (or started). It is
    // taken before the daemon reads them, so a change after it is never mistaken for seen.
    let mut seen = Seen::default();
    // One look at a time runs; the others are ones a hung file system keeps.
    let looks = Arc::new(tokio::sync::Semaphore::new(1 + STUCK_LOOKS));
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
            // Paths new to the watch (files of a newly watched directory) start from how they
            // look now; paths already known keep what was seen when the reload was asked for.
            let Some(now) = look(&wanted, &cancel, &looks).await else {
                return;
            };
            seen = now.keeping(&seen);
            if let Ok(mut r) = relevant.write() {
                *r = wanted;
            }
            rearm = false;
            if let Some(armed) = armed.take() {
                let _ = armed.send(());
            }
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
                let scope = relevant.read().map(|r| r.clone()).unwrap_or_default();
                let Some(now) = look(&scope, &cancel, &looks).await else {
                    return;
                };
                if now == seen {
                    tracing::debug!("config file events changed no content: not reloading");
                    continue;
                }
                seen = now;
                tracing::info!("config files changed: reloading");
                if requests.send(Request::new(Trigger::FileChange)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Whether an event of this kind can mean new content. Opening a file and closing it
/// without writing (anyone reading it, warden included) cannot; neither can a change of
/// permissions or times.
fn may_change_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        // Data, Name (renames, symlink swaps), Any and Other.
        EventKind::Modify(_) => true,
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Any | EventKind::Other => true,
    }
}

/// How the config files and the relevant entries of the watched directories look: per
/// path, a hash of what it is (content, symlink target, directory, missing...).
#[derive(Debug, Default, Clone, PartialEq)]
struct Seen(BTreeMap<PathBuf, u64>);

impl Seen {
    /// `self`, with the entries `before` already had taken from `before`.
    fn keeping(mut self, before: &Seen) -> Seen {
        for (path, state) in &mut self.0 {
            if let Some(old) = before.0.get(path) {
                *state = *old;
            }
        }
        self
    }
}

/// Looks at the files off the runtime; `None` when cancelled. A look that does not finish
/// within [`SEEN_TIMEOUT`] counts as a change (the reload that follows reports what is wrong).
///
/// A look stuck on a hung file system keeps its blocking thread until the read returns; at
/// most [`STUCK_LOOKS`] such threads are left behind, after which no new look starts (it
/// counts as a change, as a timeout does) until one of them returns.
async fn look(
    scope: &Relevant,
    cancel: &CancellationToken,
    looks: &Arc<tokio::sync::Semaphore>,
) -> Option<Seen> {
    let unknown = || {
        let mut unknown = Seen::default();
        unknown
            .0
            .insert(PathBuf::from("\0timeout"), fastrand::u64(..));
        unknown
    };
    let Ok(permit) = looks.clone().try_acquire_owned() else {
        tracing::warn!("earlier looks at the config files are still stuck; reloading to find out");
        return Some(unknown());
    };
    let scope = scope.clone();
    let looking = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        scope.look()
    });
    tokio::select! {
        _ = cancel.cancelled() => None,
        done = tokio::time::timeout(SEEN_TIMEOUT, looking) => Some(match done {
            Ok(Ok(seen)) => seen,
            _ => {
                tracing::warn!("looking at the config files took too long; reloading to find out");
                unknown()
            }
        }),
    }
}

/// Looks at the config files left running on a hung file system before no more are started.
const STUCK_LOOKS: usize = 2;

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
#[derive(Debug, Default, Clone)]
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
        in_watched_dir && relevant_name(path)
    }

    /// The config files and every relevant entry of the watched directories, each as a hash
    /// of what it is. Blocking; reads regular files only, each up to [`SEEN_MAX_BYTES`].
    fn look(&self) -> Seen {
        let mut seen = Seen::default();
        for file in &self.files {
            seen.0.insert(file.clone(), path_state(file));
        }
        for dir in &self.dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                seen.0.insert(dir.clone(), 0);
                continue;
            };
            for entry in entries.take(SEEN_MAX_ENTRIES).flatten() {
                let path = entry.path();
                if relevant_name(&path) && !seen.0.contains_key(&path) {
                    let state = path_state(&path);
                    seen.0.insert(path, state);
                }
            }
        }
        seen
    }
}

/// `..`-prefixed entries (ConfigMap swaps) and `.toml` files (what an include glob may match).
fn relevant_name(path: &Path) -> bool {
    let name = path.file_name().and_then(OsStr::to_str).unwrap_or("");
    name.starts_with("..") || name.ends_with(".toml")
}

/// A hash of what `path` is: a symlink's target and what that leads to, a regular file's
/// content (its size and mtime past [`SEEN_MAX_BYTES`]), another kind of file, or an error.
fn path_state(path: &Path) -> u64 {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    if let Ok(target) = std::fs::read_link(path) {
        parts.push(b"link".to_vec());
        parts.push(target.as_os_str().as_encoded_bytes().to_vec());
    }
    match std::fs::metadata(path) {
        Err(e) => parts.push(format!("error {:?}", e.kind()).into_bytes()),
        Ok(meta) if meta.is_file() => match crate::files::read_regular(path, SEEN_MAX_BYTES) {
            Ok(contents) => parts.push(contents),
            Err(_) => {
                use std::os::unix::fs::MetadataExt;
                parts.push(
                    format!("file {} {}.{}", meta.len(), meta.mtime(), meta.mtime_nsec())
                        .into_bytes(),
                );
            }
        },
        Ok(meta) => parts.push(
            crate::files::special_kind(meta.file_type())
                .unwrap_or("other")
                .as_bytes()
                .to_vec(),
        ),
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.iter().chain(std::iter::once(&0xff)) {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
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
    fn only_events_that_can_change_content_count() {
        use notify::event::{CreateKind, DataChange, MetadataKind, RemoveKind, RenameMode};
        let cases = [
            (EventKind::Access(AccessKind::Open(AccessMode::Any)), false),
            (
                EventKind::Access(AccessKind::Close(AccessMode::Read)),
                false,
            ),
            (EventKind::Access(AccessKind::Read), false),
            (EventKind::Access(AccessKind::Any), false),
            (
                EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
                false,
            ),
            (
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                true,
            ),
            (EventKind::Modify(ModifyKind::Data(DataChange::Any)), true),
            (EventKind::Modify(ModifyKind::Any), true),
            (EventKind::Modify(ModifyKind::Name(RenameMode::To)), true),
            (EventKind::Modify(ModifyKind::Name(RenameMode::From)), true),
            (EventKind::Create(CreateKind::File), true),
            (EventKind::Remove(RemoveKind::File), true),
            (EventKind::Any, true),
            (EventKind::Other, true),
        ];
        for (kind, want) in cases {
            assert_eq!(may_change_content(&kind), want, "{kind:?}");
        }
    }

    #[test]
    fn a_look_changes_with_content_and_entries_only() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("warden.toml");
        std::fs::write(&main, "include = [\"conf.d/*.toml\"]\n").unwrap();
        let scope = Relevant::of(std::slice::from_ref(&main));
        let first = scope.look();
        // Reading, opening for append without writing, and unrelated files change nothing.
        std::fs::read(&main).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&main)
            .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        assert_eq!(scope.look(), first);

        let d = dir.path();
        let mut before = first;
        let mut seen_change = |what: &str| {
            let after = scope.look();
            assert_ne!(after, before, "{what} went unseen");
            before = after;
        };
        std::fs::write(&main, "x = 2\n").unwrap();
        seen_change("in-place write");
        std::fs::write(d.join(".tmp"), "x = 3\n").unwrap();
        std::fs::rename(d.join(".tmp"), &main).unwrap();
        seen_change("rename over");
        std::fs::write(d.join("b.toml"), "").unwrap();
        seen_change("new .toml file");
        std::fs::create_dir_all(d.join("..v1")).unwrap();
        std::os::unix::fs::symlink("..v1", d.join("..tmp")).unwrap();
        std::fs::rename(d.join("..tmp"), d.join("..data")).unwrap();
        seen_change("..data swap");
        std::fs::remove_file(d.join("b.toml")).unwrap();
        seen_change("removal");
        std::fs::remove_file(&main).unwrap();
        seen_change("main file removed");
    }

    #[test]
    fn a_look_keeps_what_was_seen_of_known_paths() {
        let a = PathBuf::from("/a");
        let b = PathBuf::from("/b");
        let before = Seen(BTreeMap::from([
            (a.clone(), 1),
            (PathBuf::from("/gone"), 9),
        ]));
        let now = Seen(BTreeMap::from([(a.clone(), 2), (b.clone(), 3)]));
        assert_eq!(now.keeping(&before), Seen(BTreeMap::from([(a, 1), (b, 3)])));
    }

    #[tokio::test]
    async fn no_look_starts_while_the_stuck_ones_hold_every_place() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("warden.toml");
        std::fs::write(&main, "x = 1\n").unwrap();
        let scope = Relevant::of(std::slice::from_ref(&main));
        let cancel = CancellationToken::new();
        let looks = Arc::new(tokio::sync::Semaphore::new(1 + STUCK_LOOKS));
        let seen = look(&scope, &cancel, &looks).await.unwrap();
        assert_eq!(seen, scope.look(), "a free place: a real look");
        // Every place held (looks stuck on a hung file system): no thread is started, and the
        // answer is "changed", so the reload that follows says what is wrong.
        let _stuck = looks.clone().acquire_many_owned(3).await.unwrap();
        let answer = look(&scope, &cancel, &looks).await.unwrap();
        assert_ne!(answer, seen);
        assert!(answer.0.contains_key(Path::new("\0timeout")));
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

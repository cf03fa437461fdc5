//! A deterministic [jj](https://jj-vcs.dev) mirror of the cluster's change history.
//!
//! The server's change log (revision → changed object) is replayed, one slice at a
//! time, into a jj repository (normally `<data-dir>/history`) backed by jj-lib's
//! internal git backend. Each [`Mirror::record`] call becomes exactly one commit (a
//! child of the previous one, the first a child of jj's root commit) and exactly one
//! jj operation, so the history can be browsed with stock tools:
//!
//! * `jj log -r ::history` / `jj op log` run in the repository directory;
//! * `git --git-dir <dir>/.jj/repo/store/git log --all` (or `log history`).
//!
//! The tree holds one file per object (the caller picks the paths, e.g.
//! `core/v1/configmaps/default/x.yaml`); a deleted object's file is removed.
//!
//! # Determinism
//!
//! Replicas fed the same [`Mirror::record`] calls end with identical commit and
//! operation ids. Everything jj would otherwise take from the environment is fixed:
//! user name/e-mail, operation host/user name, the random seed (it picks the change
//! id of the default workspace's working-copy commit), and the timestamps. The
//! repository is created with commit and operation timestamps at the Unix epoch;
//! a recorded commit's author/committer time and its operation's start/end time are
//! the `time_ms` of the slice's last change, and its change id is derived from the
//! revision range. Running `jj` commands in the repository adds operations of its
//! own, after which ids naturally differ from other replicas.
//!
//! # Cost
//!
//! A record writes the changed blobs and the trees on their paths, one commit, one
//! view and one operation; nothing walks the history. The caller's thread does all
//! the work (no threads or processes are spawned).

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::collections::VecDeque;
use std::error::Error as StdError;
use std::fmt;
use std::fs;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use futures::executor::block_on;
use jj_lib::backend::ChangeId;
use jj_lib::backend::CopyId;
use jj_lib::backend::MillisSinceEpoch;
use jj_lib::backend::Signature;
use jj_lib::backend::Timestamp;
use jj_lib::backend::TreeValue;
use jj_lib::commit::Commit;
use jj_lib::config::ConfigLayer;
use jj_lib::config::ConfigSource;
use jj_lib::config::ConfigValue;
use jj_lib::config::StackedConfig;
use jj_lib::content_hash::blake2b_hash;
use jj_lib::default_backend_factories::default_backend_factories;
use jj_lib::default_backend_factories::default_working_copy_factories;
use jj_lib::merge::Merge;
use jj_lib::merged_tree_builder::MergedTreeBuilder;
use jj_lib::object_id::ObjectId as _;
use jj_lib::op_store::RefTarget;
use jj_lib::operation::Operation;
use jj_lib::ref_name::RefName;
use jj_lib::repo::MutableRepo;
use jj_lib::repo::ReadonlyRepo;
use jj_lib::repo::Repo as _;
use jj_lib::repo_path::RepoPathBuf;
use jj_lib::settings::UserSettings;
use jj_lib::transaction::Transaction;
use jj_lib::view::View;
use jj_lib::workspace::Workspace;

/// The local bookmark that points at the newest recorded commit (exported to git as
/// `refs/heads/history`).
pub const BOOKMARK: &str = "history";
/// Operation attribute: the first store revision the operation recorded.
pub const ATTR_REVISION_FROM: &str = "reddwarf.revision-from";
/// Operation attribute: the last store revision the operation recorded.
pub const ATTR_REVISION_TO: &str = "reddwarf.revision-to";
/// Operation attribute: how many changes the operation recorded.
pub const ATTR_CHANGES: &str = "reddwarf.changes";

const USER_NAME: &str = "reddwarf";
const USER_EMAIL: &str = "history@reddwarf.invalid";
/// Commit and operation time of the repository's creation (the init operation and
/// the default workspace's working-copy commit), so that every replica's init is
/// identical.
const INIT_TIME: &str = "1970-01-01T00:00:00Z";
/// jj draws the working-copy commit's change id from this seeded RNG at init; the
/// recorded commits get change ids derived from their revision range instead.
const RANDOMNESS_SEED: i64 = 0x7265_6464_7761_7266; // "reddwarf"
/// The scratch directory (inside the mirror's directory) the repository is created
/// in before its `.jj` is renamed into place, so a crash mid-init leaves no
/// half-made `.jj` behind.
const STAGING_DIR: &str = ".reddwarf-init";

/// One entry of the server's change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The store revision (resourceVersion) of this change.
    pub revision: u64,
    /// The file's path in the tree, e.g. `core/v1/configmaps/default/x.yaml`
    /// (`/`-separated, no empty, `.` or `..` components).
    pub path: String,
    /// The file's new content (YAML); `None` when the object was deleted (the file
    /// is removed).
    pub content: Option<Vec<u8>>,
    /// One line for the commit description, e.g.
    /// `42 update configmaps default/x by alice (kubectl/v1.33)`.
    pub summary: String,
    /// When the change was applied, in milliseconds since the Unix epoch.
    pub time_ms: i64,
}

/// What one [`Mirror::record`] call wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The new jj operation's id (hex).
    pub operation_id: String,
    /// The new commit's id (hex; also its git object id).
    pub commit_id: String,
    /// The first recorded store revision.
    pub revision_from: u64,
    /// The last recorded store revision.
    pub revision_to: u64,
}

/// Why opening or recording failed.
#[derive(Debug)]
pub enum HistoryError {
    /// The `record` arguments were rejected; nothing was written.
    InvalidInput(String),
    /// The jj repository could not be created, read or written.
    Repo(String),
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidInput(msg) => write!(f, "history: invalid input: {msg}"),
            Self::Repo(msg) => write!(f, "history repository: {msg}"),
        }
    }
}

impl StdError for HistoryError {}

/// Wraps a jj-lib (or I/O) error with what was being done. jj-lib's top-level
/// messages are terse ("Failed to commit new operation"), so the whole source
/// chain goes into the message.
fn repo_err(context: impl fmt::Display, err: &dyn StdError) -> HistoryError {
    let mut msg = format!("{context}: {err}");
    let mut source = err.source();
    while let Some(cause) = source {
        msg.push_str(": ");
        msg.push_str(&cause.to_string());
        source = cause.source();
    }
    HistoryError::Repo(msg)
}

/// A jj repository mirroring the change log. Not shareable between processes
/// writing at the same time (jj would record divergent operations).
pub struct Mirror {
    dir: PathBuf,
    /// The fixed configuration every operation's settings are derived from.
    config: StackedConfig,
    settings: UserSettings,
    /// The repository at the head operation (the one this mirror wrote last).
    repo: Arc<ReadonlyRepo>,
    /// The last recorded store revision (0 before the first record).
    recorded: u64,
    /// The last recorded commit (jj's root commit before the first record).
    last_commit: Commit,
}

impl fmt::Debug for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mirror")
            .field("dir", &self.dir)
            .field("operation", &self.repo.op_id().hex())
            .field("recorded", &self.recorded)
            .field("last_commit", &self.last_commit.id().hex())
            .finish()
    }
}

impl Mirror {
    /// Opens the repository at `dir`, creating it (and `dir`) if absent.
    pub fn open(dir: &Path) -> Result<Mirror, HistoryError> {
        let config = base_config()?;
        let settings = UserSettings::from_config(config.clone())
            .map_err(|e| repo_err("reading the jj settings", &e))?;
        if !dir.join(".jj").is_dir() {
            init(dir, &config)?;
        }
        let workspace = Workspace::load(
            &settings,
            dir,
            &default_backend_factories(),
            &default_working_copy_factories(),
        )
        .map_err(|e| repo_err(format_args!("opening {}", dir.display()), &e))?;
        let repo = block_on(workspace.repo_loader().load_at_head())
            .map_err(|e| repo_err("loading the head operation", &e))?;
        let (recorded, last_commit) = recorded_state(&repo)?;
        Ok(Mirror {
            dir: dir.to_owned(),
            config,
            settings,
            repo,
            recorded,
            last_commit,
        })
    }

    /// The last store revision recorded (0 for a new repository), as the newest
    /// operation written by a mirror says.
    pub fn recorded_revision(&self) -> u64 {
        self.recorded
    }

    /// The head operation's id (hex) and the revision recorded up to.
    pub fn head(&self) -> (String, u64) {
        (self.repo.op_id().hex(), self.recorded)
    }

    /// Records `changes` (sorted by revision, all above [`Self::recorded_revision`])
    /// as one commit on top of the previous one and one jj operation. Several changes
    /// to one path: the last wins.
    pub fn record(&mut self, changes: &[Change]) -> Result<Recorded, HistoryError> {
        // First, so that validation sees the revision the head really recorded.
        self.catch_up_with_head()?;
        let paths = self.validate(changes)?;
        let (Some(first), Some(last)) = (changes.first(), changes.last()) else {
            unreachable!("validate rejects an empty slice");
        };
        let (from, to) = (first.revision, last.revision);

        let settings = self.settings_at(last.time_ms)?;
        let signature = Signature {
            name: USER_NAME.to_owned(),
            email: USER_EMAIL.to_owned(),
            timestamp: timestamp(last.time_ms),
        };
        let title = format!("revisions {from}-{to}: {} changes", changes.len());
        let mut description = format!("{title}\n\n");
        for change in changes {
            // One line per change, whatever the summary holds.
            description.extend(change.summary.chars().map(|c| match c {
                '\n' | '\r' => ' ',
                c => c,
            }));
            description.push('\n');
        }

        let repo = self.repo.clone();
        let parent = self.last_commit.clone();
        let (new_repo, commit) = block_on(async {
            let store = repo.store();
            let mut tree = MergedTreeBuilder::new(parent.tree());
            for (path, content) in paths {
                let value = match content {
                    Some(mut bytes) => {
                        let id = store
                            .write_file(&path, &mut bytes)
                            .await
                            .map_err(|e| repo_err(format_args!("writing {path:?}"), &e))?;
                        Merge::normal(TreeValue::File {
                            id,
                            executable: false,
                            copy_id: CopyId::placeholder(),
                        })
                    }
                    None => Merge::absent(),
                };
                tree.set_or_remove(path, value);
            }
            let tree = tree
                .write_tree()
                .await
                .map_err(|e| repo_err("writing the tree", &e))?;

            // Transaction::new rather than repo.start_transaction(): the settings
            // passed here carry this operation's timestamp.
            let mut_repo = MutableRepo::new(repo.clone(), repo.readonly_index(), repo.view());
            let mut tx = Transaction::new(mut_repo, &settings);
            let commit = tx
                .repo_mut()
                .new_commit(vec![parent.id().clone()], tree)
                .set_change_id(change_id(from, to))
                .set_author(signature.clone())
                .set_committer(signature)
                .set_description(description)
                .write()
                .await
                .map_err(|e| repo_err("writing the commit", &e))?;
            tx.repo_mut().set_local_bookmark_target(
                RefName::new(BOOKMARK),
                RefTarget::normal(commit.id().clone()),
            );
            // Mirror the bookmark to refs/heads/history in the git store so plain git
            // can browse it (jj only does this by itself in colocated repos). A ref
            // that cannot be updated (moved by hand) comes back in the stats, not as an
            // error: jj leaves its record of the git ref as it was and retries on the
            // next export, and recording must not stop over it.
            jj_lib::git::export_refs(tx.repo_mut())
                .map_err(|e| repo_err("exporting the bookmark to git", &e))?;
            tx.set_attribute(ATTR_REVISION_FROM.to_owned(), from.to_string());
            tx.set_attribute(ATTR_REVISION_TO.to_owned(), to.to_string());
            tx.set_attribute(ATTR_CHANGES.to_owned(), changes.len().to_string());
            let new_repo = tx
                .commit(title)
                .await
                .map_err(|e| repo_err("committing the operation", &e))?;
            Ok::<_, HistoryError>((new_repo, commit))
        })?;

        // jj's store keeps the last thousand trees in memory; a namespace directory of a
        // million objects is a tree of tens of MB, so the cache would hold gigabytes. The
        // next record reads the one tree it needs back from git.
        new_repo.store().clear_caches();
        self.repo = new_repo;
        self.recorded = to;
        let recorded = Recorded {
            operation_id: self.repo.op_id().hex(),
            commit_id: commit.id().hex(),
            revision_from: from,
            revision_to: to,
        };
        self.last_commit = commit;
        Ok(recorded)
    }

    /// Checks `changes` before anything is written; returns the final content of
    /// each touched path (the last change to a path wins).
    fn validate<'a>(
        &self,
        changes: &'a [Change],
    ) -> Result<BTreeMap<RepoPathBuf, Option<&'a [u8]>>, HistoryError> {
        let invalid = |msg: String| Err(HistoryError::InvalidInput(msg));
        let Some(first) = changes.first() else {
            return invalid("no changes to record".to_owned());
        };
        if first.revision <= self.recorded {
            return invalid(format!(
                "revision {} is not above the recorded revision {}",
                first.revision, self.recorded
            ));
        }
        let mut paths = BTreeMap::new();
        let mut previous = first.revision;
        for change in changes {
            if change.revision < previous {
                return invalid(format!(
                    "changes are not sorted by revision ({} after {previous})",
                    change.revision
                ));
            }
            previous = change.revision;
            let path = match RepoPathBuf::from_internal_string(change.path.as_str()) {
                Ok(path)
                    if !path.is_root()
                        && path
                            .components()
                            .all(|c| c.as_internal_str() != "." && c.as_internal_str() != "..") =>
                {
                    path
                }
                _ => {
                    return invalid(format!(
                        "revision {}: invalid path {:?}",
                        change.revision, change.path
                    ));
                }
            };
            paths.insert(path, change.content.as_deref());
        }
        if let Some(last) = changes.last() {
            timestamp(last.time_ms).to_datetime().map_err(|_| {
                HistoryError::InvalidInput(format!(
                    "revision {}: time {} ms is out of range",
                    last.revision, last.time_ms
                ))
            })?;
        }
        Ok(paths)
    }

    /// If something else (a `jj` command run in the repository) added operations
    /// since our last one, continues from the new head like a reopen would. Only the
    /// op-heads directory is listed when nothing changed.
    fn catch_up_with_head(&mut self) -> Result<(), HistoryError> {
        let heads = block_on(self.repo.op_heads_store().get_op_heads())
            .map_err(|e| repo_err("reading the operation heads", &e))?;
        if heads.as_slice() == std::slice::from_ref(self.repo.op_id()) {
            return Ok(());
        }
        let repo = block_on(self.repo.reload_at_head())
            .map_err(|e| repo_err("loading the head operation", &e))?;
        let (recorded, last_commit) = recorded_state(&repo)?;
        self.repo = repo;
        self.recorded = recorded;
        self.last_commit = last_commit;
        Ok(())
    }

    /// Settings for one operation: jj's `Transaction` takes the operation's start and
    /// end time from `debug.operation-timestamp`.
    fn settings_at(&self, time_ms: i64) -> Result<UserSettings, HistoryError> {
        let time = timestamp(time_ms)
            .to_datetime()
            .map_err(|e| repo_err("converting the operation time", &e))?
            .to_rfc3339();
        let mut layer = ConfigLayer::empty(ConfigSource::CommandArg);
        set(&mut layer, "debug.operation-timestamp", time)?;
        let mut config = self.config.clone();
        config.add_layer(layer);
        self.settings
            .with_new_config(config)
            .map_err(|e| repo_err("building the operation settings", &e))
    }
}

/// jj-lib's defaults plus everything that must not vary between replicas.
fn base_config() -> Result<StackedConfig, HistoryError> {
    let mut layer = ConfigLayer::empty(ConfigSource::CommandArg);
    set(&mut layer, "user.name", USER_NAME)?;
    set(&mut layer, "user.email", USER_EMAIL)?;
    set(&mut layer, "operation.hostname", "reddwarf")?;
    set(&mut layer, "operation.username", "reddwarf")?;
    set(&mut layer, "debug.randomness-seed", RANDOMNESS_SEED)?;
    // Only init takes these: record() sets its commits' signatures itself and passes
    // a per-operation timestamp.
    set(&mut layer, "debug.commit-timestamp", INIT_TIME)?;
    set(&mut layer, "debug.operation-timestamp", INIT_TIME)?;
    let mut config = StackedConfig::with_defaults();
    config.add_layer(layer);
    Ok(config)
}

fn set(
    layer: &mut ConfigLayer,
    name: &'static str,
    value: impl Into<ConfigValue>,
) -> Result<(), HistoryError> {
    layer
        .set_value(name, value)
        .map(drop)
        .map_err(|e| repo_err(format_args!("setting {name}"), &e))
}

/// Creates the repository in a scratch directory and renames its `.jj` into `dir`.
/// The paths jj stores are relative (`store/git_target`, the workspace store), and
/// the scratch directory is a sibling of `.jj`'s final place, so they stay valid.
fn init(dir: &Path, config: &StackedConfig) -> Result<(), HistoryError> {
    let io_err = |what: &str, path: &Path, e: std::io::Error| {
        repo_err(format_args!("{what} {}", path.display()), &e)
    };
    fs::create_dir_all(dir).map_err(|e| io_err("creating", dir, e))?;
    let staging = dir.join(STAGING_DIR);
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(|e| io_err("removing", &staging, e))?;
    }
    fs::create_dir(&staging).map_err(|e| io_err("creating", &staging, e))?;
    // Fresh settings: the seeded RNG must be at its start for the working-copy
    // commit's change id to be the same everywhere.
    let settings = UserSettings::from_config(config.clone())
        .map_err(|e| repo_err("reading the jj settings", &e))?;
    block_on(Workspace::init_internal_git(
        &settings,
        &staging,
        gix::hash::Kind::Sha1,
    ))
    .map_err(|e| {
        repo_err(
            format_args!("creating a jj repository in {}", dir.display()),
            &e,
        )
    })?;
    let jj_dir = dir.join(".jj");
    fs::rename(staging.join(".jj"), &jj_dir)
        .map_err(|e| io_err("moving into place", &jj_dir, e))?;
    fs::remove_dir(&staging).map_err(|e| io_err("removing", &staging, e))?;
    Ok(())
}

/// The last recorded revision and commit, from the newest operation carrying our
/// attributes: normally the head itself, otherwise the nearest one behind operations
/// that `jj` commands added. The root operation means nothing was recorded yet.
fn recorded_state(repo: &Arc<ReadonlyRepo>) -> Result<(u64, Commit), HistoryError> {
    let root = || repo.store().root_commit();
    let mut queue = VecDeque::from([repo.operation().clone()]);
    let mut seen = HashSet::new();
    while let Some(op) = queue.pop_front() {
        if !seen.insert(op.id().clone()) {
            continue;
        }
        if let Some(to) = op.metadata().attributes.get(ATTR_REVISION_TO) {
            let revision = to.parse::<u64>().map_err(|e| {
                repo_err(
                    format_args!("operation {}: attribute {ATTR_REVISION_TO}", op.id().hex()),
                    &e,
                )
            })?;
            let commit = match recorded_commit(repo, &op)? {
                Some(id) => repo
                    .store()
                    .get_commit(&id)
                    .map_err(|e| repo_err(format_args!("reading commit {}", id.hex()), &e))?,
                None => root(),
            };
            return Ok((revision, commit));
        }
        let parents =
            block_on(op.parents()).map_err(|e| repo_err("reading the operation log", &e))?;
        queue.extend(parents);
    }
    Ok((0, root()))
}

/// The commit our operation `op` pointed the bookmark at (in `op`'s own view, so a
/// bookmark moved later by hand does not matter).
fn recorded_commit(
    repo: &Arc<ReadonlyRepo>,
    op: &Operation,
) -> Result<Option<jj_lib::backend::CommitId>, HistoryError> {
    let target = |view: &View| {
        view.get_local_bookmark(RefName::new(BOOKMARK))
            .as_normal()
            .cloned()
    };
    if op.id() == repo.op_id() {
        return Ok(target(repo.view()));
    }
    let view = block_on(op.view()).map_err(|e| repo_err("reading an operation's view", &e))?;
    Ok(target(&view))
}

fn timestamp(time_ms: i64) -> Timestamp {
    Timestamp {
        timestamp: MillisSinceEpoch(time_ms),
        tz_offset: 0,
    }
}

/// The change id of the commit recording revisions `from..=to`: the first 16 bytes
/// (jj's git backend's change-id length) of BLAKE2b-512 over jj's content-hash
/// encoding of the string `reddwarf-history:<from>-<to>`.
fn change_id(from: u64, to: u64) -> ChangeId {
    let hash = blake2b_hash(&format!("reddwarf-history:{from}-{to}"));
    ChangeId::from_bytes(&hash[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Mirror>();
    }

    #[test]
    fn change_id_depends_on_the_range() {
        assert_eq!(change_id(1, 2), change_id(1, 2));
        assert_ne!(change_id(1, 2), change_id(1, 3));
        assert_eq!(change_id(1, 2).as_bytes().len(), 16);
    }
}

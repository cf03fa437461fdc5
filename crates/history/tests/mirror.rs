//! Behaviour of the jj mirror: tree contents, determinism, reopening, the git store.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use futures::executor::block_on;
use futures::AsyncReadExt as _;
use jj_lib::backend::TreeValue;
use jj_lib::config::StackedConfig;
use jj_lib::default_backend_factories::default_backend_factories;
use jj_lib::default_backend_factories::default_working_copy_factories;
use jj_lib::object_id::ObjectId as _;
use jj_lib::op_store::RefTarget;
use jj_lib::ref_name::RefName;
use jj_lib::repo::ReadonlyRepo;
use jj_lib::repo::Repo as _;
use jj_lib::settings::UserSettings;
use jj_lib::workspace::Workspace;
use reddwarf_history::Change;
use reddwarf_history::HistoryError;
use reddwarf_history::Mirror;
use reddwarf_history::Recorded;

const T0: i64 = 1_750_000_000_123;

fn put(revision: u64, path: &str, content: &str) -> Change {
    Change {
        revision,
        path: path.to_owned(),
        content: Some(content.as_bytes().to_vec()),
        summary: format!("{revision} update {path} by alice (kubectl/v1.33)"),
        time_ms: T0 + revision as i64 * 1000,
    }
}

fn delete(revision: u64, path: &str) -> Change {
    Change {
        revision,
        path: path.to_owned(),
        content: None,
        summary: format!("{revision} delete {path} by bob"),
        time_ms: T0 + revision as i64 * 1000,
    }
}

/// A few slices covering create, update, delete and several writes to one path.
fn slices() -> Vec<Vec<Change>> {
    vec![
        vec![
            put(1, "core/v1/configmaps/default/a.yaml", "a: 1\n"),
            put(2, "core/v1/configmaps/default/b.yaml", "b: 1\n"),
            put(3, "core/v1/namespaces/_cluster/default.yaml", "ns\n"),
        ],
        vec![
            put(4, "core/v1/configmaps/default/a.yaml", "a: 2\n"),
            delete(5, "core/v1/configmaps/default/b.yaml"),
            put(6, "apps/v1/deployments/ns/d.yaml", "d: 1\n"),
        ],
        vec![
            put(8, "apps/v1/deployments/ns/d.yaml", "d: 2\n"),
            delete(9, "apps/v1/deployments/ns/d.yaml"),
            put(9, "apps/v1/deployments/ns/d.yaml", "d: 3\n"),
            put(10, "core/v1/configmaps/other/c.yaml", "c: 1\n"),
            delete(11, "core/v1/configmaps/other/c.yaml"),
        ],
    ]
}

/// The repository as a plain jj-lib client (default settings) sees it at head.
fn load(dir: &Path) -> Arc<ReadonlyRepo> {
    let settings = UserSettings::from_config(StackedConfig::with_defaults()).unwrap();
    let workspace = Workspace::load(
        &settings,
        dir,
        &default_backend_factories(),
        &default_working_copy_factories(),
    )
    .unwrap();
    block_on(workspace.repo_loader().load_at_head()).unwrap()
}

/// path → content of the commit the `history` bookmark points at.
fn files(dir: &Path) -> BTreeMap<String, String> {
    let repo = load(dir);
    let target = repo.view().get_local_bookmark(RefName::new("history"));
    let id = target.as_normal().expect("history bookmark").clone();
    let commit = repo.store().get_commit(&id).unwrap();
    let mut out = BTreeMap::new();
    for (path, value) in commit.tree().entries() {
        let value = value.unwrap();
        let Some(Some(TreeValue::File { id, executable, .. })) = value.as_resolved() else {
            panic!("{path:?} is not a plain file: {value:?}");
        };
        assert!(!executable);
        let mut reader = block_on(repo.store().read_file(&path, id)).unwrap();
        let mut buf = Vec::new();
        block_on(reader.read_to_end(&mut buf)).unwrap();
        out.insert(
            path.as_internal_file_string().to_owned(),
            String::from_utf8(buf).unwrap(),
        );
    }
    out
}

fn git_dir(dir: &Path) -> std::path::PathBuf {
    dir.join(".jj/repo/store/git")
}

fn record_all(mirror: &mut Mirror) -> Vec<Recorded> {
    slices()
        .iter()
        .map(|slice| mirror.record(slice).unwrap())
        .collect()
}

#[test]
fn create_update_delete() {
    let tmp = tempfile::tempdir().unwrap();
    // `open` creates missing parent directories too.
    let dir = tmp.path().join("data/history");
    let mut mirror = Mirror::open(&dir).unwrap();
    assert_eq!(mirror.recorded_revision(), 0);
    assert_eq!(mirror.head().1, 0);
    let slices = slices();

    let r1 = mirror.record(&slices[0]).unwrap();
    assert_eq!((r1.revision_from, r1.revision_to), (1, 3));
    assert_eq!(mirror.recorded_revision(), 3);
    assert_eq!(mirror.head(), (r1.operation_id.clone(), 3));
    assert_eq!(
        files(&dir),
        BTreeMap::from([
            (
                "core/v1/configmaps/default/a.yaml".to_owned(),
                "a: 1\n".to_owned()
            ),
            (
                "core/v1/configmaps/default/b.yaml".to_owned(),
                "b: 1\n".to_owned()
            ),
            (
                "core/v1/namespaces/_cluster/default.yaml".to_owned(),
                "ns\n".to_owned()
            ),
        ])
    );

    mirror.record(&slices[1]).unwrap();
    assert_eq!(
        files(&dir),
        BTreeMap::from([
            (
                "apps/v1/deployments/ns/d.yaml".to_owned(),
                "d: 1\n".to_owned()
            ),
            (
                "core/v1/configmaps/default/a.yaml".to_owned(),
                "a: 2\n".to_owned()
            ),
            (
                "core/v1/namespaces/_cluster/default.yaml".to_owned(),
                "ns\n".to_owned()
            ),
        ])
    );

    // Same path several times in one slice: the last change wins, also when a
    // file is created and deleted within the slice.
    let r3 = mirror.record(&slices[2]).unwrap();
    assert_eq!((r3.revision_from, r3.revision_to), (8, 11));
    assert_eq!(
        files(&dir),
        BTreeMap::from([
            (
                "apps/v1/deployments/ns/d.yaml".to_owned(),
                "d: 3\n".to_owned()
            ),
            (
                "core/v1/configmaps/default/a.yaml".to_owned(),
                "a: 2\n".to_owned()
            ),
            (
                "core/v1/namespaces/_cluster/default.yaml".to_owned(),
                "ns\n".to_owned()
            ),
        ])
    );
}

#[test]
fn commit_and_operation_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let mut mirror = Mirror::open(tmp.path()).unwrap();
    let recorded = record_all(&mut mirror);
    let last = recorded.last().unwrap();

    let repo = load(tmp.path());
    assert_eq!(repo.op_id().hex(), last.operation_id);
    let op = repo.operation();
    let meta = op.metadata();
    assert_eq!(meta.description, "revisions 8-11: 5 changes");
    assert_eq!(meta.hostname, "reddwarf");
    assert_eq!(meta.username, "reddwarf");
    assert_eq!(meta.time.start, meta.time.end);
    assert_eq!(meta.time.start.timestamp.0, T0 + 11_000);
    assert_eq!(meta.attributes["reddwarf.revision-from"], "8");
    assert_eq!(meta.attributes["reddwarf.revision-to"], "11");
    assert_eq!(meta.attributes["reddwarf.changes"], "5");

    let id = repo
        .view()
        .get_local_bookmark(RefName::new("history"))
        .as_normal()
        .unwrap()
        .clone();
    assert_eq!(id.hex(), last.commit_id);
    let commit = repo.store().get_commit(&id).unwrap();
    let summaries: Vec<String> = slices()[2].iter().map(|c| c.summary.clone()).collect();
    assert_eq!(
        commit.description(),
        format!("revisions 8-11: 5 changes\n\n{}\n", summaries.join("\n"))
    );
    assert_eq!(commit.author().name, "reddwarf");
    assert_eq!(commit.author().email, "history@reddwarf.invalid");
    // git keeps whole seconds
    assert_eq!(
        commit.author().timestamp.timestamp.0,
        (T0 + 11_000) / 1000 * 1000
    );
    assert_eq!(commit.author().timestamp.tz_offset, 0);
    assert_eq!(commit.committer(), commit.author());

    // A linear chain down to the root commit.
    let mut chain = vec![commit.clone()];
    while let [parent] = chain.last().unwrap().parent_ids() {
        if parent == repo.store().root_commit_id() {
            break;
        }
        chain.push(repo.store().get_commit(parent).unwrap());
    }
    let ids: Vec<String> = chain.iter().rev().map(|c| c.id().hex()).collect();
    let expected: Vec<String> = recorded.iter().map(|r| r.commit_id.clone()).collect();
    assert_eq!(ids, expected);
    // Change ids come from the revision range, so they are stable and distinct.
    let change_ids: std::collections::HashSet<_> =
        chain.iter().map(|c| c.change_id().clone()).collect();
    assert_eq!(change_ids.len(), 3);
}

#[test]
fn two_repos_get_identical_ids() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let mut ma = Mirror::open(a.path()).unwrap();
    let mut mb = Mirror::open(&b.path().join("elsewhere")).unwrap();
    // The init operation (and its working-copy commit) is the same too.
    assert_eq!(ma.head(), mb.head());
    for slice in slices() {
        let ra = ma.record(&slice).unwrap();
        let rb = mb.record(&slice).unwrap();
        assert_eq!(ra, rb);
        assert_eq!(ma.head(), mb.head());
    }
    let (ra, rb) = (load(a.path()), load(&b.path().join("elsewhere")));
    assert_eq!(ra.view().store_view(), rb.view().store_view());

    // And the ids do depend on the content and on the time.
    let c = tempfile::tempdir().unwrap();
    let mut mc = Mirror::open(c.path()).unwrap();
    let mut slice = slices()[0].clone();
    slice[2].time_ms += 1000;
    let rc = mc.record(&slice).unwrap();
    let first = {
        let d = tempfile::tempdir().unwrap();
        Mirror::open(d.path())
            .unwrap()
            .record(&slices()[0])
            .unwrap()
    };
    assert_ne!(rc.commit_id, first.commit_id);
    assert_ne!(rc.operation_id, first.operation_id);
}

#[test]
fn reopen_continues_from_head() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = tempfile::tempdir().unwrap();
    let mut continuous = Mirror::open(reference.path()).unwrap();
    let expected = record_all(&mut continuous);

    // Reopen before every slice; the ids must match a mirror that stayed open.
    let mut got = Vec::new();
    for slice in slices() {
        let before = Mirror::open(tmp.path()).unwrap();
        let head = before.head();
        drop(before);
        let mut mirror = Mirror::open(tmp.path()).unwrap();
        assert_eq!(mirror.head(), head);
        got.push(mirror.record(&slice).unwrap());
        let reopened = Mirror::open(tmp.path()).unwrap();
        assert_eq!(reopened.recorded_revision(), slice.last().unwrap().revision);
        assert_eq!(reopened.head(), mirror.head());
    }
    assert_eq!(got, expected);
    assert_eq!(continuous.head(), Mirror::open(tmp.path()).unwrap().head());
}

#[test]
fn rejects_bad_input_without_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut mirror = Mirror::open(tmp.path()).unwrap();
    mirror.record(&slices()[0]).unwrap();
    let head = mirror.head();

    let cases: Vec<Vec<Change>> = vec![
        vec![],
        vec![put(3, "x/y.yaml", "")],
        vec![put(2, "x/y.yaml", "")],
        vec![put(5, "x/y.yaml", ""), put(4, "x/z.yaml", "")],
        vec![put(5, "", "")],
        vec![put(5, "x//y.yaml", "")],
        vec![put(5, "/x/y.yaml", "")],
        vec![put(5, "x/../y.yaml", "")],
        vec![put(5, "x/./y.yaml", "")],
        vec![Change {
            time_ms: i64::MAX,
            ..put(5, "x/y.yaml", "")
        }],
    ];
    for case in cases {
        let err = mirror.record(&case).unwrap_err();
        assert!(matches!(err, HistoryError::InvalidInput(_)), "{err}");
        assert!(
            err.to_string().starts_with("history: invalid input: "),
            "{err}"
        );
        assert_eq!(mirror.head(), head);
    }
    assert_eq!(Mirror::open(tmp.path()).unwrap().head(), head);
    // Still usable afterwards.
    mirror.record(&slices()[1]).unwrap();
}

#[test]
fn continues_after_a_foreign_operation() {
    let tmp = tempfile::tempdir().unwrap();
    let mut mirror = Mirror::open(tmp.path()).unwrap();
    let first = mirror.record(&slices()[0]).unwrap();

    // Someone runs a jj command in the repository (here: creates a bookmark).
    let repo = load(tmp.path());
    let mut tx = repo.start_transaction();
    let root = repo.store().root_commit_id().clone();
    tx.repo_mut()
        .set_local_bookmark_target(RefName::new("someone"), RefTarget::normal(root));
    block_on(tx.commit("create bookmark someone")).unwrap();

    // A reopened mirror finds its state behind the foreign operation...
    assert_eq!(Mirror::open(tmp.path()).unwrap().recorded_revision(), 3);
    // ...and the open one notices the new head before writing.
    let second = mirror.record(&slices()[1]).unwrap();
    let repo = load(tmp.path());
    assert_eq!(repo.op_id().hex(), second.operation_id);
    // Our operation follows the foreign one, which stays in effect...
    let parents = block_on(repo.operation().parents()).unwrap();
    assert_eq!(parents.len(), 1);
    assert_eq!(parents[0].metadata().description, "create bookmark someone");
    assert!(repo
        .view()
        .get_local_bookmark(RefName::new("someone"))
        .is_present());
    // ...and the commit still continues the recorded chain.
    let id = repo
        .view()
        .get_local_bookmark(RefName::new("history"))
        .as_normal()
        .unwrap()
        .clone();
    assert_eq!(id.hex(), second.commit_id);
    let commit = repo.store().get_commit(&id).unwrap();
    assert_eq!(commit.parent_ids()[0].hex(), first.commit_id);
    assert_eq!(mirror.recorded_revision(), 6);
}

#[test]
fn leftover_staging_directory_is_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let staging = tmp.path().join(".reddwarf-init/.jj");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("junk"), "x").unwrap();
    let mut mirror = Mirror::open(tmp.path()).unwrap();
    mirror.record(&slices()[0]).unwrap();
    assert!(!tmp.path().join(".reddwarf-init").exists());
    // The rename kept jj's relative paths valid.
    assert_eq!(files(tmp.path()).len(), 3);
}

#[test]
fn git_store_has_the_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let mut mirror = Mirror::open(tmp.path()).unwrap();
    let recorded = record_all(&mut mirror);
    let git_dir = git_dir(tmp.path());
    assert!(git_dir.join("objects").is_dir());

    // Read with gix, independently of jj-lib's git backend.
    let repo = gix::open(&git_dir).unwrap();
    for r in &recorded {
        let id = gix::ObjectId::from_hex(r.commit_id.as_bytes()).unwrap();
        repo.find_commit(id).unwrap();
    }
    let branch = repo.find_reference("refs/heads/history").unwrap();
    assert_eq!(branch.id().to_string(), recorded.last().unwrap().commit_id);

    // And with stock git when it is installed.
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("--git-dir")
            .arg(&git_dir)
            .args(args)
            .output()
    };
    let Ok(out) = git(&["log", "--all", "--format=%H"]) else {
        eprintln!("git not installed; skipping the git CLI checks");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8(out.stdout).unwrap();
    for r in &recorded {
        assert!(listed.lines().any(|l| l == r.commit_id), "{listed}");
    }
    let out = git(&["show", "history:apps/v1/deployments/ns/d.yaml"]).unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "d: 3\n");
    let out = git(&["log", "-1", "--format=%s%n%an <%ae> %at", "history"]).unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!(
            "revisions 8-11: 5 changes\nreddwarf <history@reddwarf.invalid> {}\n",
            (T0 + 11_000) / 1000
        )
    );
    let out = git(&["fsck", "--strict", "--no-dangling"]).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_second_writer_is_noticed() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = tempfile::tempdir().unwrap();
    let expected = record_all(&mut Mirror::open(reference.path()).unwrap());

    let mut a = Mirror::open(tmp.path()).unwrap();
    let mut b = Mirror::open(tmp.path()).unwrap();
    let slices = slices();
    assert_eq!(a.record(&slices[0]).unwrap(), expected[0]);
    // b catches up with a's operation before validating, so the slice a wrote is
    // refused rather than recorded twice...
    let err = b.record(&slices[0]).unwrap_err();
    assert!(matches!(err, HistoryError::InvalidInput(_)), "{err}");
    assert_eq!(b.recorded_revision(), 3);
    // ...and continuing through either mirror gives the single-writer history.
    assert_eq!(b.record(&slices[1]).unwrap(), expected[1]);
    assert_eq!(a.record(&slices[2]).unwrap(), expected[2]);
}

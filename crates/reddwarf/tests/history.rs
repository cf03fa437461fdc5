//! The change history, as a user meets it: kubectl makes changes, `reddwarf history`
//! (through the API server) lists, shows, diffs and restores them; `git` reads the jj mirror
//! in place; RBAC limits what each user sees; a SIGKILL mid-storm loses no acknowledged change
//! and records none twice.

mod common;

use std::collections::HashMap;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{eventually, kill9_during_create_storm, parse, token_kubeconfig, Server};
use serde_json::Value;

fn history(kubeconfig: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reddwarf"))
        .arg("history")
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env_remove("KUBECONFIG")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .output()
        .expect("run reddwarf history")
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn admin(s: &Server) -> String {
    s.kubeconfig().display().to_string()
}

fn log_json(s: &Server, args: &[&str]) -> Vec<Value> {
    let mut a = vec!["log"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "json", "--limit", "100000"]);
    let v = parse(&ok(history(&admin(s), &a), "history log"));
    v["items"].as_array().cloned().unwrap_or_default()
}

fn git_log(s: &Server) -> Option<String> {
    let git_dir = s.data_dir().join("history/.jj/repo/store/git");
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(&git_dir)
        .args(["log", "--all", "--format=%H%n%B"])
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "git log on {}: {}",
        git_dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn mirror_revision(s: &Server) -> u64 {
    let v = parse(&ok(history(&admin(s), &["status"]), "history status"));
    v["mirror"]["revision"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_configmaps_changes_are_listed_shown_diffed_and_restored() {
    let s = Server::start();
    let k = "1.33";
    s.kubectl_ok(k, &["create", "configmap", "x", "--from-literal=a=1"]);
    s.kubectl_ok(
        k,
        &["patch", "configmap", "x", "-p", r#"{"data":{"a":"2"}}"#],
    );
    s.kubectl_ok(k, &["patch", "cm", "x", "-p", r#"{"data":{"b":"3"}}"#]);
    s.kubectl_ok(k, &["delete", "configmap", "x"]);

    let changes = log_json(&s, &["configmap/x"]);
    let seen: Vec<(&str, &str)> = changes
        .iter()
        .map(|c| (c["verb"].as_str().unwrap(), c["user"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("delete", "admin"),
            ("patch", "admin"),
            ("patch", "admin"),
            ("create", "admin")
        ],
        "{changes:?}"
    );
    assert!(changes[3]["userAgent"]
        .as_str()
        .is_some_and(|ua| ua.starts_with("kubectl")));
    let rev = |i: usize| changes[i]["revision"].as_str().unwrap().to_string();
    let (created, patched) = (rev(3), rev(1));
    // the table form, and kubectl's ways of naming the object
    let table = ok(history(&admin(&s), &["log", "cm/x"]), "history log cm/x");
    assert!(table.contains("REVISION"), "{table}");
    assert_eq!(
        table.lines().filter(|l| l.contains("configmaps/x")).count(),
        4,
        "{table}"
    );
    assert!(table.contains("kubectl"), "{table}");

    let first = ok(
        history(
            &admin(&s),
            &["show", "configmaps/x", "--revision", &created],
        ),
        "show",
    );
    assert!(
        first.contains("a: '1'") || first.contains("a: \"1\""),
        "{first}"
    );
    assert!(!first.contains("managedFields"), "{first}");

    let diff = ok(
        history(
            &admin(&s),
            &["diff", "cm/x", "--from", &created, "--to", &patched],
        ),
        "diff",
    );
    assert!(diff.contains("-  a: '1'"), "{diff}");
    assert!(diff.contains("+  a: '2'"), "{diff}");
    assert!(diff.contains("+  b: '3'"), "{diff}");

    // the deleted object comes back as it was
    let out = ok(
        history(&admin(&s), &["restore", "cm/x", "--revision", &patched]),
        "restore",
    );
    assert!(out.contains("recreated"), "{out}");
    let data = s.kubectl_ok(k, &["get", "cm", "x", "-o", "jsonpath={.data}"]);
    assert_eq!(parse(&data), serde_json::json!({"a": "2", "b": "3"}));
    let restored = log_json(&s, &["configmap/x"]);
    assert_eq!(restored[0]["verb"], "create");
    assert_eq!(
        restored[0]["userAgent"]
            .as_str()
            .map(|u| u.starts_with("reddwarf/")),
        Some(true)
    );

    // a later change to the field the restore would undo: refused, the field named
    s.kubectl_ok(k, &["patch", "cm", "x", "-p", r#"{"data":{"a":"9"}}"#]);
    let out = history(&admin(&s), &["restore", "cm/x", "--revision", &created]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("data.a"), "{err}");
    let data = s.kubectl_ok(k, &["get", "cm", "x", "-o", "jsonpath={.data.a}"]);
    assert_eq!(data, "9", "a refused restore wrote nothing");
    // --force takes the old version whole
    ok(
        history(
            &admin(&s),
            &["restore", "cm/x", "--revision", &created, "--force"],
        ),
        "forced restore",
    );
    let data = s.kubectl_ok(k, &["get", "cm", "x", "-o", "jsonpath={.data}"]);
    assert_eq!(parse(&data), serde_json::json!({"a": "1"}));

    // the namespace as it was, like kubectl get -o yaml
    let at = ok(
        history(
            &admin(&s),
            &["get", "configmaps", "--at", &patched, "-o", "json"],
        ),
        "get --at",
    );
    let items = parse(&at)["items"].as_array().cloned().unwrap();
    let x = items
        .iter()
        .find(|i| i["metadata"]["name"] == "x")
        .expect("x in the list at that revision");
    assert_eq!(x["data"], serde_json::json!({"a": "2", "b": "3"}));

    // a revision from before the object existed
    let out = history(&admin(&s), &["show", "cm/x", "--revision", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("did not exist at revision 1"));

    // the jj mirror, read in place by git: every change of x is in a commit description
    let now = s
        .kubectl_ok(
            k,
            &[
                "get",
                "cm",
                "x",
                "-o",
                "jsonpath={.metadata.resourceVersion}",
            ],
        )
        .parse::<u64>()
        .unwrap();
    eventually("the mirror catches up", Duration::from_secs(30), || {
        (mirror_revision(&s) >= now).then_some(())
    });
    if let Some(log) = git_log(&s) {
        for c in log_json(&s, &["configmap/x"]) {
            let line = format!(
                "{} {} configmaps default/x by admin",
                c["revision"].as_str().unwrap(),
                c["verb"].as_str().unwrap()
            );
            assert!(log.contains(&line), "{line:?} not in git log:\n{log}");
        }
    }
    assert!(s
        .data_dir()
        .join("history/.jj/repo/op_heads/heads")
        .is_dir());
}

#[test]
fn secrets_are_kept_as_hashes_and_users_see_only_what_they_may_read() {
    let tokens = tempfile::tempdir().unwrap();
    let file = tokens.path().join("tokens.csv");
    std::fs::write(&file, "jane-token,jane,1001,\"devs\"\n").unwrap();
    let s = Server::start_with(&["--token-auth-file", &file.display().to_string()]);
    let k = "1.33";
    s.kubectl_ok(k, &["create", "namespace", "team"]);
    s.kubectl_ok(
        k,
        &[
            "create",
            "rolebinding",
            "jane-view",
            "--clusterrole=view",
            "--user=jane",
            "-n",
            "team",
        ],
    );
    s.kubectl_ok(
        k,
        &[
            "create",
            "configmap",
            "mine",
            "-n",
            "team",
            "--from-literal=k=v",
        ],
    );
    s.kubectl_ok(k, &["create", "configmap", "theirs", "--from-literal=k=v"]);
    s.kubectl_ok(
        k,
        &[
            "create",
            "secret",
            "generic",
            "pw",
            "--from-literal=password=hunter2",
        ],
    );

    let changes = log_json(&s, &["secret/pw"]);
    let rev = changes[0]["revision"].as_str().unwrap().to_string();
    let shown = ok(
        history(
            &admin(&s),
            &["show", "secret/pw", "--revision", &rev, "-o", "json"],
        ),
        "show secret",
    );
    let password = parse(&shown)["data"]["password"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(password.starts_with("sha256:"), "{shown}");
    assert!(
        !shown.contains("aHVudGVyMg=="),
        "the value is recorded in clear: {shown}"
    );

    let jane = token_kubeconfig(&s, "jane", "jane-token");
    let all = parse(&ok(
        history(
            &jane,
            &["log", "--all-namespaces", "-o", "json", "--limit", "1000"],
        ),
        "jane's log",
    ));
    let names: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"mine"), "{names:?}");
    assert!(!names.contains(&"theirs"), "{names:?}");
    assert!(!names.contains(&"pw"), "{names:?}");
    let out = history(&jane, &["show", "configmap/theirs", "--revision", &rev]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("(403)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mine = ok(
        history(&jane, &["log", "cm/mine", "-n", "team", "-o", "json"]),
        "jane's own",
    );
    assert_eq!(parse(&mine)["items"].as_array().map(Vec::len), Some(1));
}

#[test]
fn sigkill_during_a_write_storm_keeps_every_acknowledged_change_once() {
    let mut s = Server::start();
    let acked = kill9_during_create_storm(&mut s, 64, 800);

    s.spawn();
    let (code, body) = s.curl(
        "GET",
        "/apis/history.reddwarf.io/v1/log?resource=configmaps&namespace=default&limit=0",
        None,
        None,
    );
    assert_eq!(code, 200, "{body}");
    let mut creates: HashMap<String, usize> = HashMap::new();
    let mut revisions = std::collections::HashSet::new();
    for c in parse(&body)["items"].as_array().unwrap() {
        assert!(
            revisions.insert(c["revision"].as_str().unwrap().to_string()),
            "revision recorded twice: {c}"
        );
        if c["verb"] == "create" {
            *creates
                .entry(c["name"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    let missing: Vec<&String> = acked.iter().filter(|n| !creates.contains_key(*n)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged creates missing from history, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(creates.values().all(|n| *n == 1), "a create recorded twice");

    // the mirror catches up after the restart and holds each change once
    let now = s.metric("reddwarf_store_revision").unwrap_or(0);
    eventually("the mirror catches up", Duration::from_secs(120), || {
        (mirror_revision(&s) >= now).then_some(())
    });
    if let Some(log) = git_log(&s) {
        for name in acked.iter().take(200) {
            let n = log
                .matches(&format!("create configmaps default/{name} "))
                .count();
            assert_eq!(n, 1, "{name} appears {n} times in the mirror");
        }
    }
}

//! `reddwarf history log|show|diff|restore|get|status`: the change history of a running
//! cluster, through its API server (`/apis/history.reddwarf.io/v1/...`), so it works from
//! anywhere a kubeconfig does and RBAC decides what each user sees.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Map, Value};

use crate::client::{Conn, Target};

/// `reddwarf history` subcommands.
#[derive(clap::Subcommand)]
pub enum HistoryCommand {
    /// Changes, newest first: revision, time, verb, user, user agent, object.
    Log {
        /// An object (`configmap/x`, `cm/x`, `deployments.apps/web`) or a resource
        /// (`pods`); all changes when left out.
        object: Option<String>,
        #[command(flatten)]
        common: Common,
        /// Changes in every namespace (with a resource, or with nothing named).
        #[arg(short = 'A', long = "all-namespaces", alias = "all")]
        all: bool,
        /// At most this many changes.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// An object as it was at a revision.
    Show {
        /// The object (`configmap/x`, `cm/x`, `deployments.apps/web`).
        object: String,
        #[command(flatten)]
        common: Common,
        /// The revision (resourceVersion) to show it at.
        #[arg(long)]
        revision: u64,
    },
    /// A unified diff of an object between two revisions (to its current state by default).
    Diff {
        /// The object (`configmap/x`, `cm/x`, `deployments.apps/web`).
        object: String,
        #[command(flatten)]
        common: Common,
        /// The older revision.
        #[arg(long)]
        from: u64,
        /// The newer revision (default: now).
        #[arg(long)]
        to: Option<u64>,
    },
    /// Puts an object back as it was at a revision, through the normal write path. Changes
    /// made since to other fields are kept (a three-way merge); a field changed since by
    /// someone else is a conflict and the restore is refused, unless `--force`.
    Restore {
        /// The object (`configmap/x`, `cm/x`, `deployments.apps/web`).
        object: String,
        #[command(flatten)]
        common: Common,
        /// The revision to restore.
        #[arg(long)]
        revision: u64,
        /// Take the old version whole, overwriting conflicting later changes.
        #[arg(long)]
        force: bool,
    },
    /// A resource's objects as they were at a revision (like `kubectl get -o yaml`).
    Get {
        /// The resource (`configmaps`, `cm`, `deployments.apps`).
        resource: String,
        #[command(flatten)]
        common: Common,
        /// The revision.
        #[arg(long)]
        at: u64,
        /// Every namespace.
        #[arg(short = 'A', long = "all-namespaces")]
        all: bool,
    },
    /// Where kept history starts and how far the jj mirror has got.
    Status {
        #[command(flatten)]
        common: Common,
    },
}

/// Options every subcommand takes.
#[derive(clap::Args)]
pub struct Common {
    /// Kubeconfig of the user to act as.
    #[arg(
        long,
        env = "KUBECONFIG",
        default_value = "./reddwarf-data/admin.kubeconfig"
    )]
    kubeconfig: PathBuf,
    /// The namespace (default: `default`, for namespaced resources).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// `yaml` or `json` (for log: `table` or `json`).
    #[arg(short = 'o', long)]
    output: Option<String>,
}

/// A resource as discovery describes it.
#[derive(Clone, Debug)]
struct Resource {
    group: String,
    version: String,
    plural: String,
    namespaced: bool,
}

impl Resource {
    fn path(&self, namespace: &str, name: Option<&str>) -> String {
        let base = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        let ns = if self.namespaced {
            format!("/namespaces/{namespace}")
        } else {
            String::new()
        };
        match name {
            Some(n) => format!("{base}{ns}/{}/{n}", self.plural),
            None => format!("{base}{ns}/{}", self.plural),
        }
    }

    fn display(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

async fn get_json(conn: &mut Conn, path: &str) -> anyhow::Result<(u16, Value)> {
    let (code, body) = conn.request("GET", path, None).await?;
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| json!({"message": String::from_utf8_lossy(&body).trim().to_string()}));
    Ok((code, v))
}

fn server_error(what: &str, code: u16, v: &Value) -> anyhow::Error {
    let msg = v["message"].as_str().unwrap_or("").to_string();
    anyhow!("{what}: {msg} ({code})")
}

/// Resolves `cm`, `configmap`, `configmaps`, `ConfigMap`, `deployments.apps` the way kubectl
/// does: plural, singular, short names and kind, optionally qualified by group.
async fn resolve(conn: &mut Conn, name: &str) -> anyhow::Result<Resource> {
    let wanted = name.to_ascii_lowercase();
    let (res, group) = match wanted.split_once('.') {
        Some((r, g)) => (r.to_string(), Some(g.to_string())),
        None => (wanted.clone(), None),
    };
    let mut versions = vec![(String::new(), "v1".to_string())];
    let (code, groups) = get_json(conn, "/apis").await?;
    if code != 200 {
        return Err(server_error("discovery", code, &groups));
    }
    for g in groups["groups"].as_array().into_iter().flatten() {
        let gname = g["name"].as_str().unwrap_or("").to_string();
        if group.as_ref().is_some_and(|want| *want != gname) {
            continue;
        }
        if let Some(v) = g["preferredVersion"]["version"].as_str() {
            versions.push((gname, v.to_string()));
        }
    }
    for (g, v) in versions {
        if group.as_ref().is_some_and(|want| *want != g) {
            continue;
        }
        let path = if g.is_empty() {
            format!("/api/{v}")
        } else {
            format!("/apis/{g}/{v}")
        };
        let (code, list) = get_json(conn, &path).await?;
        if code != 200 {
            continue;
        }
        for r in list["resources"].as_array().into_iter().flatten() {
            let plural = r["name"].as_str().unwrap_or("");
            if plural.contains('/') {
                continue;
            }
            let matches = plural == res
                || r["singularName"].as_str() == Some(res.as_str())
                || r["kind"].as_str().map(str::to_ascii_lowercase).as_deref() == Some(&res)
                || r["shortNames"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|n| n.as_str() == Some(res.as_str())));
            if matches {
                return Ok(Resource {
                    group: g.clone(),
                    version: v.clone(),
                    plural: plural.to_string(),
                    namespaced: r["namespaced"].as_bool().unwrap_or(false),
                });
            }
        }
    }
    bail!("the server doesn't have a resource type \"{name}\"")
}

/// `KIND/NAME` into the resource and the name.
async fn resolve_object(conn: &mut Conn, object: &str) -> anyhow::Result<(Resource, String)> {
    let Some((kind, name)) = object.split_once('/') else {
        bail!("{object:?}: name an object as TYPE/NAME (e.g. configmap/x)");
    };
    if name.is_empty() {
        bail!("{object:?}: the name is empty");
    }
    Ok((resolve(conn, kind).await?, name.to_string()))
}

fn query_for(r: &Resource, namespace: &str, name: Option<&str>) -> String {
    let ns = if r.namespaced { namespace } else { "" };
    let mut q = format!(
        "group={}&resource={}&namespace={}",
        enc(&r.group),
        enc(&r.plural),
        enc(ns)
    );
    if let Some(n) = name {
        q.push_str(&format!("&name={}", enc(n)));
    }
    q
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const API: &str = "/apis/history.reddwarf.io/v1";

/// The object at a revision, as the server's `object` answer.
async fn object_at(
    conn: &mut Conn,
    r: &Resource,
    namespace: &str,
    name: &str,
    revision: u64,
) -> anyhow::Result<Value> {
    let path = format!(
        "{API}/object?{}&revision={revision}",
        query_for(r, namespace, Some(name))
    );
    let (code, v) = get_json(conn, &path).await?;
    if code != 200 {
        return Err(server_error(
            &format!("{}/{name} at revision {revision}", r.display()),
            code,
            &v,
        ));
    }
    Ok(v)
}

fn print_object(v: &Value, output: Option<&str>) -> anyhow::Result<()> {
    match output.unwrap_or("yaml") {
        "json" => println!("{}", serde_json::to_string_pretty(v)?),
        "yaml" => print!("{}", serde_yaml::to_string(v)?),
        o => bail!("unknown output format {o:?} (yaml or json)"),
    }
    Ok(())
}

/// Runs a `reddwarf history` subcommand.
pub async fn run(cmd: HistoryCommand) -> anyhow::Result<()> {
    let common = match &cmd {
        HistoryCommand::Log { common, .. }
        | HistoryCommand::Show { common, .. }
        | HistoryCommand::Diff { common, .. }
        | HistoryCommand::Restore { common, .. }
        | HistoryCommand::Get { common, .. }
        | HistoryCommand::Status { common } => common,
    };
    let mut conn = Target::from_kubeconfig(&common.kubeconfig)?
        .connect()
        .await
        .context("connecting to the API server")?;
    let namespace = common
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    let output = common.output.as_deref();
    match &cmd {
        HistoryCommand::Log {
            object, all, limit, ..
        } => {
            let mut q = String::new();
            if let Some(o) = object {
                if o.contains('/') {
                    let (r, name) = resolve_object(&mut conn, o).await?;
                    q = query_for(&r, &namespace, Some(&name));
                } else {
                    let r = resolve(&mut conn, o).await?;
                    let ns = if *all { "" } else { &namespace };
                    q = query_for(&r, ns, None);
                }
            } else if !*all {
                q = format!("namespace={}", enc(&namespace));
            }
            let (code, v) = get_json(&mut conn, &format!("{API}/log?{q}&limit={limit}")).await?;
            if code != 200 {
                return Err(server_error("history log", code, &v));
            }
            if output == Some("json") {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            print!("{}", render_log(&v));
        }
        HistoryCommand::Show {
            object, revision, ..
        } => {
            let (r, name) = resolve_object(&mut conn, object).await?;
            let v = object_at(&mut conn, &r, &namespace, &name, *revision).await?;
            print_object(&v["object"], output)?;
        }
        HistoryCommand::Diff {
            object, from, to, ..
        } => {
            let (r, name) = resolve_object(&mut conn, object).await?;
            let old = version_text(&mut conn, &r, &namespace, &name, Some(*from)).await?;
            let new = version_text(&mut conn, &r, &namespace, &name, *to).await?;
            let to_label = to.map_or("now".to_string(), |t| format!("revision {t}"));
            print!(
                "{}",
                unified_diff(
                    &old,
                    &new,
                    &format!("{}/{name} at revision {from}", r.display()),
                    &format!("{}/{name} at {to_label}", r.display()),
                )
            );
        }
        HistoryCommand::Restore {
            object,
            revision,
            force,
            ..
        } => {
            let (r, name) = resolve_object(&mut conn, object).await?;
            let msg = restore(&mut conn, &r, &namespace, &name, *revision, *force).await?;
            println!("{msg}");
        }
        HistoryCommand::Get {
            resource, at, all, ..
        } => {
            let r = resolve(&mut conn, resource).await?;
            let ns = if *all { "" } else { &namespace };
            let path = format!("{API}/list?{}&revision={at}", query_for(&r, ns, None));
            let (code, v) = get_json(&mut conn, &path).await?;
            if code != 200 {
                return Err(server_error(
                    &format!("{} at revision {at}", r.display()),
                    code,
                    &v,
                ));
            }
            print_object(&v, output)?;
        }
        HistoryCommand::Status { .. } => {
            let (code, v) = get_json(&mut conn, &format!("{API}/status")).await?;
            if code != 200 {
                return Err(server_error("history status", code, &v));
            }
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
    }
    Ok(())
}

fn render_log(v: &Value) -> String {
    let mut rows = vec![[
        "REVISION".to_string(),
        "TIME".to_string(),
        "VERB".to_string(),
        "USER".to_string(),
        "USER-AGENT".to_string(),
        "OBJECT".to_string(),
    ]];
    for c in v["items"].as_array().into_iter().flatten() {
        let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
        let group = s("group");
        let res = if group.is_empty() {
            s("resource")
        } else {
            format!("{}.{group}", s("resource"))
        };
        let obj = if s("namespace").is_empty() {
            format!("{res}/{}", s("name"))
        } else {
            format!("{res}/{} -n {}", s("name"), s("namespace"))
        };
        let verb = if s("type") == "Base" {
            "(existing)".to_string()
        } else {
            s("verb")
        };
        rows.push([
            s("revision"),
            s("time"),
            verb,
            s("user"),
            s("userAgent"),
            obj,
        ]);
    }
    let mut widths = [0usize; 6];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out.push_str(&format!(
        "(history kept from revision {})\n",
        v["historyStart"].as_str().unwrap_or("?")
    ));
    out
}

/// YAML of an object at a revision (None: now); empty when it did not exist.
async fn version_text(
    conn: &mut Conn,
    r: &Resource,
    namespace: &str,
    name: &str,
    revision: Option<u64>,
) -> anyhow::Result<String> {
    let v = match revision {
        Some(rev) => {
            let path = format!(
                "{API}/object?{}&revision={rev}",
                query_for(r, namespace, Some(name))
            );
            let (code, v) = get_json(conn, &path).await?;
            match code {
                200 => v["object"].clone(),
                404 => return Ok(String::new()),
                _ => {
                    return Err(server_error(
                        &format!("{}/{name} at revision {rev}", r.display()),
                        code,
                        &v,
                    ))
                }
            }
        }
        None => {
            let (code, v) = get_json(conn, &r.path(namespace, Some(name))).await?;
            match code {
                200 => v,
                404 => return Ok(String::new()),
                _ => return Err(server_error(&format!("{}/{name}", r.display()), code, &v)),
            }
        }
    };
    Ok(serde_yaml::to_string(&comparable(v))?)
}

/// What is compared and restored: the object without the fields the server keeps
/// (resourceVersion, managedFields, uid, timestamps, generation) and without status.
fn comparable(mut v: Value) -> Value {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in [
            "resourceVersion",
            "managedFields",
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            m.remove(f);
        }
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
    v
}

/// Leaves of a JSON object by path (`data.a`, `spec.replicas`); arrays are leaves.
fn flatten(v: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, val) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(val, &p, out);
            }
        }
        _ => {
            out.insert(prefix.to_string(), v.clone());
        }
    }
}

/// Builds the object back from leaves; `keys` keeps segment boundaries (a key may hold dots).
fn unflatten(leaves: &[(Vec<String>, Value)]) -> Value {
    let mut root = Value::Object(Map::new());
    for (path, val) in leaves {
        insert_at(&mut root, path, val.clone());
    }
    root
}

fn insert_at(cur: &mut Value, path: &[String], val: Value) {
    let Some(obj) = cur.as_object_mut() else {
        return;
    };
    match path {
        [] => {}
        [last] => {
            obj.insert(last.clone(), val);
        }
        [first, rest @ ..] => {
            let child = obj
                .entry(first.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            insert_at(child, rest, val);
        }
    }
}

fn segments(v: &Value, prefix: Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, val) in m {
                let mut p = prefix.clone();
                p.push(k.clone());
                segments(val, p, out);
            }
        }
        _ => out.push((prefix, v.clone())),
    }
}

/// The outcome of a three-way merge of an object's content.
#[derive(Debug, PartialEq)]
pub(crate) enum Merged {
    /// The merged object.
    Clean(Value),
    /// Fields both sides changed differently.
    Conflict(Vec<String>),
}

/// Three-way merge: `ours` (the version restored), `base` (the version that replaced it),
/// `theirs` (the current object). A field only one side changed takes that side; both
/// sides changing it differently is a conflict.
pub(crate) fn merge3(ours: &Value, base: &Value, theirs: &Value) -> Merged {
    let mut flat = [BTreeMap::new(), BTreeMap::new(), BTreeMap::new()];
    for (i, v) in [ours, base, theirs].into_iter().enumerate() {
        flatten(v, "", &mut flat[i]);
    }
    let mut seg = [Vec::new(), Vec::new(), Vec::new()];
    for (i, v) in [ours, base, theirs].into_iter().enumerate() {
        segments(v, Vec::new(), &mut seg[i]);
    }
    let by_path: BTreeMap<String, Vec<String>> = seg
        .iter()
        .flatten()
        .map(|(p, _)| (p.join("."), p.clone()))
        .collect();
    let mut leaves = Vec::new();
    let mut conflicts = Vec::new();
    for (path, parts) in &by_path {
        let (o, b, t) = (flat[0].get(path), flat[1].get(path), flat[2].get(path));
        let pick = if o == b {
            t
        } else if t == b || o == t {
            o
        } else {
            conflicts.push(path.clone());
            continue;
        };
        if let Some(v) = pick {
            leaves.push((parts.clone(), v.clone()));
        }
    }
    if !conflicts.is_empty() {
        return Merged::Conflict(conflicts);
    }
    // a leaf whose parent became a leaf on the other side cannot both stay: keep the
    // shortest path (the parent's value), as the side that set it meant
    leaves.sort_by_key(|l| l.0.len());
    let mut kept: Vec<(Vec<String>, Value)> = Vec::new();
    for (p, v) in leaves {
        if kept
            .iter()
            .any(|(k, _)| k.len() < p.len() && p.starts_with(k))
        {
            continue;
        }
        kept.push((p, v));
    }
    Merged::Clean(unflatten(&kept))
}

async fn restore(
    conn: &mut Conn,
    r: &Resource,
    namespace: &str,
    name: &str,
    revision: u64,
    force: bool,
) -> anyhow::Result<String> {
    let at = object_at(conn, r, namespace, name, revision).await?;
    let at_rev: u64 = at["change"]["revision"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(revision);
    let ours = comparable(at["object"].clone());
    let what = format!("{}/{name}", r.display());
    let (code, current) = get_json(conn, &r.path(namespace, Some(name))).await?;
    if code == 404 {
        let (code, v) = conn
            .request(
                "POST",
                &r.path(namespace, None),
                Some(serde_json::to_vec(&ours)?),
            )
            .await?;
        let v: Value = serde_json::from_slice(&v).unwrap_or(Value::Null);
        if code != 201 && code != 200 {
            return Err(server_error(&format!("recreating {what}"), code, &v));
        }
        return Ok(format!(
            "{what} recreated as it was at revision {revision} (now revision {})",
            v["metadata"]["resourceVersion"].as_str().unwrap_or("?")
        ));
    }
    if code != 200 {
        return Err(server_error(&what, code, &current));
    }
    let live_rv = current["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let theirs = comparable(current.clone());
    if theirs == ours {
        return Ok(format!(
            "{what} is already as it was at revision {revision}"
        ));
    }
    // base: the version that replaced the one restored (the change being undone)
    let log_path = format!("{API}/log?{}&limit=0", query_for(r, namespace, Some(name)));
    let (code, log) = get_json(conn, &log_path).await?;
    if code != 200 {
        return Err(server_error("history log", code, &log));
    }
    let next = log["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["revision"].as_str()?.parse::<u64>().ok())
        .filter(|rev| *rev > at_rev)
        .min();
    let merged = if force {
        ours.clone()
    } else {
        let base = match next {
            Some(n) => {
                let b = object_at(conn, r, namespace, name, n).await;
                match b {
                    Ok(b) => comparable(b["object"].clone()),
                    // the object was deleted and recreated since: nothing shared to merge on
                    Err(_) => theirs.clone(),
                }
            }
            None => theirs.clone(),
        };
        match merge3(&ours, &base, &theirs) {
            Merged::Clean(v) => v,
            Merged::Conflict(fields) => bail!(
                "{what} changed since revision {revision} in the same fields the restore would change: {}; \
                 nothing was written (use --force to take revision {revision} whole)",
                fields.join(", ")
            ),
        }
    };
    let mut body = merged;
    // keep the live object's identity and its status; write under optimistic concurrency
    if let (Some(m), Some(live)) = (
        body.get_mut("metadata").and_then(Value::as_object_mut),
        current.get("metadata").and_then(Value::as_object),
    ) {
        for f in ["resourceVersion", "uid", "creationTimestamp"] {
            if let Some(v) = live.get(f) {
                m.insert(f.into(), v.clone());
            }
        }
    }
    if let (Some(o), Some(s)) = (body.as_object_mut(), current.get("status")) {
        o.insert("status".into(), s.clone());
    }
    let (code, v) = conn
        .request(
            "PUT",
            &r.path(namespace, Some(name)),
            Some(serde_json::to_vec(&body)?),
        )
        .await?;
    let v: Value = serde_json::from_slice(&v).unwrap_or(Value::Null);
    if code != 200 {
        return Err(server_error(&format!("writing {what}"), code, &v));
    }
    Ok(format!(
        "{what} restored to revision {revision}{} (now revision {}; was {live_rv})",
        if force { " (forced)" } else { "" },
        v["metadata"]["resourceVersion"].as_str().unwrap_or("?")
    ))
}

/// A unified diff (three lines of context) of two texts, line by line (LCS; objects are
/// small).
pub(crate) fn unified_diff(old: &str, new: &str, old_label: &str, new_label: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a == b {
        return String::new();
    }
    // lcs[i][j]: length of the LCS of a[i..] and b[j..]
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    // edit script: (tag, old index, new index)
    let mut ops = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', i, j));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // removals before additions, as diff(1) and git print them
            ops.push(('-', i, j));
            i += 1;
        } else {
            ops.push(('+', i, j));
            j += 1;
        }
    }
    let mut out = format!("--- {old_label}\n+++ {new_label}\n");
    let ctx = 3;
    let mut k = 0;
    while k < ops.len() {
        if ops[k].0 == ' ' {
            k += 1;
            continue;
        }
        // a hunk: from ctx before this change to ctx after the last change within 2*ctx
        let start = k.saturating_sub(ctx);
        let mut end = k;
        let mut last_change = k;
        while end < ops.len() {
            if ops[end].0 != ' ' {
                last_change = end;
            } else if end - last_change > 2 * ctx {
                break;
            }
            end += 1;
        }
        let end = (last_change + ctx + 1).min(ops.len());
        let hunk = &ops[start..end];
        let old_start = hunk.iter().find(|o| o.0 != '+').map_or(hunk[0].1, |o| o.1);
        let new_start = hunk.iter().find(|o| o.0 != '-').map_or(hunk[0].2, |o| o.2);
        let old_len = hunk.iter().filter(|o| o.0 != '+').count();
        let new_len = hunk.iter().filter(|o| o.0 != '-').count();
        out.push_str(&format!(
            "@@ -{},{old_len} +{},{new_len} @@\n",
            old_start + usize::from(old_len > 0),
            new_start + usize::from(new_len > 0)
        ));
        for (tag, oi, nj) in hunk {
            let line = if *tag == '+' { b[*nj] } else { a[*oi] };
            out.push_str(&format!("{tag}{line}\n"));
        }
        k = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_unrelated_later_changes_and_reports_conflicts() {
        let ours = json!({"data": {"a": "1"}});
        let base = json!({"data": {"a": "2"}});
        let theirs = json!({"data": {"a": "2", "b": "3"}});
        assert_eq!(
            merge3(&ours, &base, &theirs),
            Merged::Clean(json!({"data": {"a": "1", "b": "3"}}))
        );
        let theirs = json!({"data": {"a": "5"}});
        assert_eq!(
            merge3(&ours, &base, &theirs),
            Merged::Conflict(vec!["data.a".into()])
        );
        // a field the restored version lacked and the replacing one added is removed again
        let ours = json!({"data": {"a": "1"}});
        let base = json!({"data": {"a": "1", "c": "x"}});
        let theirs = json!({"data": {"a": "1", "c": "x"}, "metadata": {"labels": {"l": "v"}}});
        assert_eq!(
            merge3(&ours, &base, &theirs),
            Merged::Clean(json!({"data": {"a": "1"}, "metadata": {"labels": {"l": "v"}}}))
        );
    }

    #[test]
    fn diff_shows_changed_lines_with_context() {
        let d = unified_diff("a\nb\nc\n", "a\nB\nc\nd\n", "old", "new");
        assert_eq!(d, "--- old\n+++ new\n@@ -1,3 +1,4 @@\n a\n-b\n+B\n c\n+d\n");
        assert_eq!(unified_diff("x\n", "x\n", "o", "n"), "");
        let d = unified_diff("", "k: v\n", "o", "n");
        assert_eq!(d, "--- o\n+++ n\n@@ -0,0 +1,1 @@\n+k: v\n");
    }
}

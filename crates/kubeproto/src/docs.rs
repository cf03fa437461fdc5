//! Upstream's descriptions of every message and field (`schema/k8s.docs`, generated with the
//! schema by `tools/gen_schema.py` from k8s-openapi's OpenAPI definitions, or the k8s-pb
//! comments for types upstream's OpenAPI does not publish). About 1.4 MB of text, embedded but
//! indexed only on first use: only OpenAPI serving needs it.

use std::collections::HashMap;
use std::sync::OnceLock;

static DOCS_TEXT: &str = include_str!("../schema/k8s.docs");

/// (description, [(json key, description)]) of one message; texts still escaped.
type MessageDocs = (&'static str, Vec<(&'static str, &'static str)>);

struct Docs {
    messages: HashMap<&'static str, MessageDocs>,
}

static DOCS: OnceLock<Docs> = OnceLock::new();

fn docs() -> &'static Docs {
    DOCS.get_or_init(|| {
        let mut messages: HashMap<&'static str, MessageDocs> = HashMap::new();
        let mut cur: Option<&'static str> = None;
        for line in DOCS_TEXT.lines() {
            if let Some(rest) = line.strip_prefix("M ") {
                let (name, desc) = rest.split_once(' ').unwrap_or((rest, ""));
                messages.insert(name, (desc, Vec::new()));
                cur = Some(name);
            } else if let (Some(rest), Some(m)) = (line.strip_prefix("F "), cur) {
                let (key, desc) = rest.split_once(' ').unwrap_or((rest, ""));
                if let Some(e) = messages.get_mut(m) {
                    e.1.push((key, desc));
                }
            }
        }
        Docs { messages }
    })
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Upstream's description of a message (full protobuf name), if it has one.
pub fn description(message: &str) -> Option<String> {
    let (d, _) = docs().messages.get(message)?;
    (!d.is_empty()).then(|| unescape(d))
}

/// Upstream's description of a JSON key of a message. Keys of inlined (embedded) messages are
/// described under the embedding message too, in the words of its OpenAPI definition;
/// `apiVersion`/`kind` under messages that embed TypeMeta.
pub fn field_description(message: &str, json: &str) -> Option<String> {
    let (_, fields) = docs().messages.get(message)?;
    fields
        .iter()
        .find(|(k, _)| *k == json)
        .filter(|(_, d)| !d.is_empty())
        .map(|(_, d)| unescape(d))
}

/// The content digests of the embedded schema and descriptions (from their header lines),
/// for clients' caches of documents derived from them (OpenAPI `?hash=`). Cheap: reads two lines.
pub fn data_digest() -> &'static str {
    static D: OnceLock<String> = OnceLock::new();
    D.get_or_init(|| {
        let digest = |text: &str| {
            text.lines()
                .next()
                .and_then(|l| l.rsplit_once("digest="))
                .map(|(_, d)| d.trim().to_string())
                .unwrap_or_default()
        };
        format!(
            "{}-{}",
            digest(crate::schema::SCHEMA_TEXT),
            digest(DOCS_TEXT)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions() {
        assert_eq!(
            description("k8s.io.api.apps.v1.Deployment").as_deref(),
            Some("Deployment enables declarative updates for Pods and ReplicaSets.")
        );
        let c = field_description("k8s.io.api.core.v1.PodSpec", "containers").unwrap();
        assert!(
            c.starts_with("List of containers belonging to the pod."),
            "{c}"
        );
        // inlined VolumeSource keys are described under Volume
        assert!(field_description("k8s.io.api.core.v1.Volume", "configMap").is_some());
        assert!(field_description("k8s.io.api.core.v1.Pod", "apiVersion")
            .unwrap()
            .starts_with("APIVersion defines"));
        // multi-paragraph text keeps its newlines
        let q = description("k8s.io.apimachinery.pkg.api.resource.Quantity").unwrap();
        assert!(q.contains("\n\n"));
        assert!(description("k8s.io.apimachinery.pkg.apis.meta.v1.Patch").is_some());
        assert_eq!(
            field_description("k8s.io.api.core.v1.PodSpec", "nope"),
            None
        );
        let d = data_digest();
        assert_eq!(d.len(), 33, "{d}");
    }
}

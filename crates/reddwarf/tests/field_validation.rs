//! fieldValidation=Strict|Warn|Ignore for unknown and duplicate fields.

mod common;

use common::Server;

/// POST with curl -i; returns (status, Warning header values, body).
fn post_i(s: &Server, query: &str, body: &str) -> (u16, Vec<String>, String) {
    let out = s
        .curl_cmd()
        .args(["-i", "-X", "POST", "-H", "content-type: application/json"])
        .args(["-d", body])
        .arg(format!(
            "{}/api/v1/namespaces/default/configmaps{query}",
            s.url
        ))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let warnings = head
        .lines()
        .filter_map(|l| {
            l.strip_prefix("warning: ")
                .or_else(|| l.strip_prefix("Warning: "))
        })
        .map(|l| l.trim().to_string())
        .collect();
    (code, warnings, body.to_string())
}

#[test]
fn unknown_and_duplicate_fields_follow_field_validation() {
    let s = Server::start();
    let unknown = r#"{"metadata":{"name":"u1","bogus":1},"data":{"a":"b"}}"#;
    let (code, warnings, _) = post_i(&s, "", unknown);
    assert_eq!(code, 201, "Warn is the default");
    assert_eq!(
        warnings,
        vec![r#"299 - "unknown field \"metadata.bogus\"""#]
    );
    let stored = s.kubectl_ok("1.33", &["get", "cm", "u1", "-o", "json"]);
    assert!(!stored.contains("bogus"), "unknown fields are dropped");

    let (code, warnings, _) = post_i(&s, "?fieldValidation=Ignore", &unknown.replace("u1", "u2"));
    assert_eq!((code, warnings.len()), (201, 0));
    let (code, _, body) = post_i(&s, "?fieldValidation=Strict", &unknown.replace("u1", "u3"));
    assert_eq!(code, 400);
    assert!(
        body.contains(r#"strict decoding error: unknown field \"metadata.bogus\""#),
        "{body}"
    );

    let dup = r#"{"metadata":{"name":"d1","name":"d2"}}"#;
    let (code, warnings, body) = post_i(&s, "", dup);
    assert_eq!(code, 201);
    assert_eq!(
        warnings,
        vec![r#"299 - "duplicate field \"metadata.name\"""#]
    );
    assert!(
        body.contains(r#""name":"d2""#),
        "the last duplicate wins: {body}"
    );
    let (code, _, body) = post_i(
        &s,
        "?fieldValidation=Strict",
        &dup.replace("d1", "d3").replace("d2", "d4"),
    );
    assert_eq!(code, 400);
    assert!(
        body.contains(r#"duplicate field \"metadata.name\""#),
        "{body}"
    );
    let (code, _, _) = post_i(
        &s,
        "?fieldValidation=Sometimes",
        r#"{"metadata":{"name":"x"}}"#,
    );
    assert_eq!(code, 400);

    // kubectl shows the warning as upstream's does.
    let file = s.data_dir().join("w.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: w\n  bogus: 1\n",
    )
    .unwrap();
    let out = s.kubectl(
        "1.33",
        &["apply", "--validate=warn", "-f", file.to_str().unwrap()],
    );
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Warning: unknown field \"metadata.bogus\"")
    );
}

//! The end-of-session report on the error stream: a `metav1.Status` (v4+) or, before v4, only
//! a failure's message — with the kubelet's reasons and messages, which kubectl turns into its
//! exit code.

use serde_json::json;

/// What the caller reports when the command is over.
pub(crate) enum Outcome<'a> {
    Exited(i32),
    Failed(&'a str),
}

/// The bytes to write on the error stream, if any.
pub(crate) fn report(outcome: Outcome<'_>, command: &[String], as_json: bool) -> Option<Vec<u8>> {
    // containerd's (and the kubelet's CRI streaming) exit error text, wrapped by ServeExec.
    let nonzero = |code: i32| {
        format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            command.join(" ")
        )
    };
    let status = match outcome {
        Outcome::Exited(0) => json!({"metadata": {}, "status": "Success"}),
        Outcome::Exited(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": nonzero(code),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Outcome::Failed(msg) => {
            let cause = format!("error executing command in container: {msg}");
            json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("Internal error occurred: {cause}"),
                "reason": "InternalError",
                "details": {"causes": [{"message": cause}]},
                "code": 500,
            })
        }
    };
    if as_json {
        return Some(serde_json::to_vec(&status).expect("a json! value serializes"));
    }
    // Pre-v4: success says nothing; a failure is its message (Go's StatusError.Error()).
    status
        .get("message")
        .and_then(|m| m.as_str())
        .map(|m| m.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd() -> Vec<String> {
        vec!["sh".into(), "-c".into(), "exit 3".into()]
    }

    #[test]
    fn v4_statuses_match_the_kubelet() {
        let ok = report(Outcome::Exited(0), &cmd(), true).unwrap();
        assert_eq!(ok, br#"{"metadata":{},"status":"Success"}"#);
        let three = String::from_utf8(report(Outcome::Exited(3), &cmd(), true).unwrap()).unwrap();
        assert_eq!(
            three,
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        let failed =
            String::from_utf8(report(Outcome::Failed("boom"), &cmd(), true).unwrap()).unwrap();
        assert!(failed.contains(r#""reason":"InternalError""#) && failed.contains(r#""code":500"#));
    }

    #[test]
    fn pre_v4_sends_only_failures_as_text() {
        assert_eq!(report(Outcome::Exited(0), &cmd(), false), None);
        assert_eq!(
            report(Outcome::Exited(3), &cmd(), false).unwrap(),
            b"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
        );
    }
}

//! The admin kubeconfig the server writes next to its data.

use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine as _;

use super::files::write_atomic;
use super::Pki;

/// Write a kubeconfig for the admin user: cluster "reddwarf" at `server_url` trusting the cluster
/// CA, user "admin" with the admin client certificate, context "reddwarf" (namespace default) as
/// current context. Written atomically with mode 0600; the parent directory is created if needed.
pub fn write_admin_kubeconfig(path: &Path, server_url: &str, pki: &Pki) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating directory {}", parent.display()))?;
    }
    let yaml = admin_kubeconfig_yaml(server_url, pki);
    write_atomic(path, yaml.as_bytes(), 0o600)
}

fn admin_kubeconfig_yaml(server_url: &str, pki: &Pki) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    // A JSON string is a valid YAML double-quoted scalar, whatever the URL contains.
    let server = serde_json::Value::from(server_url).to_string();
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: reddwarf
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: admin
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: reddwarf
  context:
    cluster: reddwarf
    user: admin
    namespace: default
current-context: reddwarf
preferences: {{}}
",
        ca = b64(&pki.ca_cert_pem),
        cert = b64(&pki.admin_cert_pem),
        key = b64(&pki.admin_key_pem),
    )
}

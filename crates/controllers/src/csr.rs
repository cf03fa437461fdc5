//! Node client certificates, as kube-controller-manager's `csrapproving` and `csrsigning`:
//! a kubelet-client CSR (`kubernetes.io/kube-apiserver-client-kubelet`) for
//! `CN=system:node:<name>, O=system:nodes` is approved when a bootstrapping agent (group
//! `system:bootstrappers`) or that same node (a renewal) sent it; approved CSRs of the client
//! signers are signed by the cluster CA.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use rcgen::{
    CertificateSigningRequestParams, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose,
};

use crate::{error_action, Error};

/// The signer of node client certificates: the only CSRs this controller approves, and one of
/// the two it signs.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
const BOOTSTRAPPERS: &str = "system:bootstrappers";
const NODES: &str = "system:nodes";
/// `--cluster-signing-duration`'s default.
const DEFAULT_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
/// Backdating tolerates clock skew between the server and the node, as upstream's signer does.
const BACKDATE: Duration = Duration::from_secs(5 * 60);

struct CsrSigningController {
    client: Client,
    ca_cert_pem: String,
    ca_key_pem: String,
}

/// Runs the approver and signer until the process ends; certificates are signed with the
/// cluster CA given as PEM.
pub async fn run(client: Client, ca_cert_pem: String, ca_key_pem: String) {
    let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
    Controller::new(csrs, watcher::Config::default())
        .run(
            reconcile,
            |_, e, _| error_action("csr", e),
            Arc::new(CsrSigningController {
                client,
                ca_cert_pem,
                ca_key_pem,
            }),
        )
        .for_each(|_| async {})
        .await;
}

fn condition(csr: &CertificateSigningRequest, t: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == t && c.status == "True"))
}

/// Why a kubelet-client CSR may not be auto-approved (`None`: it may).
fn approval_refusal(csr: &CertificateSigningRequest) -> Option<String> {
    let spec = &csr.spec;
    if spec.signer_name != KUBELET_CLIENT_SIGNER {
        return Some(format!("signer {} is not auto-approved", spec.signer_name));
    }
    let Some(parsed) = parse_request(&spec.request.0) else {
        return Some("the request is not a PEM PKCS#10 CSR".into());
    };
    let (cn, orgs) = subject(&parsed);
    let Some(node) = cn.strip_prefix("system:node:").filter(|n| !n.is_empty()) else {
        return Some(format!("subject CN {cn:?} is not system:node:<name>"));
    };
    if orgs != [NODES] {
        return Some(format!("subject O {orgs:?} is not [system:nodes]"));
    }
    let usages: Vec<&str> = spec.usages.iter().flatten().map(String::as_str).collect();
    if !usages.contains(&"client auth")
        || usages
            .iter()
            .any(|u| !matches!(*u, "client auth" | "digital signature" | "key encipherment"))
    {
        return Some(format!("usages {usages:?} are not a kubelet client's"));
    }
    let groups = spec.groups.clone().unwrap_or_default();
    let bootstrap = groups.iter().any(|g| g == BOOTSTRAPPERS);
    let renewal = spec.username.as_deref() == Some(cn.as_str());
    if !(bootstrap || renewal) {
        return Some(format!(
            "requester {:?} is neither bootstrapping nor node {node}",
            spec.username.clone().unwrap_or_default()
        ));
    }
    None
}

/// `spec.request` is a PEM `CERTIFICATE REQUEST` block (upstream requires PEM).
fn parse_request(bytes: &[u8]) -> Option<CertificateSigningRequestParams> {
    CertificateSigningRequestParams::from_pem(std::str::from_utf8(bytes).ok()?).ok()
}

fn subject(p: &CertificateSigningRequestParams) -> (String, Vec<String>) {
    let mut cn = String::new();
    let mut orgs = Vec::new();
    for (t, v) in p.params.distinguished_name.iter() {
        let s = match v {
            rcgen::DnValue::Utf8String(s) => s.clone(),
            rcgen::DnValue::PrintableString(s) => s.as_str().to_string(),
            other => format!("{other:?}"),
        };
        match t {
            rcgen::DnType::CommonName => cn = s,
            rcgen::DnType::OrganizationName => orgs.push(s),
            _ => {}
        }
    }
    (cn, orgs)
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

async fn reconcile(
    csr: Arc<CertificateSigningRequest>,
    ctx: Arc<CsrSigningController>,
) -> Result<Action, Error> {
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    let name = csr.name_any();
    let denied = condition(&csr, "Denied") || condition(&csr, "Failed");
    let approved = condition(&csr, "Approved");
    if denied {
        return Ok(Action::await_change());
    }
    if !approved {
        if csr.spec.signer_name != KUBELET_CLIENT_SIGNER {
            return Ok(Action::await_change());
        }
        if let Some(why) = approval_refusal(&csr) {
            tracing::info!("csr {name}: not auto-approving: {why}");
            return Ok(Action::await_change());
        }
        let mut c = (*csr).clone();
        let status = c.status.get_or_insert_with(Default::default);
        status
            .conditions
            .get_or_insert_with(Vec::new)
            .push(CertificateSigningRequestCondition {
                type_: "Approved".into(),
                status: "True".into(),
                reason: Some("AutoApproved".into()),
                message: Some(
                    "Auto approving kubelet client certificate after SubjectAccessReview.".into(),
                ),
                last_update_time: Some(now()),
                last_transition_time: Some(now()),
            });
        api.replace_subresource("approval", &name, &PostParams::default(), &c)
            .await?;
        return Ok(Action::await_change());
    }
    let signed = csr
        .status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty());
    if signed
        || !matches!(
            csr.spec.signer_name.as_str(),
            KUBELET_CLIENT_SIGNER | CLIENT_SIGNER
        )
    {
        return Ok(Action::await_change());
    }
    // An update of the status, not a patch: the signer's upstream role allows only that.
    let mut updated = serde_json::to_value(csr.as_ref()).unwrap_or_default();
    match sign(&csr, &ctx) {
        Ok(pem) => updated["status"]["certificate"] = base64_std(pem.as_bytes()).into(),
        Err(why) => {
            let failed = serde_json::json!({
                "type": "Failed", "status": "True", "reason": "SignerValidationFailure",
                "message": why, "lastUpdateTime": now(), "lastTransitionTime": now()});
            match updated["status"]["conditions"].as_array_mut() {
                Some(c) => c.push(failed),
                None => updated["status"]["conditions"] = serde_json::json!([failed]),
            }
        }
    }
    let updated: CertificateSigningRequest =
        serde_json::from_value(updated).map_err(|e| Error::Kube(kube::Error::SerdeError(e)))?;
    api.replace_status(&name, &PostParams::default(), &updated)
        .await?;
    Ok(Action::await_change())
}

fn base64_std(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Signs the request with the cluster CA: a client certificate with the CSR's subject and key,
/// valid for `expirationSeconds` (at least 10 minutes) or a year.
fn sign(csr: &CertificateSigningRequest, ctx: &CsrSigningController) -> Result<String, String> {
    let mut params =
        parse_request(&csr.spec.request.0).ok_or("the request is not a valid PKCS#10 CSR")?;
    let duration = csr
        .spec
        .expiration_seconds
        .map(|s| Duration::from_secs(s.max(600) as u64))
        .unwrap_or(DEFAULT_DURATION)
        .min(DEFAULT_DURATION);
    let now = std::time::SystemTime::now();
    params.params.not_before = (now - BACKDATE).into();
    params.params.not_after = (now + duration).into();
    params.params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.params.subject_alt_names.clear();
    params.params.use_authority_key_identifier_extension = true;
    let key = KeyPair::from_pem(&ctx.ca_key_pem).map_err(|e| format!("the CA key: {e}"))?;
    let issuer =
        Issuer::from_ca_cert_pem(&ctx.ca_cert_pem, key).map_err(|e| format!("the CA: {e}"))?;
    let cert = params
        .signed_by(&issuer)
        .map_err(|e| format!("signing: {e}"))?;
    Ok(cert.pem())
}

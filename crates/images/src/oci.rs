//! The JSON documents of the OCI image spec and Docker's schema2, as far as they are read here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::platform::Platform;

pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1";

pub(crate) const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
pub(crate) const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<OciPlatform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OciPlatform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// A manifest document of either kind.
pub(crate) enum ManifestKind {
    Index(Index),
    Image(Manifest),
}

/// Classify by the Content-Type the registry sent, falling back to the document itself
/// (registries and archives are not always precise about media types).
pub(crate) fn parse_manifest(content_type: &str, body: &[u8]) -> Result<ManifestKind> {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    if ct.starts_with(DOCKER_SCHEMA1) {
        return Err(Error::Invalid(
            "Docker schema 1 manifests are not supported (re-push the image with a current client)"
                .into(),
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Error::Invalid(format!("manifest is not JSON: {e}")))?;
    let mt = v.get("mediaType").and_then(|m| m.as_str()).unwrap_or(ct);
    if mt.starts_with(DOCKER_SCHEMA1) || v.get("schemaVersion").and_then(|s| s.as_u64()) == Some(1)
    {
        return Err(Error::Invalid(
            "Docker schema 1 manifests are not supported (re-push the image with a current client)"
                .into(),
        ));
    }
    let is_index = mt == OCI_INDEX || mt == DOCKER_LIST || v.get("manifests").is_some();
    if is_index {
        serde_json::from_value(v)
            .map(ManifestKind::Index)
            .map_err(|e| Error::Invalid(format!("bad image index: {e}")))
    } else {
        serde_json::from_value(v)
            .map(ManifestKind::Image)
            .map_err(|e| Error::Invalid(format!("bad image manifest: {e}")))
    }
}

impl Index {
    /// The first manifest for `platform`; entries without a platform are skipped (attestations).
    pub(crate) fn select(&self, platform: &Platform) -> Option<&Descriptor> {
        self.manifests.iter().find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| platform.matches(&p.os, &p.architecture, p.variant.as_deref()))
        })
    }

    pub(crate) fn platforms(&self) -> String {
        let list: Vec<String> = self
            .manifests
            .iter()
            .filter_map(|d| d.platform.as_ref())
            .map(|p| match &p.variant {
                Some(v) => format!("{}/{}/{}", p.os, p.architecture, v),
                None => format!("{}/{}", p.os, p.architecture),
            })
            .collect();
        list.join(", ")
    }
}

/// An image config (`application/vnd.oci.image.config.v1+json`), the parts used here.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ContainerConfig {
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

pub(crate) fn parse_config(body: &[u8]) -> Result<ConfigFile> {
    serde_json::from_slice(body).map_err(|e| Error::Invalid(format!("bad image config: {e}")))
}

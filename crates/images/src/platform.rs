use std::fmt;

use serde::{Deserialize, Serialize};

/// An OCI platform (`linux/amd64`, `linux/arm64/v8`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// `linux`, in GOOS words.
    pub os: String,
    /// `amd64`, `arm64`, … in GOARCH words.
    pub architecture: String,
    /// The CPU variant (`v8`, `v7`), when the image names one.
    pub variant: Option<String>,
}

impl Platform {
    /// This machine, in Go's GOOS/GOARCH words as registries use them.
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "loongarch64" => ("loong64", None),
            other => (other, None),
        };
        Platform {
            os: std::env::consts::OS.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// Whether an index entry for `os/architecture/variant` runs here, with containerd's
    /// defaults (arm64 means v8, arm means v7, a missing variant means the default one).
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        fn norm<'a>(arch: &str, v: Option<&'a str>) -> &'a str {
            match (arch, v.unwrap_or("")) {
                ("arm64", "") => "v8",
                ("arm", "") => "v7",
                ("amd64", "v1") => "",
                (_, v) => v,
            }
        }
        self.os == os
            && self.architecture == architecture
            && norm(&self.architecture, self.variant.as_deref()) == norm(architecture, variant)
    }
}

impl Default for Platform {
    fn default() -> Self {
        Platform::host()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let arm = Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into()),
        };
        assert!(arm.matches("linux", "arm64", None));
        assert!(arm.matches("linux", "arm64", Some("v8")));
        assert!(!arm.matches("linux", "amd64", None));
        let amd = Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        };
        assert!(amd.matches("linux", "amd64", None));
        assert!(!amd.matches("windows", "amd64", None));
        assert!(!amd.matches("unknown", "unknown", None));
    }
}

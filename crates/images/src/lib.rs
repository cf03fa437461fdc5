//! Container images for the node agent: pull from registries (anonymous, Basic and Bearer
//! token auth), import `oci-archive` / `docker-archive` tarballs, keep a content-addressed
//! store, unpack each layer once, and assemble container root filesystems with overlayfs.
//!
//! Store layout under the root given to [`ImageStore::open`]:
//! - `blobs/sha256/<hex>`: manifests and configs (layer blobs are removed once unpacked),
//! - `layers/<diff id hex>/`: one unpacked layer, overlay-ready (whiteouts as 0:0 devices),
//! - `layermeta/<diff id hex>.json`: its size on disk,
//! - `images/<config hex>.json`: image metadata (names, config, layers, last use).

mod archive;
mod auth;
mod digest;
mod error;
mod mount;
mod oci;
mod platform;
mod reference;
mod registry;
mod store;
mod unpack;
#[cfg(test)]
mod unpack_proptests;

#[cfg(feature = "test-support")]
pub mod testsupport;

pub use auth::{credentials_from_dockerconfigjson, Credentials};
pub use error::{Error, PullError, Result};
pub use mount::{remove_rootfs, unmount_rootfs, Rootfs};
pub use platform::Platform;
pub use reference::Reference;
pub use store::{Image, ImageConfig, ImageStore, PullOptions};

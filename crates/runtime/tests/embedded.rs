//! The embedding contract: a binary that calls `shim::run_if_invoked()` first in `main` can
//! use `LibcontainerRuntime::new` (shims are `/proc/self/exe __reddwarf-runtime-shim ...`).
//! No libtest harness here, so that this binary's `main` is ours.

use reddwarf_runtime::{conformance, shim, LibcontainerRuntime};

fn main() {
    shim::run_if_invoked();
    // Enough of libtest's protocol for `cargo nextest` to list and run this one test.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("embedded: test");
        }
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("embedded: skipped (needs root)");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let rootfs = conformance::busybox_rootfs(&tmp.path().join("rootfs")).expect("rootfs");
    let prefix = format!("t{}-embedded", std::process::id());
    let env = conformance::Env {
        rootfs,
        scratch: tmp.path().to_path_buf(),
        cgroup_parent: format!("/reddwarf-test-{prefix}"),
        prefix,
    };
    let rt = LibcontainerRuntime::new(&tmp.path().join("state")).expect("runtime");
    let result = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let r = async {
            conformance::echo_logs(&rt, &env).await?;
            conformance::exec_pipes(&rt, &env).await
        }
        .await;
        let cleanup = env.cleanup(&rt).await;
        r.and(cleanup)
    });
    if let Err(e) = result {
        eprintln!("embedded: FAILED: {e:?}");
        std::process::exit(1);
    }
    eprintln!("embedded: ok");
}

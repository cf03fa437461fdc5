//! The container shim as a standalone binary (see `reddwarf_runtime::shim`).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(reddwarf_runtime::shim::main(&args));
}

//! Puts the git commit into `baton --version` (`BATON_GIT_COMMIT`):
//! `git rev-parse --short HEAD`, or "unknown" where there is no git
//! checkout (a Docker build context, `cargo install` from a tarball).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Only this checkout's own .git (a directory, or a worktree's file):
    // a source tarball unpacked inside another repository is "unknown".
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let checkout = std::path::Path::new(&manifest_dir).join(".git").exists();
    let commit = checkout
        .then(|| git(&["rev-parse", "--short", "HEAD"]))
        .flatten()
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BATON_GIT_COMMIT={commit}");
    if !checkout {
        return;
    }
    // Rebuild when HEAD moves: HEAD itself (a branch switch) and the ref it
    // names (a commit, loose or packed). `--git-path` finds them in a
    // worktree too.
    for path in ["HEAD", "packed-refs"] {
        if let Some(p) = git(&["rev-parse", "--git-path", path]) {
            if std::path::Path::new(&p).exists() {
                println!("cargo:rerun-if-changed={p}");
            }
        }
    }
    if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(p) = git(&["rev-parse", "--git-path", &head_ref]) {
            if std::path::Path::new(&p).exists() {
                println!("cargo:rerun-if-changed={p}");
            }
        }
    }
}

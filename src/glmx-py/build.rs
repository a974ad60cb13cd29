//! Run path of the extension module: relative to where pip installs it.
//!
//! `glmx/_glmx.*.so` links libtorch, which the `torch` wheel installs beside `glmx` in the same
//! site-packages: `$ORIGIN/../torch/lib`. No absolute path of the build machine is recorded, so
//! the wheel works wherever it is installed. When torch lives elsewhere (a venv with
//! `--system-site-packages`), `glmx/__init__.py` imports torch before this module loads, and the
//! dynamic loader reuses the libraries torch already loaded.

fn main() {
    println!("cargo:rustc-link-arg-cdylib=-Wl,-rpath,$ORIGIN/../torch/lib");
    println!("cargo:rerun-if-changed=build.rs");
}

//! Compiles `ui/app.slint` into Rust. With the `testing` feature the code
//! carries the debug info Slint's element search (tests, screenshots)
//! needs to find controls by their accessible labels.

fn main() {
    let testing = std::env::var_os("CARGO_FEATURE_TESTING").is_some();
    let config = slint_build::CompilerConfiguration::new().with_debug_info(testing);
    if let Err(e) = slint_build::compile_with_config("ui/app.slint", config) {
        panic!("compiling ui/app.slint: {e}");
    }
}

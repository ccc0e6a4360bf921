//! `simplelock-harness`: see the crate docs (`cargo run -p simplelock-harness -- --help`).

fn main() -> std::process::ExitCode {
    simplelock_harness::main()
}

//! The `scaivault-pki` command: the daemon and its operator commands (see `cli`).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}

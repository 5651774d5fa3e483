//! The `scaivault-pki` command: the daemon and its operator commands (see `cli`).

mod cli;

/// glibc's malloc was ~18% of the daemon's CPU under issuance load (BENCHMARKS.md,
/// "Third round"); mimalloc's per-thread free lists cost a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}

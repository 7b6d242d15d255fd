//! The `netget` binary: see [`netget::cli`].

fn main() {
    std::process::exit(netget::cli::main_with_args(std::env::args()));
}

//! A node-only binary with the same flags as `raftkv node`: the node crate's
//! multi-process tests run it, and it serves embedding without the dashboard.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "raftkv-node",
    about = "One raftkv replica (same flags as `raftkv node`)"
)]
struct Cli {
    #[command(flatten)]
    options: raftkv_node::options::NodeOptions,
}

fn main() {
    let cli = Cli::parse();
    if let Err(message) = raftkv_node::node::run_node_blocking(cli.options) {
        eprintln!("raftkv node: {message}");
        std::process::exit(1);
    }
}

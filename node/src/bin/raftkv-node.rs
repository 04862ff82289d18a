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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    if let Err(message) = runtime.block_on(raftkv_node::driver::run_node(cli.options)) {
        eprintln!("raftkv node: {message}");
        std::process::exit(1);
    }
}

//! `raftkv`: the dashboard, the node, the client and the tools, in one binary.
//!
//! `raftkv` (= `raftkv tui`) opens the dashboard on a supervised local
//! cluster; `up` runs the cluster headless; `node` is one replica (the
//! supervisor re-executes this binary as `raftkv node ...`); `kv` is a client.

mod app;
mod chaos;
mod columns;
mod dashboard;
mod digest;
mod evidence;
mod gate_record;
mod integrity;
mod jobs;
mod key_check;
mod kv_cli;
mod live_history;
mod membership;
mod plan;
mod scenario;
mod ui;
mod up;

// The cluster modules live in raftkv-cluster (shared with raftkv-bench) and
// the benchmarks in raftkv-bench; they keep their `crate::` paths here.
use raftkv_bench as bench;
use raftkv_cluster::{clock, cluster, poll, status, supervisor};

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::dashboard::TuiArgs;

#[derive(Debug, Parser)]
#[command(
    name = "raftkv",
    version,
    about = "A Raft-replicated key-value store with a live dashboard",
    long_about = "A Raft-replicated key-value store with a live dashboard.\n\n\
        Without a subcommand raftkv opens the dashboard on a local 3-node cluster \
        (the same as `raftkv tui`).",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    tui: TuiArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The live dashboard on a local cluster it starts (or --attach to one).
    Tui(TuiArgs),
    /// Start a local cluster without a screen; Ctrl-C stops it gracefully.
    Up(up::UpArgs),
    /// Run the failover quality gate headless (exit code 0 only if it passes).
    Demo(scenario::DemoArgs),
    /// Run one node (the flags are a public interface; see DESIGN.md).
    Node(NodeArgs),
    /// A client for a running cluster: get, set, del, status, digest, dump,
    /// wait-converged, member list|add|promote|remove.
    Kv(kv_cli::KvArgs),
    /// A Jepsen-style run: clients on contended keys under a seeded nemesis,
    /// then a linearizability verdict (exit 0 only when everything holds).
    Chaos(chaos::ChaosArgs),
    /// Load, failover and catch-up benchmarks.
    Bench(bench::BenchArgs),
}

#[derive(Debug, clap::Args)]
struct NodeArgs {
    #[command(flatten)]
    options: raftkv_node::options::NodeOptions,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The nodes this process starts require the password: every client
    // connection it opens (dashboard polls, gate, benchmarks) sends AUTH.
    let requirepass = match &cli.command {
        None => cli.tui.cluster.requirepass.clone(),
        Some(Command::Tui(args)) => args.cluster.requirepass.clone(),
        Some(Command::Up(args)) => args.cluster.requirepass.clone(),
        Some(Command::Demo(args)) => args.cluster.requirepass.clone(),
        Some(Command::Kv(args)) => args.requirepass.clone(),
        Some(_) => None,
    };
    raftkv_node::client::use_password(requirepass);
    match cli.command {
        None if !std::io::stdout().is_terminal() => {
            eprintln!(
                "raftkv: no terminal attached (stdout is not a tty), so the dashboard cannot draw; \
                 running the headless quality gate `raftkv demo` instead"
            );
            demo(scenario::DemoArgs {
                cluster: cli.tui.cluster,
                attach: cli.tui.attach.map(|list| list.0.join(",")),
                ..scenario::DemoArgs::default()
            })
        }
        None => report("raftkv", dashboard::run(cli.tui)),
        Some(Command::Tui(args)) => report("raftkv tui", dashboard::run(args)),
        Some(Command::Up(args)) => report("raftkv up", up::run(args)),
        Some(Command::Chaos(args)) => ExitCode::from(chaos::run(args) as u8),
        Some(Command::Demo(args)) => demo(args),
        Some(Command::Node(args)) => report("raftkv node", run_node(args.options)),
        Some(Command::Kv(args)) => report("raftkv kv", kv_cli::run(args)),
        Some(Command::Bench(args)) => report("raftkv bench", run_bench(args)),
    }
}

/// The headless quality gate. `block_on` keeps the gate (which starts and
/// restarts nodes through the supervisor) on the main thread, which the
/// children's parent-death signal is tied to.
fn demo(args: scenario::DemoArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("raftkv demo: cannot start the async runtime: {e}");
            return ExitCode::from(scenario::EXIT_CANNOT_START as u8);
        }
    };
    let code = runtime.block_on(scenario::run_demo(args));
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// A node runs on one thread (plus its WAL thread): see `run_node_blocking`.
fn run_node(options: raftkv_node::options::NodeOptions) -> Result<(), String> {
    raftkv_node::node::run_node_blocking(options)
}

/// `block_on` keeps the benchmark (which may start nodes through the
/// supervisor) on the main thread, which the children's parent-death signal is tied to.
fn run_bench(args: bench::BenchArgs) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(bench::run(args))
}

fn report(what: &str, result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{what}: {error}");
            ExitCode::FAILURE
        }
    }
}

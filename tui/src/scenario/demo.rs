//! `raftkv demo`: the headless gate. Starts a fresh local cluster (or
//! attaches to one it may not kill), runs the scenario with live progress
//! lines, prints the checklist, and with `--git-tag` tags the repository
//! when all eight items pass.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{run_gate, GateContext, ProcessControl, PROCESS_REPORTS_MAX, STATUS_DEADLINE_MS};
use crate::cluster::{parse_addr_list, ClusterArgs, ClusterLayout};
use crate::evidence;
use crate::gate_record::{self, GateRecord, RunMode, Verdict};
use crate::integrity::IntegrityWatch;
use crate::plan::{self, ITEM_COUNT};
use crate::status::StatusFetcher;
use crate::supervisor::{NodeProgram, Supervisor, STOP_GRACE_MS_DEFAULT};

/// The annotated tag message of `--git-tag`.
pub const GIT_TAG_MESSAGE: &str = "Week 12: Month 3 demo — full cluster";
/// Exit status when every item passed but `--git-tag` could not create the tag.
pub const EXIT_TAG_FAILED: i32 = 3;
/// Exit status when the demo could not start (bad flags, ports taken, ...).
pub const EXIT_CANNOT_START: i32 = 2;

/// `raftkv demo` flags.
///
/// Exit status: 0 when all eight items pass, 1 when any fails, 2 when the
/// demo cannot start, 3 when all pass but `--git-tag` could not tag.
#[derive(Clone, Debug, clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Evidence bundles are written to <out>/<UTC timestamp>/.
    #[arg(long, default_value = "logs/evidence")]
    pub out: PathBuf,
    /// Run against a running cluster (host:port,...) instead of starting one.
    /// It is never killed, so items 3-7 cannot run and the gate fails.
    #[arg(long, value_name = "ADDRS")]
    pub attach: Option<String>,
    /// Print the plan (docs/DEMO.md) and exit.
    #[arg(long)]
    pub plan: bool,
    /// When all eight items pass, create this annotated tag in the current
    /// git repository and list the v0.* tags.
    #[arg(long, value_name = "NAME")]
    pub git_tag: Option<String>,
    /// Test only: corrupt the killed leader's WAL before restarting it, so it
    /// refuses to start and items 6 and 7 must fail.
    #[arg(long, hide = true)]
    pub sabotage_catchup: bool,
}

impl Default for DemoArgs {
    /// The defaults of `raftkv demo` with no flags.
    fn default() -> DemoArgs {
        DemoArgs {
            cluster: ClusterArgs {
                nodes: 3,
                base_port: 7000,
                data_dir: "data".into(),
                log_dir: "logs".into(),
                fresh: true,
                requirepass: None,
            },
            out: "logs/evidence".into(),
            attach: None,
            plan: false,
            git_tag: None,
            sabotage_catchup: false,
        }
    }
}

// ----- `raftkv demo` ----------------------------------------------------------------

/// `raftkv demo`: prints the plan, runs the gate against a fresh cluster (or
/// `--attach`ed one), prints the checklist, and returns the exit status.
/// Run it with `block_on` on the main thread: the supervisor it owns must
/// fork from the thread that lives as long as the process.
pub async fn run_demo(args: DemoArgs) -> i32 {
    if args.plan {
        print!("{}", plan::plan_text());
        return 0;
    }
    if let Some(tag) = &args.git_tag {
        if let Err(e) = git_tag_precheck(tag) {
            eprintln!("raftkv demo: --git-tag {tag}: {e}");
            return EXIT_CANNOT_START;
        }
    }
    let ctx = match prepare(&args).await {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("raftkv demo: {e}");
            return EXIT_CANNOT_START;
        }
    };
    let cancel = CancellationToken::new();
    let interrupt = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("raftkv demo: interrupted; stopping the cluster and writing the bundle");
                cancel.cancel();
            }
        })
    };
    // Progress is echoed to stdout by the gate itself; nobody reads this channel.
    let (progress, _) = mpsc::channel(1);
    let outcome = run_gate(ctx, progress, cancel).await;
    interrupt.abort();
    println!();
    print!("{}", evidence::checklist_text(&outcome.record));
    match &outcome.bundle {
        Ok(dir) => println!("\nevidence bundle: {}", dir.display()),
        Err(e) => eprintln!("\nraftkv demo: the evidence bundle is incomplete: {e}"),
    }
    let mut code = if outcome.all_passed() && outcome.bundle.is_ok() {
        0
    } else {
        1
    };
    if let Some(tag) = &args.git_tag {
        match create_git_tag(tag, &outcome.record) {
            Ok(listing) => {
                println!("\ncreated annotated tag {tag}; git tag -l \"v0.*\":");
                print!("{listing}");
            }
            Err(e) => {
                eprintln!("raftkv demo: --git-tag {tag}: {e}");
                if code == 0 {
                    code = EXIT_TAG_FAILED;
                }
            }
        }
    }
    code
}

/// Builds the context: a fresh local cluster (ports checked, data dirs
/// wiped, nothing started yet) or an attached one.
async fn prepare(args: &DemoArgs) -> Result<GateContext, String> {
    if let Some(list) = &args.attach {
        let addrs = parse_addr_list(list)?;
        let mut nodes = Vec::new();
        for (i, addr) in addrs.into_iter().enumerate() {
            // Ids come from the nodes themselves; a silent node keeps its position.
            let id = StatusFetcher::new(addr.clone())
                .fetch(Duration::from_millis(STATUS_DEADLINE_MS))
                .await
                .map_or(i as u64 + 1, |s| s.id);
            nodes.push((id, addr));
        }
        let mut ctx =
            GateContext::for_attached(nodes, Some(&args.cluster.log_dir), args.out.clone());
        ctx.echo = true;
        println!(
            "raftkv demo: attached to {} nodes; it may not kill or restart them, so items 3-7 cannot run and the gate will FAIL",
            ctx.nodes.len()
        );
        return Ok(ctx);
    }
    let layout = ClusterLayout::new(&args.cluster)?;
    layout.check_ports_free()?;
    layout.create_dirs()?;
    let wiped = layout.wipe_all_data()?;
    let (reports_tx, reports) = mpsc::channel(PROCESS_REPORTS_MAX);
    let supervisor = Supervisor::new(
        layout.clone(),
        NodeProgram::current_exe()?,
        reports_tx,
        STOP_GRACE_MS_DEFAULT,
    );
    let clients = layout.client_addrs();
    println!(
        "raftkv demo: {} nodes, clients {}, data {}{}, logs {}",
        layout.nodes,
        clients.join(" "),
        layout.data_dir.display(),
        if wiped.is_empty() {
            String::new()
        } else {
            format!(" (wiped {} old node dirs)", wiped.len())
        },
        layout.log_dir.display()
    );
    Ok(GateContext {
        mode: RunMode::Demo,
        nodes: gate_record::nodes_from_layout(&layout),
        data_dir: Some(layout.data_dir.clone()),
        processes: ProcessControl::Owned {
            supervisor,
            reports,
        },
        out_dir: args.out.clone(),
        fresh: true,
        echo: true,
        sabotage_catchup: args.sabotage_catchup,
        integrity: IntegrityWatch::new(super::INTEGRITY_STATUS_AGE_MS_MAX),
    })
}

// ----- --git-tag ---------------------------------------------------------------------

fn git(args: &[&str]) -> Result<std::process::Output, String> {
    std::process::Command::new("git")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))
}

fn git_stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_string()
}

/// Refuses early (before the gate runs) a tag that could not be created.
pub fn git_tag_precheck(name: &str) -> Result<(), String> {
    let inside = git(&["rev-parse", "--is-inside-work-tree"])?;
    if !inside.status.success() {
        return Err(format!(
            "the current directory is not in a git repository ({}); run the demo from the repository to tag",
            git_stderr(&inside)
        ));
    }
    let valid = git(&["check-ref-format", &format!("refs/tags/{name}")])?;
    if !valid.status.success() {
        return Err(format!("'{name}' is not a valid tag name"));
    }
    let head = git(&["rev-parse", "--verify", "-q", "HEAD"])?;
    if !head.status.success() {
        return Err("the repository has no commit to tag yet".into());
    }
    let exists = git(&["rev-parse", "--verify", "-q", &format!("refs/tags/{name}")])?;
    if exists.status.success() {
        return Err(format!(
            "the tag {name} already exists; pick another name or delete it first"
        ));
    }
    Ok(())
}

/// Creates the annotated tag when every item passed; returns `git tag -l "v0.*"`.
pub fn create_git_tag(name: &str, record: &GateRecord) -> Result<String, String> {
    if !record.all_passed() {
        let failed: Vec<String> = (1..=ITEM_COUNT)
            .filter(|n| record.item(*n).verdict == Verdict::Fail)
            .map(|n| n.to_string())
            .collect();
        return Err(format!(
            "not tagging: item {} failed; the tag marks a gate with all eight items PASS",
            failed.join(", ")
        ));
    }
    git_tag_precheck(name)?;
    let tagged = git(&["tag", "-a", name, "-m", GIT_TAG_MESSAGE])?;
    if !tagged.status.success() {
        return Err(format!("git tag failed: {}", git_stderr(&tagged)));
    }
    let listed = git(&["tag", "-l", "v0.*"])?;
    Ok(String::from_utf8_lossy(&listed.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate_record::ItemResult;

    #[test]
    fn tagging_is_refused_when_an_item_failed() {
        let mut record = GateRecord::new(RunMode::Demo, Vec::new(), 0);
        for n in 1..=ITEM_COUNT {
            record.set_item(n, ItemResult::pass("ok", "here"));
        }
        record.set_item(6, ItemResult::fail("corrupt", "there"));
        record.set_item(7, ItemResult::fail("not taken", "there"));
        let error = create_git_tag("v0.0.0-never", &record).unwrap_err();
        assert_eq!(
            error,
            "not tagging: item 6, 7 failed; the tag marks a gate with all eight items PASS"
        );
    }

    #[test]
    fn demo_defaults_match_the_documented_ones() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            demo: DemoArgs,
        }
        let parsed = Cli::parse_from(["raftkv"]).demo;
        let defaults = DemoArgs::default();
        assert_eq!(parsed.cluster.nodes, defaults.cluster.nodes);
        assert_eq!(parsed.cluster.base_port, defaults.cluster.base_port);
        assert_eq!(parsed.cluster.data_dir, defaults.cluster.data_dir);
        assert_eq!(parsed.cluster.log_dir, defaults.cluster.log_dir);
        assert_eq!(parsed.out, defaults.out);
        assert!(!parsed.sabotage_catchup && !parsed.plan && parsed.git_tag.is_none());
        let sabotaged =
            Cli::parse_from(["raftkv", "--sabotage-catchup", "--git-tag", "v0.3.0"]).demo;
        assert!(sabotaged.sabotage_catchup);
        assert_eq!(sabotaged.git_tag.as_deref(), Some("v0.3.0"));
    }
}

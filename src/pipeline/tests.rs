//! The pipeline around a real core, with I/O that records what it was
//! asked to do and a WAL that reports only when the test says so.

use bytes::Bytes;

use super::*;
use crate::raft::{Config, HardState, InitialState, ProposeError};

/// Records the pipeline's requests; queued WAL jobs wait in `jobs`.
struct RecordingIo {
    raw: RawNode,
    sent: Vec<Message>,
    applied: Vec<Index>,
    inline_writes: usize,
    jobs: Vec<u64>,
    reads_safe: Vec<u32>,
    reads_failed: Vec<(u32, ReadFailure)>,
}

impl RecordingIo {
    fn single_voter() -> Self {
        let raw = RawNode::new(Config::new(1, vec![1]), InitialState::default(), 7)
            .expect("a valid config");
        RecordingIo {
            raw,
            sent: Vec::new(),
            applied: Vec::new(),
            inline_writes: 0,
            jobs: Vec::new(),
            reads_safe: Vec::new(),
            reads_failed: Vec::new(),
        }
    }
}

impl ReadyIo for RecordingIo {
    type Error = String;
    type Reads = u32;

    fn raw(&mut self) -> &mut RawNode {
        &mut self.raw
    }

    fn send(&mut self, message: Message) -> Result<(), String> {
        self.sent.push(message);
        Ok(())
    }

    fn apply(&mut self, entries: &[Entry]) -> Result<(), String> {
        self.applied.extend(entries.iter().map(|e| e.index));
        Ok(())
    }

    fn read_safe(&mut self, reads: u32) -> Result<(), String> {
        self.reads_safe.push(reads);
        Ok(())
    }

    fn read_failed(&mut self, reads: u32, why: ReadFailure) {
        self.reads_failed.push((reads, why));
    }

    fn write_inline(&mut self, _write: WalWrite) -> Result<(), String> {
        self.inline_writes += 1;
        Ok(())
    }

    fn submit(&mut self, job: WalJob) -> Result<(), String> {
        match job {
            WalJob::Write { seq, .. } | WalJob::InstallSnapshot { seq, .. } => self.jobs.push(seq),
        }
        Ok(())
    }

    fn own_snapshot_saved(&mut self, _index: Index, _data: Bytes) -> Result<(), String> {
        Ok(())
    }
}

fn pipeline() -> Pipeline<u32> {
    Pipeline::new(
        PipelineConfig {
            jobs_in_flight_max: 8,
            inline_follower_writes: true,
        },
        HardState::default(),
    )
}

/// Handles every Ready the core has, as the driver's loop does.
fn run(pipeline: &mut Pipeline<u32>, io: &mut RecordingIo) {
    while io.raw.has_ready() && pipeline.has_room() {
        let ready = io.raw.ready();
        let turn = pipeline.start(ready, io).unwrap();
        assert!(
            pipeline.finish(turn, io).unwrap().is_none(),
            "no snapshot here"
        );
    }
}

/// The WAL reports every queued job durable.
fn report_all(pipeline: &mut Pipeline<u32>, io: &mut RecordingIo) {
    for seq in std::mem::take(&mut io.jobs) {
        let report = WalReport::Durable { through_seq: seq };
        pipeline.on_report(report, io).unwrap();
    }
}

/// Ticks a single voter until it leads, its first entry applied.
fn elect(pipeline: &mut Pipeline<u32>, io: &mut RecordingIo) {
    for _ in 0..1_000 {
        io.raw.tick();
        run(pipeline, io);
        report_all(pipeline, io);
        run(pipeline, io);
        if pipeline.last_role() == Role::Leader && !io.applied.is_empty() {
            return;
        }
    }
    panic!("a single voter never became leader");
}

/// Elects a single voter, proposes one entry and hands it over: whether it
/// was applied before the WAL reported it, and after.
fn applied_before_and_after_the_report(pipeline: &mut Pipeline<u32>) -> (bool, bool) {
    let mut io = RecordingIo::single_voter();
    elect(pipeline, &mut io);
    assert!(
        io.inline_writes > 0,
        "the vote of a follower is written inline"
    );
    let (_, index) = io.raw.propose(Bytes::from_static(b"x")).unwrap();
    run(pipeline, &mut io);
    assert_eq!(io.jobs.len(), 1, "a leader queues its write and goes on");
    let before = io.applied.contains(&index);
    report_all(pipeline, &mut io);
    run(pipeline, &mut io);
    (before, io.applied.contains(&index))
}

#[test]
fn a_follower_writes_its_vote_inline_and_a_leader_commits_its_entries_once_durable() {
    assert_eq!(
        applied_before_and_after_the_report(&mut pipeline()),
        (false, true),
        "raft: a leader counts its own copy only once it is durable"
    );
}

/// The planted bug is in the code the node runs: the leader commits an
/// entry of its own that is not durable yet.
#[cfg(feature = "planted-bugs")]
#[test]
fn planted_persisted_before_fsync_commits_before_the_report() {
    let mut planted = pipeline();
    planted.plant(Some(DriverBug::PersistedBeforeFsync));
    assert_eq!(
        applied_before_and_after_the_report(&mut planted),
        (true, true)
    );
}

#[test]
fn reads_are_refused_without_a_leader_and_served_once_confirmed() {
    let mut io = RecordingIo::single_voter();
    let mut pipeline = pipeline();
    pipeline.issue_read(1, &mut io);
    assert!(
        matches!(
            io.reads_failed[..],
            [(1, ReadFailure::Refused(ProposeError::NotLeader { .. }))]
        ),
        "{:?}",
        io.reads_failed
    );
    elect(&mut pipeline, &mut io);
    pipeline.issue_read(2, &mut io);
    run(&mut pipeline, &mut io);
    report_all(&mut pipeline, &mut io);
    run(&mut pipeline, &mut io);
    assert_eq!(io.reads_safe, vec![2]);
    assert!(pipeline.take_pending_reads().is_empty());
}

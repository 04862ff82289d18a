//! `latency.svg`: the latency of every operation over the run, with the
//! fault windows shaded and failed or unknown operations marked, the plot
//! Jepsen reports open with.

use std::path::Path;

use plotters::prelude::*;
use raftkv::linearizability::Outcome;

use super::history::{Record, RecordKind};
use super::nemesis::NemesisEvent;

const WIDTH: u32 = 1_200;
const HEIGHT: u32 = 500;
/// Time buckets of the sampling, and acknowledged operations kept per
/// bucket (its fastest, its slowest and evenly spaced ones between), so a
/// long run's picture stays a few MB. Failed and unknown ones are all kept.
const BUCKETS: u64 = 600;
const OK_PER_BUCKET_MAX: usize = 8;

/// The acknowledged operations drawn, sampled per time bucket by latency.
fn sample_ok(records: &[Record]) -> Vec<&Record> {
    let end = records.iter().map(|r| r.invoke_us).max().unwrap_or(0) + 1;
    let mut buckets: Vec<Vec<&Record>> = vec![Vec::new(); BUCKETS as usize];
    for record in records.iter().filter(|r| r.outcome == Outcome::Ok) {
        buckets[(record.invoke_us * BUCKETS / end) as usize].push(record);
    }
    let latency = |r: &Record| r.complete_us.unwrap_or(r.invoke_us) - r.invoke_us;
    let mut shown = Vec::new();
    for mut bucket in buckets {
        bucket.sort_by_key(|r| latency(r));
        if bucket.len() <= OK_PER_BUCKET_MAX {
            shown.extend(bucket);
            continue;
        }
        let last = bucket.len() - 1;
        shown.extend((0..OK_PER_BUCKET_MAX).map(|i| bucket[i * last / (OK_PER_BUCKET_MAX - 1)]));
    }
    shown
}

pub fn latency_svg(path: &Path, records: &[Record], events: &[NemesisEvent]) -> Result<(), String> {
    let sampled = sample_ok(records);
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let end_s = records
            .iter()
            .filter_map(|r| r.complete_us.or(Some(r.invoke_us)))
            .chain(events.iter().filter_map(|e| e.end_us))
            .max()
            .unwrap_or(1) as f64
            / 1e6;
        // Unknown outcomes never completed: drawn at the top of the chart.
        let top_ms = records
            .iter()
            .filter_map(|r| r.complete_us.map(|c| (c - r.invoke_us) as f64 / 1e3))
            .fold(10.0_f64, f64::max)
            * 1.2;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "raftkv chaos: latency of {} operations (acknowledged ones sampled: {} drawn)",
                    records.len(),
                    sampled.len()
                ),
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..end_s.max(1.0), (0.1_f64..top_ms).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("seconds since the workload started")
            .y_desc("latency (ms, log)")
            .draw()?;
        for event in events {
            let start = event.start_us as f64 / 1e6;
            let end = event.end_us.unwrap_or(event.start_us) as f64 / 1e6;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(start, 0.1), (end, top_ms)],
                RGBColor(255, 200, 120).mix(0.35).filled(),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                event.kind.name().to_string(),
                (start, top_ms / 1.3),
                ("sans-serif", 12),
            )))?;
        }
        let point = |r: &Record| {
            let at = r.invoke_us as f64 / 1e6;
            let ms = r
                .complete_us
                .map_or(top_ms / 1.05, |c| ((c - r.invoke_us) as f64 / 1e3).max(0.1));
            (at, ms)
        };
        let ok = |write: bool| {
            sampled
                .iter()
                .copied()
                .filter(move |r| matches!(r.kind, RecordKind::Write(_)) == write)
        };
        chart
            .draw_series(ok(true).map(|r| Circle::new(point(r), 2, BLUE.mix(0.5).filled())))?
            .label("write ok")
            .legend(|(x, y)| Circle::new((x, y), 3, BLUE.filled()));
        chart
            .draw_series(ok(false).map(|r| Circle::new(point(r), 2, GREEN.mix(0.5).filled())))?
            .label("read ok")
            .legend(|(x, y)| Circle::new((x, y), 3, GREEN.filled()));
        let with_outcome = |outcome: Outcome| records.iter().filter(move |r| r.outcome == outcome);
        chart
            .draw_series(with_outcome(Outcome::Failed).map(|r| Cross::new(point(r), 4, RED)))?
            .label("failed")
            .legend(|(x, y)| Cross::new((x, y), 4, RED));
        chart
            .draw_series(
                with_outcome(Outcome::Unknown).map(|r| TriangleMarker::new(point(r), 4, MAGENTA)),
            )?
            .label("unknown outcome")
            .legend(|(x, y)| TriangleMarker::new((x, y), 4, MAGENTA));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| format!("cannot draw {}: {e}", path.display()))
}

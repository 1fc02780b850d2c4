//! The self-report: the figures of one period and of the process, and their
//! three renderings (the log lines, the JSON report of the original, the
//! Prometheus text of `metrics-file`), plus the one-line systemd status.
//!
//! Owns: the arithmetic (per-period deltas, rates, CPU percent) and the text
//! formats, including the JSON string escaping. Must not: touch a socket or
//! a file (the loop gathers [`StreamSample`]s and [`ProcessSample`]s, the
//! publisher and `metrics` carry the text away); reading the process's own
//! usage (`getrusage`, `/proc/self/statm`) is the only system access.

mod figures;
mod json;
mod process;
mod prometheus;
mod text;

pub use figures::{Figures, Reporter, StreamFigures, StreamSample, cpu_percent};
pub use json::{iso_utc, json, json_string};
pub use process::ProcessSample;
pub use prometheus::prometheus;
pub use text::{log_lines, status_line};

#[cfg(test)]
mod tests {
    use super::process::statm_resident_pages;
    use super::text::human_bytes;
    use super::*;
    use crate::counters::Counters;
    use std::io::Write;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    fn sample(name: &str, received: u64, stored: u64) -> StreamSample {
        StreamSample {
            name: name.into(),
            counters: Counters {
                received,
                received_bytes: received * 10,
                stored,
                stored_bytes: stored * 10,
                last_rx_us: 1_764_250_000_123_456,
                commit_last_us: 1500,
                commit_max_us: 4000,
                ..Counters::default()
            },
            reconnects: 2,
            connected: true,
            file: Some("/data/a\"b\\c\n.sqlite.part".into()),
            busy: Duration::from_millis(250),
            filter_drops: vec![
                ("max-payload-bytes (wire)".into(), 0),
                ("exclude".into(), 4),
            ],
            files_deleted: 3,
            bytes_deleted: 12_288,
            hooks_done: 5,
            hooks_failed: 1,
            hooks_pending: 2,
        }
    }

    pub(super) fn figures() -> Figures {
        let t0 = Instant::now();
        let mut r = Reporter::new(Duration::from_secs(1), t0, Duration::ZERO);
        let p0 = ProcessSample {
            cpu: Duration::from_millis(100),
            rss_bytes: 4096,
            peak_rss_bytes: 8192,
        };
        r.take(vec![sample("s", 10, 5)], p0, t0 + Duration::from_secs(1), 0);
        let p1 = ProcessSample {
            cpu: Duration::from_millis(150),
            ..p0
        };
        r.take(
            vec![sample("tab\there", 30, 25), sample("zwei", 0, 0)],
            p1,
            t0 + Duration::from_secs(3),
            1_764_250_001_000_000,
        )
    }

    fn python_parses(text: &str, check: &str) -> Option<String> {
        let mut child = Command::new("python3")
            .args(["-c", check])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?; // no python3: the Rust-side checks still ran
        child.stdin.take()?.write_all(text.as_bytes()).ok()?;
        let out = child.wait_with_output().ok()?;
        assert!(
            out.status.success(),
            "python rejected:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    #[test]
    fn json_strings_escape_quotes_backslashes_and_control_characters() {
        let mut s = String::new();
        json_string(&mut s, "a\"b\\c\nd\te\u{1}f\u{7f}é€😀");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\te\\u0001f\u{7f}é€😀\"");
        let decoded = python_parses(&s, "import json,sys; print(json.load(sys.stdin), end='')");
        if let Some(d) = decoded {
            assert_eq!(d, "a\"b\\c\nd\te\u{1}f\u{7f}é€😀");
        }
    }

    #[test]
    fn periods_are_differences_and_rates_divide_by_the_period() {
        let f = figures();
        assert_eq!(f.period, Duration::from_secs(2));
        let s = &f.streams[0];
        assert_eq!((s.received, s.stored), (20, 20));
        assert_eq!(s.received_bytes, 200);
        assert!((f.per_second(s.received) - 10.0).abs() < 1e-9);
        assert!((s.utilisation - 0.125).abs() < 1e-9);
        // A stream that appeared later starts from zero.
        assert_eq!(f.streams[1].received, 0);
        assert!((f.cpu_percent - 2.5).abs() < 1e-9);
        assert_eq!(f.total_received(), 30);
    }

    #[test]
    fn the_json_report_parses_and_keeps_the_original_keys() {
        let f = figures();
        let text = json(&f);
        assert!(text.starts_with("{\"elapsed_time_hours\":"));
        for key in [
            "totalMessageCount\":30",
            "messages_per_second_recent\":10",
            "\"stream_prefix\":\"tab\\there\"",
            "\"stream_idx\":1",
            "\"last_rx_timestamp_iso\":\"2025-11-27T13:26:40.123456Z\"",
            "\"is_connected\":true",
        ] {
            assert!(text.contains(key), "{key} missing in {text}");
        }
        let check = "import json,sys\n\
            d=json.load(sys.stdin)\n\
            assert d['totalMessageCount']==30\n\
            assert abs(d['elapsed_time_hours']-3/3600)<1e-9\n\
            assert abs(d['messages_per_second_total']-10)<1e-9\n\
            p=d['performance_details']\n\
            assert [x['stream_idx'] for x in p]==[0,1]\n\
            assert p[0]['messages_this_channel']==30\n\
            assert p[0]['current_file']=='/data/a\"b\\\\c\\n.sqlite.part'\n\
            assert abs(p[0]['last_rx_timestamp_unix']-1764250000.123456)<1e-6\n\
            print('ok',end='')";
        if let Some(out) = python_parses(&text, check) {
            assert_eq!(out, "ok");
        }
    }

    #[test]
    fn no_message_yet_gives_null_timestamps() {
        let mut f = figures();
        f.streams[1].sample.counters.last_rx_us = 0;
        let text = json(&f);
        assert!(text.contains("\"last_rx_timestamp_unix\":null,\"last_rx_timestamp_iso\":null"));
    }

    #[test]
    fn iso_timestamps_are_utc_with_microseconds() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(iso_utc(951_782_400_000_001), "2000-02-29T00:00:00.000001Z");
        assert_eq!(iso_utc(-1), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn prometheus_text_has_help_type_and_numeric_samples() {
        let mut f = figures();
        f.streams[1].sample.name = "we\"ird\\".into();
        let text = prometheus(&f);
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(kind == "counter" || kind == "gauge");
                if kind == "counter" {
                    assert!(name.ends_with("_total"), "{name}");
                }
                typed.insert(name.to_owned());
            } else if !line.starts_with("# HELP ") {
                let (series, value) = line.rsplit_once(' ').unwrap();
                let name = series.split('{').next().unwrap();
                assert!(typed.contains(name), "{name} has no TYPE");
                value.parse::<f64>().unwrap();
            }
        }
        assert!(text.contains("attic_messages_stored_total{stream=\"tab\there\"} 25\n"));
        assert!(text.contains("{stream=\"we\\\"ird\\\\\"}"));
        assert!(text.contains("attic_cpu_percent 2.5\n"));
    }

    #[test]
    fn cpu_percent_is_cpu_time_over_wall_time() {
        let s = Duration::from_secs;
        assert_eq!(cpu_percent(s(1), s(2), s(4)), 25.0);
        assert_eq!(cpu_percent(s(2), s(1), s(4)), 0.0);
        assert_eq!(cpu_percent(s(0), s(1), Duration::ZERO), 0.0);
    }

    #[test]
    fn statm_gives_resident_pages_and_the_process_sample_is_plausible() {
        assert_eq!(statm_resident_pages("1000 250 30 1 0 100 0\n"), Some(250));
        assert_eq!(statm_resident_pages(""), None);
        let p = ProcessSample::read();
        assert!(p.rss_bytes > 0 && p.peak_rss_bytes >= p.rss_bytes / 2);
    }

    #[test]
    fn log_lines_and_status_name_every_stream_once() {
        let f = figures();
        let lines = log_lines(&f);
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("[tab\there] connected; received 20 (10.0/s"));
        assert!(lines[2].starts_with("process: cpu 2.5 %"));
        let st = status_line(&f);
        assert!(st.starts_with("2/2 streams connected; 10.0 msg/s; 25 stored"));
        assert!(!st.contains('\n'));
    }

    #[test]
    fn byte_counts_read_as_binary_units() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}

#[cfg(test)]
mod filter_drop_tests {
    use super::*;

    #[test]
    fn per_filter_drops_reach_the_log_line_the_json_and_the_metrics() {
        let f = tests::figures();
        let line = &log_lines(&f)[0];
        assert!(line.ends_with("dropped by filter: exclude 4"), "{line}");
        let j = json(&f);
        assert!(
            j.contains(r#""filter_drops_total":{"max-payload-bytes (wire)":0,"exclude":4}"#),
            "{j}"
        );
        let p = prometheus(&f);
        assert!(
            p.contains("attic_filter_dropped_total{stream=\"zwei\",filter=\"exclude\"} 4"),
            "{p}"
        );
    }

    #[test]
    fn retention_deletions_reach_the_json_and_the_metrics() {
        let f = tests::figures();
        let j = json(&f);
        assert!(
            j.contains(r#""files_deleted":3,"bytes_deleted":12288"#),
            "{j}"
        );
        let p = prometheus(&f);
        assert!(
            p.contains("attic_files_deleted_total{stream=\"zwei\"} 3"),
            "{p}"
        );
        assert!(
            p.contains("attic_bytes_deleted_total{stream=\"zwei\"} 12288"),
            "{p}"
        );
    }
}

#[cfg(test)]
mod status_tests {
    use super::process::status_kib;
    use super::*;

    #[test]
    fn the_peak_is_read_from_vmhwm_in_kib() {
        let status = "Name:\tattic\nVmPeak:\t  10000 kB\nVmHWM:\t    5124 kB\nVmRSS:\t 4000 kB\n";
        assert_eq!(status_kib(status, "VmHWM:"), Some(5124));
        assert_eq!(status_kib(status, "VmSwap:"), None);
        let p = ProcessSample::read();
        assert!(p.peak_rss_bytes >= p.rss_bytes && p.rss_bytes > 0, "{p:?}");
    }

    #[test]
    fn hook_counts_reach_the_json_and_the_metrics() {
        let f = tests::figures();
        let j = json(&f);
        assert!(
            j.contains(r#""hooks_done":5,"hooks_failed":1,"hooks_pending":2"#),
            "{j}"
        );
        let p = prometheus(&f);
        for line in [
            "attic_hooks_done_total{stream=\"zwei\"} 5",
            "attic_hooks_failed_total{stream=\"zwei\"} 1",
            "attic_hooks_pending{stream=\"zwei\"} 2",
            "# TYPE attic_hooks_pending gauge",
        ] {
            assert!(p.contains(line), "{line} missing: {p}");
        }
    }
}

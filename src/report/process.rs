//! The process's own resource use: CPU time from `getrusage`, resident
//! memory from `/proc/self/statm`, the peak from `/proc/self/status`.
//!
//! Owns: [`ProcessSample`]. Must not: keep state between samples.

use std::time::Duration;

/// The process's own resource use at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessSample {
    /// User + system CPU time since the process started.
    pub cpu: Duration,
    /// Resident memory now, in bytes.
    pub rss_bytes: u64,
    /// Peak resident memory, in bytes.
    pub peak_rss_bytes: u64,
}

impl ProcessSample {
    /// Reads `getrusage(RUSAGE_SELF)`, `/proc/self/statm` and the peak
    /// (`VmHWM`) from `/proc/self/status`; a figure that cannot be read is 0.
    pub fn read() -> Self {
        // SAFETY: `rusage` is plain data; getrusage fills it or fails.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: RUSAGE_SELF with a valid pointer to a rusage.
        let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } == 0;
        let cpu = if ok {
            timeval(ru.ru_utime) + timeval(ru.ru_stime)
        } else {
            Duration::ZERO
        };
        // The peak is VmHWM, not ru_maxrss: ru_maxrss survives exec, so a
        // process started by a big parent (`cargo run`, a Python harness)
        // would report the parent's peak as its own.
        let peak = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| status_kib(&s, "VmHWM:"))
            .map_or(0, |kib| kib * 1024);
        let rss = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| statm_resident_pages(&s))
            .map_or(0, |pages| pages * page_size());
        ProcessSample {
            cpu,
            rss_bytes: rss,
            // The kernel updates ru_maxrss lazily; never report a peak
            // below the current figure.
            peak_rss_bytes: peak.max(rss),
        }
    }
}

pub(super) fn timeval(tv: libc::timeval) -> Duration {
    let s = u64::try_from(tv.tv_sec).unwrap_or(0);
    let us = u32::try_from(tv.tv_usec).unwrap_or(0);
    Duration::from_secs(s) + Duration::from_micros(u64::from(us))
}

pub(super) fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

/// A `kB` figure of `/proc/self/status`, e.g. `VmHWM:     5124 kB`.
pub(super) fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

/// The second field of `/proc/self/statm`: resident pages.
pub(super) fn statm_resident_pages(statm: &str) -> Option<u64> {
    statm.split_whitespace().nth(1)?.parse().ok()
}

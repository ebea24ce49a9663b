//! What `/proc` says of a process the tests and benches started: its resident memory and CPU time (shared by
//! `AgentProc` and the `system` and `loadgen` benches).

use std::time::Duration;

/// A `kB` field of `/proc/PID/status` (`VmRSS:`, `RssAnon:` …), KiB.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Resident memory (`VmRSS`), KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// User plus system CPU time, from `/proc/PID/stat` (in clock ticks of `getconf CLK_TCK`).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15 (1-based).
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let ticks = fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?;
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()?;
    let hz: u64 = String::from_utf8(out.stdout).ok()?.trim().parse().ok()?;
    Some(Duration::from_millis(ticks.checked_mul(1000)? / hz.max(1)))
}

//! HTML escaping: every string that reaches a page goes through [`esc`] (the relay and agents are hostile; a name,
//! message or reason could carry markup).

/// `s` with `&`, `<`, `>`, `"` and `'` escaped, safe in element content and in quoted attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A Unix-milliseconds time as `YYYY-MM-DD HH:MM:SS UTC` (0: `-`).
pub(crate) fn time_ms(ms: u64) -> String {
    if ms == 0 {
        return "-".to_owned();
    }
    time_s(i64::try_from(ms / 1000).unwrap_or(i64::MAX))
}

/// A Unix-seconds time as `YYYY-MM-DD HH:MM:SS UTC`.
pub(crate) fn time_s(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

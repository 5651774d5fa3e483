//! A reference model of duration strings, from the README ("Durations are `30s`, `90m`,
//! `720h`, `30d`, combinations such as `1h30m`, or a bare number of seconds ...; at most
//! 100 years") and the `Ttl::parse` doc line ("Units: s, m, h, d; parts may be
//! combined"). Readings the text leaves open:
//! * Surrounding white space is ignored, none inside; digits are ASCII.
//! * "combinations": any sequence of `<digits><unit>` parts, in any order, repeats added
//!   up (as Go's `time.ParseDuration`, which Vault uses).
//! * "100 years" is `policy::duration::MAX_SECONDS` (100 × 366 days).
//! * More than 32 characters (after trimming) is refused whatever they say: an input
//!   bound of the implementation, documented here so the model and the code agree.

use scaivault_pki::policy::duration::MAX_SECONDS;

/// Seconds, or None when the string is not a duration.
pub fn parse(s: &str) -> Option<u64> {
    let t = s.trim();
    if t.is_empty() || t.len() > 32 {
        return None;
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        let v: u128 = t.parse().ok()?;
        return (v <= u128::from(MAX_SECONDS)).then_some(v as u64);
    }
    // u128 cannot overflow: at most 32 digits in all.
    let mut total: u128 = 0;
    let mut digits = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u128 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return None,
        };
        if digits.is_empty() {
            return None;
        }
        total += digits.parse::<u128>().ok()? * unit;
        digits.clear();
    }
    if !digits.is_empty() || total > u128::from(MAX_SECONDS) {
        return None;
    }
    Some(total as u64)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn the_readme_forms() {
        assert_eq!(parse("30s"), Some(30));
        assert_eq!(parse("90m"), Some(5_400));
        assert_eq!(parse("720h"), Some(2_592_000));
        assert_eq!(parse("30d"), Some(2_592_000));
        assert_eq!(parse("1h30m"), Some(5_400));
        assert_eq!(parse("3600"), Some(3_600));
        assert_eq!(parse("36601d"), None);
        assert_eq!(parse("1h30"), None);
        assert_eq!(parse("h"), None);
    }
}

//! Durations as users write them in manifests: `30s`, `5m`, `1h`, `1h30m`.

use std::time::Duration;

/// The schema pattern for a duration, checked at admission.
pub const DURATION_PATTERN: &str = r"^([0-9]+(s|m|h))+$";

/// A duration, or one `{{args.NAME}}` a template fills when the run is created (`interval`,
/// `initialDelay`).
pub const DURATION_OR_ARG_PATTERN: &str = r"^(([0-9]+(s|m|h))+|\{\{ *args\.[^{} ]+ *\}\})$";

/// Parses a duration like `30s`, `5m`, `1h` or `1h30m`. The message names the accepted forms.
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!("invalid duration {text:?}: use a number and a unit s, m or h, like 30s, 5m, 1h30m")
    };
    if text.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_other_forms_with_a_readable_message() {
        for bad in [
            "",
            "30",
            "s",
            "1d",
            "1.5h",
            "-1s",
            "1m30",
            "99999999999999999999h",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("like 30s, 5m"), "{bad}: {err}");
        }
    }
}

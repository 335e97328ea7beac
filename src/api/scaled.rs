//! `maxSurge` and `maxUnavailable` resolved against a replica count, as Deployments resolve them.
//! Shared by the planner, the spec checks and `kubectl fledge`: no I/O.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Which of the two bounds a value is: they round in opposite directions and default differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// `maxSurge`: a percentage rounds up; unset is 25%.
    MaxSurge,
    /// `maxUnavailable`: a percentage rounds down; unset is 0.
    MaxUnavailable,
}

/// Resolves `value` (a number, or a percentage like `25%`) against `total` pods. An error says
/// what is wrong with the value, for an `InvalidSpec` message.
pub fn scaled_value(value: Option<&IntOrString>, total: i32, limit: Limit) -> Result<i32, String> {
    let round_up = limit == Limit::MaxSurge;
    // In i64: a percentage of more than 21_474_836 replicas overflows an i32 product. The result
    // is at most `total` (pct <= 100), so it fits again.
    let percent = |pct: i32| {
        let product = i64::from(total) * i64::from(pct);
        let n = if round_up {
            (product + 99) / 100
        } else {
            product / 100
        };
        i32::try_from(n).unwrap_or(i32::MAX)
    };
    let n = match value {
        None => {
            return Ok(if round_up {
                percent(super::defaults::MAX_SURGE_PERCENT)
            } else {
                super::defaults::MAX_UNAVAILABLE
            });
        }
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => {
            let pct: i32 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .filter(|p| (0..=100).contains(p))
                .ok_or_else(|| format!("{s:?} is neither a number nor a percentage like 25%"))?;
            percent(pct)
        }
    };
    if n < 0 {
        return Err(format!("{n} is negative"));
    }
    Ok(n)
}

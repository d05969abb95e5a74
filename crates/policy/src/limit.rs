//! Rate limits: `N/second|minute|hour|day`, enforced with GCRA (the generic
//! cell rate algorithm) per (agent, policy, rule).
//!
//! GCRA keeps one timestamp per key, the theoretical arrival time (TAT).
//! With emission interval `T = period / N` and tolerance `τ = period − T`, a
//! call at `now` is allowed when `TAT − now ≤ τ`, and then `TAT = max(TAT,
//! now) + T`. That allows bursts of up to `N` and a sustained `N` per
//! period, with no window edges to game. The limiter is a trait so the
//! control plane can share state across replicas.

use std::collections::HashMap;
use std::sync::Mutex;

/// A parsed limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub count: u32,
    pub period_ns: u64,
}

impl Quota {
    /// Parses `100/hour`. Strict: the unit is exactly `second`, `minute`,
    /// `hour` or `day` (the original silently read `100/hr` as per hour).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (n, unit) = s
            .split_once('/')
            .ok_or_else(|| format!("limit `{s}` must look like `100/hour`"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("limit `{s}`: `{}` is not a whole number", n.trim()))?;
        if count == 0 {
            return Err(format!(
                "limit `{s}`: a limit of 0 blocks everything; use action: deny instead"
            ));
        }
        let secs: u64 = match unit.trim() {
            "second" => 1,
            "minute" => 60,
            "hour" => 3600,
            "day" => 86_400,
            other => {
                let hint = match other {
                    "s" | "sec" | "secs" | "seconds" => " (write `second`)",
                    "m" | "min" | "mins" | "minutes" => " (write `minute`)",
                    "h" | "hr" | "hrs" | "hours" => " (write `hour`)",
                    "d" | "days" => " (write `day`)",
                    _ => "",
                };
                return Err(format!(
                    "limit `{s}`: unit `{other}` is not one of second, minute, hour, day{hint}"
                ));
            }
        };
        Ok(Self {
            count,
            period_ns: secs * 1_000_000_000,
        })
    }

    fn interval(self) -> u64 {
        (self.period_ns / u64::from(self.count)).max(1)
    }
}

impl std::fmt::Display for Quota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.period_ns / 1_000_000_000 {
            1 => "second",
            60 => "minute",
            3600 => "hour",
            _ => "day",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// Shared rate-limit state.
pub trait RateLimiter: Send + Sync {
    /// Counts one call by `agent` against `rule` (a stable
    /// `policy/rule` key) at `now_ns`. `Err(retry_after_ns)` when over.
    fn acquire(&self, agent: &str, rule: &str, quota: Quota, now_ns: u64) -> Result<(), u64>;
}

const SHARDS: usize = 16;
/// Keys per shard before expired entries are swept.
const SWEEP_AT: usize = 65_536;

/// In-process GCRA state, sharded to keep lock hold times short.
#[derive(Debug)]
pub struct MemoryLimiter {
    shards: Vec<Mutex<Shard>>,
}

#[derive(Debug, Default)]
struct Shard {
    /// agent → rule → TAT (ns)
    tats: HashMap<Box<str>, HashMap<Box<str>, u64>>,
    keys: usize,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryLimiter {
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        }
    }

    fn shard(&self, agent: &str) -> &Mutex<Shard> {
        // FNV-1a: cheap and stable; only spreads keys across shards.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in agent.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        &self.shards[(h as usize) % SHARDS]
    }
}

impl RateLimiter for MemoryLimiter {
    fn acquire(&self, agent: &str, rule: &str, quota: Quota, now_ns: u64) -> Result<(), u64> {
        let t = quota.interval();
        let tau = quota.period_ns.saturating_sub(t);
        let mut shard = self.shard(agent).lock().unwrap_or_else(|p| p.into_inner());
        if shard.keys >= SWEEP_AT {
            // An entry whose TAT has passed behaves exactly like no entry.
            for rules in shard.tats.values_mut() {
                rules.retain(|_, tat| *tat > now_ns);
            }
            shard.tats.retain(|_, rules| !rules.is_empty());
            shard.keys = shard.tats.values().map(HashMap::len).sum();
        }
        let tat = shard
            .tats
            .get(agent)
            .and_then(|rules| rules.get(rule))
            .copied()
            .unwrap_or(now_ns);
        let tat = tat.max(now_ns);
        if tat - now_ns > tau {
            return Err(tat - now_ns - tau);
        }
        let next = tat + t;
        let Shard { tats, keys } = &mut *shard;
        let rules = match tats.get_mut(agent) {
            Some(r) => r,
            None => tats.entry(agent.into()).or_default(),
        };
        match rules.get_mut(rule) {
            Some(v) => *v = next,
            None => {
                rules.insert(rule.into(), next);
                *keys += 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_parsing() {
        assert_eq!(
            Quota::parse("100/hour"),
            Ok(Quota {
                count: 100,
                period_ns: 3_600_000_000_000
            })
        );
        assert!(
            Quota::parse("5/min")
                .expect_err("min")
                .contains("write `minute`")
        );
        assert!(
            Quota::parse("100/hr")
                .expect_err("hr")
                .contains("write `hour`")
        );
        assert!(Quota::parse("100").is_err());
        assert!(Quota::parse("x/hour").is_err());
        assert!(Quota::parse("-1/hour").is_err());
        assert!(
            Quota::parse("0/hour")
                .expect_err("zero")
                .contains("blocks everything")
        );
        assert!(Quota::parse("99999999999/day").is_err());
        assert_eq!(
            Quota::parse("3/second").expect("ok").to_string(),
            "3/second"
        );
    }

    #[test]
    fn gcra_allows_the_quota_then_limits_with_retry_after() {
        let l = MemoryLimiter::new();
        let q = Quota::parse("100/hour").expect("quota");
        let now = 1_000_000_000_000;
        for i in 0..100 {
            l.acquire("a", "p/r", q, now)
                .unwrap_or_else(|_| panic!("call {i} within quota"));
        }
        let retry = l
            .acquire("a", "p/r", q, now)
            .expect_err("101st call limited");
        assert_eq!(
            retry, 36_000_000_000,
            "one emission interval (36 s) until the next slot"
        );
        // Other agents and other rules have their own buckets.
        l.acquire("b", "p/r", q, now).expect("other agent");
        l.acquire("a", "p/other", q, now).expect("other rule");
        // After the interval, exactly one more call fits.
        l.acquire("a", "p/r", q, now + retry).expect("slot freed");
        assert!(l.acquire("a", "p/r", q, now + retry).is_err());
    }

    #[test]
    fn sustained_rate_is_respected() {
        let l = MemoryLimiter::new();
        let q = Quota::parse("10/second").expect("quota");
        let mut allowed = 0;
        // 100 calls per second for 10 seconds.
        for i in 0..1000u64 {
            if l.acquire("a", "r", q, i * 10_000_000).is_ok() {
                allowed += 1;
            }
        }
        // Burst of 10 plus 10/s for the remaining ~10 s.
        assert!((100..=111).contains(&allowed), "{allowed}");
    }
}

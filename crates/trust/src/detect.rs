//! Streaming behavioural detectors with bounded memory per agent: rate
//! spikes against the agent's own baseline, first use of a tool never seen
//! before, bursts of denials, activity at unusual hours. Each anomaly is an
//! event with an explanation and a severity.

use crate::config::DetectorConfig;
use crate::event::Severity;
use serde::{Deserialize, Serialize};

/// Most distinct tools remembered per agent.
pub const TOOL_MEMORY: usize = 64;

/// One observed call.
#[derive(Debug, Clone, Copy)]
pub struct Activity<'a> {
    pub at_ms: u64,
    pub tool: Option<&'a str>,
    pub denied: bool,
}

/// Something a detector found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    pub detector: String,
    pub severity: Severity,
    pub explanation: String,
}

/// Detector state of one agent (a few hundred bytes, whatever the traffic).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Behaviour {
    // rate
    window: u64,
    window_count: u32,
    flagged_window: u64,
    mean: f64,
    var: f64,
    windows: u32,
    // tools (FNV-1a 32-bit hashes, sorted)
    tools: Vec<u32>,
    calls: u32,
    // denials: timestamps of the last few, oldest first
    denials: Vec<u64>,
    // hours of day (UTC), halved when a counter saturates
    hours: [u16; 24],
    hours_total: u32,
    flagged_hour: u64,
    /// First activity seen (unix ms); hours are judged after a full day.
    first_ms: u64,
}

fn fnv(s: &str) -> u32 {
    crate::model::fnv_parts(&[s.as_bytes()])
}

impl Behaviour {
    /// Folds one call into the state; returns what it found.
    pub fn observe(&mut self, a: &Activity<'_>, cfg: &DetectorConfig) -> Vec<Anomaly> {
        let mut found = Vec::new();
        if self.calls == 0 {
            self.first_ms = a.at_ms;
        }
        self.rate(a, cfg, &mut found);
        self.tool(a, cfg, &mut found);
        self.denial(a, cfg, &mut found);
        self.hour(a, cfg, &mut found);
        self.calls = self.calls.saturating_add(1);
        found
    }

    fn rate(&mut self, a: &Activity<'_>, cfg: &DetectorConfig, found: &mut Vec<Anomaly>) {
        let w = a.at_ms / (cfg.rate_window_secs * 1000);
        if self.windows == 0 && self.window_count == 0 {
            self.window = w;
        }
        if w > self.window {
            // Close the finished window and any empty ones after it (at most
            // a day's worth, to bound the work after a long silence).
            let gap = (w - self.window).min(1440);
            for i in 0..gap {
                let count = if i == 0 {
                    f64::from(self.window_count)
                } else {
                    0.0
                };
                self.windows = self.windows.saturating_add(1);
                // EWMA of mean and variance (alpha 0.1).
                let d = count - self.mean;
                self.mean += 0.1 * d;
                self.var = 0.9 * (self.var + 0.1 * d * d);
            }
            self.window = w;
            self.window_count = 0;
        }
        self.window_count = self.window_count.saturating_add(1);
        let threshold = self.mean + cfg.rate_sigmas * self.var.sqrt() + cfg.rate_min_excess;
        // A baseline needs real activity: enough windows *and* enough
        // calls. A new or quiet agent that gets busy has no baseline to
        // spike against; an agent whose mean decayed while it was idle may
        // go back to its usual pace (`rate_ratio` × the mean).
        let threshold = threshold.max(cfg.rate_ratio * self.mean);
        let baseline_calls = self
            .calls
            .saturating_sub(self.window_count.saturating_sub(1));
        if self.windows >= cfg.rate_warmup_windows
            && baseline_calls >= cfg.rate_warmup_calls
            && f64::from(self.window_count) > threshold
            && self.flagged_window != w + 1
        {
            self.flagged_window = w + 1;
            found.push(Anomaly {
                detector: "rate_spike".into(),
                severity: Severity::Medium,
                explanation: format!(
                    "{} calls in this {} s window against a baseline of {:.1} ± {:.1}",
                    self.window_count,
                    cfg.rate_window_secs,
                    self.mean,
                    self.var.sqrt()
                ),
            });
        }
    }

    fn tool(&mut self, a: &Activity<'_>, cfg: &DetectorConfig, found: &mut Vec<Anomaly>) {
        let Some(tool) = a.tool else { return };
        let h = fnv(tool);
        match self.tools.binary_search(&h) {
            Ok(_) => {}
            Err(pos) => {
                if self.calls >= cfg.new_tool_warmup {
                    found.push(Anomaly {
                        detector: "new_tool".into(),
                        severity: Severity::Low,
                        explanation: format!(
                            "first use of `{tool}` after {} calls with other tools",
                            self.calls
                        ),
                    });
                }
                if self.tools.len() < TOOL_MEMORY {
                    self.tools.insert(pos, h);
                } else {
                    // Full: replace a slot chosen by the hash (deterministic).
                    let i = h as usize % TOOL_MEMORY;
                    self.tools[i] = h;
                    self.tools.sort_unstable();
                }
            }
        }
    }

    fn denial(&mut self, a: &Activity<'_>, cfg: &DetectorConfig, found: &mut Vec<Anomaly>) {
        if !a.denied {
            return;
        }
        let window = cfg.denial_window_secs * 1000;
        self.denials.retain(|t| a.at_ms.saturating_sub(*t) < window);
        self.denials.push(a.at_ms);
        if self.denials.len() >= cfg.denial_burst as usize {
            found.push(Anomaly {
                detector: "denial_burst".into(),
                severity: Severity::High,
                explanation: format!(
                    "{} denied calls within {} s",
                    self.denials.len(),
                    cfg.denial_window_secs
                ),
            });
            // One anomaly per burst.
            self.denials.clear();
        }
        let cap = cfg.denial_burst as usize;
        if self.denials.len() > cap {
            let extra = self.denials.len() - cap;
            self.denials.drain(..extra);
        }
    }

    fn hour(&mut self, a: &Activity<'_>, cfg: &DetectorConfig, found: &mut Vec<Anomaly>) {
        let hour_epoch = a.at_ms / 3_600_000;
        let h = (hour_epoch % 24) as usize;
        // A usual day is only known after a whole day of history.
        if self.hours_total >= cfg.hours_warmup
            && a.at_ms.saturating_sub(self.first_ms) >= 86_400_000
            && f64::from(self.hours[h]) / f64::from(self.hours_total.max(1))
                < cfg.unusual_hour_share
            && self.flagged_hour != hour_epoch + 1
        {
            self.flagged_hour = hour_epoch + 1;
            found.push(Anomaly {
                detector: "unusual_hour".into(),
                severity: Severity::Low,
                explanation: format!(
                    "activity at {h:02}:00 UTC, an hour holding {:.2}% of this agent's past calls",
                    100.0 * f64::from(self.hours[h]) / f64::from(self.hours_total.max(1))
                ),
            });
        }
        if self.hours[h] == u16::MAX {
            for c in &mut self.hours {
                *c /= 2;
            }
            self.hours_total = self.hours.iter().map(|c| u32::from(*c)).sum();
        }
        self.hours[h] += 1;
        self.hours_total += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn steady(
        b: &mut Behaviour,
        cfg: &DetectorConfig,
        from: u64,
        minutes: u64,
        per_min: u64,
    ) -> Vec<Anomaly> {
        let mut all = Vec::new();
        for m in 0..minutes {
            for k in 0..per_min {
                let t = from + m * MIN + k * (MIN / per_min);
                let tool = ["read_file", "list_dir", "search"][(k % 3) as usize];
                all.extend(b.observe(
                    &Activity {
                        at_ms: t,
                        tool: Some(tool),
                        denied: false,
                    },
                    cfg,
                ));
            }
        }
        all
    }

    // 09:00 UTC on some day, so steady traffic sits in working hours.
    const T0: u64 = 1_800_003_600_000;

    #[test]
    fn steady_traffic_raises_nothing() {
        let cfg = DetectorConfig::default();
        let mut b = Behaviour::default();
        let found = steady(&mut b, &cfg, T0, 8 * 60, 20);
        assert!(
            found.is_empty(),
            "false positives on steady traffic: {found:?}"
        );
    }

    #[test]
    fn rate_spike_against_the_agents_own_baseline() {
        let cfg = DetectorConfig::default();
        let mut b = Behaviour::default();
        assert!(steady(&mut b, &cfg, T0, 60, 20).is_empty());
        let t = T0 + 60 * MIN;
        let mut found = Vec::new();
        for k in 0..200 {
            found.extend(b.observe(
                &Activity {
                    at_ms: t + k * 100,
                    tool: Some("read_file"),
                    denied: false,
                },
                &cfg,
            ));
        }
        let spikes: Vec<_> = found
            .iter()
            .filter(|a| a.detector == "rate_spike")
            .collect();
        assert_eq!(spikes.len(), 1, "one anomaly per window: {found:?}");
        assert!(spikes[0].explanation.contains("baseline"));
    }

    #[test]
    fn first_use_of_a_new_tool_after_warmup() {
        let cfg = DetectorConfig::default();
        let mut b = Behaviour::default();
        assert!(steady(&mut b, &cfg, T0, 10, 20).is_empty());
        let found = b.observe(
            &Activity {
                at_ms: T0 + 11 * MIN,
                tool: Some("delete_everything"),
                denied: false,
            },
            &cfg,
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].detector, "new_tool");
        assert!(found[0].explanation.contains("delete_everything"));
        // Seen now: no second anomaly.
        assert!(
            b.observe(
                &Activity {
                    at_ms: T0 + 12 * MIN,
                    tool: Some("delete_everything"),
                    denied: false
                },
                &cfg
            )
            .is_empty()
        );
    }

    #[test]
    fn burst_of_denials() {
        let cfg = DetectorConfig::default();
        let mut b = Behaviour::default();
        let mut found = Vec::new();
        // Scattered denials (one per 5 minutes) are not a burst.
        for k in 0..10 {
            found.extend(b.observe(
                &Activity {
                    at_ms: T0 + k * 5 * MIN,
                    tool: None,
                    denied: true,
                },
                &cfg,
            ));
        }
        assert!(found.is_empty(), "{found:?}");
        for k in 0..5 {
            found.extend(b.observe(
                &Activity {
                    at_ms: T0 + 60 * MIN + k * 1000,
                    tool: None,
                    denied: true,
                },
                &cfg,
            ));
        }
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].detector.as_str(), found[0].severity),
            ("denial_burst", Severity::High)
        );
    }

    #[test]
    fn unusual_hours() {
        let cfg = DetectorConfig::default();
        let mut b = Behaviour::default();
        // Working hours for a week: 09:00–17:00.
        for day in 0..7u64 {
            assert!(steady(&mut b, &cfg, T0 + day * 86_400_000, 8 * 60, 1).is_empty());
        }
        let three_am = T0 + 7 * 86_400_000 + 18 * 3_600_000;
        let found = b.observe(
            &Activity {
                at_ms: three_am,
                tool: Some("read_file"),
                denied: false,
            },
            &cfg,
        );
        assert!(
            found.iter().any(|a| a.detector == "unusual_hour"),
            "{found:?}"
        );
    }

    #[test]
    fn a_quiet_agent_that_gets_busy_is_not_an_attack() {
        let cfg = DetectorConfig::default();
        // A new agent: idle for ten minutes (one call), then a dozen calls a
        // minute, then a hundred: no baseline, no spike.
        let mut b = Behaviour::default();
        let mut found = steady(&mut b, &cfg, T0, 1, 1);
        found.extend(steady(&mut b, &cfg, T0 + 11 * MIN, 1, 12));
        found.extend(steady(&mut b, &cfg, T0 + 12 * MIN, 1, 100));
        assert!(found.is_empty(), "{found:?}");
        // An established agent that paused: 20 calls a minute for an hour,
        // ten quiet minutes, then its usual pace again.
        let mut b = Behaviour::default();
        assert!(steady(&mut b, &cfg, T0, 60, 20).is_empty());
        let found = steady(&mut b, &cfg, T0 + 70 * MIN, 5, 25);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn load_test_of_many_new_agents_raises_nothing() {
        let cfg = DetectorConfig::default();
        for _ in 0..100 {
            let mut b = Behaviour::default();
            // Each agent idles, then runs 60 calls a minute for 5 minutes.
            let mut found = steady(&mut b, &cfg, T0, 1, 1);
            found.extend(steady(&mut b, &cfg, T0 + 10 * MIN, 5, 60));
            assert!(found.is_empty(), "{found:?}");
        }
    }

    #[test]
    fn memory_is_bounded() {
        let cfg = DetectorConfig::default();
        let mut b = Behaviour::default();
        for i in 0..10_000u64 {
            let tool = format!("tool-{i}");
            b.observe(
                &Activity {
                    at_ms: T0 + i * 1000,
                    tool: Some(&tool),
                    denied: i % 2 == 0,
                },
                &cfg,
            );
        }
        assert!(b.tools.len() <= TOOL_MEMORY);
        assert!(b.denials.len() <= cfg.denial_burst as usize);
    }
}

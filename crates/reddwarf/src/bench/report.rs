//! The summary a scenario prints: a plain table, or one JSON object.

use std::time::Duration;

use serde_json::{json, Map, Value};

pub struct Report {
    pub scenario: &'static str,
    pub json: bool,
    rows: Vec<(String, Value, String)>,
    printed: std::sync::atomic::AtomicBool,
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// p50, p99 and max of a set of durations.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Spread {
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Spread {
    pub fn of(mut v: Vec<Duration>) -> Spread {
        v.sort();
        Spread {
            count: v.len(),
            p50: percentile(&v, 0.5),
            p99: percentile(&v, 0.99),
            max: v.last().copied().unwrap_or_default(),
        }
    }
}

/// Events per second over `span` (0 for an empty span).
pub fn rate(count: usize, span: Duration) -> f64 {
    if span.is_zero() {
        0.0
    } else {
        count as f64 / span.as_secs_f64()
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl Report {
    pub fn new(scenario: &'static str, output: &str) -> Report {
        Report {
            scenario,
            json: output == "json",
            rows: Vec::new(),
            printed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// One figure: JSON key, value, and how the text table shows it.
    pub fn add(&mut self, key: &str, value: Value, text: String) {
        self.rows.push((key.to_string(), value, text));
    }

    /// Count, throughput and p50/p90/p99 of `latencies` (sorted here).
    pub fn latencies(
        &mut self,
        what: &str,
        mut latencies: Vec<Duration>,
        elapsed: Duration,
        errors: u64,
    ) {
        latencies.sort();
        let n = latencies.len();
        let secs = elapsed.as_secs_f64().max(1e-9);
        self.add(
            &format!("{what}_ok"),
            json!(n),
            format!("{n} ({errors} errors) in {secs:.2}s"),
        );
        self.add("errors", json!(errors), String::new());
        self.add(
            &format!("{what}_per_second"),
            json!(n as f64 / secs),
            format!("{:.0}/s", n as f64 / secs),
        );
        let (p50, p90, p99) = (
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.9),
            percentile(&latencies, 0.99),
        );
        self.add(
            "latency_ms",
            json!({"p50": ms(p50), "p90": ms(p90), "p99": ms(p99)}),
            format!(
                "p50 {:.2} ms   p90 {:.2} ms   p99 {:.2} ms",
                ms(p50),
                ms(p90),
                ms(p99)
            ),
        );
    }

    /// p50/p99/max of `latencies` under `key` (milliseconds), shown as `label: ...`.
    pub fn spread(&mut self, key: &str, label: &str, latencies: Vec<Duration>) -> Spread {
        let s = Spread::of(latencies);
        self.add(
            key,
            json!({"count": s.count, "p50": ms(s.p50), "p99": ms(s.p99), "max": ms(s.max)}),
            format!(
                "{label}: p50 {:.0} ms   p99 {:.0} ms   max {:.0} ms   ({} pods)",
                ms(s.p50),
                ms(s.p99),
                ms(s.max),
                s.count
            ),
        );
        s
    }

    /// Prints the report once: a scenario that cleans up after measuring prints it first (a
    /// cleanup that fails or takes long must not lose the figures), and later calls do nothing.
    pub fn print(&self) {
        if self
            .printed
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        if self.json {
            let mut m = Map::new();
            m.insert("scenario".into(), json!(self.scenario));
            for (k, v, _) in &self.rows {
                m.insert(k.clone(), v.clone());
            }
            println!("{}", Value::Object(m));
        } else {
            println!("scenario        {}", self.scenario);
            for (k, _, t) in &self.rows {
                if !t.is_empty() {
                    println!("{:<15} {t}", k.replace('_', " "));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms_list(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|m| Duration::from_millis(*m)).collect()
    }

    #[test]
    fn percentiles_pick_the_nearest_rank_of_sorted_values() {
        let v = ms_list(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&v, 0.5), Duration::from_millis(51));
        assert_eq!(percentile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&v, 1.0), Duration::from_millis(100));
        assert_eq!(percentile(&v, 0.0), Duration::from_millis(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn a_spread_sorts_its_input_and_keeps_the_maximum() {
        let s = Spread::of(ms_list(&[900, 10, 30, 20, 40]));
        assert_eq!(s.count, 5);
        assert_eq!(s.p50, Duration::from_millis(30));
        assert_eq!(s.p99, Duration::from_millis(900));
        assert_eq!(s.max, Duration::from_millis(900));
        assert_eq!(Spread::of(Vec::new()), Spread::default());
    }

    #[test]
    fn rates_are_per_second_and_zero_for_an_empty_span() {
        assert_eq!(rate(50, Duration::from_secs(10)), 5.0);
        assert_eq!(rate(50, Duration::ZERO), 0.0);
    }

    #[test]
    fn a_spread_is_reported_in_milliseconds_in_json_and_text() {
        let mut r = Report::new("pods", "json");
        r.spread(
            "running_ms",
            "create to Running",
            ms_list(&[1500, 500, 1000]),
        );
        let (key, value, text) = &r.rows[0];
        assert_eq!(key, "running_ms");
        assert_eq!(
            value,
            &json!({"count": 3, "p50": 1000.0, "p99": 1500.0, "max": 1500.0})
        );
        assert_eq!(
            text,
            "create to Running: p50 1000 ms   p99 1500 ms   max 1500 ms   (3 pods)"
        );
    }
}

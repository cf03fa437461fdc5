//! The summary a scenario prints: a plain table, or one JSON object.

use std::time::Duration;

use serde_json::{json, Map, Value};

pub struct Report {
    pub scenario: &'static str,
    pub json: bool,
    rows: Vec<(String, Value, String)>,
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
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

    pub fn print(&self) {
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

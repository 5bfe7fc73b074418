//! What a check tells people: a table in the terminal, a JSON report for scripts, JUnit XML for
//! CI systems, and a self-contained HTML page with a timeline chart.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::runner::ScenarioResult;

/// The whole run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub cluster: String,
    pub rate: u32,
    pub keepalive: bool,
    pub slo: f64,
    pub scenarios: Vec<ScenarioResult>,
}

impl Report {
    /// Whether every scenario passed.
    pub fn passed(&self) -> bool {
        self.scenarios.iter().all(|s| s.pass)
    }

    /// The final table for the terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<20} {:>8} {:>7} {:>9} {:>8} {:>8} {:>8} {:>11}  VERDICT",
            "SCENARIO", "REQUESTS", "FAILED", "SUCCESS", "P50", "P99", "MAX", "MAX-OUTAGE"
        );
        for s in &self.scenarios {
            let m = &s.summary;
            let _ = writeln!(
                out,
                "{:<20} {:>8} {:>7} {:>8.3}% {:>6.1}ms {:>6.1}ms {:>6.0}ms {:>9.0}ms  {}",
                s.name,
                m.requests,
                m.failed,
                m.success_ratio * 100.0,
                m.p50_ms,
                m.p99_ms,
                m.max_ms,
                m.longest_outage_ms,
                if s.pass { "PASS" } else { "FAIL" }
            );
        }
        for s in &self.scenarios {
            let _ = writeln!(out, "\n{}: {}", s.name, s.reason);
            for note in &s.skipped {
                let _ = writeln!(out, "  {note}");
            }
            let m = &s.summary;
            if !m.failures.is_empty() {
                let kinds: Vec<String> =
                    m.failures.iter().map(|(k, n)| format!("{k} {n}")).collect();
                let _ = writeln!(out, "  failed by kind: {}", kinds.join(", "));
            }
            let _ = writeln!(out, "  disruption took {:.1} s", s.disruption_ms / 1e3);
            for ms in &s.config_propagation_ms {
                let _ = writeln!(out, "  config propagated in {:.0} ms", ms);
            }
            let versions: Vec<String> = m
                .per_version
                .iter()
                .map(|(v, n)| format!("{v} {n}"))
                .collect();
            let _ = writeln!(out, "  per version: {}", versions.join(", "));
            let _ = writeln!(out, "  per pod: {} pods answered", m.per_host.len());
        }
        out
    }

    /// Writes the JSON report.
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, json)
    }

    /// Writes JUnit XML: one test case per scenario.
    pub fn write_junit(&self, path: &Path) -> std::io::Result<()> {
        let failures = self.scenarios.iter().filter(|s| !s.pass).count();
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            xml,
            "<testsuite name=\"harness check\" tests=\"{}\" failures=\"{failures}\">",
            self.scenarios.len()
        );
        for s in &self.scenarios {
            let seconds = s.summary.timeline.len() as f64 * 0.1;
            let _ = write!(
                xml,
                "  <testcase classname=\"availability\" name=\"{}\" time=\"{seconds:.1}\"",
                escape(&s.name)
            );
            if s.pass {
                let _ = writeln!(xml, "/>");
            } else {
                let _ = writeln!(
                    xml,
                    ">\n    <failure message=\"{}\"/>\n  </testcase>",
                    escape(&s.reason)
                );
            }
        }
        xml.push_str("</testsuite>\n");
        std::fs::write(path, xml)
    }

    /// Writes a self-contained HTML page with a timeline per scenario.
    pub fn write_html(&self, path: &Path) -> std::io::Result<()> {
        let mut html = String::from(
            "<!doctype html><meta charset=utf-8><title>harness check</title><style>\
             body{font:14px system-ui,sans-serif;margin:2em;max-width:1100px}\
             table{border-collapse:collapse}td,th{padding:4px 10px;text-align:right}\
             th{border-bottom:1px solid #999}.pass{color:#17803d}.fail{color:#c62828;font-weight:bold}\
             svg{background:#fafafa;border:1px solid #ddd}.legend span{margin-right:1.5em}</style>",
        );
        let _ = write!(
            html,
            "<h1>harness check: {}</h1><p>{} on {}, {} req/s, {} connections, SLO {:.3}%</p><table><tr>\
             <th>scenario<th>requests<th>failed<th>success<th>p50<th>p99<th>max<th>longest outage<th>verdict</tr>",
            if self.passed() { "PASS" } else { "FAIL" },
            self.scenarios.len(),
            escape(&self.cluster),
            self.rate,
            if self.keepalive { "keep-alive" } else { "new" },
            self.slo * 100.0
        );
        for s in &self.scenarios {
            let m = &s.summary;
            let _ = write!(
                html,
                "<tr><td style=text-align:left>{}<td>{}<td>{}<td>{:.3}%<td>{:.1} ms<td>{:.1} ms<td>{:.0} ms<td>{:.0} ms<td class={}>{}</tr>",
                escape(&s.name),
                m.requests,
                m.failed,
                m.success_ratio * 100.0,
                m.p50_ms,
                m.p99_ms,
                m.max_ms,
                m.longest_outage_ms,
                if s.pass { "pass" } else { "fail" },
                if s.pass { "PASS" } else { "FAIL" }
            );
        }
        html.push_str("</table>");
        for s in &self.scenarios {
            let _ = write!(
                html,
                "<h2>{}</h2><p>{}</p><p class={}>{}</p>",
                escape(&s.name),
                escape(&s.description),
                if s.pass { "pass" } else { "fail" },
                escape(&s.reason)
            );
            html.push_str(&timeline_svg(s));
        }
        std::fs::write(path, html)
    }
}

/// ok (green) and failed (red) requests per 100 ms as stacked bars, p-max latency as a line,
/// and the steps and pod events as markers.
fn timeline_svg(s: &ScenarioResult) -> String {
    let buckets = &s.summary.timeline;
    let (width, height, pad) = (1000.0, 260.0, 30.0);
    let n = buckets.len().max(1) as f64;
    let peak = buckets
        .iter()
        .map(|b| b.ok + b.failed)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let worst = buckets.iter().map(|b| b.max_latency_ms).fold(1.0, f64::max);
    let bar = (width - 2.0 * pad) / n;
    let plot = height - 2.0 * pad;
    let mut svg = format!("<svg viewBox='0 0 {width} {height}' width='100%'>");
    for (i, b) in buckets.iter().enumerate() {
        let x = pad + i as f64 * bar;
        let ok_h = f64::from(b.ok) / peak * plot;
        let fail_h = f64::from(b.failed) / peak * plot;
        let _ = write!(
            svg,
            "<rect x='{x:.1}' y='{:.1}' width='{:.2}' height='{ok_h:.1}' fill='#66bb6a'/>\
             <rect x='{x:.1}' y='{:.1}' width='{:.2}' height='{fail_h:.1}' fill='#e53935'/>",
            height - pad - ok_h,
            bar.max(0.5),
            height - pad - ok_h - fail_h,
            bar.max(0.5)
        );
    }
    let points: Vec<String> = buckets
        .iter()
        .enumerate()
        .map(|(i, b)| {
            format!(
                "{:.1},{:.1}",
                pad + (i as f64 + 0.5) * bar,
                height - pad - b.max_latency_ms / worst * plot
            )
        })
        .collect();
    let _ = write!(
        svg,
        "<polyline points='{}' fill='none' stroke='#1e88e5' stroke-width='1.2'/>",
        points.join(" ")
    );
    for m in &s.markers {
        let x = pad + m.at_ms / 100.0 * bar;
        let step = !m.label.starts_with("pod ");
        let _ = write!(
            svg,
            "<line x1='{x:.1}' x2='{x:.1}' y1='{pad}' y2='{:.1}' stroke='{}' stroke-dasharray='{}'><title>{:.1} s: {}</title></line>",
            height - pad,
            if step { "#6a1b9a" } else { "#9e9e9e" },
            if step { "none" } else { "2,3" },
            m.at_ms / 1e3,
            escape(&m.label)
        );
    }
    let _ = write!(
        svg,
        "<text x='{pad}' y='18'>requests per 100 ms (peak {peak:.0}); blue: max latency (peak {worst:.0} ms); \
         purple: steps; grey: pods created/deleted (hover for details)</text>\
         <text x='{pad}' y='{:.0}'>0 s</text><text x='{:.0}' y='{:.0}' text-anchor='end'>{:.1} s</text></svg>",
        height - 8.0,
        width - pad,
        height - 8.0,
        n / 10.0
    );
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

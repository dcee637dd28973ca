//! Check results and their three renderings: one line per check as the
//! checks run, a JSON document for `--output json`, and a JUnit XML file
//! for `--junit`.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::http::Exchange;
use crate::error::CliResult;
use crate::output;

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    /// A MUST of the specification is broken.
    Fail,
    /// A SHOULD or MAY is not followed; never a failure.
    Warn,
    /// The check could not run, for the reason in the message.
    Skip,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::Warn => "warn",
            Outcome::Skip => "skip",
        }
    }
}

/// A check's result before it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail(String),
    Warn(String),
    Skip(String),
}

impl Verdict {
    /// Passes when there are no problems, else fails naming them all.
    pub fn fail_unless_empty(problems: Vec<String>) -> Self {
        if problems.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail(problems.join("; "))
        }
    }

    /// Passes when there are no problems, else warns naming them all.
    pub fn warn_unless_empty(problems: Vec<String>) -> Self {
        if problems.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Warn(problems.join("; "))
        }
    }

    pub fn is_pass(&self) -> bool {
        matches!(self, Verdict::Pass)
    }
}

/// One recorded check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// Stable identifier, such as `provision.repeat-identical`.
    pub id: String,
    /// The part of the API: catalog, provision, bind and so on.
    pub category: String,
    /// The behaviour checked, as one line.
    pub behaviour: String,
    /// The plan exercised, as `SERVICE:PLAN`, for the lifecycle checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The exchanges behind a failure or warning.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exchanges: Vec<Exchange>,
    #[serde(skip)]
    pub duration: Duration,
}

/// Counts per outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub warnings: usize,
    pub skipped: usize,
}

impl Summary {
    /// Returns the closing line, such as `checks: 57 passed, 0 failed, 3 warnings, 2 skipped`.
    pub fn line(&self) -> String {
        format!(
            "checks: {} passed, {} failed, {} warning{}, {} skipped",
            self.passed,
            self.failed,
            self.warnings,
            if self.warnings == 1 { "" } else { "s" },
            self.skipped
        )
    }
}

/// Collects results, and prints each one as it arrives unless the output is JSON.
pub struct Report {
    results: Vec<CheckResult>,
    stream: bool,
    plan: Option<String>,
    started: Instant,
}

impl Report {
    pub fn new(stream: bool) -> Self {
        Self {
            results: Vec::new(),
            stream,
            plan: None,
            started: Instant::now(),
        }
    }

    /// Sets the plan that the next results belong to.
    pub fn set_plan(&mut self, plan: Option<String>) {
        self.plan = plan;
    }

    /// Records a check. Exchanges are kept only for failures and warnings.
    pub fn record(
        &mut self,
        id: &str,
        behaviour: &str,
        verdict: Verdict,
        exchanges: &[&Exchange],
    ) -> CliResult<()> {
        let (outcome, message) = match verdict {
            Verdict::Pass => (Outcome::Pass, None),
            Verdict::Fail(message) => (Outcome::Fail, Some(message)),
            Verdict::Warn(message) => (Outcome::Warn, Some(message)),
            Verdict::Skip(message) => (Outcome::Skip, Some(message)),
        };
        let exchanges = match outcome {
            Outcome::Fail | Outcome::Warn => exchanges
                .iter()
                .map(|exchange| (*exchange).clone())
                .collect(),
            Outcome::Pass | Outcome::Skip => Vec::new(),
        };
        let category = id.split('.').next().unwrap_or(id).to_owned();
        let now = Instant::now();
        let result = CheckResult {
            id: id.to_owned(),
            category,
            behaviour: behaviour.to_owned(),
            plan: self.plan.clone(),
            outcome,
            message,
            exchanges,
            duration: now.duration_since(self.started),
        };
        self.started = now;
        if self.stream {
            output::print(&render_line(&result))?;
        }
        self.results.push(result);
        Ok(())
    }

    pub fn results(&self) -> &[CheckResult] {
        &self.results
    }

    pub fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        for result in &self.results {
            match result.outcome {
                Outcome::Pass => summary.passed += 1,
                Outcome::Fail => summary.failed += 1,
                Outcome::Warn => summary.warnings += 1,
                Outcome::Skip => summary.skipped += 1,
            }
        }
        summary
    }
}

/// Renders one result: `pass  category: behaviour [SERVICE:PLAN]`, then for
/// a failure, warning or skip the reason, and the exchanges, indented.
pub fn render_line(result: &CheckResult) -> String {
    let mut text = format!(
        "{}  {}: {}",
        result.outcome.label(),
        result.category,
        result.behaviour
    );
    if let Some(plan) = &result.plan {
        let _ = write!(text, " [{plan}]");
    }
    text.push('\n');
    if let Some(message) = &result.message {
        let _ = writeln!(text, "      {}", indent(message, "      "));
    }
    for exchange in &result.exchanges {
        let _ = writeln!(
            text,
            "      sent: {}",
            indent(&exchange.request, "            ")
        );
        let _ = writeln!(
            text,
            "      got:  {}",
            indent(&exchange.response, "            ")
        );
    }
    text
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines()
        .collect::<Vec<_>>()
        .join(&format!("\n{prefix}"))
}

/// The `--output json` document.
#[derive(Debug, Serialize)]
pub struct JsonReport<'a> {
    pub broker: &'a str,
    pub checks: &'a [CheckResult],
    pub summary: Summary,
}

/// Renders a JUnit XML document: one test case per check, a failure
/// element for each failure, a skipped element for each skip, and the
/// message of a warning in system-out.
pub fn render_junit(report: &Report) -> String {
    let summary = report.summary();
    let total: f64 = report
        .results()
        .iter()
        .map(|result| result.duration.as_secs_f64())
        .sum();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"osb check\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{total:.3}\">",
        report.results().len(),
        summary.failed,
        summary.skipped
    );
    let _ = writeln!(
        xml,
        "  <testsuite name=\"osb check\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{total:.3}\">",
        report.results().len(),
        summary.failed,
        summary.skipped
    );
    for result in report.results() {
        let name = match &result.plan {
            Some(plan) => format!("{} [{plan}]", result.behaviour),
            None => result.behaviour.clone(),
        };
        let _ = write!(
            xml,
            "    <testcase classname=\"osb.check.{}\" name=\"{}\" time=\"{:.3}\"",
            xml_escape(&result.category),
            xml_escape(&name),
            result.duration.as_secs_f64()
        );
        let message = result.message.as_deref().unwrap_or("");
        match result.outcome {
            Outcome::Pass => xml.push_str("/>\n"),
            Outcome::Fail => {
                let mut details = String::new();
                for exchange in &result.exchanges {
                    let _ = write!(
                        details,
                        "sent:\n{}\n\ngot:\n{}\n\n",
                        exchange.request, exchange.response
                    );
                }
                let _ = write!(
                    xml,
                    ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>\n",
                    xml_escape(message),
                    xml_escape(&result.id),
                    xml_escape(&details)
                );
            }
            Outcome::Warn => {
                let _ = write!(
                    xml,
                    ">\n      <system-out>warning: {}</system-out>\n    </testcase>\n",
                    xml_escape(message)
                );
            }
            Outcome::Skip => {
                let _ = write!(
                    xml,
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                    xml_escape(message)
                );
            }
        }
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

/// Escapes text for XML content and attribute values, and drops the
/// control characters that XML 1.0 does not allow.
pub fn xml_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            '\n' => escaped.push_str("&#10;"),
            '\t' | '\r' => escaped.push(character),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line_counts_outcomes() {
        let mut report = Report::new(false);
        report.record("catalog.a", "a", Verdict::Pass, &[]).unwrap();
        report
            .record("catalog.b", "b", Verdict::Fail("x".into()), &[])
            .unwrap();
        report
            .record("catalog.c", "c", Verdict::Warn("y".into()), &[])
            .unwrap();
        report
            .record("catalog.d", "d", Verdict::Skip("z".into()), &[])
            .unwrap();
        assert_eq!(
            report.summary().line(),
            "checks: 1 passed, 1 failed, 1 warning, 1 skipped"
        );
    }

    #[test]
    fn exchanges_kept_only_for_failures() {
        let exchange = Exchange {
            request: "GET /v2/catalog".into(),
            response: "200 OK".into(),
        };
        let mut report = Report::new(false);
        report
            .record("catalog.a", "a", Verdict::Pass, &[&exchange])
            .unwrap();
        report
            .record("catalog.b", "b", Verdict::Fail("x".into()), &[&exchange])
            .unwrap();
        assert!(report.results()[0].exchanges.is_empty());
        assert_eq!(report.results()[1].exchanges.len(), 1);
    }

    #[test]
    fn xml_escape_handles_markup_and_controls() {
        assert_eq!(xml_escape("a<b>&\"c'\u{1}"), "a&lt;b&gt;&amp;&quot;c&apos;");
    }

    #[test]
    fn junit_marks_failures_and_skips() {
        let mut report = Report::new(false);
        report
            .record("catalog.a", "ids <unique>", Verdict::Pass, &[])
            .unwrap();
        report
            .record(
                "bind.b",
                "b",
                Verdict::Fail("got 200 & not 201".into()),
                &[],
            )
            .unwrap();
        report
            .record("bind.c", "c", Verdict::Skip("not bindable".into()), &[])
            .unwrap();
        let xml = render_junit(&report);
        assert!(xml.contains("tests=\"3\" failures=\"1\""));
        assert!(xml.contains("name=\"ids &lt;unique&gt;\""));
        assert!(xml.contains("<failure message=\"got 200 &amp; not 201\""));
        assert!(xml.contains("<skipped message=\"not bindable\"/>"));
    }
}

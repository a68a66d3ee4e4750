//! The experiments file (TOML): thresholds and expectations per experiment, over defaults that
//! follow the practice of canary analysis. Every key is optional.
//!
//! ```toml
//! [defaults]
//! confidence = 0.95        # two-sided confidence; one-sided tests use α = 1 − confidence
//! min_users = 100          # per variant, before a metric can roll back or promote
//! segment_min_users = 100  # per variant within an endpoint or region, before that segment can roll back
//! error_rate_ratio = 2.0   # roll back when the canary's error rate is significantly above 2× the baseline's
//! p99_ratio = 1.5          # roll back when the canary's p99 is significantly above 1.5× the baseline's
//! # The guardrails in full (the two lines above are shorthands for the first two entries):
//! guardrails = [
//!   { metric = "error_rate", threshold = 2.0 },   # kind = "ratio", direction = "increase" (defaults)
//!   { metric = "latency_p99", threshold = 1.5 },
//!   # e.g. { metric = "conversion_rate", threshold = 0.95 },              # at most 5% fewer conversions
//!   # e.g. { metric = "latency_p50", kind = "absolute", threshold = 20 }, # at most 20 ms slower
//! ]
//! harm_budget = 100        # excess errors a canary may cause before it is rolled back, significance or not
//! correction = "holm"      # or "bh": correction across guardrails
//! max_multiple_exposure = 0.01
//! method = "sequential"    # or "fixed": anytime-valid tests for repeated looks (the default), or classic ones
//! n_star = 5000            # users (both arms) at which the sequential interval is tightest
//! winsorize_revenue = 0.99 # optional: cap each user's revenue at the 99th percentile before comparing
//!
//! [experiments.checkout-canary]
//! baseline = "v1"
//! weights = { v1 = 0.95, v2 = 0.05 }   # expected allocation: enables the SRM check
//! # or, for a canary that ramps, the allocation per rollout stage (`stages.rs`):
//! # stages = [{ from = "2026-12-01T10:00:00Z", weights = { v1 = 75, v2 = 25 } }]
//! traffic_cap = 0.06                   # roll back when the canary's share is significantly above 6%
//! ```

pub mod metric;
pub mod stages;
pub mod user_metrics;

pub use metric::Metric;
pub use stages::Stage;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::stats::{Harm, Scale, ThresholdRule};

/// Baseline names tried, in order, when an experiment names none.
pub const DEFAULT_BASELINES: [&str; 3] = ["control", "baseline", "v1"];

/// Correction across the guardrail tests of one experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Correction {
    /// Holm–Bonferroni (controls the family-wise error rate).
    Holm,
    /// Benjamini–Hochberg (controls the false discovery rate).
    Bh,
}

impl Correction {
    /// The adjusted p-values of `raw`, in the same order: the one place the rule is applied, to
    /// the guardrails of an experiment and to its segment tests alike.
    pub fn adjust(self, raw: &[f64]) -> Vec<f64> {
        match self {
            Correction::Holm => crate::stats::holm(raw),
            Correction::Bh => crate::stats::benjamini_hochberg(raw),
        }
    }

    /// The name a reason shows.
    pub fn label(self) -> &'static str {
        match self {
            Correction::Holm => "Holm",
            Correction::Bh => "BH",
        }
    }
}

/// How the tests treat repeated looks at one experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Anytime-valid confidence sequences: analysing a canary every few minutes keeps the
    /// false-rollback rate at α. The default, for gating.
    #[default]
    Sequential,
    /// Classic fixed-horizon tests: valid for one look at a planned sample size (a nightly
    /// report of a finished test), inflated when re-run as data arrives.
    Fixed,
}

impl Method {
    /// The name as the report and the command line spell it.
    pub fn name(self) -> &'static str {
        match self {
            Method::Sequential => "sequential",
            Method::Fixed => "fixed",
        }
    }
}

/// One guardrail: a metric and the limit of its harmful change.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardrailSpec {
    pub metric: Metric,
    pub rule: ThresholdRule,
}

impl GuardrailSpec {
    /// A ratio limit in the metric's default harmful direction.
    pub fn ratio(metric: Metric, threshold: f64) -> Self {
        GuardrailSpec {
            rule: ThresholdRule {
                scale: Scale::Ratio,
                harm: metric.default_harm(),
                threshold,
            },
            metric,
        }
    }
}

/// A `guardrails` entry of the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct GuardrailEntry {
    /// A built-in metric's name ([`Metric::guardrail_named`]).
    metric: String,
    threshold: f64,
    /// Default "ratio".
    kind: Option<Scale>,
    /// The harmful direction; default: the metric's.
    direction: Option<Harm>,
}

/// Settings of one experiment, after defaults are applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentSettings {
    /// Baseline variant; None: the first of `control`, `baseline`, `v1` present.
    pub baseline: Option<String>,
    /// Expected allocation weights; None: the SRM check is skipped (and the report says so).
    /// With `stages`, the allocation before the first stage.
    pub weights: Option<BTreeMap<String, f64>>,
    /// Rollout stages, by start: SRM per stage, comparisons within the latest (`stages.rs`).
    pub stages: Vec<Stage>,
    /// Two-sided confidence level. Default 0.95.
    pub confidence: f64,
    /// Users per variant before a metric may roll back or promote. Default 100.
    pub min_users: u64,
    /// Users per variant within a segment (endpoint, region) before that segment's guardrails may
    /// roll back. Default 100.
    pub segment_min_users: u64,
    /// The guardrails: a breach rolls back, all shown non-inferior promotes. Default: error rate
    /// at most 2× the baseline's, p99 at most 1.5× (ratios, increases harmful).
    pub guardrails: Vec<GuardrailSpec>,
    /// Excess errors allowed before a blast-radius rollback. Default 100.
    pub harm_budget: f64,
    /// Maximum treatment share of users; None: no cap. Default none.
    pub traffic_cap: Option<f64>,
    /// Correction across guardrails. Default Holm.
    pub correction: Correction,
    /// Share of users seen in two variants above which the experiment is INVALID. Default 0.01.
    pub max_multiple_exposure: f64,
    /// Fixed-horizon or sequential tests. Default sequential.
    pub method: Method,
    /// Tuning of the confidence sequence: the total number of users at which it is tightest.
    /// Default 5,000 (GrowthBook's); set it near the users a canary has when it is usually decided.
    pub n_star: f64,
    /// Cap each user's revenue at this quantile of all users' revenue before comparing (e.g.
    /// 0.99), so that a few huge purchases cannot decide the comparison. Default: no cap.
    pub winsorize_revenue: Option<f64>,
    /// The metrics the file defines (`[[metrics]]`), the same for every experiment.
    pub metrics: Vec<crate::config::user_metrics::UserMetric>,
}

impl Default for ExperimentSettings {
    fn default() -> Self {
        ExperimentSettings {
            baseline: None,
            weights: None,
            stages: Vec::new(),
            confidence: 0.95,
            min_users: 100,
            segment_min_users: 100,
            guardrails: vec![
                GuardrailSpec::ratio(Metric::ErrorRate, 2.0),
                GuardrailSpec::ratio(Metric::LatencyP99, 1.5),
            ],
            harm_budget: 100.0,
            traffic_cap: None,
            correction: Correction::Holm,
            max_multiple_exposure: 0.01,
            method: Method::Sequential,
            n_star: crate::stats::DEFAULT_N_STAR,
            winsorize_revenue: None,
            metrics: Vec::new(),
        }
    }
}

impl ExperimentSettings {
    /// α = 1 − confidence.
    pub fn alpha(&self) -> f64 {
        1.0 - self.confidence
    }

    /// The expected allocation of rollout stage `stage` (0: before the first, or no stages).
    pub fn stage_weights(&self, stage: usize) -> Option<&BTreeMap<String, f64>> {
        match stage {
            0 => self.weights.as_ref(),
            i => self.stages.get(i - 1).map(|s| &s.weights),
        }
    }

    /// Sets the ratio threshold of `metric`'s ratio guardrail in its default direction, adding
    /// the guardrail when there is none (what `error_rate_ratio` and `p99_ratio` do).
    pub fn set_ratio(&mut self, metric: Metric, threshold: f64) {
        let harm = metric.default_harm();
        match self
            .guardrails
            .iter_mut()
            .find(|g| g.metric == metric && g.rule.scale == Scale::Ratio && g.rule.harm == harm)
        {
            Some(g) => g.rule.threshold = threshold,
            None => self
                .guardrails
                .push(GuardrailSpec::ratio(metric, threshold)),
        }
    }
}

/// One table of the file: every key optional, unknown keys rejected.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Overrides {
    baseline: Option<String>,
    weights: Option<BTreeMap<String, f64>>,
    stages: Option<Vec<stages::StageEntry>>,
    confidence: Option<f64>,
    min_users: Option<u64>,
    segment_min_users: Option<u64>,
    error_rate_ratio: Option<f64>,
    p99_ratio: Option<f64>,
    guardrails: Option<Vec<GuardrailEntry>>,
    harm_budget: Option<f64>,
    traffic_cap: Option<f64>,
    correction: Option<Correction>,
    max_multiple_exposure: Option<f64>,
    method: Option<Method>,
    n_star: Option<f64>,
    winsorize_revenue: Option<f64>,
}

impl Overrides {
    /// Applies the table at `at` over `s`; the shorthands must be ratios ≥ 1.
    fn apply(&self, at: &str, s: &mut ExperimentSettings) -> Result<(), String> {
        if let Some(v) = &self.baseline {
            s.baseline = Some(v.clone());
        }
        if let Some(v) = &self.weights {
            s.weights = Some(v.clone());
        }
        if let Some(entries) = &self.stages {
            if at == "defaults" {
                return Err(
                    "[defaults] stages: allowed only in an experiment's own table ([experiments.NAME]): a rollout's stages are its own".into(),
                );
            }
            s.stages = stages::parse(at, entries, |key, w| check_weights(at, key, w, None))?;
        }
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = self.$field { s.$field = v; } )* };
        }
        set!(
            confidence,
            min_users,
            segment_min_users,
            harm_budget,
            correction,
            max_multiple_exposure,
            method,
            n_star
        );
        if let Some(v) = self.traffic_cap {
            s.traffic_cap = Some(v);
        }
        if let Some(v) = self.winsorize_revenue {
            s.winsorize_revenue = Some(v);
        }
        if let Some(entries) = &self.guardrails {
            s.guardrails = entries
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    let metric = Metric::guardrail_named(&e.metric)
                        .map_err(|m| format!("[{at}] guardrails[{i}].metric: {m}"))?;
                    Ok(GuardrailSpec {
                        rule: ThresholdRule {
                            scale: e.kind.unwrap_or(Scale::Ratio),
                            harm: e.direction.unwrap_or(metric.default_harm()),
                            threshold: e.threshold,
                        },
                        metric,
                    })
                })
                .collect::<Result<_, String>>()?;
        }
        for (key, metric, value, example) in [
            (
                "error_rate_ratio",
                Metric::ErrorRate,
                self.error_rate_ratio,
                "2.0",
            ),
            ("p99_ratio", Metric::LatencyP99, self.p99_ratio, "1.5"),
        ] {
            let Some(v) = value else { continue };
            if !(v >= 1.0 && v.is_finite()) {
                return Err(format!(
                    "[{at}] {key} = {v}: allowed a ratio ≥ 1 (e.g. {example})"
                ));
            }
            s.set_ratio(metric, v);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileContents {
    #[serde(default)]
    defaults: Overrides,
    #[serde(default)]
    experiments: BTreeMap<String, Overrides>,
    /// `[[metrics]]`: metrics users define, reported for every experiment.
    #[serde(default)]
    metrics: Vec<crate::config::user_metrics::MetricEntry>,
}

/// The parsed experiments file.
#[derive(Debug, Clone, Default)]
pub struct ExperimentsFile {
    defaults: ExperimentSettings,
    experiments: BTreeMap<String, ExperimentSettings>,
}

impl ExperimentsFile {
    /// Reads and validates a file; errors name the file and the key.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|message| Error::Config {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let contents: FileContents = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut defaults = ExperimentSettings {
            metrics: crate::config::user_metrics::parse(&contents.metrics)?,
            ..ExperimentSettings::default()
        };
        contents.defaults.apply("defaults", &mut defaults)?;
        validate("defaults", &defaults)?;
        let mut experiments = BTreeMap::new();
        for (name, overrides) in contents.experiments {
            let mut settings = defaults.clone();
            let at = format!("experiments.{name}");
            overrides.apply(&at, &mut settings)?;
            validate(&at, &settings)?;
            experiments.insert(name, settings);
        }
        Ok(ExperimentsFile {
            defaults,
            experiments,
        })
    }

    /// The metrics the file defines, in its order.
    pub fn metrics(&self) -> &[crate::config::user_metrics::UserMetric] {
        &self.defaults.metrics
    }

    /// Whether any experiment (or the defaults) winsorizes revenue: the plan then computes caps.
    pub fn any_winsorize(&self) -> bool {
        self.defaults.winsorize_revenue.is_some()
            || self
                .experiments
                .values()
                .any(|s| s.winsorize_revenue.is_some())
    }

    /// The settings of an experiment (the defaults when it has no table of its own).
    /// The experiments the file has its own settings for.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.experiments.keys().map(String::as_str)
    }

    pub fn settings(&self, experiment: &str) -> ExperimentSettings {
        self.experiments
            .get(experiment)
            .cloned()
            .unwrap_or_else(|| self.defaults.clone())
    }

    /// Each experiment's stages in the file (empty for those without).
    pub fn file_stages(&self) -> impl Iterator<Item = (&str, &[Stage])> {
        self.experiments
            .iter()
            .map(|(name, s)| (name.as_str(), s.stages.as_slice()))
    }

    /// Whether `experiment` has stages of its own in the file.
    pub fn has_stages(&self, experiment: &str) -> bool {
        self.experiments
            .get(experiment)
            .is_some_and(|s| !s.stages.is_empty())
    }

    /// Forces one method on every experiment (`analyze --method`), over what the file says.
    pub fn with_method(mut self, method: Method) -> Self {
        self.defaults.method = method;
        for settings in self.experiments.values_mut() {
            settings.method = method;
        }
        self
    }
}

/// Whether a guardrail's threshold suits its scale and direction; the error names `key`.
pub(crate) fn check_rule(key: &str, rule: &ThresholdRule) -> Result<(), String> {
    let t = rule.threshold;
    let (ok, allowed) = match (rule.scale, rule.harm) {
        (Scale::Ratio, Harm::Increase) => (t >= 1.0, "with kind = \"ratio\" and direction = \"increase\", a threshold ≥ 1 (e.g. 2.0: at most twice the baseline's)"),
        (Scale::Ratio, Harm::Decrease) => (t > 0.0 && t <= 1.0, "with kind = \"ratio\" and direction = \"decrease\", a threshold in (0, 1] (e.g. 0.95: at most 5% below the baseline's)"),
        (Scale::Absolute, _) => (t >= 0.0, "with kind = \"absolute\", an amount ≥ 0 in the metric's unit (the change allowed in the harmful direction)"),
    };
    if ok && t.is_finite() {
        Ok(())
    } else {
        Err(format!("{key} = {t}: allowed {allowed}"))
    }
}

/// Whether `weights` (at `key` of table `at`) is an allocation: two variants or more, positive,
/// summing to 1 or 100, naming the baseline when there is one.
fn check_weights(
    at: &str,
    key: &str,
    weights: &BTreeMap<String, f64>,
    baseline: Option<&String>,
) -> Result<(), String> {
    let fail = |key: &str, allowed: &str, got: String| {
        Err(format!("[{at}] {key} = {got}: allowed {allowed}"))
    };
    if weights.len() < 2 {
        return fail(key, "at least two variants", format!("{weights:?}"));
    }
    if let Some((name, w)) = weights.iter().find(|(_, w)| !(**w > 0.0 && w.is_finite())) {
        return fail(&format!("{key}.{name}"), "a positive weight", w.to_string());
    }
    // Shares of 1, or percentages of 100; anything else is a typo that a silent rescale
    // would turn into a wrong SRM test.
    let sum: f64 = weights.values().sum();
    if (sum - 1.0).abs() > 1e-3 && (sum - 100.0).abs() > 0.1 {
        return fail(
            key,
            "weights that sum to 1 (shares) or to 100 (percentages)",
            format!("{weights:?}, which sum to {sum}"),
        );
    }
    if let Some(baseline) = baseline {
        if !weights.contains_key(baseline) {
            return fail(
                "baseline",
                &format!("one of the variants named in {key}"),
                format!("{baseline:?}"),
            );
        }
    }
    Ok(())
}

fn validate(at: &str, s: &ExperimentSettings) -> Result<(), String> {
    let fail = |key: &str, allowed: &str, got: String| {
        Err(format!("[{at}] {key} = {got}: allowed {allowed}"))
    };
    if !(s.confidence > 0.5 && s.confidence < 1.0) {
        return fail(
            "confidence",
            "a number between 0.5 and 1 (e.g. 0.95)",
            s.confidence.to_string(),
        );
    }
    if s.guardrails.is_empty() {
        return fail(
            "guardrails",
            "at least one guardrail (with none, every experiment past min_users would be PROMOTEd unchecked)",
            "[]".into(),
        );
    }
    for (i, g) in s.guardrails.iter().enumerate() {
        let key = format!("guardrails[{i}] ({})", g.metric.name());
        check_rule(&format!("[{at}] {key}.threshold"), &g.rule)?;
        if s.guardrails[..i].iter().any(|h| h.metric == g.metric) {
            return fail(
                &key,
                "one guardrail per metric",
                format!("a second {} guardrail", g.metric.name()),
            );
        }
    }
    if !(s.harm_budget >= 0.0 && s.harm_budget.is_finite()) {
        return fail(
            "harm_budget",
            "a number of errors ≥ 0",
            s.harm_budget.to_string(),
        );
    }
    if let Some(cap) = s.traffic_cap {
        if !(cap > 0.0 && cap < 1.0) {
            return fail(
                "traffic_cap",
                "a share between 0 and 1 (e.g. 0.05)",
                cap.to_string(),
            );
        }
    }
    if !(0.0..=1.0).contains(&s.max_multiple_exposure) {
        return fail(
            "max_multiple_exposure",
            "a share between 0 and 1",
            s.max_multiple_exposure.to_string(),
        );
    }
    if let Some(p) = s.winsorize_revenue {
        if !(p > 0.5 && p < 1.0) {
            return fail(
                "winsorize_revenue",
                "a quantile between 0.5 and 1 (e.g. 0.99)",
                p.to_string(),
            );
        }
    }
    if !(s.n_star >= 1.0 && s.n_star.is_finite()) {
        return fail(
            "n_star",
            "a number of users ≥ 1 (e.g. 5000)",
            s.n_star.to_string(),
        );
    }
    if let Some(weights) = &s.weights {
        check_weights(at, "weights", weights, s.baseline.as_ref())?;
    }
    for (i, stage) in s.stages.iter().enumerate() {
        check_weights(
            at,
            &format!("stages[{i}].weights"),
            &stage.weights,
            s.baseline.as_ref(),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_practice() {
        let f = ExperimentsFile::parse("").unwrap();
        let s = f.settings("anything");
        assert_eq!(
            s.guardrails,
            vec![
                GuardrailSpec::ratio(Metric::ErrorRate, 2.0),
                GuardrailSpec::ratio(Metric::LatencyP99, 1.5)
            ]
        );
        assert_eq!((s.harm_budget, s.traffic_cap), (100.0, None));
        assert_eq!(s.correction, Correction::Holm);
    }

    #[test]
    fn weights_must_sum_to_one_or_a_hundred_and_guardrails_must_exist() {
        for good in [
            "{ v1 = 0.95, v2 = 0.05 }",
            "{ v1 = 95, v2 = 5 }",
            "{ a = 0.333, b = 0.333, c = 0.334 }",
        ] {
            assert!(
                ExperimentsFile::parse(&format!("[experiments.c]\nweights = {good}\n")).is_ok(),
                "{good}"
            );
        }
        let err = ExperimentsFile::parse("[experiments.c]\nweights = { v1 = 0.95, v2 = 0.5 }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sum to 1.45"), "{err}");
        let err = ExperimentsFile::parse("[defaults]\nguardrails = []\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("guardrails") && err.contains("at least one"),
            "{err}"
        );
    }

    #[test]
    fn experiments_override_defaults() {
        let f = ExperimentsFile::parse(
            "[defaults]\nconfidence = 0.9\n[experiments.c]\nweights = { v1 = 95, v2 = 5 }\ntraffic_cap = 0.06\n",
        )
        .unwrap();
        let s = f.settings("c");
        assert_eq!(s.confidence, 0.9);
        assert_eq!(s.traffic_cap, Some(0.06));
        assert_eq!(s.weights.unwrap()["v2"], 5.0);
        assert_eq!(f.settings("other").traffic_cap, None);
    }

    #[test]
    fn guardrails_are_a_list_with_kinds_directions_and_shorthands() {
        let f = ExperimentsFile::parse(
            r#"
[defaults]
guardrails = [
  { metric = "error_rate", threshold = 3.0 },
  { metric = "conversion_rate", threshold = 0.95 },
  { metric = "latency_p50", kind = "absolute", threshold = 20 },
]
[experiments.c]
p99_ratio = 1.2
error_rate_ratio = 2.5
"#,
        )
        .unwrap();
        let d = f.settings("other").guardrails;
        assert_eq!(d.len(), 3);
        assert_eq!(d[1].rule.harm, Harm::Decrease, "conversion: drops harm");
        assert_eq!(
            (d[2].rule.scale, d[2].rule.harm, d[2].rule.threshold),
            (Scale::Absolute, Harm::Increase, 20.0)
        );
        let c = f.settings("c").guardrails;
        assert_eq!(c.len(), 4, "p99 added by its shorthand: {c:?}");
        assert_eq!(c[0].rule.threshold, 2.5);
        assert_eq!(c[3], GuardrailSpec::ratio(Metric::LatencyP99, 1.2));
    }

    #[test]
    fn bad_guardrails_are_named() {
        let e = ExperimentsFile::parse(
            "[experiments.c]\nguardrails = [{ metric = \"conversion_rate\", threshold = 1.5 }]\n",
        )
        .unwrap_err();
        assert!(
            e.contains("experiments.c") && e.contains("guardrails[0] (conversion_rate).threshold"),
            "{e}"
        );
        let e = ExperimentsFile::parse(
            "[defaults]\nguardrails = [{ metric = \"cpu\", threshold = 1 }]\n",
        )
        .unwrap_err();
        assert!(
            e.contains("error_rate") && e.contains("revenue_per_user"),
            "{e}"
        );
        let e = ExperimentsFile::parse(
            "[defaults]\nguardrails = [{ metric = \"error_rate\", threshold = 2 }, { metric = \"error_rate\", kind = \"absolute\", threshold = 0.01 }]\n",
        )
        .unwrap_err();
        assert!(e.contains("one guardrail per metric"), "{e}");
        let e = ExperimentsFile::parse("[defaults]\np99_ratio = 0.5\n").unwrap_err();
        assert!(e.contains("p99_ratio") && e.contains("ratio ≥ 1"), "{e}");
    }

    #[test]
    fn errors_name_the_key_and_what_is_allowed() {
        let e = ExperimentsFile::parse("[experiments.c]\ntraffic_cap = 5\n").unwrap_err();
        assert!(
            e.contains("experiments.c")
                && e.contains("traffic_cap")
                && e.contains("between 0 and 1"),
            "{e}"
        );
        let e = ExperimentsFile::parse("[defaults]\nthreshold = 2\n").unwrap_err();
        assert!(e.contains("threshold"), "{e}");
    }
}

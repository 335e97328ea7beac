//! Metric analysis: the AnalysisRun controller, its pure state machine ([`run`]), CEL
//! conditions ([`condition`]) and the providers that take measurements ([`providers`]).

pub mod args;
pub mod condition;
pub mod controller;
pub mod lint;
pub mod measure;
pub mod metric_rules;
pub mod providers;
pub mod quote;
pub mod redact;
pub mod run;
#[cfg(test)]
mod run_tests;
pub mod value;

pub use lint::lint_template;

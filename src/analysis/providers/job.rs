//! Job: a Kubernetes Job per measurement. Succeeded is success, failed is failure; the Jobs go
//! when the run ends. A Job's name follows from the run's status, so a controller that crashed
//! after creating one finds it again instead of starting a second.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

use super::MetricProvider;
use crate::analysis::value::Outcome;
use crate::api::analysis::{ANALYSIS_RUN_LABEL, AnalysisPhase, AnalysisRun, Measurement, Metric};

/// Metadata key of a measurement naming its Job.
pub const JOB_NAME_KEY: &str = "job-name";

#[derive(Clone)]
pub struct JobProvider {
    client: kube::Client,
}

impl JobProvider {
    pub fn new(client: kube::Client) -> Self {
        JobProvider { client }
    }
}

/// `<run>-<metric>-<n>`, shortened with a hash to fit the 63 characters a Job name may have.
pub fn job_name(run: &str, metric: &str, n: i32) -> String {
    let full = format!("{run}-{metric}-{n}").to_lowercase();
    if full.len() <= 63 {
        return full;
    }
    let digest = Sha256::digest(full.as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let head: String = full.chars().take(54).collect();
    format!("{}-{hash}", head.trim_end_matches('-'))
}

/// The phase a Job's status gives: Running until a Complete or Failed condition.
pub fn job_outcome(job: &Job, metadata: BTreeMap<String, String>) -> Outcome {
    let name = job.name_any();
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let is = |t: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == t && c.status == "True")
    };
    if is("Complete") {
        Outcome::Decided(AnalysisPhase::Successful, format!("Job {name} succeeded"))
    } else if is("Failed") {
        let why = conditions
            .iter()
            .find(|c| c.type_ == "Failed")
            .and_then(|c| c.message.clone())
            .unwrap_or_default();
        Outcome::Decided(
            AnalysisPhase::Failed,
            format!("Job {name} failed {why}").trim().to_string(),
        )
    } else {
        Outcome::Running(metadata)
    }
}

impl MetricProvider for JobProvider {
    async fn measure(
        &self,
        run: &AnalysisRun,
        metric: &Metric,
        resume: Option<&Measurement>,
    ) -> Outcome {
        let Some(spec) = &metric.provider.job else {
            return Outcome::Error("not a job metric".into());
        };
        let ns = run.namespace().unwrap_or_default();
        let api = Api::<Job>::namespaced(self.client.clone(), &ns);
        if let Some(name) = resume.and_then(|m| m.metadata.get(JOB_NAME_KEY)) {
            return match api.get_opt(name).await {
                Ok(Some(job)) => {
                    job_outcome(&job, resume.map(|m| m.metadata.clone()).unwrap_or_default())
                }
                Ok(None) => Outcome::Error(format!("Job {name} disappeared before it finished")),
                Err(e) => Outcome::Error(format!("reading Job {name}: {e}")),
            };
        }
        // Every measurement taken so far has a number; the next one is one more.
        let taken = run
            .status
            .as_ref()
            .and_then(|s| s.metric_results.iter().find(|r| r.name == metric.name))
            .map_or(0, |r| r.count + r.error);
        let name = job_name(&run.name_any(), &metric.name, taken + 1);
        let Some(owner) = run.controller_owner_ref(&()) else {
            return Outcome::Error("the AnalysisRun has no uid yet".into());
        };
        let mut labels = spec
            .metadata
            .as_ref()
            .map(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert(ANALYSIS_RUN_LABEL.into(), run.name_any());
        let annotations = spec
            .metadata
            .as_ref()
            .map(|m| m.annotations.clone())
            .unwrap_or_default();
        let job = Job {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                labels: Some(labels),
                annotations: (!annotations.is_empty()).then_some(annotations),
                owner_references: Some(vec![owner]),
                ..Default::default()
            },
            spec: Some(spec.spec.clone()),
            status: None,
        };
        let metadata = BTreeMap::from([(JOB_NAME_KEY.to_string(), name.clone())]);
        match api.create(&PostParams::default(), &job).await {
            Ok(created) => job_outcome(&created, metadata),
            Err(kube::Error::Api(s)) if s.code == 409 => Outcome::Running(metadata),
            Err(e) => Outcome::Error(format!("creating Job {name}: {e}")),
        }
    }

    async fn clean_up(&self, run: &AnalysisRun) -> Result<(), String> {
        let ns = run.namespace().unwrap_or_default();
        let api = Api::<Job>::namespaced(self.client.clone(), &ns);
        let selector = format!("{ANALYSIS_RUN_LABEL}={}", run.name_any());
        let jobs = api
            .list_metadata(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| format!("listing Jobs of {}: {e}", run.name_any()))?;
        for job in jobs {
            match api
                .delete(&job.name_any(), &DeleteParams::background())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(format!("deleting Job {}: {e}", job.name_any())),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_are_stable() {
        assert_eq!(
            job_name("web-abc-step-2", "smoke", 1),
            "web-abc-step-2-smoke-1"
        );
        let long = job_name(&"r".repeat(60), "metric", 3);
        assert!(long.len() <= 63, "{long}");
        assert_eq!(long, job_name(&"r".repeat(60), "metric", 3));
        assert_ne!(long, job_name(&"r".repeat(60), "metric", 4));
    }

    #[test]
    fn job_conditions_decide() {
        let job = |t: &str| -> Job {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "j"},
                "status": {"conditions": [{"type": t, "status": "True", "message": "BackoffLimitExceeded"}]}
            }))
            .unwrap()
        };
        assert!(matches!(
            job_outcome(&job("Complete"), Default::default()),
            Outcome::Decided(AnalysisPhase::Successful, _)
        ));
        assert!(
            matches!(job_outcome(&job("Failed"), Default::default()), Outcome::Decided(AnalysisPhase::Failed, m) if m.contains("Backoff"))
        );
        assert!(matches!(
            job_outcome(&job("Suspended"), Default::default()),
            Outcome::Running(_)
        ));
    }
}

//! Jobs the relay dispatches: a template **name** from the local configuration, parameter values and the
//! credentials it needs. The relay can never supply a command line: unknown templates, undeclared parameters and
//! credentials the template does not declare are refused. Credentials the agent lacks are fetched by JIT repair
//! (the same path as the local API) before the job starts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tessera_proto::ids::CredentialName;
use tessera_proto::wire::{self, JobDispatch, JobResult, Up, MAX_JOB_OUTPUT};

use crate::config::AgentConfig;
use crate::core::{CoreHandle, JitOutcome};
use crate::exec::{run_captured, Injected};
use crate::payload_text::secret_text;
use crate::session::outbox::Outbox;
use crate::store::Store;

/// What a job task needs.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// Configuration (templates).
    pub cfg: Arc<AgentConfig>,
    /// The store, for credentials.
    pub store: Store,
    /// For JIT repair.
    pub core: CoreHandle,
    /// For the result.
    pub outbox: Outbox,
    /// The agent's up topic.
    pub up_topic: String,
}

fn failed(job: &JobDispatch, error: String) -> JobResult {
    JobResult {
        job_id: job.job_id,
        exit_code: None,
        stdout: String::new(),
        stderr: String::new(),
        error: Some(error),
        meta: BTreeMap::new(),
    }
}

/// Runs one dispatched job and publishes its result.
pub async fn run(ctx: JobContext, job: JobDispatch) {
    let result = execute(&ctx, &job).await.unwrap_or_else(|e| {
        tracing::warn!(job = %job.job_id, template = job.template.as_str(), error = %e, "job refused or failed");
        failed(&job, e)
    });
    match wire::encode(&Up::JobResult(result)) {
        Ok(bytes) => ctx.outbox.publish(ctx.up_topic.clone(), false, bytes),
        Err(e) => tracing::error!(error = %e, "could not encode a job result"),
    }
}

async fn execute(ctx: &JobContext, job: &JobDispatch) -> Result<JobResult, String> {
    let template = ctx
        .cfg
        .jobs
        .get(job.template.as_str())
        .ok_or_else(|| format!("unknown job template {}", job.template.as_str()))?;
    let argv = template.render(&job.params)?;
    if let Some(extra) = job
        .credentials
        .iter()
        .find(|c| !template.credentials.values().any(|v| v == c.as_str()))
    {
        return Err(format!(
            "credential {} is not declared by the template",
            extra.as_str()
        ));
    }
    let budget = Duration::from_millis(ctx.cfg.socket.jit_timeout_ms);
    let mut injected = Vec::with_capacity(template.credentials.len());
    for (var, name) in &template.credentials {
        let name = CredentialName::new(name.as_str()).map_err(|e| e.to_string())?;
        let text = fetch(ctx, &name, budget).await?;
        injected.push(Injected {
            var: var.clone(),
            value: text,
        });
    }
    tracing::info!(job = %job.job_id, template = job.template.as_str(), "running job");
    let out = run_captured(
        &argv,
        &template.inherit_env,
        injected,
        Duration::from_secs(template.timeout_secs),
        MAX_JOB_OUTPUT,
    )
    .await
    .map_err(|e| format!("could not start the job: {e}"))?;
    let mut meta = BTreeMap::new();
    meta.insert(
        "duration_ms".to_owned(),
        out.elapsed.as_millis().to_string(),
    );
    meta.insert("truncated".to_owned(), out.truncated.to_string());
    Ok(JobResult {
        job_id: job.job_id,
        exit_code: out.exit_code,
        stdout: out.stdout,
        stderr: out.stderr,
        error: out
            .timed_out
            .then(|| format!("timed out after {} s", template.timeout_secs)),
        meta,
    })
}

async fn fetch(
    ctx: &JobContext,
    name: &CredentialName,
    budget: Duration,
) -> Result<zeroize::Zeroizing<String>, String> {
    let read = |store: &Store| {
        store
            .credential_by_name(name)
            .map_err(|e| format!("store: {e}"))
            .map(|c| c.map(|c| secret_text(c.payload.bytes())))
    };
    if let Some(text) = read(&ctx.store)? {
        return Ok(text);
    }
    match ctx.core.await_credential(name.clone(), budget).await {
        Ok(JitOutcome::Delivered) => {
            read(&ctx.store)?.ok_or_else(|| format!("credential {} vanished", name.as_str()))
        }
        Ok(JitOutcome::Unavailable(reason)) => Err(format!(
            "credential {} unavailable: {reason:?}",
            name.as_str()
        )),
        Err(e) => Err(format!("credential {} unavailable: {e:?}", name.as_str())),
    }
}

//! Jobs the relay dispatches: a template **name** from the local configuration, parameter values and the
//! credentials it needs. The relay can never supply a command line: unknown templates, undeclared parameters,
//! values their declared type refuses and credentials the template does not declare are refused. Credentials the
//! agent lacks are fetched by JIT repair (the same path as the local API) before the job starts.
//!
//! A dispatch runs at most once: [`admit`] refuses an expired one and a job id already run or refused, and records
//! the id (flushed) before the job may start. Every refusal is a result with a typed code
//! ([`tessera_proto::wire::JobErrorCode`]) and an entry in the local audit.

use crate::clock::unix_now;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tessera_proto::ids::CredentialName;
use tessera_proto::wire::{
    self, JobDispatch, JobErrorCode, JobResult, Up, MAX_JOB_OUTPUT, MAX_JOB_TTL_SECS,
};

use crate::config::params::ParamError;
use crate::config::AgentConfig;
use crate::core::{CoreHandle, JitOutcome};
use crate::exec::{run_captured, Injected};
use crate::payload_text::secret_text;
use crate::session::outbox::Outbox;
use crate::store::{Admission, AuditEntry, AuditOutcome, SeenJobs, Store};

/// What a job task needs.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// Configuration (templates).
    pub cfg: Arc<AgentConfig>,
    /// The store, for credentials and the audit.
    pub store: Store,
    /// For JIT repair.
    pub core: CoreHandle,
    /// For the result.
    pub outbox: Outbox,
    /// The agent's up topic.
    pub up_topic: String,
}

/// Why a job was refused or failed: the typed code, a detail that names rules and never quotes a value, and the
/// parameter concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct JobFailure {
    /// The code.
    pub code: JobErrorCode,
    /// For people.
    pub detail: String,
    /// The parameter, for `PARAM_REFUSED`.
    pub param: Option<String>,
}

impl JobFailure {
    fn new(code: JobErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            param: None,
        }
    }
}

impl From<ParamError> for JobFailure {
    fn from(e: ParamError) -> Self {
        Self {
            code: JobErrorCode::ParamRefused,
            param: Some(e.param().to_owned()),
            detail: e.to_string(),
        }
    }
}

/// The result of a job that did not run.
pub fn failed_result(job: &JobDispatch, failure: &JobFailure) -> JobResult {
    JobResult {
        job_id: job.job_id,
        exit_code: None,
        stdout: String::new(),
        stderr: String::new(),
        error: Some(failure.to_string()),
        meta: BTreeMap::new(),
    }
}

/// Decides whether `job` may start at `now` (Unix seconds): not expired, its expiry at most
/// [`MAX_JOB_TTL_SECS`] ahead, and its id never seen; the id is recorded and flushed before this returns `Ok`.
/// Blocking (a store flush).
pub fn admit(seen: &mut SeenJobs, job: &JobDispatch, now: i64) -> Result<(), JobFailure> {
    if job.expires_at <= now {
        return Err(JobFailure::new(
            JobErrorCode::JobExpired,
            format!(
                "expires_at {} is not after the agent's clock {now}",
                job.expires_at
            ),
        ));
    }
    if job.expires_at.saturating_sub(now) > MAX_JOB_TTL_SECS {
        return Err(JobFailure::new(
            JobErrorCode::JobExpiryTooFar,
            format!("expires_at is more than {MAX_JOB_TTL_SECS} s ahead of the agent's clock"),
        ));
    }
    match seen.admit(&job.job_id, job.expires_at, now) {
        Ok(Admission::New) => Ok(()),
        Ok(Admission::Duplicate) => Err(JobFailure::new(
            JobErrorCode::JobDuplicate,
            "this job id was already run or refused",
        )),
        Ok(Admission::Full) => Err(JobFailure::new(
            JobErrorCode::JobBusy,
            "too many job ids are remembered; retry after older dispatches expire",
        )),
        Err(e) => {
            tracing::error!(error = %e, "could not record a job id");
            Err(JobFailure::new(
                JobErrorCode::Internal,
                "could not record the job id",
            ))
        }
    }
}

/// Writes a `job:<template>` entry to the local audit and flushes it (jobs are rare, and a refusal should
/// survive the crash or kill that may follow it).
fn audit(
    store: &Store,
    job: &JobDispatch,
    outcome: AuditOutcome,
    name: Option<String>,
    failure: Option<&JobFailure>,
) {
    let entry = AuditEntry {
        seq: 0,
        at: unix_now(),
        uid: rustix::process::getuid().as_raw(),
        gid: rustix::process::getgid().as_raw(),
        pid: None,
        op: format!("job:{}", job.template.as_str()),
        name,
        outcome,
        detail: failure.map(ToString::to_string),
        job_id: Some(job.job_id),
        param: failure.and_then(|f| f.param.clone()),
    };
    if let Err(e) = store.audit(entry).and_then(|()| store.flush()) {
        tracing::error!(error = %e, "could not write the local audit");
    }
}

fn publish(ctx: &JobContext, result: JobResult) {
    match wire::encode(&Up::JobResult(result)) {
        Ok(bytes) => ctx.outbox.publish(ctx.up_topic.clone(), false, bytes),
        Err(e) => tracing::error!(error = %e, "could not encode a job result"),
    }
}

/// Answers a job that will not run: audits the refusal and publishes its typed result.
pub fn refuse(ctx: &JobContext, job: &JobDispatch, failure: &JobFailure) {
    tracing::warn!(
        job = %job.job_id,
        template = job.template.as_str(),
        code = failure.code.as_str(),
        param = failure.param.as_deref(),
        "job refused"
    );
    audit(&ctx.store, job, AuditOutcome::Refused, None, Some(failure));
    publish(ctx, failed_result(job, failure));
}

/// Runs one admitted job and publishes its result.
pub async fn run(ctx: JobContext, job: JobDispatch) {
    match execute(&ctx, &job).await {
        Ok(result) => publish(&ctx, result),
        Err(failure) => refuse(&ctx, &job, &failure),
    }
}

async fn execute(ctx: &JobContext, job: &JobDispatch) -> Result<JobResult, JobFailure> {
    let template = ctx.cfg.jobs.get(job.template.as_str()).ok_or_else(|| {
        JobFailure::new(
            JobErrorCode::UnknownTemplate,
            format!("unknown job template {}", job.template.as_str()),
        )
    })?;
    let argv = template.render(&job.params)?;
    if let Some(extra) = job
        .credentials
        .iter()
        .find(|c| !template.credentials.values().any(|v| v == c.as_str()))
    {
        return Err(JobFailure::new(
            JobErrorCode::CredentialRefused,
            format!(
                "credential {} is not declared by the template",
                extra.as_str()
            ),
        ));
    }
    let budget = Duration::from_millis(ctx.cfg.socket.jit_timeout_ms);
    let mut injected = Vec::with_capacity(template.credentials.len());
    for (var, name) in &template.credentials {
        let name = CredentialName::new(name.as_str())
            .map_err(|e| JobFailure::new(JobErrorCode::CredentialRefused, e.to_string()))?;
        let text = fetch(ctx, &name, budget).await?;
        injected.push(Injected {
            var: var.clone(),
            value: text,
        });
    }
    tracing::info!(job = %job.job_id, template = job.template.as_str(), "running job");
    let names: Vec<&str> = template.credentials.values().map(String::as_str).collect();
    audit(
        &ctx.store,
        job,
        AuditOutcome::Ran,
        (!names.is_empty()).then(|| names.join(",")),
        None,
    );
    let out = run_captured(
        &argv,
        &template.inherit_env,
        injected,
        Duration::from_secs(template.timeout_secs),
        MAX_JOB_OUTPUT,
    )
    .await
    .map_err(|e| {
        JobFailure::new(
            JobErrorCode::SpawnFailed,
            format!("could not start the job: {e}"),
        )
    })?;
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
        error: out.timed_out.then(|| {
            JobErrorCode::TimedOut.with(format!("killed after {} s", template.timeout_secs))
        }),
        meta,
    })
}

async fn fetch(
    ctx: &JobContext,
    name: &CredentialName,
    budget: Duration,
) -> Result<zeroize::Zeroizing<String>, JobFailure> {
    let internal = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "store read failed");
        JobFailure::new(JobErrorCode::Internal, "the agent could not read its store")
    };
    let unavailable = |why: String| JobFailure::new(JobErrorCode::CredentialUnavailable, why);
    let read = |store: &Store| {
        store
            .credential_by_name(name)
            .map_err(internal)
            .map(|c| c.map(|c| secret_text(c.payload.bytes())))
    };
    if let Some(text) = read(&ctx.store)? {
        return Ok(text);
    }
    match ctx.core.await_credential(name.clone(), budget).await {
        Ok(JitOutcome::Delivered) => read(&ctx.store)?
            .ok_or_else(|| unavailable(format!("credential {} vanished", name.as_str()))),
        Ok(JitOutcome::Unavailable(reason)) => Err(unavailable(format!(
            "credential {} unavailable: {reason:?}",
            name.as_str()
        ))),
        Err(e) => Err(unavailable(format!(
            "credential {} unavailable: {e:?}",
            name.as_str()
        ))),
    }
}

#[cfg(test)]
mod tests;

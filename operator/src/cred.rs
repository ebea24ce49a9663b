//! `cred put`, `rotate`, `import`, `grant`, `revoke`, `rm` and `adopt`: what an operator signs and seals, decided
//! from the operator's own [`Catalogue`] and checked against the relay's answers, never taken from them.
//!
//! The plaintext is read here, committed to, signed and sealed only to certificates the CA issued for the agents in
//! scope ([`crate::certified`]). What the relay says about a credential (its id, version, scope, statement) is
//! verified against the org CA and compared with the catalogue; a contradiction is an error that names what the
//! relay claimed and what was signed, and nothing is signed or sealed.

use tessera_proto::admin::{AgentView, CredentialView, EnvelopeFor, PutBody, TombstoneBody};
use tessera_proto::cert::{IdentityKey, PinnedCa};
use tessera_proto::commitment::{self, Salt};
use tessera_proto::envelope::seal;
use tessera_proto::ids::{AgentId, CredentialId, CredentialName, OperatorId};
use tessera_proto::secret::{SecretBytes, SecretPayload};
use tessera_proto::statement::{
    CredentialStatement, CredentialTombstone, RevocationList, Scope, Signed, VerifiedCredential,
};

use crate::answers::{self, AnswerError};
use crate::catalogue::{Catalogue, CatalogueError, Change, Entry};
use crate::certified::{self, NotCertified, Skipped};
use crate::client::{AdminClient, ClientError};
use crate::issued::{IssuedError, Registry};
use crate::revocations::RevocationsError;
use crate::scope_diff::ScopeDiff;

mod batch_seal;

/// What a put did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PutReport {
    /// The credential.
    pub id: CredentialId,
    /// Its name.
    pub name: CredentialName,
    /// Its version.
    pub version: u64,
    /// The scope signed.
    pub scope: Scope,
    /// How the scope changed from the previous version (none for a new credential).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope_change: Option<ScopeDiff>,
    /// Agents sealed to.
    pub sealed_for: Vec<AgentId>,
    /// Agents of the relay's list left out, and why.
    pub skipped: Vec<Skipped>,
}

/// What a re-scope did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RescopeReport {
    /// The credential.
    pub id: CredentialId,
    /// Its version.
    pub version: u64,
    /// The new scope revision.
    pub scope_revision: u64,
    /// The scope signed.
    pub scope: Scope,
    /// How it changed.
    pub scope_change: ScopeDiff,
}

/// Why nothing was signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredError {
    /// The admin API failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// An answer is not what the admin API documents.
    #[error(transparent)]
    Answer(#[from] AnswerError),
    /// No revocation list could be settled on.
    #[error(transparent)]
    Revocations(#[from] RevocationsError),
    /// The issued-certificate registry.
    #[error(transparent)]
    Issued(#[from] IssuedError),
    /// The relay contradicts what was signed.
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    /// An explicit scope names an uncertified agent.
    #[error(transparent)]
    NotCertified(#[from] NotCertified),
    /// The relay lists a credential the catalogue does not know.
    #[error(
        "the relay lists {name} (credential {id}, version {version}) which this operator's catalogue does not know; \
         if it is yours, check who signed it and run `tessera cred adopt {name}`"
    )]
    Unknown {
        /// The name.
        name: String,
        /// The id claimed.
        id: CredentialId,
        /// The version claimed.
        version: u64,
    },
    /// The relay lists a credential under a name or id its statement does not carry.
    #[error(
        "the relay lists {listed_name} as credential {listed_id} but serves a statement signed for {signed_name} \
         (credential {signed_id})"
    )]
    ViewMismatch {
        /// The name listed.
        listed_name: String,
        /// The id listed.
        listed_id: CredentialId,
        /// The name in the statement.
        signed_name: String,
        /// The id in the statement.
        signed_id: CredentialId,
    },
    /// Some items of an import were sent before one failed.
    #[error(
        "{failed}: {source}; already signed and sent: {}{}",
        sent.join(", "),
        unsent_note(unsent)
    )]
    Partial {
        /// The names sent.
        sent: Vec<String>,
        /// The name that failed (or the catalogue, when saving it failed).
        failed: String,
        /// Names signed and recorded as pending but not sent: the relay has no version of them from this put, and
        /// their next put signs the next version.
        unsent: Vec<String>,
        /// Why.
        source: Box<CredError>,
    },
    /// The catalogue has no such credential.
    #[error("no credential {0} in this operator's catalogue")]
    NotInCatalogue(String),
    /// A version or revision would overflow.
    #[error("{0}: the version or scope revision cannot be raised further")]
    Overflow(String),
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
}

/// The plaintext from input bytes: a JSON document as is, anything else as `{"secret": text}` (one trailing newline
/// dropped).
pub fn payload_from_input(input: &SecretBytes) -> Result<SecretPayload, CredError> {
    input.expose(|b| {
        let trimmed = b.strip_suffix(b"\n").unwrap_or(b);
        if trimmed.first() == Some(&b'{') {
            SecretPayload::from_json(trimmed).map_err(|e| CredError::Invalid(e.to_string()))
        } else {
            let text = std::str::from_utf8(trimmed)
                .map_err(|_| CredError::Invalid("the secret is not UTF-8".into()))?;
            SecretPayload::from_plain_text(text).map_err(|e| CredError::Invalid(e.to_string()))
        }
    })
}

/// Secrets shorter than this are reported as guessable: the relay holds the salted commitment of every secret and
/// can test guesses offline (docs/threat-model.md).
pub const WEAK_SECRET_BYTES: usize = 16;

/// A warning when `input` is short enough to be guessed from its commitment (the secret itself is never named).
pub fn weak_secret_warning(name: &CredentialName, input: &SecretBytes) -> Option<String> {
    let len = input.expose(|b| b.strip_suffix(b"\n").unwrap_or(b).len());
    (len < WEAK_SECRET_BYTES).then(|| {
        format!(
            "{} is {len} bytes long: the relay holds its salted commitment and can test guesses offline; a random \
             secret of at least {WEAK_SECRET_BYTES} bytes cannot be guessed",
            name.as_str()
        )
    })
}

/// Everything needed to sign and seal.
#[derive(Debug)]
pub struct Operator<'a> {
    /// The CA, as the operator has it.
    pub ca: &'a PinnedCa,
    /// The operator's id.
    pub id: OperatorId,
    /// The operator's key.
    pub key: &'a IdentityKey,
    /// The operator's certificate, DER.
    pub cert: &'a [u8],
    /// The operator directory: catalogue, issued-certificate registry, revocation list copy.
    pub dir: &'a std::path::Path,
}

/// What a command works from: the relay's answers (untrusted) and the operator's own files.
#[derive(Debug)]
pub struct Context<'a> {
    op: &'a Operator<'a>,
    creds: Vec<CredentialView>,
    agents: Vec<AgentView>,
    revoked: RevocationList,
    catalogue: Catalogue,
    now: i64,
    /// Warnings for the operator (printed on standard error).
    pub notes: Vec<String>,
}

/// How far in the future a statement's signing time may be (clocks differ between workstations).
const CLOCK_SKEW_SECS: i64 = 300;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl<'a> Context<'a> {
    /// Reads the relay's credential and agent lists, settles on a revocation list, loads the catalogue.
    pub async fn load(client: &AdminClient, op: &'a Operator<'a>) -> Result<Self, CredError> {
        let creds = answers::credentials(client.get("/v1/credentials").await?)?;
        let agents = answers::agents(client.get("/v1/agents").await?)?;
        let revoked = crate::revocations::current(client, op.ca, op.dir).await?;
        Ok(Self {
            op,
            creds,
            agents,
            revoked,
            catalogue: Catalogue::load(op.dir)?,
            now: now(),
            notes: Vec::new(),
        })
    }

    /// The catalogue's entry for `name`, brought up to date with newer statements the relay serves that verify
    /// and extend it; an error when the relay contradicts it, or lists a credential of that name the catalogue does
    /// not know.
    /// A new version of `name` this workstation signed that the relay has not confirmed (call after
    /// [`Context::current`], which confirms what the relay serves): no agent can have received it, since the relay
    /// never took its envelopes.
    fn unconfirmed_version(&self, name: &CredentialName) -> Option<&Entry> {
        let pending = self.catalogue.pending.get(name)?;
        let confirmed = self.catalogue.get(name).map_or(0, |e| e.version);
        (pending.version > confirmed).then_some(pending)
    }

    pub fn current(&mut self, name: &CredentialName) -> Result<Option<Entry>, CredError> {
        let known = self.catalogue.latest(name).map(|e| e.id);
        let claims: Vec<CredentialView> = self
            .creds
            .iter()
            .filter(|v| !v.deleted && (v.name == *name || Some(v.id) == known))
            .cloned()
            .collect();
        if known.is_none() {
            if let Some(v) = claims.first() {
                return Err(CredError::Unknown {
                    name: name.as_str().to_owned(),
                    id: v.id,
                    version: v.version,
                });
            }
            return Ok(None);
        }
        for view in &claims {
            self.reconcile(view)?;
        }
        if claims.is_empty() {
            self.notes.push(format!(
                "the relay does not list {}; continuing from the catalogue",
                name.as_str()
            ));
        }
        Ok(self.catalogue.latest(name).cloned())
    }

    /// A statement the relay serves, verified to be one this workstation may learn from: signed by an operator
    /// certified by the CA, unrevoked **and valid now** (an expired operator key cannot sign a backdated statement
    /// that gets learnt), not dated in the future.
    fn verify_current(
        &self,
        signed: &Signed<CredentialStatement>,
    ) -> Result<VerifiedCredential, String> {
        let verified = signed
            .verify(self.op.ca, &self.revoked)
            .map_err(|e| e.to_string())?;
        self.op
            .ca
            .verify_operator(&signed.signer_cert, self.now, &self.revoked)
            .map_err(|e| format!("its signer's certificate is not valid now: {e}"))?;
        if verified.statement.created_at > self.now.saturating_add(CLOCK_SKEW_SECS) {
            return Err(format!(
                "it is dated {} s in the future",
                verified.statement.created_at - self.now
            ));
        }
        Ok(verified)
    }

    /// Checks one relay view against its own statement and the catalogue, adopting a newer verified statement.
    fn reconcile(&mut self, view: &CredentialView) -> Result<(), CredError> {
        let verified = match self.verify_current(&view.statement) {
            Ok(v) => v,
            Err(e) => {
                self.notes.push(format!(
                    "ignoring the relay's statement for {} ({}): it does not verify: {e}",
                    view.name.as_str(),
                    view.id
                ));
                return Ok(());
            }
        };
        let st = &verified.statement;
        if st.credential_id != view.id || st.name != view.name {
            return Err(CredError::ViewMismatch {
                listed_name: view.name.as_str().to_owned(),
                listed_id: view.id,
                signed_name: st.name.as_str().to_owned(),
                signed_id: st.credential_id,
            });
        }
        let before = self.catalogue.get(&st.name).map(|e| e.scope.clone());
        if let Change::Newer { from } = self.catalogue.accept(&verified, &view.statement)? {
            let scope = before
                .filter(|b| *b != st.scope)
                .map(|b| format!("; {}", ScopeDiff::between(&b, &st.scope)))
                .unwrap_or_default();
            self.notes.push(format!(
                "learnt {} version {} revision {} signed by {} (had version {} revision {}){scope}",
                st.name.as_str(),
                st.version,
                st.scope_revision,
                st.creator.as_str(),
                from.0,
                from.1
            ));
            self.catalogue.save(self.op.dir)?;
        }
        Ok(())
    }

    /// Signs `st`, posts it with `envelopes`, and records it in the catalogue.
    async fn sign_and_post(
        &mut self,
        client: &AdminClient,
        st: &CredentialStatement,
        envelopes: Vec<EnvelopeFor>,
    ) -> Result<(), CredError> {
        let signed = self.sign_and_record(st)?;
        self.catalogue.save(self.op.dir)?;
        self.post_and_accept(client, signed, envelopes).await?;
        self.catalogue.save(self.op.dir)?;
        Ok(())
    }

    /// Signs `st` and records it as pending in the catalogue (in memory: the caller saves it before sending), so
    /// that whatever the relay answers, this (version, revision) is never signed again.
    fn sign_and_record(&mut self, st: &CredentialStatement) -> Result<SignedStatement, CredError> {
        let signed = Signed::sign(st, self.op.key, self.op.cert)
            .map_err(|e| CredError::Invalid(e.to_string()))?;
        let verified = signed
            .verify(self.op.ca, &self.revoked)
            .map_err(|e| CredError::Invalid(format!("our own statement does not verify: {e}")))?;
        self.catalogue.record_pending(&verified, &signed)?;
        Ok(SignedStatement { verified, signed })
    }

    /// Posts a statement recorded by [`Context::sign_and_record`] (and saved) with `envelopes`, and accepts it in
    /// the catalogue (in memory: the caller saves it).
    async fn post_and_accept(
        &mut self,
        client: &AdminClient,
        st: SignedStatement,
        envelopes: Vec<EnvelopeFor>,
    ) -> Result<(), CredError> {
        let body = PutBody {
            statement: st.signed.clone(),
            envelopes,
        };
        let body = serde_json::to_value(&body).map_err(|e| CredError::Invalid(e.to_string()))?;
        client.post("/v1/credentials", &body).await?;
        self.catalogue.accept(&st.verified, &st.signed)?;
        Ok(())
    }
}

/// A statement this operator signed, and its verification.
struct SignedStatement {
    verified: VerifiedCredential,
    signed: Signed<CredentialStatement>,
}

/// Puts several credentials (one `put`, or an import). A scope of `None` keeps the catalogue's signed scope of an
/// existing credential, or means every agent for a new one.
pub async fn put_many(
    client: &AdminClient,
    op: &Operator<'_>,
    items: &[(CredentialName, Option<Scope>, &SecretPayload)],
) -> Result<(Vec<PutReport>, Vec<String>), CredError> {
    let registry = Registry::require(op.dir)?;
    let mut ctx = Context::load(client, op).await?;
    // Every item is checked, and its targets chosen, before anything is signed: a refusal sends nothing.
    let mut plans = Vec::with_capacity(items.len());
    let mut names = std::collections::BTreeSet::new();
    for (name, scope, payload) in items {
        if !names.insert(name) {
            return Err(CredError::Invalid(format!(
                "{} is given twice: one put signs one version of each credential",
                name.as_str()
            )));
        }
        let current = ctx.current(name)?;
        let (id, version, previous) = match &current {
            Some(e) => (
                e.id,
                e.version
                    .checked_add(1)
                    .ok_or_else(|| CredError::Overflow(name.as_str().to_owned()))?,
                Some(e.scope.clone()),
            ),
            None => (CredentialId::random(), 1, None),
        };
        if current.is_none() && ctx.catalogue.deleted.values().any(|d| d.name == *name) {
            ctx.notes.push(format!(
                "{} was deleted earlier: an agent that has not purged the old credential yet (offline) refuses this \
                 new one (NAME_BOUND_TO_OTHER_ID) until its purge; the relay retries",
                name.as_str()
            ));
        }
        if let (None, Some(e)) = (scope, &current) {
            // The scope carried over must still be one a valid operator signed.
            if let Err(err) = e.statement.verify(op.ca, &ctx.revoked) {
                return Err(CredError::Invalid(format!(
                    "the current version of {} (signed by {}) no longer verifies ({err}), so its scope is not \
                     carried over; give the scope with `tessera cred put {} --agent ...`",
                    name.as_str(),
                    e.signer.as_str(),
                    name.as_str()
                )));
            }
        }
        let scope = scope
            .clone()
            .or_else(|| previous.clone())
            .unwrap_or(Scope::All);
        let targets =
            certified::targets(&scope, &ctx.agents, &registry, op.ca, ctx.now, &ctx.revoked)?;
        plans.push((name, id, version, previous, scope, targets, *payload));
    }
    // Statements are signed and recorded as pending a chunk at a time, with one save of the catalogue, then each
    // is sent and accepted, and the catalogue saved again (at once on a failure). A crash in between leaves the
    // chunk's statements pending, as a crash between one statement's two saves does: none is ever signed twice,
    // and the catalogue is written twice per chunk rather than twice per credential.
    //
    // Agents the relay lists as taking batches get one batch envelope per request for several credentials
    // (docs/protocol.md, "Operator batches"), when a chunk has more than one: each chunk then goes in batch requests.
    let batching: std::collections::BTreeSet<AgentId> = ctx
        .agents
        .iter()
        .filter(|a| a.batch_rewrap)
        .map(|a| a.id.clone())
        .collect();
    let none = std::collections::BTreeSet::new();
    let mut reports: Vec<PutReport> = Vec::with_capacity(plans.len());
    let mut plans = plans.into_iter().peekable();
    while plans.peek().is_some() {
        let group: Vec<Plan<'_>> = plans.by_ref().take(SAVE_EVERY).collect();
        let batching = if group.len() >= 2 { &batching } else { &none };
        let mut chunk = Vec::with_capacity(group.len());
        for plan in group {
            let name = plan.0.as_str().to_owned();
            match sign_plan(&mut ctx, op, plan, batching) {
                Ok(signed) => chunk.push(signed),
                // Nothing of this chunk was saved or sent: only what earlier chunks sent is reported.
                Err(e) => return Err(partial(&reports, name, Vec::new(), e)),
            }
        }
        save_after(&ctx, op.dir, &reports)?;
        if chunk.iter().any(|s| !s.deferred.is_empty()) {
            post_batches(&mut ctx, client, op, chunk, &mut reports).await?;
            save_after(&ctx, op.dir, &reports)?;
            continue;
        }
        let mut chunk = chunk
            .into_iter()
            .map(|s| (s.report, s.statement, s.singles));
        while let Some((report, statement, envelopes)) = chunk.next() {
            if let Err(e) = ctx.post_and_accept(client, statement, envelopes).await {
                // What was accepted so far is saved as confirmed; the rest of the chunk stays pending (and if this
                // save fails, the file keeps all of the chunk pending: as safe, since pending statements are built
                // on, never signed again).
                let _ = ctx.catalogue.save(op.dir);
                let unsent = chunk.map(|(r, _, _)| r.name.as_str().to_owned()).collect();
                return Err(partial(
                    &reports,
                    report.name.as_str().to_owned(),
                    unsent,
                    e,
                ));
            }
            reports.push(report);
        }
        save_after(&ctx, op.dir, &reports)?;
    }
    Ok((reports, ctx.notes))
}

/// Saves the catalogue; a failure is reported with what was sent before it.
fn save_after(
    ctx: &Context<'_>,
    dir: &std::path::Path,
    sent: &[PutReport],
) -> Result<(), CredError> {
    ctx.catalogue
        .save(dir)
        .map_err(|e| partial(sent, "the operator catalogue".into(), Vec::new(), e.into()))
}

/// `e`, with what was sent before it when anything was.
fn partial(sent: &[PutReport], failed: String, unsent: Vec<String>, e: CredError) -> CredError {
    if sent.is_empty() && unsent.is_empty() {
        return e;
    }
    CredError::Partial {
        sent: sent.iter().map(|r| r.name.as_str().to_owned()).collect(),
        failed,
        unsent,
        source: Box::new(e),
    }
}

/// The tail of a [`CredError::Partial`] message naming what was signed but not sent.
fn unsent_note(unsent: &[String]) -> String {
    if unsent.is_empty() {
        return String::new();
    }
    format!(
        "; signed but not sent (put them again: their next version is signed): {}",
        unsent.join(", ")
    )
}

/// How many statements [`put_many`] signs and records between two saves of the catalogue.
const SAVE_EVERY: usize = 64;

/// One credential of a [`put_many`]: name, id, version, previous scope, scope, targets, payload.
type Plan<'a> = (
    &'a CredentialName,
    CredentialId,
    u64,
    Option<Scope>,
    Scope,
    certified::Targets,
    &'a SecretPayload,
);

/// A signed and recorded statement of a [`put_many`], what was sealed for it, and what is left to seal in batches.
struct SignedPut<'a> {
    report: PutReport,
    statement: SignedStatement,
    /// Single envelopes, for agents that do not take batches.
    singles: Vec<EnvelopeFor>,
    /// Certificates of agents that take batches, sealed to with the request's other credentials.
    deferred: Vec<tessera_proto::cert::AgentCertificate>,
    payload: &'a SecretPayload,
}

/// Seals `plan`'s payload to its targets (those in `batching` are left for a batch), and signs and records its
/// statement (the catalogue is not saved).
fn sign_plan<'a>(
    ctx: &mut Context<'_>,
    op: &Operator<'_>,
    (name, id, version, previous, scope, targets, payload): Plan<'a>,
    batching: &std::collections::BTreeSet<AgentId>,
) -> Result<SignedPut<'a>, CredError> {
    let mut envelopes = Vec::with_capacity(targets.certs.len());
    let mut deferred = Vec::new();
    let mut sealed_for: Vec<AgentId> = targets.certs.iter().map(|c| c.agent_id.clone()).collect();
    sealed_for.dedup();
    for cert in targets.certs {
        if batching.contains(&cert.agent_id) {
            deferred.push(cert);
            continue;
        }
        let envelope =
            seal(&cert.wrap, payload.bytes()).map_err(|e| CredError::Invalid(e.to_string()))?;
        envelopes.push(EnvelopeFor {
            agent: cert.agent_id.clone(),
            key: cert.wrap.fingerprint(),
            envelope,
        });
    }
    let salt = Salt::random();
    let c = commitment::compute(&salt, &id, version, payload);
    let st = CredentialStatement::new(
        id,
        version,
        0,
        name.clone(),
        scope.clone(),
        salt,
        c,
        op.id.clone(),
        ctx.now,
    );
    let statement = ctx.sign_and_record(&st)?;
    let report = PutReport {
        id,
        name: name.clone(),
        version,
        scope_change: previous
            .filter(|p| *p != scope)
            .map(|p| ScopeDiff::between(&p, &scope)),
        scope,
        sealed_for,
        skipped: targets.skipped,
    };
    Ok(SignedPut {
        report,
        statement,
        singles: envelopes,
        deferred,
        payload,
    })
}

/// The most bytes of one `POST /v1/credentials/batch` body the tool builds (the relay takes 2 MiB): a larger one
/// is split in two requests (a single statement goes as it is).
const BATCH_BODY_BUDGET: usize = 1024 * 1024;

/// Sends a signed chunk in batch requests (`POST /v1/credentials/batch`), accepting each request's statements in the
/// catalogue once the relay took it; on a failure, what was not sent stays pending and is reported.
async fn post_batches(
    ctx: &mut Context<'_>,
    client: &AdminClient,
    op: &Operator<'_>,
    chunk: Vec<SignedPut<'_>>,
    reports: &mut Vec<PutReport>,
) -> Result<(), CredError> {
    let mut ranges: std::collections::VecDeque<std::ops::Range<usize>> =
        std::collections::VecDeque::new();
    ranges.push_back(0..chunk.len());
    while let Some(range) = ranges.pop_front() {
        let part = chunk.get(range.clone()).unwrap_or_default();
        let sent = match batch_body(part) {
            Ok(body) => {
                let bytes =
                    serde_json::to_vec(&body).map_err(|e| CredError::Invalid(e.to_string()));
                match bytes {
                    Ok(b) if b.len() > BATCH_BODY_BUDGET && range.len() > 1 => {
                        let mid = range.start + range.len() / 2;
                        ranges.push_front(mid..range.end);
                        ranges.push_front(range.start..mid);
                        continue;
                    }
                    Ok(_) => post_batch(ctx, client, &body, part).await,
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            // The statements of this request and after it were signed and recorded pending, and not sent.
            let _ = ctx.catalogue.save(op.dir);
            let unsent: Vec<String> = chunk
                .get(range.start..)
                .unwrap_or_default()
                .iter()
                .map(|s| s.report.name.as_str().to_owned())
                .collect();
            let failed = format!(
                "the batch request of {} credential(s) from {}",
                part.len(),
                unsent.first().map_or("", String::as_str)
            );
            return Err(partial(reports, failed, unsent, e));
        }
        reports.extend(part.iter().map(|s| s.report.clone()));
    }
    Ok(())
}

/// Posts one batch request and accepts its statements in the catalogue.
async fn post_batch(
    ctx: &mut Context<'_>,
    client: &AdminClient,
    body: &tessera_proto::admin::PutBatchBody,
    part: &[SignedPut<'_>],
) -> Result<(), CredError> {
    let value = serde_json::to_value(body).map_err(|e| CredError::Invalid(e.to_string()))?;
    client.post("/v1/credentials/batch", &value).await?;
    for s in part {
        ctx.catalogue
            .accept(&s.statement.verified, &s.statement.signed)?;
    }
    Ok(())
}

/// The batch request for `part`: its statements, its single envelopes, and the rest sealed per agent key.
fn batch_body(part: &[SignedPut<'_>]) -> Result<tessera_proto::admin::PutBatchBody, CredError> {
    let sealable: Vec<batch_seal::Sealable<'_>> = part
        .iter()
        .map(|s| batch_seal::Sealable {
            id: s.report.id,
            version: s.report.version,
            payload: s.payload,
            statement_bytes: s.statement.signed.payload.len()
                + s.statement.signed.signer_cert.len()
                + s.statement.signed.signature.len(),
            certs: &s.deferred,
        })
        .collect();
    let (mut envelopes, batches) = batch_seal::seal_per_key(&sealable)?;
    for s in part {
        envelopes.extend(
            s.singles
                .iter()
                .map(|e| tessera_proto::admin::ItemEnvelopeFor {
                    credential_id: s.report.id,
                    agent: e.agent.clone(),
                    key: e.key,
                    envelope: e.envelope.clone(),
                }),
        );
    }
    Ok(tessera_proto::admin::PutBatchBody {
        statements: part.iter().map(|s| s.statement.signed.clone()).collect(),
        envelopes,
        batches,
    })
}

/// How to change a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rescope {
    /// Add agents (explicit scope).
    Grant,
    /// Remove agents; an all-agents scope becomes every agent with a live certificate in `issued.json`, minus these.
    Revoke,
}

/// `grant` / `revoke`: re-signs the catalogue's statement of the current version with a new scope and the next
/// scope revision. No plaintext is needed: newly granted agents receive the credential by peer rewrap.
pub async fn rescope(
    client: &AdminClient,
    op: &Operator<'_>,
    name: &CredentialName,
    agents: &[AgentId],
    how: Rescope,
) -> Result<(RescopeReport, Vec<String>), CredError> {
    let registry = Registry::require(op.dir)?;
    let mut ctx = Context::load(client, op).await?;
    let entry = ctx
        .current(name)?
        .ok_or_else(|| CredError::NotInCatalogue(name.as_str().to_owned()))?;
    if let Some(p) = ctx.unconfirmed_version(name) {
        return Err(CredError::Invalid(format!(
            "{} version {} was signed but the relay has not confirmed it (a put that failed or was interrupted): \
             put it again (`tessera cred put {}`) before changing its scope",
            name.as_str(),
            p.version,
            name.as_str()
        )));
    }
    // Our own catalogue's copy: salt and commitment come from what was signed, never from the relay, and only while
    // its signer is still a valid operator (a revoked operator's chosen plaintext is never re-signed as ours).
    let current = entry
        .statement
        .verify(op.ca, &ctx.revoked)
        .map_err(|e| {
            CredError::Invalid(format!(
                "the current version of {} was signed by {} and no longer verifies ({e}); rotate it first: \
                 `tessera cred put {} --agent ...`",
                name.as_str(),
                entry.signer.as_str(),
                name.as_str()
            ))
        })?
        .statement;
    if current.credential_id != entry.id || current.name != *name {
        return Err(CredError::Invalid(format!(
            "catalogue entry for {} holds a statement for {} {}",
            name.as_str(),
            current.credential_id,
            current.name.as_str()
        )));
    }
    let scope = match (how, &entry.scope) {
        (Rescope::Grant, Scope::All) => {
            return Err(CredError::Invalid(format!(
                "{} is already in scope of every agent",
                name.as_str()
            )))
        }
        (Rescope::Grant, Scope::Explicit { agents: have }) => {
            for a in agents {
                if registry.live(a, op.ca, ctx.now, &ctx.revoked).is_empty() {
                    return Err(NotCertified(a.clone()).into());
                }
            }
            Scope::explicit(have.iter().chain(agents).cloned())
        }
        (Rescope::Revoke, Scope::Explicit { agents: have }) => {
            Scope::explicit(have.iter().filter(|a| !agents.contains(a)).cloned())
        }
        (Rescope::Revoke, Scope::All) => {
            // Every agent the CA certified (not the relay's list), minus those named.
            let live = registry.live_agents(op.ca, ctx.now, &ctx.revoked);
            for a in &ctx.agents {
                if !live.contains(&a.id) {
                    ctx.notes.push(format!(
                        "the relay lists {} which has no live certificate in issued.json: not in the new scope",
                        a.id.as_str()
                    ));
                }
            }
            Scope::explicit(live.into_iter().filter(|a| !agents.contains(a)))
        }
    };
    let diff = ScopeDiff::between(&entry.scope, &scope);
    diff.only(how == Rescope::Grant, agents)
        .map_err(CredError::Invalid)?;
    let revision = entry
        .scope_revision
        .checked_add(1)
        .ok_or_else(|| CredError::Overflow(name.as_str().to_owned()))?;
    let st = CredentialStatement::new(
        entry.id,
        entry.version,
        revision,
        name.clone(),
        scope.clone(),
        current.salt,
        current.commitment,
        op.id.clone(),
        ctx.now,
    );
    ctx.sign_and_post(client, &st, Vec::new()).await?;
    Ok((
        RescopeReport {
            id: entry.id,
            version: entry.version,
            scope_revision: revision,
            scope,
            scope_change: diff,
        },
        ctx.notes,
    ))
}

/// Which credential `cred rm` deletes.
#[derive(Debug, Clone)]
pub enum Target {
    /// By name.
    Name(CredentialName),
    /// By id.
    Id(CredentialId),
}

/// `cred rm`: the id and version come from the catalogue (never from the relay's listing); the operator signs a
/// tombstone for them (every version up to the catalogue's) and posts it to `POST /v1/credentials/{id}/tombstone`:
/// the relay deletes the credential and forwards the tombstone to its agents, which verify it and purge. The id is
/// never accepted again by this catalogue.
pub async fn remove(
    client: &AdminClient,
    op: &Operator<'_>,
    target: &Target,
) -> Result<(Entry, Vec<String>), CredError> {
    let mut ctx = Context::load(client, op).await?;
    let name = match target {
        Target::Name(n) => n.clone(),
        Target::Id(id) => ctx
            .catalogue
            .by_id(id)
            .map(|e| e.name.clone())
            .ok_or_else(|| CredError::NotInCatalogue(id.to_string()))?,
    };
    let entry = match ctx.current(&name)? {
        Some(e) => e,
        None if ctx.catalogue.deleted.values().any(|d| d.name == name) => {
            return Err(CredError::Invalid(format!(
                "{} is already deleted",
                name.as_str()
            )))
        }
        None => return Err(CredError::NotInCatalogue(name.as_str().to_owned())),
    };
    let tombstone = CredentialTombstone::new(
        entry.id,
        entry.name.clone(),
        entry.version,
        op.id.clone(),
        ctx.now,
    );
    let signed = Signed::sign(&tombstone, op.key, op.cert)
        .map_err(|e| CredError::Invalid(format!("the tombstone could not be signed: {e}")))?;
    let body = serde_json::to_value(TombstoneBody { tombstone: signed })
        .map_err(|e| CredError::Invalid(format!("the tombstone could not be encoded: {e}")))?;
    client
        .post(&format!("/v1/credentials/{}/tombstone", entry.id), &body)
        .await?;
    ctx.catalogue.delete(&name);
    ctx.catalogue.save(op.dir)?;
    Ok((entry, ctx.notes))
}

/// What `cred adopt` did with one credential the relay lists.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Adopted {
    /// The name.
    pub name: String,
    /// The id.
    pub id: CredentialId,
    /// `new` (trusted on first use), `newer`, `same`, or `refused`.
    pub outcome: &'static str,
    /// Who signed it, or why it was refused.
    pub detail: String,
}

/// `cred adopt`: learns credentials the relay lists (those named, or all) from their signed statements, after
/// verifying them against the CA. A name the catalogue does not know is trusted on first use (reported as `new`);
/// a known one only moves forward; anything contradicting the catalogue is refused.
pub async fn adopt(
    client: &AdminClient,
    op: &Operator<'_>,
    names: &[CredentialName],
) -> Result<Vec<Adopted>, CredError> {
    let mut ctx = Context::load(client, op).await?;
    let mut out = Vec::new();
    let views: Vec<CredentialView> = ctx
        .creds
        .iter()
        .filter(|v| !v.deleted && (names.is_empty() || names.contains(&v.name)))
        .cloned()
        .collect();
    for n in names {
        if !views.iter().any(|v| v.name == *n) {
            return Err(CredError::Invalid(format!(
                "the relay lists no credential {}",
                n.as_str()
            )));
        }
    }
    for v in views {
        let refused = |detail: String| Adopted {
            name: v.name.as_str().to_owned(),
            id: v.id,
            outcome: "refused",
            detail,
        };
        let verified = match ctx.verify_current(&v.statement) {
            Ok(x) => x,
            Err(e) => {
                out.push(refused(format!("the statement does not verify: {e}")));
                continue;
            }
        };
        let st = &verified.statement;
        if st.credential_id != v.id || st.name != v.name {
            out.push(refused(format!(
                "listed as {} {} but its statement is for {} {}",
                v.name.as_str(),
                v.id,
                st.name.as_str(),
                st.credential_id
            )));
            continue;
        }
        match ctx.catalogue.accept(&verified, &v.statement) {
            Ok(change) => out.push(Adopted {
                name: st.name.as_str().to_owned(),
                id: st.credential_id,
                outcome: match change {
                    Change::New => "new",
                    Change::Newer { .. } => "newer",
                    Change::Same => "same",
                },
                detail: format!(
                    "version {} revision {} signed by {}",
                    st.version,
                    st.scope_revision,
                    st.creator.as_str()
                ),
            }),
            Err(e) => out.push(refused(e.to_string())),
        }
    }
    ctx.catalogue.save(op.dir)?;
    Ok(out)
}

//! Carries out the key rotation's actions ([`crate::rotation`]): each step writes its keys and the state it leads to
//! in one atomic, flushed store batch ([`Store::apply_self`]), then talks to the session and the relay. Every step
//! is logged and written to the local audit (`op` `rotation`).

use std::sync::Arc;

use rustls::ClientConfig;
use tessera_proto::cert::{AgentCertificate, CertSerial, IdentityKey, RenewalRequest};
use tessera_proto::envelope::WrapPrivateKey;
use tessera_proto::receipt::ReceiptFact;
use tessera_proto::secret::SecretBytes;
use tessera_proto::wire::{
    RenewalCertificate, RenewalRequested, RotationCompleted, RotationFailed, Up,
};
use tokio::sync::mpsc;

use super::{unix_now, Core};
use crate::identity::{check_certificate, IdentityError};
use crate::rotation::{Context, Rotation, RotationAction, RotationEvent};
use crate::session::event_loop::SessionControl;
use crate::session::registration::Registration;
use crate::session::tls::{identity_config, TlsError};
use crate::store::{AuditEntry, AuditOutcome, SelfRecord, Store, StoreError};

/// How the core reaches the session for a rotation: the event-loop task's control channel and the broker's CA
/// roots (to build a TLS configuration for another certificate).
#[derive(Debug, Clone)]
pub struct SessionHandle {
    /// To the event-loop task.
    pub control: mpsc::Sender<SessionControl>,
    /// The broker's CA certificates, DER.
    pub roots: Vec<Vec<u8>>,
}

/// The green certificate the session uses while it is being validated (receipts are still signed with blue, the
/// committed identity, until the switch).
#[derive(Debug)]
pub(super) struct Validating {
    /// The green certificate, DER.
    pub(super) cert: Vec<u8>,
    /// Its serial: the relay's acknowledgement must name it.
    pub(super) serial: CertSerial,
    /// The session identity generation that connects with it.
    pub(super) generation: u64,
}

/// Why a rotation step failed (logged once, in [`Core::rotation_event`]; the state is left where it was).
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("{0}")]
    Invalid(String),
}

fn json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StepError> {
    serde_json::to_vec(v)
        .map_err(|_| StepError::Invalid("could not encode a rotation record".into()))
}

fn local_audit(store: &Store, detail: String) {
    let mut entry = AuditEntry::wire_refusal("rotation", None, detail);
    entry.outcome = AuditOutcome::Rotation;
    if let Err(e) = store.audit(entry) {
        tracing::error!(error = %e, "could not write the local audit");
    }
}

/// The rotation state stored, resumed after a restart (a validation under way starts again).
pub(super) fn load(store: &Store) -> Rotation {
    let r = stored(store);
    if r != Rotation::default() {
        tracing::info!(state = r.name(), "key rotation: resuming");
    }
    r
}

fn stored(store: &Store) -> Rotation {
    match store.get_self(SelfRecord::Rotation) {
        Ok(Some(bytes)) => bytes
            .expose(|b| serde_json::from_slice::<Rotation>(b))
            .map_or_else(
                |e| {
                    tracing::error!(error = %e, "the stored key rotation state does not parse; starting from blue");
                    Rotation::default()
                },
                Rotation::resume,
            ),
        Ok(None) => Rotation::default(),
        Err(e) => {
            tracing::error!(error = %e, "could not read the key rotation state; starting from blue");
            Rotation::default()
        }
    }
}

fn secret(store: &Store, item: SelfRecord, what: &'static str) -> Result<SecretBytes, StepError> {
    store
        .get_self(item)?
        .ok_or_else(|| StepError::Invalid(format!("the {what} of the rotation is missing")))
}

impl Core {
    fn rotation_context(&self) -> Context {
        Context {
            now: unix_now(),
            active: (
                self.keys.cert.not_before,
                self.keys.cert.not_after,
                self.keys.cert.serial.clone(),
            ),
            online: self.registration == Registration::Online,
            policy: self.cfg.current().rotation.policy(),
        }
    }

    /// Whether the current connection was made with the green certificate under validation (not a connection of
    /// the identity before, whose CONNACK can arrive after the switch was asked for).
    pub(super) fn validating_connected(&self) -> bool {
        self.validating
            .as_ref()
            .is_some_and(|v| v.generation == self.connected_generation)
    }

    /// The certificate to register with: the green one over a connection made with it, else the one in use.
    pub(super) fn register_cert(&self) -> Vec<u8> {
        match &self.validating {
            Some(v) if self.validating_connected() => v.cert.clone(),
            _ => self.keys.cert.der.clone(),
        }
    }

    /// The serial of [`Core::register_cert`].
    pub(super) fn register_serial(&self) -> CertSerial {
        match &self.validating {
            Some(v) if self.validating_connected() => v.serial.clone(),
            _ => self.keys.cert.serial.clone(),
        }
    }

    /// Feeds `event` to the rotation state machine and carries out what it asks. A step that fails leaves the
    /// stored state where it was (the state machine is asked again on the next event).
    pub(super) fn rotation_event(&mut self, event: &RotationEvent) {
        let ctx = self.rotation_context();
        let (next, actions) = self.rotation.clone().handle(event, &ctx);
        if actions.is_empty() {
            self.rotation = next;
            return;
        }
        let from = self.rotation.name();
        let result = tokio::task::block_in_place(|| {
            actions
                .iter()
                .try_for_each(|a| self.rotation_action(a, &next, ctx.now))
        });
        match result {
            Ok(()) => {
                if from != next.name() {
                    tracing::info!(from, to = next.name(), "key rotation");
                }
                self.rotation = next;
            }
            // The stored green certificate no longer verifies (revoked or expired before the switch): give it up
            // rather than try it every second until blue expires.
            Err(StepError::Identity(e)) if *event != RotationEvent::GreenUnusable => {
                tracing::warn!(error = %e, state = from, "the renewed certificate no longer verifies; giving it up");
                self.rotation_event(&RotationEvent::GreenUnusable);
            }
            Err(e) => {
                tracing::error!(error = %e, state = from, "a key rotation step failed; it is tried again later");
                local_audit(&self.store, format!("{from}: step failed: {e}"));
            }
        }
    }

    fn rotation_action(
        &mut self,
        action: &RotationAction,
        next: &Rotation,
        now: i64,
    ) -> Result<(), StepError> {
        match action {
            RotationAction::Persist => self
                .store
                .apply_self(&[(SelfRecord::Rotation, Some(&json(next)?))])?,
            RotationAction::GenerateAndRequest => self.generate_and_request(next, now)?,
            RotationAction::SendRequest => {
                let bytes = secret(&self.store, SelfRecord::RenewalRequest, "renewal request")?;
                let request: RenewalRequest =
                    bytes.expose(|b| serde_json::from_slice(b)).map_err(|_| {
                        StepError::Invalid("the stored renewal request does not parse".into())
                    })?;
                self.publish_up(&Up::RenewalRequested(RenewalRequested { request }));
            }
            RotationAction::StoreCertificate => {
                let der = self
                    .pending_cert
                    .take()
                    .ok_or_else(|| StepError::Invalid("no certificate to store".into()))?;
                self.store.apply_self(&[
                    (SelfRecord::GreenCertificate, Some(&der)),
                    (SelfRecord::Rotation, Some(&json(next)?)),
                ])?;
                local_audit(&self.store, format!("green certified: {}", serial_of(next)));
            }
            RotationAction::StartValidation => self.start_validation()?,
            RotationAction::Commit => self.commit_green(next, now)?,
            RotationAction::SendCompleted => {
                if let Rotation::GreenActive { blue_serial, .. } = next {
                    self.send_completed(blue_serial, now)?;
                }
            }
            RotationAction::Abandon {
                reason,
                serial,
                retry_at,
            } => {
                // Stored first: if this fails, nothing changed and the state machine asks again; the session goes
                // back to blue only once green is gone for good.
                let tls = identity_config(
                    &self.keys.identity,
                    &self.keys.cert.der,
                    &self.session.roots,
                )?;
                self.store.apply_self(&[
                    (SelfRecord::GreenIdentityKey, None),
                    (SelfRecord::GreenWrapKey, None),
                    (SelfRecord::GreenCertificate, None),
                    (SelfRecord::RenewalRequest, None),
                    (SelfRecord::Rotation, Some(&json(next)?)),
                ])?;
                // During a validation the only decrypt-only key is green's (a rotation starts from blue active,
                // after any earlier blue was destroyed).
                self.keys.decrypt_only.clear();
                if self.validating.take().is_some() {
                    let _ = self.use_identity(tls);
                }
                tracing::warn!(serial = %serial, ?reason, retry_at, "the renewed certificate failed validation: kept the current one, discarded the new keys");
                local_audit(
                    &self.store,
                    format!("green {serial} failed validation ({reason:?}); blue kept; retry at {retry_at}"),
                );
                self.publish_up(&Up::RotationFailed(RotationFailed {
                    serial: serial.clone(),
                    reason: *reason,
                    retry_at: *retry_at,
                }));
            }
            RotationAction::DestroyBlue => {
                self.store.apply_self(&[
                    (SelfRecord::PreviousWrapKey, None),
                    (SelfRecord::Rotation, Some(&json(next)?)),
                ])?;
                self.keys.decrypt_only.clear();
                tracing::info!(
                    "the previous wrap key is destroyed (its certificate is revoked or expired)"
                );
                local_audit(
                    &self.store,
                    "blue revoked: previous wrap key destroyed".into(),
                );
            }
        }
        Ok(())
    }

    fn generate_and_request(&mut self, next: &Rotation, now: i64) -> Result<(), StepError> {
        let identity = IdentityKey::generate().map_err(|e| StepError::Invalid(e.to_string()))?;
        let wrap = WrapPrivateKey::generate().map_err(|e| StepError::Invalid(e.to_string()))?;
        let request = RenewalRequest::new(
            &self.keys.cert,
            &self.keys.identity,
            &identity,
            wrap.public_key(),
            now,
        )
        .map_err(|e| StepError::Invalid(e.to_string()))?;
        let identity_der = identity
            .to_pkcs8_der()
            .map_err(|e| StepError::Invalid(e.to_string()))?;
        let wrap_der = wrap.to_pkcs8_der();
        let request_json = json(&request)?;
        let state = json(next)?;
        identity_der.expose(|i| {
            wrap_der.expose(|w| {
                self.store.apply_self(&[
                    (SelfRecord::GreenIdentityKey, Some(i)),
                    (SelfRecord::GreenWrapKey, Some(w)),
                    (SelfRecord::GreenCertificate, None),
                    (SelfRecord::RenewalRequest, Some(&request_json)),
                    (SelfRecord::Rotation, Some(&state)),
                ])
            })
        })?;
        tracing::info!(serial = %self.keys.cert.serial, "key rotation: new keys generated, renewal request sent");
        local_audit(
            &self.store,
            format!(
                "green issued: renewal of {} requested",
                self.keys.cert.serial
            ),
        );
        self.publish_up(&Up::RenewalRequested(RenewalRequested { request }));
        Ok(())
    }

    /// The green identity and wrap keys, and the stored green certificate (DER, and checked against them and the
    /// pinned CA now).
    fn green(&self) -> Result<(IdentityKey, WrapPrivateKey, Vec<u8>, AgentCertificate), StepError> {
        let identity = IdentityKey::from_pkcs8_der(&secret(
            &self.store,
            SelfRecord::GreenIdentityKey,
            "green identity key",
        )?)
        .map_err(|e| StepError::Invalid(e.to_string()))?;
        let wrap = WrapPrivateKey::from_pkcs8_der(&secret(
            &self.store,
            SelfRecord::GreenWrapKey,
            "green wrap key",
        )?)
        .map_err(|e| StepError::Invalid(e.to_string()))?;
        let cert = secret(
            &self.store,
            SelfRecord::GreenCertificate,
            "green certificate",
        )?
        .expose(<[u8]>::to_vec);
        let checked = check_certificate(
            &cert,
            &self.keys.id,
            &identity,
            &wrap,
            &self.keys.ca,
            &self.keys.revocations,
            unix_now(),
        )?;
        Ok((identity, wrap, cert, checked))
    }

    fn start_validation(&mut self) -> Result<(), StepError> {
        let (identity, wrap, cert, checked) = self.green()?;
        let serial = checked.serial;
        let tls = identity_config(&identity, &cert, &self.session.roots)?;
        // Envelopes sealed to green open from now on (the relay learns it at the green registration).
        self.keys.decrypt_only.push(wrap);
        let generation = self.use_identity(tls);
        self.validating = Some(Validating {
            cert,
            serial,
            generation,
        });
        tracing::info!("key rotation: reconnecting with the renewed certificate to validate it");
        local_audit(&self.store, "green validating: reconnecting with it".into());
        Ok(())
    }

    /// Asks the session to reconnect with `tls`; the generation its connection will carry.
    fn use_identity(&mut self, tls: Arc<ClientConfig>) -> u64 {
        self.session_generation = self.session_generation.wrapping_add(1);
        let generation = self.session_generation;
        if self
            .session
            .control
            .try_send(SessionControl::UseIdentity { tls, generation })
            .is_err()
        {
            tracing::error!("could not reach the session task to change the certificate");
        }
        generation
    }

    fn commit_green(&mut self, next: &Rotation, now: i64) -> Result<(), StepError> {
        let (identity, wrap, cert_der, cert) = self.green()?;
        let blue_wrap = self.keys.wrap.to_pkcs8_der();
        let identity_der = identity
            .to_pkcs8_der()
            .map_err(|e| StepError::Invalid(e.to_string()))?;
        let wrap_der = wrap.to_pkcs8_der();
        let fp = wrap.public_key().fingerprint();
        let state = json(next)?;
        identity_der.expose(|i| {
            wrap_der.expose(|w| {
                blue_wrap.expose(|b| {
                    self.store.apply_self(&[
                        (SelfRecord::IdentityKey, Some(i)),
                        (SelfRecord::WrapKey, Some(w)),
                        (SelfRecord::Certificate, Some(&cert_der)),
                        (SelfRecord::PreviousWrapKey, Some(b)),
                        (SelfRecord::RegisteredWrapKey, Some(&fp.0)),
                        (SelfRecord::GreenIdentityKey, None),
                        (SelfRecord::GreenWrapKey, None),
                        (SelfRecord::GreenCertificate, None),
                        (SelfRecord::RenewalRequest, None),
                        (SelfRecord::Rotation, Some(&state)),
                    ])
                })
            })
        })?;
        let blue_serial = std::mem::replace(&mut self.keys.cert, cert).serial;
        let blue_wrap = std::mem::replace(&mut self.keys.wrap, wrap);
        self.keys.identity = identity;
        self.keys.decrypt_only = vec![blue_wrap];
        self.validating = None;
        tracing::info!(blue = %blue_serial, green = %self.keys.cert.serial, "key rotation: switched to the renewed certificate; the old wrap key is kept for decryption until it is revoked");
        local_audit(
            &self.store,
            format!(
                "green active: switched from {blue_serial} to {}; blue wrap key kept decrypt-only",
                self.keys.cert.serial
            ),
        );
        self.send_completed(&blue_serial, now)
    }

    fn send_completed(&self, blue_serial: &CertSerial, now: i64) -> Result<(), StepError> {
        let receipt = self
            .keys
            .receipt(
                ReceiptFact::Rotated {
                    previous_serial: blue_serial.clone(),
                    serial: self.keys.cert.serial.clone(),
                },
                now,
            )
            .map_err(|e| StepError::Invalid(e.to_string()))?;
        self.publish_up(&Up::RotationCompleted(RotationCompleted { receipt }));
        Ok(())
    }

    /// A certificate the relay says the CA issued for the green keys: verified against the pinned CA and the
    /// stored green keys before the state machine hears of it.
    pub(super) fn on_renewal_certificate(&mut self, msg: &RenewalCertificate) {
        if !matches!(self.rotation, Rotation::GreenIssued { .. }) {
            tracing::warn!(
                state = self.rotation.name(),
                "dropped a renewal certificate: no renewal is waiting for one"
            );
            return;
        }
        // Checked against the stored request's public keys: no private key is loaded for a certificate the relay
        // sent, and a certificate for anything else is refused before it touches the store.
        let checked = tokio::task::block_in_place(|| -> Result<CertSerial, StepError> {
            let bytes = secret(&self.store, SelfRecord::RenewalRequest, "renewal request")?;
            let request: RenewalRequest =
                bytes.expose(|b| serde_json::from_slice(b)).map_err(|_| {
                    StepError::Invalid("the stored renewal request does not parse".into())
                })?;
            let cert = self
                .keys
                .ca
                .verify_agent(&msg.cert, unix_now(), &self.keys.revocations)
                .map_err(|source| {
                    StepError::Identity(IdentityError::Invalid {
                        what: "renewal certificate",
                        source,
                    })
                })?;
            if cert.agent_id != self.keys.id
                || cert.identity.spki_der() != request.body.identity_spki.as_slice()
                || cert.wrap.spki_der() != request.body.wrap_spki.as_slice()
            {
                return Err(StepError::Identity(IdentityError::KeyMismatch));
            }
            Ok(cert.serial)
        });
        match checked {
            Ok(serial) => {
                self.pending_cert = Some(msg.cert.clone());
                self.rotation_event(&RotationEvent::Certified(serial));
                self.pending_cert = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "refused a renewal certificate: not the CA's certificate for this agent's new keys");
                local_audit(&self.store, format!("REFUSED renewal certificate: {e}"));
            }
        }
    }

    /// After a newer revocation list: the blue certificate's serial on it ends the grace period.
    pub(super) fn check_blue_revoked(&mut self) {
        if let Rotation::GreenActive { blue_serial, .. } = &self.rotation {
            if self.keys.revocations.is_revoked(blue_serial) {
                self.rotation_event(&RotationEvent::BlueRevoked);
            }
        }
    }
}

fn serial_of(r: &Rotation) -> String {
    match r {
        Rotation::GreenCertified { serial, .. } | Rotation::GreenValidating { serial, .. } => {
            serial.to_string()
        }
        _ => String::new(),
    }
}

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tessera_proto::cert::{IdentityKey, OrgCa, Validity};
use tessera_proto::commitment::{self, Salt};
use tessera_proto::ids::{AgentId, CredentialId, CredentialName, OperatorId};
use tessera_proto::secret::SecretPayload;
use tessera_proto::statement::{CredentialStatement, RevocationList, Scope, Signed};

use super::{Catalogue, CatalogueError, Change};

struct Org {
    ca: OrgCa,
    key: IdentityKey,
    cert: Vec<u8>,
}

fn org() -> Org {
    let ca = OrgCa::generate("Test Org", Validity::days_from(1_700_000_000, 3650)).unwrap();
    let key = IdentityKey::generate().unwrap();
    let cert = ca
        .issue_operator(
            &OperatorId::new("alice").unwrap(),
            key.public_key(),
            Validity::days_from(1_700_000_000, 3650),
        )
        .unwrap();
    Org { ca, key, cert }
}

fn signed(
    o: &Org,
    id: CredentialId,
    name: &str,
    version: u64,
    revision: u64,
    scope: Scope,
) -> Signed<CredentialStatement> {
    let payload = SecretPayload::from_plain_text("s3cret").unwrap();
    let salt = Salt::random();
    let c = commitment::compute(&salt, &id, version, &payload);
    let st = CredentialStatement::new(
        id,
        version,
        revision,
        CredentialName::new(name).unwrap(),
        scope,
        salt,
        c,
        OperatorId::new("alice").unwrap(),
        1_700_000_100,
    );
    Signed::sign(&st, &o.key, &o.cert).unwrap()
}

fn accept(
    cat: &mut Catalogue,
    o: &Org,
    s: &Signed<CredentialStatement>,
) -> Result<Change, CatalogueError> {
    let v = s.verify(o.ca.pinned(), &RevocationList::empty()).unwrap();
    cat.accept(&v, s)
}

#[test]
fn a_name_stays_bound_to_its_id_and_versions_only_move_forward() {
    let o = org();
    let mut cat = Catalogue::default();
    let id = CredentialId::random();
    let v1 = signed(&o, id, "db", 1, 0, Scope::All);
    assert_eq!(accept(&mut cat, &o, &v1), Ok(Change::New));
    assert_eq!(accept(&mut cat, &o, &v1), Ok(Change::Same));
    let v2 = signed(&o, id, "db", 2, 0, Scope::All);
    assert_eq!(
        accept(&mut cat, &o, &v2),
        Ok(Change::Newer { from: (1, 0) })
    );
    // The older version again: refused, not adopted.
    assert!(matches!(
        accept(&mut cat, &o, &v1),
        Err(CatalogueError::Older {
            claimed_version: 1,
            version: 2,
            ..
        })
    ));
    // Another id under the same name.
    let other = signed(&o, CredentialId::random(), "db", 9, 0, Scope::All);
    assert!(matches!(
        accept(&mut cat, &o, &other),
        Err(CatalogueError::NameBound { signed, .. }) if signed == id
    ));
    // The same id under another name.
    let renamed = signed(&o, id, "web", 3, 0, Scope::All);
    assert!(matches!(
        accept(&mut cat, &o, &renamed),
        Err(CatalogueError::IdRenamed { .. })
    ));
    // A different statement with the same version and revision.
    let twin = signed(&o, id, "db", 2, 0, Scope::All);
    assert!(matches!(
        accept(&mut cat, &o, &twin),
        Err(CatalogueError::Conflicting { .. })
    ));
    assert_eq!(
        cat.get(&CredentialName::new("db").unwrap())
            .unwrap()
            .version,
        2
    );
}

#[test]
fn a_deleted_id_is_never_accepted_again_and_the_name_can_be_reused() {
    let o = org();
    let mut cat = Catalogue::default();
    let old = CredentialId::random();
    let db = CredentialName::new("db").unwrap();
    accept(&mut cat, &o, &signed(&o, old, "db", 1, 0, Scope::All)).unwrap();
    assert_eq!(cat.delete(&db).unwrap().id, old);
    assert!(matches!(
        accept(&mut cat, &o, &signed(&o, old, "db", 2, 0, Scope::All)),
        Err(CatalogueError::Deleted { id, .. }) if id == old
    ));
    let new = CredentialId::random();
    let scope = Scope::explicit([AgentId::new("edge-1").unwrap()]);
    assert_eq!(
        accept(&mut cat, &o, &signed(&o, new, "db", 1, 0, scope)),
        Ok(Change::New)
    );
    assert_eq!(cat.get(&db).unwrap().id, new);
}

#[test]
fn the_catalogue_survives_a_save_and_load() {
    let o = org();
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(Catalogue::load(dir.path()).unwrap(), Catalogue::default());
    let mut cat = Catalogue::default();
    accept(
        &mut cat,
        &o,
        &signed(&o, CredentialId::random(), "db", 1, 0, Scope::All),
    )
    .unwrap();
    cat.delete(&CredentialName::new("db").unwrap());
    accept(
        &mut cat,
        &o,
        &signed(&o, CredentialId::random(), "db", 1, 0, Scope::All),
    )
    .unwrap();
    cat.save(dir.path()).unwrap();
    assert_eq!(Catalogue::load(dir.path()).unwrap(), cat);
}

#[test]
fn a_pending_statement_is_built_on_then_confirmed_or_superseded() {
    let o = org();
    let mut cat = Catalogue::default();
    let db = CredentialName::new("db").unwrap();
    let id = CredentialId::random();
    let v1 = signed(&o, id, "db", 1, 0, Scope::All);
    accept(&mut cat, &o, &v1).unwrap();
    // v2 sent, its answer lost: the next statement builds on it.
    let v2 = signed(&o, id, "db", 2, 0, Scope::All);
    let verified = v2.verify(o.ca.pinned(), &RevocationList::empty()).unwrap();
    cat.record_pending(&verified, &v2).unwrap();
    assert_eq!(cat.get(&db).unwrap().version, 1);
    assert_eq!(cat.latest(&db).unwrap().version, 2);
    // Another id under the pending name is refused even before anything is confirmed.
    let mut fresh = Catalogue::default();
    let other = signed(&o, CredentialId::random(), "db", 1, 0, Scope::All);
    let v = other
        .verify(o.ca.pinned(), &RevocationList::empty())
        .unwrap();
    fresh.record_pending(&v, &other).unwrap();
    assert!(matches!(
        accept(&mut fresh, &o, &v1),
        Err(CatalogueError::NameBound { .. })
    ));
    // The relay serves v2 after all: confirmed, no longer pending.
    assert_eq!(
        accept(&mut cat, &o, &v2),
        Ok(Change::Newer { from: (1, 0) })
    );
    assert!(cat.pending.is_empty());
    assert_eq!(cat.get(&db).unwrap().version, 2);
}

#[test]
fn an_id_is_named_for_acting_by_name_only_when_that_name_resolves_to_it() {
    let o = org();
    let mut cat = Catalogue::default();
    let confirmed = CredentialId::random();
    let s = signed(&o, confirmed, "db", 1, 0, Scope::All);
    accept(&mut cat, &o, &s).unwrap();
    let name = CredentialName::new("db").unwrap();
    assert_eq!(cat.live_name_of(&confirmed), Some(&name));
    // A pending entry under the same name but another id (an edited or corrupted file): `by_id` finds it, but
    // acting on "db" would act on the newer entry, so neither id is named for the other's action.
    let other = CredentialId::random();
    let p = signed(&o, other, "db", 2, 0, Scope::All);
    let v = p.verify(o.ca.pinned(), &RevocationList::empty()).unwrap();
    let mut entry = cat.get(&name).unwrap().clone();
    entry.id = other;
    entry.version = v.statement.version;
    entry.statement = p;
    cat.pending.insert(name.clone(), entry);
    assert!(cat.by_id(&confirmed).is_some());
    assert_eq!(cat.live_name_of(&confirmed), None);
    assert_eq!(cat.live_name_of(&other), Some(&name));
    // Deleting keeps the last live scope, the agents its purge is counted over.
    let scoped = CredentialId::random();
    let edge = Scope::explicit([AgentId::new("edge-1").unwrap()]);
    accept(&mut cat, &o, &signed(&o, scoped, "api", 1, 0, edge.clone())).unwrap();
    cat.delete(&CredentialName::new("api").unwrap());
    assert_eq!(cat.deleted[&scoped].scope, Some(edge));
}

#[test]
fn a_second_different_statement_for_a_pending_version_is_refused() {
    let o = org();
    let mut cat = Catalogue::default();
    let id = CredentialId::random();
    accept(&mut cat, &o, &signed(&o, id, "db", 1, 0, Scope::All)).unwrap();
    let record = |cat: &mut Catalogue, s: &Signed<CredentialStatement>| {
        let v = s.verify(o.ca.pinned(), &RevocationList::empty()).unwrap();
        cat.record_pending(&v, s)
    };
    let a = signed(&o, id, "db", 2, 0, Scope::All);
    record(&mut cat, &a).unwrap();
    // The same statement again is fine (a retry); another one for version 2 (another salt), or below it, is not.
    record(&mut cat, &a).unwrap();
    for other in [
        signed(&o, id, "db", 2, 0, Scope::All),
        signed(&o, id, "db", 1, 1, Scope::All),
    ] {
        assert!(
            matches!(
                record(&mut cat, &other),
                Err(CatalogueError::PendingConflict { version: 2, .. })
            ),
            "a second statement was recorded pending"
        );
    }
    // Building on it goes on: its next revision, its next version.
    record(&mut cat, &signed(&o, id, "db", 2, 1, Scope::All)).unwrap();
    record(&mut cat, &signed(&o, id, "db", 3, 0, Scope::All)).unwrap();
}

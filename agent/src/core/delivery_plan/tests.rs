#![allow(clippy::unwrap_used)]

use tessera_proto::ids::{CredentialId, CredentialName};

use super::{plan, Kind, Step};

fn delivery(id: CredentialId, name: &str) -> Kind {
    Kind::Delivery(vec![(id, CredentialName::new(name).unwrap())])
}

fn steps(batch: Vec<Kind>) -> Vec<Step<usize>> {
    plan(batch.into_iter().enumerate().map(|(i, k)| (k, i)))
}

#[test]
fn distinct_deliveries_are_stored_together_in_arrival_order() {
    let (a, b, c) = (
        CredentialId::random(),
        CredentialId::random(),
        CredentialId::random(),
    );
    assert_eq!(
        steps(vec![delivery(a, "a"), delivery(b, "b"), delivery(c, "c")]),
        [Step::Group(vec![0, 1, 2])]
    );
    assert!(steps(Vec::new()).is_empty());
}

#[test]
fn the_same_delivery_twice_is_checked_again_after_the_first_is_stored() {
    let (a, b) = (CredentialId::random(), CredentialId::random());
    assert_eq!(
        steps(vec![delivery(a, "a"), delivery(b, "b"), delivery(a, "a")]),
        [Step::Group(vec![0, 1]), Step::Group(vec![2])]
    );
}

#[test]
fn two_versions_of_one_credential_are_stored_in_order_in_two_groups() {
    let (a, b) = (CredentialId::random(), CredentialId::random());
    // The statement's version is not the plan's business: the second is checked against the first once stored
    // (newer replaces it, older is refused as stale).
    assert_eq!(
        steps(vec![
            delivery(a, "a"),
            delivery(a, "a"),
            delivery(b, "b"),
            delivery(a, "a")
        ]),
        [
            Step::Group(vec![0]),
            Step::Group(vec![1, 2]),
            Step::Group(vec![3])
        ]
    );
}

#[test]
fn one_credential_under_two_names_is_not_stored_together() {
    // A statement renaming a credential is refused by the checks; still never stored in one batch with the other.
    let a = CredentialId::random();
    assert_eq!(
        steps(vec![delivery(a, "old"), delivery(a, "new")]),
        [Step::Group(vec![0]), Step::Group(vec![1])]
    );
}

#[test]
fn two_credentials_under_one_name_are_not_stored_together() {
    let (a, b) = (CredentialId::random(), CredentialId::random());
    assert_eq!(
        steps(vec![delivery(a, "db"), delivery(b, "db")]),
        [Step::Group(vec![0]), Step::Group(vec![1])]
    );
}

#[test]
fn a_bad_item_among_good_ones_neither_splits_nor_leaves_the_group() {
    let (a, b) = (CredentialId::random(), CredentialId::random());
    // An unparseable statement and a dropped message keep their place: their answers (a refusal, a bare
    // acknowledgement) go out in order with the others'.
    assert_eq!(
        steps(vec![
            delivery(a, "a"),
            Kind::Delivery(Vec::new()),
            Kind::Dropped,
            Kind::Delivery(Vec::new()),
            delivery(b, "b"),
        ]),
        [Step::Group(vec![0, 1, 2, 3, 4])]
    );
    assert_eq!(
        steps(vec![Kind::Dropped, Kind::Dropped]),
        [Step::Group(vec![0, 1])]
    );
}

#[test]
fn any_other_message_sees_every_delivery_before_it_stored() {
    let (a, b) = (CredentialId::random(), CredentialId::random());
    assert_eq!(
        steps(vec![
            delivery(a, "a"),
            Kind::Other,
            Kind::Other,
            delivery(b, "b"),
            delivery(a, "a"),
        ]),
        [
            Step::Group(vec![0]),
            Step::Alone(1),
            Step::Alone(2),
            Step::Group(vec![3, 4])
        ]
    );
}

fn batch(items: &[(CredentialId, &str)]) -> Kind {
    Kind::Delivery(
        items
            .iter()
            .map(|(id, n)| (*id, CredentialName::new(*n).unwrap()))
            .collect(),
    )
}

#[test]
fn a_batched_delivery_counts_as_each_of_its_credentials() {
    let (a, b, c) = (
        CredentialId::random(),
        CredentialId::random(),
        CredentialId::random(),
    );
    // Disjoint batches and single deliveries share a group (one flush).
    assert_eq!(
        steps(vec![batch(&[(a, "a"), (b, "b")]), delivery(c, "c")]),
        [Step::Group(vec![0, 1])]
    );
    // A single delivery of a credential a batch before it carries waits for the batch to be stored.
    assert_eq!(
        steps(vec![batch(&[(a, "a"), (b, "b")]), delivery(b, "b")]),
        [Step::Group(vec![0]), Step::Group(vec![1])]
    );
    // Two batches sharing one credential (a batch replayed, an item moved between batches), or one name.
    assert_eq!(
        steps(vec![
            batch(&[(a, "a"), (b, "b")]),
            batch(&[(c, "c"), (a, "a")]),
            batch(&[(CredentialId::random(), "c")]),
        ]),
        [
            Step::Group(vec![0]),
            Step::Group(vec![1]),
            Step::Group(vec![2])
        ]
    );
}

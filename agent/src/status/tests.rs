use super::*;
use crate::session::registration::Registration;

#[test]
fn times_are_rfc_3339_in_utc() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(1_798_761_600), "2027-01-01T00:00:00Z");
}

#[test]
fn registration_states_have_their_documented_names() {
    let v = RegistrationView::from(&Registration::Backfilling {
        expected: 5,
        received: 2,
    });
    assert_eq!(v.state, "backfilling");
    assert_eq!(
        (v.backfill_expected, v.backfill_received),
        (Some(5), Some(2))
    );
    assert_eq!(
        RegistrationView::from(&Registration::Online).state,
        "online"
    );
    assert_eq!(
        RegistrationView::from(&Registration::Disconnected).state,
        "disconnected"
    );
}

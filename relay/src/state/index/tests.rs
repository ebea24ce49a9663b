use super::Index;

#[test]
fn keys_are_per_owner_in_order_and_an_emptied_owner_is_gone() {
    let ix = Index::from_pairs([("a", 3), ("b", 1), ("a", 1)]);
    assert_eq!(ix.keys_of(&"a"), [1, 3]);
    ix.add(&"a", 2);
    ix.add(&"a", 2);
    assert_eq!(ix.keys_of(&"a"), [1, 2, 3]);
    ix.remove(&"b", &1);
    assert!(ix.keys_of(&"b").is_empty());
    ix.remove(&"c", &1);
    assert_eq!(ix.keys_of(&"a"), [1, 2, 3]);
}

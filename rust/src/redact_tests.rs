//! The redaction of texts into placeholders, masks and blocks.

use super::*;

fn detector() -> Detector {
    Detector::new(
        &[
            ("email".into(), Action::Placeholder),
            ("phone".into(), Action::Mask),
            ("ssn".into(), Action::Block),
        ],
        &[(
            "employee_id".into(),
            "EMP-[0-9]{6}".into(),
            Action::Placeholder,
        )],
    )
    .unwrap()
}

#[test]
fn same_value_same_placeholder_across_texts() {
    let d = detector();
    let mut t = Table::new();
    let a = d.redact("a@x.io wrote to b@x.io", &mut t).unwrap().unwrap();
    assert_eq!(a, "[EMAIL_1] wrote to [EMAIL_2]");
    let b = d
        .redact("reply to b@x.io, EMP-000042", &mut t)
        .unwrap()
        .unwrap();
    assert_eq!(b, "reply to [EMAIL_2], [EMPLOYEE_ID_1]");
    assert_eq!(t.value_of(b"[EMAIL_2]"), Some("b@x.io"));
    assert_eq!(t.value_of(b"[EMAIL_3]"), None);
    assert_eq!(t.max_len(), "[EMPLOYEE_ID_1]".len());
    assert!(t.is_prefix(b"[EMPL"));
    assert!(!t.is_prefix(b"[EMAIL_1]"));
    assert!(!t.is_prefix(b"[X"));
}

#[test]
fn masks_and_nothing_found() {
    let d = detector();
    let mut t = Table::new();
    assert_eq!(
        d.redact("call +1 415 555 2671", &mut t).unwrap().unwrap(),
        "call +* *** *** 2671"
    );
    assert!(t.is_empty());
    assert_eq!(d.redact("nothing here", &mut t).unwrap(), None);
    assert_eq!(
        t.counts()[d.kinds().iter().position(|k| *k == "phone").unwrap()],
        1
    );
}

#[test]
fn block_names_the_kind_never_the_value() {
    let d = detector();
    let mut t = Table::new();
    assert_eq!(
        d.redact("a@x.io 123-45-6789", &mut t),
        Err("ssn".to_string())
    );
}

#[test]
fn unicode_text_around_values() {
    let d = detector();
    let mut t = Table::new();
    let out = d
        .redact(
            "Grüße an jörg@example.de und ölaf@example.de — é a@b.de",
            &mut t,
        )
        .unwrap()
        .unwrap();
    // Addresses are ASCII; the part after the non-ASCII letter is taken.
    assert!(out.ends_with("é [EMAIL_3]"), "{out}");
}

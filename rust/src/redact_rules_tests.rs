//! Each built-in detector on true and false positives.

use crate::redact::{Action, Detector};
use crate::redact_rules::{iban_ok, luhn_ok, mask, MaskStyle};

fn all() -> Detector {
    let ents: Vec<(String, Action)> = crate::redact::builtin_names()
        .into_iter()
        .map(|n| (n.to_string(), Action::Placeholder))
        .collect();
    Detector::new(&ents, &[]).unwrap()
}

/// (kind, value) found in `text`.
fn found(text: &str) -> Vec<(String, String)> {
    let d = all();
    d.find(text)
        .into_iter()
        .map(|f| (d.kind(f.rule).to_string(), text[f.start..f.end].to_string()))
        .collect()
}

fn one(text: &str, kind: &str, value: &str) {
    assert_eq!(
        found(text),
        vec![(kind.to_string(), value.to_string())],
        "in {text:?}"
    );
}

fn none(text: &str) {
    assert_eq!(found(text), vec![], "in {text:?}");
}

#[test]
fn emails() {
    one(
        "write to jane.doe+tag@mail.example.co.uk today",
        "email",
        "jane.doe+tag@mail.example.co.uk",
    );
    one("<BOB@EXAMPLE.COM>", "email", "BOB@EXAMPLE.COM");
    none("user@localhost and @handle and a@b");
    none("foo@bar.c1");
}

#[test]
fn cards_are_luhn_checked() {
    one(
        "card 4111 1111 1111 1111 exp 12/29",
        "card",
        "4111 1111 1111 1111",
    );
    one("card 4111-1111-1111-1111.", "card", "4111-1111-1111-1111");
    one("amex 378282246310005", "card", "378282246310005");
    none("card 4111 1111 1111 1112");
    none("order 1234567890123456");
    none("zeros 0000 0000 0000 0000");
    none("mixed 4111 1111-1111 1111");
    // Luhn passes by chance on the digits of an IBAN with a bad checksum.
    none("iban DE89 3704 0044 0532 0130 01");
    assert!(luhn_ok(b"79927398713"));
    assert!(!luhn_ok(b"79927398710"));
}

#[test]
fn ibans_are_checksummed() {
    one(
        "pay DE89 3704 0044 0532 0130 00 now",
        "iban",
        "DE89 3704 0044 0532 0130 00",
    );
    one(
        "pay GB82WEST12345698765432.",
        "iban",
        "GB82WEST12345698765432",
    );
    one(
        "iban fr1420041010050500013m02606 ok",
        "iban",
        "fr1420041010050500013m02606",
    );
    none("pay DE88 3704 0044 0532 0130 00 now");
    none("GB82WEST12345698765433");
    assert!(iban_ok(b"NL91ABNA0417164300"));
    assert!(!iban_ok(b"NL91ABNA0417164301"));
}

#[test]
fn ibans_give_back_a_swallowed_word() {
    // A greedy match takes "Bank" as a last group; the checksum trims it.
    one(
        "NL91 ABNA 0417 1643 00 Bank",
        "iban",
        "NL91 ABNA 0417 1643 00",
    );
}

#[test]
fn ssns() {
    one("SSN 123-45-6789.", "ssn", "123-45-6789");
    none("SSN 000-45-6789, 666-45-6789, 912-45-6789, 123-00-6789, 123-45-0000");
    none("ref 1-123-45-6789");
}

#[test]
fn ipv4() {
    one("host 192.168.10.200:8080", "ipv4", "192.168.10.200");
    none("version 1.2.3.4.5");
    none("not 256.1.1.1 nor 01.2.3.4");
}

#[test]
fn ipv6() {
    one(
        "addr 2001:db8:85a3::8a2e:370:7334 up",
        "ipv6",
        "2001:db8:85a3::8a2e:370:7334",
    );
    one(
        "at fe80::1ff:fe23:4567:890a.",
        "ipv6",
        "fe80::1ff:fe23:4567:890a",
    );
    none("std::vector<int> and a::b and 10:30:45 and ::");
}

#[test]
fn phones() {
    one("call +1 415 555 2671 now", "phone", "+1 415 555 2671");
    one("call (415) 555-2671", "phone", "(415) 555-2671");
    one("call 415-555-2671", "phone", "415-555-2671");
    one("ring +33612345678", "phone", "+33612345678");
    one("ring 020 7946 0958", "phone", "020 7946 0958");
    none("in 2024-01-15 10:30 there were 2024 2025 2026 of them");
    none("pi is 3.14159 and 123-4567");
}

#[test]
fn api_keys() {
    let keys = [
        "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
        "sk-ant-api03-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAA",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_0123456789abcdefghijABCDEFGHIJ012345",
        "github_pat_11ABCDEFG0123456789_abcdefghij",
        "xoxb-123456789012-abcdefghijkl",
        "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "hf_abcdefghijklmnopqrstuvwxyzABCDEF12",
    ];
    for k in keys {
        one(&format!("key={k} ok"), "api_key", k);
    }
    none("the sk-learn-style-dashed-words-here are prose; task-0123456789abcdefghijkl");
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf\n-----END RSA PRIVATE KEY-----";
    one(&format!("x\n{pem}\ny"), "api_key", pem);
}

#[test]
fn priority_resolves_overlaps() {
    // Digits of an IP are not a phone; a key's digits are not a card.
    one("ip 10.20.30.40", "ipv4", "10.20.30.40");
    one(
        "k sk-4111111111111111abcdefgh",
        "api_key",
        "sk-4111111111111111abcdefgh",
    );
}

#[test]
fn custom_patterns_come_first() {
    let d = Detector::new(
        &[("email".into(), Action::Placeholder)],
        &[(
            "employee_id".into(),
            "EMP-[0-9]{6}".into(),
            Action::Placeholder,
        )],
    )
    .unwrap();
    let f = d.find("EMP-123456 and EMP-12 and a@b.io");
    let got: Vec<&str> = f.iter().map(|x| d.kind(x.rule)).collect();
    assert_eq!(got, vec!["employee_id", "email"]);
}

#[test]
fn config_errors_name_the_setting() {
    let bad = |ents: &[(String, Action)], cust: &[(String, String, Action)]| {
        Detector::new(ents, cust).err().unwrap()
    };
    let e = bad(&[("fax".into(), Action::Mask)], &[]);
    assert_eq!(e.setting, "entities.fax");
    let e = bad(&[], &[("emp".into(), "EMP-(".into(), Action::Mask)]);
    assert_eq!(e.setting, "custom.emp");
    assert!(e.message.starts_with("invalid pattern"), "{}", e.message);
    let e = bad(&[], &[("emp".into(), "x*".into(), Action::Mask)]);
    assert!(e.message.contains("empty"));
    let e = bad(&[], &[("Emp".into(), "x".into(), Action::Mask)]);
    assert_eq!(e.setting, "custom.Emp");
    let e = bad(&[], &[("email".into(), "x".into(), Action::Mask)]);
    assert!(e.message.contains("built-in"));
}

#[test]
fn masks() {
    assert_eq!(
        mask("4111 1111 1111 1111", MaskStyle::KeepLast4),
        "**** **** **** 1111"
    );
    assert_eq!(
        mask("jane.doe@example.com", MaskStyle::Email),
        "****.***@example.com"
    );
    assert_eq!(mask("10.0.0.1", MaskStyle::All), "**.*.*.*");
}

#[test]
fn linear_on_adversarial_input() {
    // Long runs that almost match: still found (or not) in one pass each.
    let text = "1 ".repeat(200_000) + &"a.".repeat(200_000) + &"[".repeat(100_000);
    assert!(found(&text).is_empty());
}

#[test]
fn a_trimmed_match_gives_back_what_follows() {
    let text = "4111 1111 1111 1111 4111 1111 1111 1111";
    let got = found(text);
    assert_eq!(got.len(), 2, "{got:?}");
}

#[test]
fn linear_when_every_candidate_is_rejected() {
    // Each rejected candidate is retried from its next character: still one pass, in effect.
    let text = "4111 1111 1111 1112 ".repeat(20_000)
        + "sk-"
        + &"a".repeat(200_000)
        + &" +1 2".repeat(20_000)
        + &"de00 0000 0000 0000 ".repeat(10_000);
    // A quadratic scan of these 900 KB would take minutes; this takes milliseconds.
    assert!(found(&text).is_empty());
}

//! Password hashes: argon2id of the password and of its MD5 hex (what IMS sends).

use switchboard_proto::{Effect, EffectResult, PasswordHash, Secret};
use switchboard_store::credentials::{
    hash_password, hash_password_with, md5_hex, run_effect_with, verify, Cost, CredentialError,
};

#[test]
fn md5_hex_is_lowercase_hex() {
    assert_eq!(md5_hex("password"), "5f4dcc3b5aa765d61d8327deb882cf99");
    assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
}

#[test]
fn hashes_verify_the_password_and_its_md5_hex() {
    let cost = Cost::cheap();
    let (password, ims) = hash_password_with(&cost, "password").expect("hash");
    assert!(
        password.0.starts_with("$argon2id$v=19$m=8,t=1,p=1$"),
        "{}",
        password.0
    );
    assert!(ims.0.starts_with("$argon2id$"));
    assert!(verify(&password, "password").expect("verify"));
    assert!(!verify(&password, "Password").expect("verify"));
    assert!(!verify(&password, "").expect("verify"));
    assert!(verify(&ims, "5f4dcc3b5aa765d61d8327deb882cf99").expect("verify"));
    assert!(!verify(&ims, "password").expect("verify"));
    assert!(!verify(&password, "5f4dcc3b5aa765d61d8327deb882cf99").expect("verify"));
}

#[test]
fn every_hash_has_its_own_salt() {
    let cost = Cost::cheap();
    let (a, a_ims) = hash_password_with(&cost, "same").expect("hash");
    let (b, b_ims) = hash_password_with(&cost, "same").expect("hash");
    assert_ne!(a, b);
    assert_ne!(a_ims, b_ims);
    assert!(verify(&a, "same").expect("verify") && verify(&b, "same").expect("verify"));
}

#[test]
fn malformed_hashes_are_errors() {
    for bad in [
        "",
        "not a hash",
        "$argon2id$v=19$m=8,t=1,p=1",
        "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ",
        "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
        "$argon2id$v=19$m=0,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
    ] {
        let hash = PasswordHash(bad.to_owned());
        assert!(
            verify(&hash, "password").is_err(),
            "{bad:?} must be an error"
        );
        let effect = Effect::VerifyPassword {
            hash,
            password: Secret("password".into()),
        };
        assert_eq!(
            run_effect_with(&Cost::cheap(), &effect),
            EffectResult::Failed
        );
    }
}

#[test]
fn effects_hash_and_verify() {
    let cost = Cost::cheap();
    let EffectResult::Hashed {
        password,
        ims_password,
    } = run_effect_with(
        &cost,
        &Effect::HashPassword {
            password: Secret("hunter2".into()),
        },
    )
    else {
        panic!("HashPassword answers Hashed");
    };
    let check = |hash: &PasswordHash, given: &str| {
        run_effect_with(
            &cost,
            &Effect::VerifyPassword {
                hash: hash.clone(),
                password: Secret(given.into()),
            },
        )
    };
    assert_eq!(check(&password, "hunter2"), EffectResult::Verified(true));
    assert_eq!(check(&password, "hunter3"), EffectResult::Verified(false));
    assert_eq!(
        check(&ims_password, &md5_hex("hunter2")),
        EffectResult::Verified(true)
    );
    assert_eq!(
        check(&ims_password, "hunter2"),
        EffectResult::Verified(false)
    );
}

#[test]
fn cost_knob() {
    assert_eq!(Cost::default(), Cost::recommended());
    let cheap = Cost::cheap();
    assert_eq!(
        (cheap.memory_kib(), cheap.iterations(), cheap.lanes()),
        (8, 1, 1)
    );
    let custom = Cost::new(64, 2, 1).expect("valid");
    let (hash, _) = hash_password_with(&custom, "x").expect("hash");
    assert!(
        hash.0.starts_with("$argon2id$v=19$m=64,t=2,p=1$"),
        "{}",
        hash.0
    );
    assert!(matches!(
        Cost::new(0, 1, 1),
        Err(CredentialError::InvalidCost(_))
    ));
}

/// The one test at production cost: the recommended parameters land in the hash, and a
/// cheap hash still verifies (verification reads the cost from the hash).
#[test]
fn recommended_cost_hashes_and_verifies() {
    let recommended = Cost::recommended();
    assert_eq!(
        (
            recommended.memory_kib(),
            recommended.iterations(),
            recommended.lanes()
        ),
        (19 * 1024, 2, 1)
    );
    let (password, ims) = hash_password("correct horse").expect("hash");
    assert!(
        password.0.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        password.0
    );
    assert!(verify(&password, "correct horse").expect("verify"));
    assert!(verify(&ims, &md5_hex("correct horse")).expect("verify"));
}

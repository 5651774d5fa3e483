//! The token layer under parallel load from one process: making token objects (key pairs,
//! the audit anchor's data objects) while other threads look objects up or seal with the
//! token's sealing key.
//!
//! SoftHSM2 2.6.1, the release Debian and Ubuntu ship, fails the making call with
//! CKR_GENERAL_ERROR when a C_FindObjects runs at the same moment (upstream issue 573);
//! CI once saw it as a 503 on creating an intermediate CA. This drives the library's
//! `Token` on a real SoftHSM2 token, the way the daemon's workers do, but far denser than
//! HTTP can, so that a lost race shows within seconds.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use common::*;
use scaivault_pki::hsm::{Pin, Token, TokenConfig};
use scaivault_pki::keys::KeySpec;

const MAKERS: usize = 3;
const KEYS_PER_MAKER: usize = 25;
const FINDERS: usize = 3;

#[test]
fn making_objects_while_others_look_objects_up_never_fails() {
    let setup = new_daemon_setup("").unwrap_or_else(|e| panic!("{e}"));
    // SoftHSM2 reads its configuration at C_Initialize, in this process; this binary's
    // only test sets it before the token is opened.
    std::env::set_var("SOFTHSM2_CONF", &setup.softhsm_conf);
    let token = Token::open(TokenConfig {
        module: setup.module.clone().into(),
        token_label: setup.token_label.clone(),
        pin: Pin::new(setup.pin.clone()),
        pool_size: MAKERS + FINDERS,
    })
    .unwrap_or_else(|e| panic!("open the token: {e}"));

    let failures = Mutex::new(Vec::<String>::new());
    let fail = |what: String| {
        failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(what)
    };
    let makers_done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let finds = AtomicUsize::new(0);

    std::thread::scope(|scope| {
        for m in 0..MAKERS {
            let (token, fail, makers_done) = (&token, &fail, &makers_done);
            scope.spawn(move || {
                for i in 0..KEYS_PER_MAKER {
                    if let Err(e) =
                        token.generate_key_pair(KeySpec::EcP256, &format!("race-{m}-{i}"))
                    {
                        fail(format!("generate_key_pair race-{m}-{i}: {e}"));
                    }
                    if let Err(e) =
                        token.replace_data_object(&format!("race-data-{m}"), &[i as u8; 32])
                    {
                        fail(format!("replace_data_object race-data-{m} #{i}: {e}"));
                    }
                }
                makers_done.fetch_add(1, Ordering::SeqCst);
            });
        }
        for f in 0..FINDERS {
            let (token, fail, stop, finds) = (&token, &fail, &stop, &finds);
            scope.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let r = match f % 3 {
                        0 => token.list_objects().map(drop),
                        1 => token.read_data_objects(&format!("race-data-{f}")).map(drop),
                        _ => token.seal(b"a leaf key", b"aad").and_then(|sealed| {
                            match token.unseal(&sealed, b"aad")?.as_slice() {
                                b"a leaf key" => Ok(()),
                                other => panic!("unsealed {other:?}"),
                            }
                        }),
                    };
                    if let Err(e) = r {
                        fail(format!("lookup by finder {f}: {e}"));
                    }
                    finds.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        while makers_done.load(Ordering::SeqCst) < MAKERS {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        stop.store(true, Ordering::SeqCst);
    });

    let failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    assert!(
        failures.is_empty(),
        "{} token calls failed ({} makes, {} lookups ran alongside):\n{}",
        failures.len(),
        MAKERS * KEYS_PER_MAKER * 2,
        finds.load(Ordering::Relaxed),
        failures.join("\n")
    );
    // Every key made is there once, and each data label holds exactly its last value.
    let objects = token
        .list_objects()
        .unwrap_or_else(|e| panic!("list objects: {e}"));
    let keys = objects
        .iter()
        .filter(|o| o.label.starts_with("race-") && !o.label.starts_with("race-data-"))
        .count();
    assert_eq!(
        keys,
        MAKERS * KEYS_PER_MAKER * 2,
        "both halves of every key pair"
    );
    for m in 0..MAKERS {
        let values = token
            .read_data_objects(&format!("race-data-{m}"))
            .unwrap_or_else(|e| panic!("read race-data-{m}: {e}"));
        assert_eq!(values, vec![vec![(KEYS_PER_MAKER - 1) as u8; 32]]);
    }
}

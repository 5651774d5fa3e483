//! TTL and duration strings: `Ttl::parse` against the README's rules
//! (`duration_model`), the printed form parses back to the same value, and the JSON
//! forms the API takes (`"720h"` or `2592000`) go through the same parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scaivault_pki::policy::Ttl;
use scaivault_pki::service::input::{opt_ttl, DurationInput};
use scaivault_pki_fuzz::duration_model;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let got = Ttl::parse(s).ok().map(Ttl::as_secs);
    assert_eq!(got, duration_model::parse(s), "Ttl::parse({s:?})");
    if let Some(secs) = got {
        let t = Ttl::from_secs(secs);
        let shown = t.to_string();
        assert_eq!(Ttl::parse(&shown), Ok(t), "{secs} s prints as {shown:?}");
        // Every accepted value fits a date computation (100 years at most).
        let _ = scaivault_pki_fuzz::now() + t.as_duration();
    }
    // The request-body forms: a JSON string or number holding a duration.
    if let Ok(d) = serde_json::from_slice::<DurationInput>(data) {
        let parsed = opt_ttl(&Some(d), "ttl");
        if let Ok(Some(t)) = parsed {
            assert!(t.as_secs() <= scaivault_pki::policy::duration::MAX_SECONDS);
        }
    }
});

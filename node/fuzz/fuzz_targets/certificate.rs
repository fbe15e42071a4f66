//! The certificates a link carries (`Hello.certificate`, `TicketBatch.certificates`), read
//! before their chain is verified: `security::identity::CertInfo::from_der` on arbitrary
//! bytes, and the Bottomline SAN rules (`Identity::from_uris`) on the bytes as lines.
//!
//! Checked: an identity read from a certificate or from URIs gives back the same identity
//! from the URIs it would be issued with; its division is one `Code::parse` accepts; its
//! names and display are computed without a panic; errors say why.
#![no_main]

use bottomline::security::identity::{CertInfo, Identity};
use bottomline_fuzz::check_code;
use libfuzzer_sys::fuzz_target;

fn check_identity(id: &Identity) {
    let uris = id.uris();
    assert_eq!(
        Identity::from_uris(uris.iter().map(String::as_str)).as_ref(),
        Ok(id),
        "identity round trip through {uris:?}"
    );
    if let Some(d) = id.division() {
        check_code(d);
    }
    let _ = (id.stem(), id.to_string(), id.may_act());
}

fuzz_target!(|data: &[u8]| {
    match CertInfo::from_der(data) {
        Ok(info) => {
            check_identity(&info.identity);
            assert!(info.serial.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        Err(e) => assert!(!e.is_empty()),
    }
    if let Ok(text) = std::str::from_utf8(data) {
        match Identity::from_uris(text.lines()) {
            Ok(id) => check_identity(&id),
            Err(e) => assert!(!e.is_empty()),
        }
    }
});

//! Property tests of the hand-written DER code: the TLV length reader never panics and
//! agrees with the writer, and every client identity (any user and groups, long or not, any
//! characters) issued into a certificate is read back by `identity_from_der`, the code that
//! turns a client certificate into a user.
//!
//! Case counts are bounded (PROPTEST_CASES overrides); issuing signs a certificate, so the
//! identity property runs fewer cases.

use proptest::prelude::*;

use super::der::{der_tlv, der_tlv_len, pem_to_der};
use super::tests::TempDir;
use super::{issue_client_cert, load_or_create, Pki};
use crate::tls::identity_from_der;

fn cases(default: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn pki() -> &'static (TempDir, Pki) {
    static P: std::sync::OnceLock<(TempDir, Pki)> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let dir = TempDir::new("pki-der-proptests");
        let pki = load_or_create(dir.path(), &[]).unwrap();
        (dir, pki)
    })
}

proptest! {
    #![proptest_config(cases(1024))]

    /// Any bytes: a length within the buffer or an error.
    #[test]
    fn tlv_len_never_panics(buf in prop::collection::vec(any::<u8>(), 0..16)) {
        if let Ok((header, total)) = der_tlv_len(&buf) {
            prop_assert!(header <= total && total <= buf.len());
        }
    }

    /// What der_tlv writes, der_tlv_len reads, short and long lengths alike.
    #[test]
    fn tlv_round_trip(tag: u8, len in prop_oneof![0usize..300, 60_000usize..70_000]) {
        let content = vec![0xa5; len];
        let tlv = der_tlv(tag, &content);
        let (header, total) = der_tlv_len(&tlv).unwrap();
        prop_assert_eq!(total, tlv.len());
        prop_assert_eq!(&tlv[header..], &content[..]);
    }
}

proptest! {
    #![proptest_config(cases(128))]

    /// Issued identities read back exactly from the certificate.
    #[test]
    fn client_identities_round_trip(
        user in prop_oneof!["[a-z:@.-]{1,20}", "\\PC{1,8}", "[a-z]{120,300}"],
        groups in prop::collection::vec(prop_oneof!["[a-z:-]{1,20}", "\\PC{0,6}", "[a-z]{130,200}"], 0..4),
    ) {
        let (cert, _) = issue_client_cert(&pki().1, &user, &groups).unwrap();
        let der = pem_to_der(&cert).unwrap();
        let id = identity_from_der(&der).unwrap();
        prop_assert_eq!(id.user, user);
        prop_assert_eq!(id.groups, groups);
    }
}

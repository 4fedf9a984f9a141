//! From a full identity to what may leave the daemon (rule S1).

use kiosk_idcard::mask::MaskPolicy;
use kiosk_idcard::{Identity, Validity};
use kiosk_proto::MaskedIdentity;

/// Mask an identity for the local API, logs and screens.
pub fn mask_identity(identity: &Identity, policy: &MaskPolicy, has_photo: bool) -> MaskedIdentity {
    MaskedIdentity {
        card_type: identity.card_type,
        name: policy.name(&identity.name),
        english_name: identity.english_name.as_deref().map(|n| policy.name(n)),
        number: policy.id_number(&identity.number),
        birth_date: policy.birth_date(),
        address: identity.address.as_deref().map(|a| policy.address(a)),
        valid_from: identity.valid_from.format("%Y-%m-%d").to_string(),
        valid_until: validity_text(identity.valid_until),
        has_photo,
    }
}

/// `YYYY-MM-DD` or `long_term`.
pub fn validity_text(v: Validity) -> String {
    match v {
        Validity::Until(d) => d.format("%Y-%m-%d").to_string(),
        Validity::LongTerm => "long_term".to_string(),
    }
}

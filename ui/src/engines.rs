//! The keyboard's real engines: librime for pinyin, Zinnia for
//! handwriting, both in this process.

use crate::keyboard::Engines;
use crate::rime::RimePinyin;
use crate::zinnia::{MODEL, ZinniaRecognizer};

/// Start both engines; one that cannot start is left out (its keyboard
/// mode is not offered) and the reason logged.
pub fn start() -> Engines {
    let pinyin = match RimePinyin::start() {
        Ok(p) => Some(Box::new(p) as _),
        Err(e) => {
            tracing::error!("pinyin input unavailable: {e:#}");
            None
        }
    };
    let handwriting = match ZinniaRecognizer::open(MODEL) {
        Ok(r) => Some(Box::new(r) as _),
        Err(e) => {
            tracing::error!("handwriting input unavailable: {e:#}");
            None
        }
    };
    Engines {
        pinyin,
        handwriting,
    }
}

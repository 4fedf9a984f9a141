//! What the PC/SC loop does with one connection to the reader: read the
//! card through the tunnel, ask the tunnelled SAM for its id or status.
//! Free functions over a [`Context`]; no state of the loop.

use std::ffi::CString;
use std::time::Duration;

use pcsc::{Context, Disposition, Protocols, ShareMode};

use crate::channel::{CardRead, ReadOptions, read_card, sam_id, sam_status};
use crate::error::{PullCause, ReaderError, pcsc_card_gone};
use crate::smartcard::{PcscTunnel, TunnelMode, card_uid};

/// Connect to the card on `reader` (shared); a card already gone is
/// [`ReaderError::CardPulled`].
pub(crate) fn connect(ctx: &Context, reader: &CString) -> Result<pcsc::Card, ReaderError> {
    ctx.connect(reader, ShareMode::Shared, Protocols::ANY)
        .map_err(|e| {
            if pcsc_card_gone(e) {
                ReaderError::CardPulled {
                    cause: PullCause::Removed(e),
                }
            } else {
                e.into()
            }
        })
}

/// A connection the tunnel can use: to the card, or for `control` without
/// a card, directly to the reader. `None` when the SAM cannot be reached.
fn connect_for_tunnel(
    ctx: &Context,
    reader: &CString,
    mode: TunnelMode,
    card_present: bool,
) -> Option<Result<pcsc::Card, ReaderError>> {
    if card_present {
        Some(connect(ctx, reader))
    } else if matches!(mode, TunnelMode::Control(_)) {
        Some(
            ctx.connect(reader, ShareMode::Direct, Protocols::UNDEFINED)
                .map_err(ReaderError::from),
        )
    } else {
        None
    }
}

/// The tunnelled SAM's id (needs a card on the reader, or `control`).
pub(crate) fn tunnelled_sam_id(
    ctx: &Context,
    reader: &CString,
    mode: TunnelMode,
    card_present: bool,
    timeout: Duration,
) -> Result<String, ReaderError> {
    let card = connect_for_tunnel(ctx, reader, mode, card_present).ok_or(
        ReaderError::Unavailable("the tunnelled SAM answers only while a card lies on the reader"),
    )??;
    let result = sam_id(&mut PcscTunnel::new(&card, mode), timeout);
    let _ = card.disconnect(Disposition::LeaveCard);
    result
}

/// A tunnelled SAM status request; `None` when the SAM cannot be reached
/// now (a pseudo-APDU tunnel with no card on the reader).
pub(crate) fn tunnelled_status(
    ctx: &Context,
    reader: &CString,
    mode: TunnelMode,
    card_present: bool,
    timeout: Duration,
) -> Option<Result<(), ReaderError>> {
    let card = match connect_for_tunnel(ctx, reader, mode, card_present)? {
        Ok(card) => card,
        Err(e) => return Some(Err(e)),
    };
    let result = sam_status(&mut PcscTunnel::new(&card, mode), timeout);
    let _ = card.disconnect(Disposition::LeaveCard);
    Some(result)
}

/// Connect, read the UID, then find → select → read through the tunnel in
/// one PC/SC transaction (plus the SAM id when asked).
pub(crate) fn read_through_tunnel(
    ctx: &Context,
    reader: &CString,
    mode: TunnelMode,
    options: &ReadOptions,
    want_sam_id: bool,
) -> (Result<CardRead, ReaderError>, Option<String>) {
    let mut card = match connect(ctx, reader) {
        Ok(card) => card,
        Err(e) => return (Err(e), None),
    };
    let uid = card_uid(&card)
        .map_err(|e| tracing::debug!(error = %e, "card UID not read"))
        .ok();
    let (result, id) = match card.transaction() {
        Ok(tx) => {
            let mut channel = PcscTunnel::new(&tx, mode);
            let result = read_card(&mut channel, options);
            let id = if want_sam_id && result.is_ok() {
                sam_id(&mut channel, options.timeout)
                    .map_err(|e| tracing::debug!(error = %e, "SAM id not read"))
                    .ok()
            } else {
                None
            };
            (result, id)
        }
        Err(e) if pcsc_card_gone(e) => (
            Err(ReaderError::CardPulled {
                cause: PullCause::Removed(e),
            }),
            None,
        ),
        Err(e) => (Err(e.into()), None),
    };
    let _ = card.disconnect(Disposition::LeaveCard);
    (
        result.map(|mut read| {
            read.card_uid = uid;
            read
        }),
        id,
    )
}

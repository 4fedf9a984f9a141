//! The transport-independent part: a [`SamChannel`] carries one GA 467
//! request to a SAM and brings back its answer; [`read_card`] runs find →
//! select → read over any channel.

use std::time::Duration;

use kiosk_idcard::frame::{CardData, format_sam_id};
use kiosk_idcard::identity::decode_appended_address;
use kiosk_idcard::{Command, Identity, Request, Response, SamError, SamStatus};
use zeroize::Zeroize;

use crate::config::ReaderConfig;
use crate::error::{PullCause, ReaderError, pcsc_card_gone, pcsc_service_lost};
use crate::trace::command_name;

/// One request frame to a SAM, one answer back.
///
/// Implemented by [`crate::SerialSam`] (the SAM on a serial port) and
/// [`crate::PcscTunnel`] (the SAM behind a PC/SC reader). Implementations
/// trace frames with `crate::trace`-style redaction, match the answer to
/// the request (a stale answer to an earlier request is skipped, see
/// [`plausible_answer`]) and count the bytes they exchange.
pub trait SamChannel {
    /// Send `request` and wait up to `timeout` (plus, on a serial line, the
    /// time the answer needs on the wire) for its answer.
    fn transact(&mut self, request: &Request, timeout: Duration) -> Result<Response, ReaderError>;

    /// Bytes sent and received so far (request plus answer, including
    /// transport overhead such as APDU headers), for benchmarks.
    fn wire_bytes(&self) -> u64;
}

impl<T: SamChannel + ?Sized> SamChannel for &mut T {
    fn transact(&mut self, request: &Request, timeout: Duration) -> Result<Response, ReaderError> {
        (**self).transact(request, timeout)
    }
    fn wire_bytes(&self) -> u64 {
        (**self).wire_bytes()
    }
}

/// A SAM that a device loop owns, keeps open and reopens after it failed:
/// a [`SamChannel`] with a life. [`crate::SerialSam`] (a serial port),
/// [`crate::SdtapiSam`] (the vendor's library) and [`crate::UsbSam`] (bulk
/// packets) are three; the loops hold a
/// `Box<dyn SamLink>` and supervise any of them alike (states, backoff,
/// unplug and replug).
pub trait SamLink: SamChannel + std::fmt::Debug {
    /// (Re)open by configuration and make sure a SAM answers.
    /// [`ReaderError::Unplugged`] when the device is not there.
    fn reopen(&mut self) -> Result<(), ReaderError>;
    /// Close (reopened by [`SamLink::reopen`]).
    fn close(&mut self);
    fn is_open(&self) -> bool;
    /// The line speed, for a serial link that is open.
    fn baud(&self) -> Option<u32> {
        None
    }
    /// Where the SAM is, for logs (a path, a library and port).
    fn location(&self) -> String;
    /// Call `arrived` whenever the device may have come back, so a closed
    /// link is reopened then rather than at the end of its backoff. Links
    /// without hot-plug news (serial ports, vendor libraries) ignore it.
    fn watch_arrivals(&mut self, arrived: Box<dyn Fn() + Send + 'static>) {
        let _ = arrived;
    }
}

/// The request frame of `command` (no data).
pub fn request(command: Command) -> Request {
    let (cmd, para) = command.code();
    Request {
        cmd,
        para,
        data: Vec::new(),
    }
}

/// The longest answer frame `command` can get, in bytes (for timeouts and
/// APDU lengths).
pub fn max_answer_len(command: Option<Command>) -> usize {
    // 7-byte header, SW1..SW3, data, checksum.
    const OVERHEAD: usize = 7 + 3 + 1;
    OVERHEAD
        + match command {
            Some(Command::ReadTextPhoto) => 4 + 256 + 1024,
            Some(Command::ReadTextPhotoFingerprint) => 6 + 256 + 1024 + 1024,
            Some(Command::ReadAppendedAddress) => 70,
            Some(Command::SamId) => 16,
            Some(Command::SelectCard) | Some(Command::FindCard) => 8,
            Some(Command::ResetSam) | Some(Command::SamStatus) => 4,
            None => 4096,
        }
}

/// Can `response` be the answer to `request`? GA 467 answers do not echo
/// the command, so a late answer to an earlier request is recognised by its
/// shape: `9F` only answers find-card; a success answer's data length must
/// fit the command. Failure answers carry no data and always fit.
pub fn plausible_answer(request: &Request, response: &Response) -> bool {
    let Some(command) = request.command() else {
        return true;
    };
    match response.status() {
        SamStatus::Error(_) => response.data.len() <= 8,
        SamStatus::CardFound => command == Command::FindCard && response.data.len() <= 8,
        SamStatus::Ok => match command {
            Command::FindCard | Command::SelectCard => response.data.len() <= 8,
            Command::SamId => response.data.len() == 16,
            Command::ResetSam | Command::SamStatus => response.data.len() <= 4,
            Command::ReadTextPhoto | Command::ReadTextPhotoFingerprint => response.data.len() > 8,
            Command::ReadAppendedAddress => true,
        },
    }
}

/// What a read needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOptions {
    /// Answer timeout per exchange (serial: plus wire time).
    pub timeout: Duration,
    /// Further tries after a bad checksum or a missing answer.
    pub retries: u32,
    /// Read `30 10` (with fingerprint) instead of `30 01`.
    pub read_fingerprint: bool,
    /// Read the appended address (`30 03`) after the main read.
    pub read_appended_address: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            timeout: Duration::from_millis(2000),
            retries: 2,
            read_fingerprint: false,
            read_appended_address: false,
        }
    }
}

impl ReadOptions {
    /// The options a reader's configuration asks for.
    pub fn from_config(config: &ReaderConfig) -> ReadOptions {
        let mut options = ReadOptions {
            read_fingerprint: config.read_fingerprint,
            read_appended_address: config.read_appended_address,
            ..ReadOptions::default()
        };
        if let Some(sam) = &config.sam {
            options.timeout = sam.response_timeout();
            options.retries = sam.retries;
        }
        if let Some(sdtapi) = &config.sdtapi {
            options.retries = sdtapi.retries;
        }
        if let Some(usb) = &config.usb {
            options.timeout = usb.response_timeout();
            options.retries = usb.retries;
        }
        options
    }
}

/// One card read. Photo, fingerprint and appended address are wiped on drop
/// (the identity wipes itself); `Debug` shows only the card type and sizes.
#[derive(Clone, PartialEq, Eq)]
pub struct CardRead {
    pub identity: Identity,
    /// The photo as the card holds it (WLT, 1024 bytes, to be decoded by a
    /// licensed decoder).
    pub photo: Vec<u8>,
    /// Fingerprint data, when configured and the card has some.
    pub fingerprint: Option<Vec<u8>>,
    /// The appended address (追加住址), when configured and the card has one.
    pub appended_address: Option<String>,
    /// The card's UID (`00 36 00 00 08`), when read through PC/SC.
    pub card_uid: Option<[u8; 8]>,
    /// Request + answer bytes exchanged for find, select and read (not the
    /// appended address), retries included.
    pub wire_bytes: usize,
}

impl std::fmt::Debug for CardRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardRead")
            .field("card_type", &self.identity.card_type)
            .field("photo_len", &self.photo.len())
            .field("fingerprint_len", &self.fingerprint.as_ref().map(Vec::len))
            .field(
                "appended_address",
                &self.appended_address.as_ref().map(|_| "<redacted>"),
            )
            .field("card_uid", &self.card_uid.map(|_| "<redacted>"))
            .field("wire_bytes", &self.wire_bytes)
            .finish()
    }
}

impl Drop for CardRead {
    fn drop(&mut self) {
        self.photo.zeroize();
        if let Some(fp) = &mut self.fingerprint {
            fp.zeroize();
        }
        if let Some(address) = &mut self.appended_address {
            address.zeroize();
        }
    }
}

fn exchange<C: SamChannel + ?Sized>(
    channel: &mut C,
    command: Command,
    timeout: Duration,
) -> Result<Response, ReaderError> {
    channel.transact(&request(command), timeout)
}

/// Exchange with retries on a bad checksum or a missing answer (commands
/// that change nothing on the card: status, id, find).
fn exchange_retrying<C: SamChannel + ?Sized>(
    channel: &mut C,
    command: Command,
    options: &ReadOptions,
) -> Result<Response, ReaderError> {
    let mut attempt = 0;
    loop {
        match exchange(channel, command, options.timeout) {
            Err(
                e @ (ReaderError::Frame(_)
                | ReaderError::Timeout { .. }
                | ReaderError::Truncated { .. }),
            ) if attempt < options.retries => {
                attempt += 1;
                tracing::debug!(command = command_name(Some(command)), attempt, error = %e, "trying again");
            }
            other => return other,
        }
    }
}

/// Is a card in the SAM's field? Sends find-card once (with retries on a
/// garbled answer): `9F` → `true`, `80` → `false`.
pub fn find_card<C: SamChannel + ?Sized>(
    channel: &mut C,
    options: &ReadOptions,
) -> Result<bool, ReaderError> {
    let response = exchange_retrying(channel, Command::FindCard, options)?;
    match response.status() {
        SamStatus::CardFound | SamStatus::Ok => Ok(true),
        SamStatus::Error(SamError::NoCard) => Ok(false),
        SamStatus::Error(e) => Err(ReaderError::Sam(e)),
    }
}

/// After a good read: is the card still in the field? Asks for a new
/// selection (`20 02`): `90` means it still answers, `81` or `80` that it
/// left. Some readers answer find-card only once per placement, so
/// find-card cannot tell a card still lying there from one taken away;
/// the card itself can. (Routon's SDK samples ask the card for its
/// appended information after a read for the same reason; a selection
/// answers alike without moving any personal data.)
pub fn card_still_there<C: SamChannel + ?Sized>(
    channel: &mut C,
    options: &ReadOptions,
) -> Result<bool, ReaderError> {
    let response = exchange_retrying(channel, Command::SelectCard, options)?;
    match response.status() {
        SamStatus::Ok | SamStatus::CardFound => Ok(true),
        SamStatus::Error(SamError::SelectFailed | SamError::NoCard) => Ok(false),
        SamStatus::Error(e) => Err(ReaderError::Sam(e)),
    }
}

/// The SAM's id (`12 FF`), formatted as readers print it
/// (`05.01-20101216-0011223344-1234567890`).
pub fn sam_id<C: SamChannel + ?Sized>(
    channel: &mut C,
    timeout: Duration,
) -> Result<String, ReaderError> {
    let options = ReadOptions {
        timeout,
        ..ReadOptions::default()
    };
    let response = exchange_retrying(channel, Command::SamId, &options)?;
    response.status().into_result()?;
    Ok(format_sam_id(&response.data)?)
}

/// The SAM's status (`11 FF`): `Ok(())` when it answers `90`.
pub fn sam_status<C: SamChannel + ?Sized>(
    channel: &mut C,
    timeout: Duration,
) -> Result<(), ReaderError> {
    let options = ReadOptions {
        timeout,
        retries: 0,
        ..ReadOptions::default()
    };
    let response = exchange_retrying(channel, Command::SamStatus, &options)?;
    Ok(response.status().into_result()?)
}

/// What one find → select → read attempt ended with, when it did not end
/// with card data.
enum AttemptError {
    /// Give up at once with this error.
    Fatal(ReaderError),
    /// Worth another attempt (garbled or missing answer before the read).
    Retry(ReaderError),
    /// The read itself failed the way a pulled card makes it fail.
    Pulled(PullCause),
}

/// Read a card: find → select → read text + photo (or + fingerprint) →
/// appended address when asked.
///
/// A bad checksum or a missing answer starts the sequence again from find,
/// up to `options.retries` times. A read that is cut off, not answered, or
/// answered `41`/`80` after find and select succeeded means the card left
/// the field: if another try finds no card (or none is left), the result is
/// [`ReaderError::CardPulled`]. The appended address is best effort: if it
/// cannot be read, the card read still succeeds with `None`.
///
/// Errors never carry personal data.
pub fn read_card<C: SamChannel + ?Sized>(
    channel: &mut C,
    options: &ReadOptions,
) -> Result<CardRead, ReaderError> {
    let start_bytes = channel.wire_bytes();
    let mut attempt = 0u32;
    let mut pulled: Option<PullCause> = None;
    let data = loop {
        match read_attempt(channel, options, pulled.is_some()) {
            Ok(data) => break data,
            // The read broke off, and now the card does not answer: gone.
            Err(AttemptError::Fatal(e)) if pulled.is_some() && card_gone_after_pull(&e) => {
                return Err(ReaderError::CardPulled {
                    cause: pulled.unwrap_or(PullCause::NoAnswer),
                });
            }
            Err(AttemptError::Fatal(e)) => return Err(e),
            Err(AttemptError::Retry(e)) => {
                if attempt >= options.retries {
                    return Err(match pulled {
                        Some(cause) => ReaderError::CardPulled { cause },
                        None => e,
                    });
                }
                tracing::debug!(attempt, error = %e, "read attempt failed, trying again");
            }
            Err(AttemptError::Pulled(cause)) => {
                if matches!(cause, PullCause::Removed(e) if pcsc_card_gone(e)) {
                    return Err(ReaderError::CardPulled { cause });
                }
                if attempt >= options.retries {
                    return Err(match cause {
                        // The card stayed, the reader kept failing.
                        PullCause::Removed(e) => ReaderError::Pcsc(e),
                        cause => ReaderError::CardPulled { cause },
                    });
                }
                tracing::debug!(attempt, %cause, "read broke off, checking whether the card is still there");
                pulled = Some(cause);
            }
        }
        attempt += 1;
    };
    let wire_bytes =
        usize::try_from(channel.wire_bytes().saturating_sub(start_bytes)).unwrap_or(usize::MAX);

    let mut data = data;
    let parsed = CardData::parse(&data, options.read_fingerprint);
    data.zeroize();
    let mut card = parsed?;
    let decoded = Identity::decode(&card.text);
    card.text.zeroize();
    let identity = match decoded {
        Ok(identity) => identity,
        Err(e) => {
            card.photo.zeroize();
            if let Some(fp) = &mut card.fingerprint {
                fp.zeroize();
            }
            return Err(e.into());
        }
    };
    let photo = std::mem::take(&mut card.photo);
    let fingerprint = card.fingerprint.take().filter(|fp| !fp.is_empty());

    let appended_address = if options.read_appended_address {
        read_appended_address(channel, options)
    } else {
        None
    };

    tracing::debug!(
        card_type = ?identity.card_type,
        photo_len = photo.len(),
        fingerprint_len = fingerprint.as_ref().map(Vec::len),
        appended_address = appended_address.is_some(),
        wire_bytes,
        "card read"
    );
    Ok(CardRead {
        identity,
        photo,
        fingerprint,
        appended_address,
        card_uid: None,
        wire_bytes,
    })
}

/// After a read broke off: does this failure of the next find or select
/// say the card is gone?
fn card_gone_after_pull(e: &ReaderError) -> bool {
    match e {
        ReaderError::Sam(SamError::NoCard | SamError::SelectFailed) => true,
        ReaderError::Pcsc(pe) => !pcsc_service_lost(*pe),
        _ => false,
    }
}

fn read_attempt<C: SamChannel + ?Sized>(
    channel: &mut C,
    options: &ReadOptions,
    after_pull: bool,
) -> Result<Vec<u8>, AttemptError> {
    let classify_before_read = |e: ReaderError| match e {
        ReaderError::Frame(_) | ReaderError::Timeout { .. } | ReaderError::Truncated { .. } => {
            AttemptError::Retry(e)
        }
        ReaderError::Pcsc(pe) if pcsc_card_gone(pe) => {
            if after_pull {
                AttemptError::Pulled(PullCause::Removed(pe))
            } else {
                AttemptError::Fatal(ReaderError::Sam(SamError::NoCard))
            }
        }
        e => AttemptError::Fatal(e),
    };

    let found =
        exchange(channel, Command::FindCard, options.timeout).map_err(classify_before_read)?;
    match found.status() {
        SamStatus::CardFound | SamStatus::Ok => {}
        SamStatus::Error(e) => return Err(AttemptError::Fatal(ReaderError::Sam(e))),
    }

    let selected =
        exchange(channel, Command::SelectCard, options.timeout).map_err(classify_before_read)?;
    match selected.status() {
        SamStatus::Ok | SamStatus::CardFound => {}
        SamStatus::Error(e @ (SamError::SelectFailed | SamError::NoCard)) if after_pull => {
            return Err(AttemptError::Pulled(PullCause::Sam(e)));
        }
        SamStatus::Error(e) => return Err(AttemptError::Fatal(ReaderError::Sam(e))),
    }

    let command = if options.read_fingerprint {
        Command::ReadTextPhotoFingerprint
    } else {
        Command::ReadTextPhoto
    };
    match exchange(channel, command, options.timeout) {
        Ok(response) => match response.status() {
            SamStatus::Ok => Ok(response.data),
            SamStatus::Error(e @ (SamError::ReadFailed | SamError::NoCard)) => {
                Err(AttemptError::Pulled(PullCause::Sam(e)))
            }
            SamStatus::Error(e) => Err(AttemptError::Fatal(ReaderError::Sam(e))),
            SamStatus::CardFound => Err(AttemptError::Fatal(ReaderError::Protocol {
                command: command_name(Some(command)),
                detail: "answered 9F (card found)".into(),
            })),
        },
        Err(ReaderError::Timeout { received, .. } | ReaderError::Truncated { received, .. }) => {
            Err(AttemptError::Pulled(if received > 0 {
                PullCause::CutOff { received }
            } else {
                PullCause::NoAnswer
            }))
        }
        // The reader lost the card's answer (vpcd: the card went away mid-APDU).
        Err(ReaderError::Pcsc(pe)) if pcsc_card_gone(pe) || pe == pcsc::Error::NotTransacted => {
            Err(AttemptError::Pulled(PullCause::Removed(pe)))
        }
        Err(e @ ReaderError::Frame(_)) => Err(AttemptError::Retry(e)),
        Err(e) => Err(AttemptError::Fatal(e)),
    }
}

fn read_appended_address<C: SamChannel + ?Sized>(
    channel: &mut C,
    options: &ReadOptions,
) -> Option<String> {
    let response = match exchange_retrying(channel, Command::ReadAppendedAddress, options) {
        Ok(response) => response,
        Err(e) => {
            tracing::debug!(error = %e, "appended address not read");
            return None;
        }
    };
    if let Err(e) = response.status().into_result() {
        tracing::debug!(error = %e, "card has no appended address");
        return None;
    }
    match decode_appended_address(&response.data) {
        Ok(address) if address.trim().is_empty() => None,
        Ok(address) => Some(address),
        Err(e) => {
            tracing::debug!(error = %e, "appended address does not decode");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(sw3: u8, data_len: usize) -> Response {
        Response {
            sw1: 0,
            sw2: 0,
            sw3,
            data: vec![0; data_len],
        }
    }

    #[test]
    fn stale_answers_are_recognised() {
        let find = request(Command::FindCard);
        let read = request(Command::ReadTextPhoto);
        let id = request(Command::SamId);
        assert!(plausible_answer(&find, &answer(0x9F, 4)));
        assert!(plausible_answer(&find, &answer(0x80, 0)));
        assert!(!plausible_answer(&find, &answer(0x90, 1284)));
        assert!(!plausible_answer(&read, &answer(0x9F, 4)));
        assert!(plausible_answer(&read, &answer(0x90, 1284)));
        assert!(plausible_answer(&read, &answer(0x41, 0)));
        assert!(plausible_answer(&id, &answer(0x90, 16)));
        assert!(!plausible_answer(&id, &answer(0x90, 8)));
    }

    #[test]
    fn answer_lengths_cover_reads() {
        assert_eq!(max_answer_len(Some(Command::ReadTextPhoto)), 1295);
        assert!(max_answer_len(Some(Command::ReadTextPhotoFingerprint)) > 2048);
    }
}

//! A stand-in for a reader vendor's `sdtapi` shared library, so that
//! kioskd's library transport is tested through a real `dlopen`.
//!
//! It exports the de-facto standard C functions (`SDT_OpenPort`,
//! `SDT_ClosePort`, `SDT_GetSAMStatus`, `SDT_ResetSAM`, `SDT_GetSAMID`,
//! `SDT_GetSAMIDToStr`, `SDT_StartFindIDCard`, `SDT_SelectIDCard`,
//! `SDT_ReadBaseMsg`, `SDT_ReadBaseFPMsg`, `SDT_ReadNewAppMsg`) and does
//! what a vendor's library does behind them: it speaks GA 467 to a SAM on
//! a serial port. Port number `n` (1–16 serial, 1001–1016 USB) is the
//! serial device named by the environment variable
//! `KIOSK_SDTAPI_SIM_PORT_<n>`, in the tests the SAM simulator's pty link.
//!
//! Return codes are the SAM's SW3 where the SAM answered, else the
//! library's own: `0x01` the port cannot be opened, is not open or went
//! away (the device unplugged), `0x02` no whole answer in time
//! (`KIOSK_SDTAPI_SIM_TIMEOUT_MS`, default 1500), `0x03` an answer that
//! does not decode, `0x24` a caller error (a null pointer, a panic).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kiosk_idcard::frame::Decoded;
use kiosk_idcard::{Command, FrameDecoder, Response};
use serialport::{ClearBuffer, SerialPort, TTYPort};

/// `KIOSK_SDTAPI_SIM_PORT_<n>` names the serial device of port `n`.
pub const PORT_ENV_PREFIX: &str = "KIOSK_SDTAPI_SIM_PORT_";
/// How long to wait for the SAM's answer, in ms.
pub const TIMEOUT_ENV: &str = "KIOSK_SDTAPI_SIM_TIMEOUT_MS";

/// The library's own return codes (not SW3).
mod code {
    pub const OK: i32 = 0x90;
    pub const PORT: i32 = 0x01;
    pub const TIMEOUT: i32 = 0x02;
    pub const TRANSFER: i32 = 0x03;
    pub const CALLER: i32 = 0x24;
}

const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1500);

/// One open port.
struct Port {
    path: PathBuf,
    serial: TTYPort,
    decoder: FrameDecoder,
}

/// The open ports, by number (a vendor library's state is global too).
static PORTS: Mutex<Option<HashMap<i32, Port>>> = Mutex::new(None);

fn ports() -> MutexGuard<'static, Option<HashMap<i32, Port>>> {
    PORTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn valid_port(port: i32) -> bool {
    (1..=16).contains(&port) || (1001..=1016).contains(&port)
}

fn timeout() -> Duration {
    std::env::var(TIMEOUT_ENV)
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_TIMEOUT)
}

fn open_port(port: i32) -> i32 {
    if !valid_port(port) {
        return code::PORT;
    }
    let Some(path) = std::env::var_os(format!("{PORT_ENV_PREFIX}{port}")).map(PathBuf::from) else {
        return code::PORT;
    };
    let serial = match serialport::new(path.to_string_lossy(), 115_200)
        .timeout(timeout())
        .open_native()
    {
        Ok(serial) => serial,
        Err(_) => return code::PORT,
    };
    let _ = serial.clear(ClearBuffer::All);
    ports().get_or_insert_with(HashMap::new).insert(
        port,
        Port {
            path,
            serial,
            decoder: FrameDecoder::new(),
        },
    );
    code::OK
}

fn close_port(port: i32) -> i32 {
    match ports().as_mut().and_then(|p| p.remove(&port)) {
        Some(_) => code::OK,
        None => code::PORT,
    }
}

/// Run `f` on an open port; with `if_open`, open it before and close it
/// after, as the `iIfOpen` argument asks.
fn with_port<T>(port: i32, if_open: i32, f: impl FnOnce(i32) -> Result<T, i32>) -> Result<T, i32> {
    if if_open != 0 {
        let opened = open_port(port);
        if opened != code::OK {
            return Err(opened);
        }
    }
    let result = f(port);
    if if_open != 0 {
        close_port(port);
    }
    result
}

/// Send `command`, wait for its answer. The SAM's failure SW3 comes back
/// as `Err(sw3)`, like the library's own codes.
fn exchange(port: i32, command: Command) -> Result<Response, i32> {
    let mut guard = ports();
    let ports = guard.as_mut().ok_or(code::PORT)?;
    let open = ports.get_mut(&port).ok_or(code::PORT)?;
    match exchange_on(open, command) {
        Ok(response) if matches!(response.sw3, 0x90 | 0x9F) => Ok(response),
        Ok(response) => Err(i32::from(response.sw3)),
        Err(e) => {
            if e == code::PORT {
                // Gone: forget it until it is opened again.
                ports.remove(&port);
            }
            Err(e)
        }
    }
}

fn exchange_on(port: &mut Port, command: Command) -> Result<Response, i32> {
    let deadline = Instant::now() + timeout();
    port.serial
        .clear(ClearBuffer::Input)
        .map_err(|_| code::PORT)?;
    port.decoder.clear();
    port.serial
        .write_all(&command.request_frame())
        .and_then(|()| port.serial.flush())
        .map_err(|_| code::PORT)?;
    let mut buf = [0u8; 1024];
    loop {
        match port.decoder.next_frame() {
            Ok(Decoded::Frame(payload)) => {
                return Response::from_payload(&payload).map_err(|_| code::TRANSFER);
            }
            Ok(Decoded::Incomplete) => {}
            Err(_) => return Err(code::TRANSFER),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(if port.path.exists() {
                code::TIMEOUT
            } else {
                code::PORT
            });
        }
        port.serial
            .set_timeout(deadline - now)
            .map_err(|_| code::PORT)?;
        match port.serial.read(&mut buf) {
            Ok(0) => return Err(code::PORT),
            Ok(n) => port.decoder.push(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return Err(code::PORT),
        }
    }
}

/// The return code of a call that answers no data.
fn status_of(result: Result<Response, i32>) -> i32 {
    match result {
        Ok(response) => i32::from(response.sw3),
        Err(code) => code,
    }
}

/// The exported C functions: the only unsafe code of the crate.
#[allow(unsafe_code)]
mod exports {
    use std::ffi::{c_char, c_int, c_uchar, c_uint};
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use kiosk_idcard::Command;
    use kiosk_idcard::frame::{CardData, format_sam_id};
    use kiosk_idcard::identity::APPENDED_ADDRESS_LEN;
    use zeroize::Zeroize;

    use super::{close_port, code, exchange, open_port, status_of, with_port};

    /// Never unwind into C: a panic is a caller error code.
    fn guarded(f: impl FnOnce() -> c_int) -> c_int {
        catch_unwind(AssertUnwindSafe(f)).unwrap_or(code::CALLER)
    }

    /// Copy `data` to `out`.
    ///
    /// # Safety
    /// `out` must be null or valid for `data.len()` bytes.
    unsafe fn put(out: *mut c_uchar, data: &[u8]) -> Result<(), c_int> {
        if out.is_null() {
            return Err(code::CALLER);
        }
        // SAFETY: the caller vouches for `out`; `data` is ours, so the two
        // do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), out, data.len()) };
        Ok(())
    }

    /// Copy `data` to `out` and its length to `len`.
    ///
    /// # Safety
    /// As for [`put`]; `len` must be null or valid for a write.
    unsafe fn put_with_len(out: *mut c_uchar, len: *mut c_uint, data: &[u8]) -> Result<(), c_int> {
        if len.is_null() {
            return Err(code::CALLER);
        }
        let n = c_uint::try_from(data.len()).map_err(|_| code::CALLER)?;
        // SAFETY: as the caller vouches.
        unsafe {
            put(out, data)?;
            *len = n;
        }
        Ok(())
    }

    fn code_of(result: Result<(), c_int>) -> c_int {
        match result {
            Ok(()) => code::OK,
            Err(code) => code,
        }
    }

    #[unsafe(no_mangle)]
    pub extern "system" fn SDT_OpenPort(port: c_int) -> c_int {
        guarded(|| open_port(port))
    }

    #[unsafe(no_mangle)]
    pub extern "system" fn SDT_ClosePort(port: c_int) -> c_int {
        guarded(|| close_port(port))
    }

    #[unsafe(no_mangle)]
    pub extern "system" fn SDT_GetSAMStatus(port: c_int, if_open: c_int) -> c_int {
        guarded(|| {
            with_port(port, if_open, |p| {
                Ok(status_of(exchange(p, Command::SamStatus)))
            })
            .unwrap_or_else(|e| e)
        })
    }

    #[unsafe(no_mangle)]
    pub extern "system" fn SDT_ResetSAM(port: c_int, if_open: c_int) -> c_int {
        guarded(|| {
            with_port(port, if_open, |p| {
                Ok(status_of(exchange(p, Command::ResetSam)))
            })
            .unwrap_or_else(|e| e)
        })
    }

    /// # Safety
    /// `id` must be valid for 16 bytes.
    #[unsafe(no_mangle)]
    pub unsafe extern "system" fn SDT_GetSAMID(
        port: c_int,
        id: *mut c_uchar,
        if_open: c_int,
    ) -> c_int {
        guarded(|| {
            code_of(with_port(port, if_open, |p| {
                let response = exchange(p, Command::SamId)?;
                // SAFETY: as the caller vouches.
                unsafe { put(id, &response.data) }
            }))
        })
    }

    /// # Safety
    /// `id` must be valid for 37 bytes (the printed id and its NUL).
    #[unsafe(no_mangle)]
    pub unsafe extern "system" fn SDT_GetSAMIDToStr(
        port: c_int,
        id: *mut c_char,
        if_open: c_int,
    ) -> c_int {
        guarded(|| {
            code_of(with_port(port, if_open, |p| {
                let response = exchange(p, Command::SamId)?;
                let mut text = format_sam_id(&response.data)
                    .map_err(|_| code::TRANSFER)?
                    .into_bytes();
                text.push(0);
                // SAFETY: as the caller vouches.
                unsafe { put(id.cast(), &text) }
            }))
        })
    }

    /// # Safety
    /// `info` must be valid for 4 bytes.
    #[unsafe(no_mangle)]
    pub unsafe extern "system" fn SDT_StartFindIDCard(
        port: c_int,
        info: *mut c_uchar,
        if_open: c_int,
    ) -> c_int {
        guarded(|| {
            with_port(port, if_open, |p| {
                let response = exchange(p, Command::FindCard)?;
                let data = response.data.get(..4).ok_or(code::TRANSFER)?;
                // SAFETY: as the caller vouches.
                unsafe { put(info, data) }?;
                Ok(i32::from(response.sw3))
            })
            .unwrap_or_else(|e| e)
        })
    }

    /// # Safety
    /// `serial` must be valid for 8 bytes.
    #[unsafe(no_mangle)]
    pub unsafe extern "system" fn SDT_SelectIDCard(
        port: c_int,
        serial: *mut c_uchar,
        if_open: c_int,
    ) -> c_int {
        guarded(|| {
            code_of(with_port(port, if_open, |p| {
                let response = exchange(p, Command::SelectCard)?;
                let data = response.data.get(..8).ok_or(code::TRANSFER)?;
                // SAFETY: as the caller vouches.
                unsafe { put(serial, data) }
            }))
        })
    }

    /// Read the card's data: `30 01`, or `30 10` with the fingerprint.
    fn read(port: c_int, if_open: c_int, with_fingerprint: bool) -> Result<CardData, c_int> {
        let command = if with_fingerprint {
            Command::ReadTextPhotoFingerprint
        } else {
            Command::ReadTextPhoto
        };
        with_port(port, if_open, |p| {
            let mut response = exchange(p, command)?;
            let card = CardData::parse(&response.data, with_fingerprint);
            response.data.zeroize();
            card.map_err(|_| code::TRANSFER)
        })
    }

    /// # Safety
    /// `text` must be valid for 256 bytes, `photo` for 1024, both lengths
    /// for a write.
    #[unsafe(no_mangle)]
    pub unsafe extern "system" fn SDT_ReadBaseMsg(
        port: c_int,
        text: *mut c_uchar,
        text_len: *mut c_uint,
        photo: *mut c_uchar,
        photo_len: *mut c_uint,
        if_open: c_int,
    ) -> c_int {
        guarded(|| {
            code_of(read(port, if_open, false).and_then(|mut card| {
                // SAFETY: as the caller vouches.
                let copied = unsafe {
                    put_with_len(text, text_len, &card.text)
                        .and_then(|()| put_with_len(photo, photo_len, &card.photo))
                };
                card.zeroize();
                copied
            }))
        })
    }

    /// # Safety
    /// As [`SDT_ReadBaseMsg`], and `fingerprint` valid for 1024 bytes.
    #[unsafe(no_mangle)]
    #[allow(clippy::too_many_arguments)]
    pub unsafe extern "system" fn SDT_ReadBaseFPMsg(
        port: c_int,
        text: *mut c_uchar,
        text_len: *mut c_uint,
        photo: *mut c_uchar,
        photo_len: *mut c_uint,
        fingerprint: *mut c_uchar,
        fingerprint_len: *mut c_uint,
        if_open: c_int,
    ) -> c_int {
        guarded(|| {
            code_of(read(port, if_open, true).and_then(|mut card| {
                let fp = card.fingerprint.as_deref().unwrap_or_default();
                // SAFETY: as the caller vouches.
                let copied = unsafe {
                    put_with_len(text, text_len, &card.text)
                        .and_then(|()| put_with_len(photo, photo_len, &card.photo))
                        .and_then(|()| put_with_len(fingerprint, fingerprint_len, fp))
                };
                card.zeroize();
                copied
            }))
        })
    }

    /// # Safety
    /// `block` must be valid for 70 bytes, `len` for a write.
    #[unsafe(no_mangle)]
    pub unsafe extern "system" fn SDT_ReadNewAppMsg(
        port: c_int,
        block: *mut c_uchar,
        len: *mut c_uint,
        if_open: c_int,
    ) -> c_int {
        guarded(|| {
            code_of(with_port(port, if_open, |p| {
                let mut response = exchange(p, Command::ReadAppendedAddress)?;
                let copied = if response.data.len() > APPENDED_ADDRESS_LEN {
                    Err(code::TRANSFER)
                } else {
                    // SAFETY: as the caller vouches.
                    unsafe { put_with_len(block, len, &response.data) }
                };
                response.data.zeroize();
                copied
            }))
        })
    }
}

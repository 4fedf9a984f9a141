//! A USB ID reader that carries raw GA 467 frames on two bulk endpoints,
//! through `nusb` (pure Rust, Linux usbfs; no libusb).
//!
//! The packet framing is `kiosk_idcard::usb` (sans-IO, tested with
//! recorded packet sequences); this is the thin transport around it: find
//! the reader by vendor and product id (and serial number, to tell two
//! apart), find its bulk IN and OUT endpoints in the interface descriptors
//! ([`bulk_endpoints`]), claim the interface, write the request's packets,
//! read the answer packet by packet until the frame is whole, the
//! transfer ends short ([`ReaderError::Truncated`]) or the deadline passes
//! ([`ReaderError::Timeout`]).
//!
//! A transfer that fails with "disconnected", or a reader that is not
//! found, is [`ReaderError::Unplugged`]: the device loop reopens it with
//! its capped backoff, finding it again by its ids after a replug. A
//! thread of the link's own follows nusb's hot-plug watch
//! ([`nusb::watch_devices`]) and, when a device with the reader's ids
//! arrives, wakes the loop ([`SamLink::watch_arrivals`]) so the reader is
//! opened at once; without the watch (no netlink), the backoff finds it.
//!
//! Not run on hardware: this machine has no USB bus, so neither a transfer
//! nor a hot-plug event has happened for real.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use futures_core::Stream;

use kiosk_idcard::usb::{InPackets, Reassembled, out_packets};
use kiosk_idcard::{Command, Request, Response};
use nusb::descriptors::{ConfigurationDescriptor, TransferType};
use nusb::hotplug::{HotplugEvent, HotplugWatch};
use nusb::transfer::{Buffer, Bulk, Direction, In, Out, TransferError};
use nusb::{DeviceInfo, Endpoint, Interface, MaybeFuture};

use crate::channel::{SamChannel, SamLink, plausible_answer, request};
use crate::config::UsbConfig;
use crate::error::ReaderError;
use crate::trace::{self, command_name};

/// Where a reader's GA 467 frames go, as its descriptors say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkEndpoints {
    pub interface: u8,
    pub alt_setting: u8,
    /// Address of the bulk IN endpoint (`0x8n`).
    pub bulk_in: u8,
    /// Address of the bulk OUT endpoint.
    pub bulk_out: u8,
}

/// The first interface setting with both a bulk IN and a bulk OUT endpoint.
pub fn bulk_endpoints(config: &ConfigurationDescriptor<'_>) -> Option<BulkEndpoints> {
    config.interface_alt_settings().find_map(|setting| {
        let bulk = |direction: Direction| {
            setting
                .endpoints()
                .find(|ep| ep.transfer_type() == TransferType::Bulk && ep.direction() == direction)
                .map(|ep| ep.address())
        };
        Some(BulkEndpoints {
            interface: setting.interface_number(),
            alt_setting: setting.alternate_setting(),
            bulk_in: bulk(Direction::In)?,
            bulk_out: bulk(Direction::Out)?,
        })
    })
}

/// The claimed interface and its two endpoints.
struct Claimed {
    _interface: Interface,
    bulk_in: Endpoint<Bulk, In>,
    bulk_out: Endpoint<Bulk, Out>,
}

/// Is `info` the configured reader?
fn is_reader(config: &UsbConfig, info: &DeviceInfo) -> bool {
    info.vendor_id() == config.vendor_id
        && info.product_id() == config.product_id
        && config
            .serial
            .as_deref()
            .is_none_or(|s| info.serial_number() == Some(s))
}

/// Wakes the watch thread when the hot-plug stream has news.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// The thread following nusb's hot-plug stream; stopped and joined on drop.
struct ArrivalWatch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ArrivalWatch {
    fn start(
        config: UsbConfig,
        arrived: Box<dyn Fn() + Send + 'static>,
    ) -> std::io::Result<ArrivalWatch> {
        let watch = nusb::watch_devices()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("usb hot-plug".into())
            .spawn(move || follow(watch, &config, &*arrived, &stopping))?;
        Ok(ArrivalWatch {
            stop,
            thread: Some(thread),
        })
    }
}

/// Poll the hot-plug stream, parked between its wake-ups, until `stop`.
fn follow(watch: HotplugWatch, config: &UsbConfig, arrived: &dyn Fn(), stop: &AtomicBool) {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut watch = Box::pin(watch);
    while !stop.load(Ordering::Acquire) {
        match Pin::as_mut(&mut watch).poll_next(&mut cx) {
            Poll::Ready(Some(HotplugEvent::Connected(info))) if is_reader(config, &info) => {
                tracing::debug!(reader = %config.describe(), "USB reader arrived");
                arrived();
            }
            Poll::Ready(Some(_)) => {}
            Poll::Ready(None) => return,
            // Woken by the stream, or by drop to stop.
            Poll::Pending => std::thread::park(),
        }
    }
}

impl Drop for ArrivalWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// A GA 467 reader on USB bulk endpoints; a [`SamChannel`] and a
/// [`SamLink`].
pub struct UsbSam {
    config: UsbConfig,
    claimed: Option<Claimed>,
    wire_bytes: u64,
    /// Hot-plug news, once [`SamLink::watch_arrivals`] asked for it.
    watch: Option<ArrivalWatch>,
}

impl std::fmt::Debug for UsbSam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsbSam")
            .field("reader", &self.config.describe())
            .field("open", &self.claimed.is_some())
            .field("watching", &self.watch.is_some())
            .field("wire_bytes", &self.wire_bytes)
            .finish()
    }
}

fn unplugged(detail: String) -> ReaderError {
    ReaderError::Unplugged { detail }
}

/// A nusb error while opening: gone, or something a technician must fix
/// (permissions, another driver holding the interface).
fn open_error(what: &str, e: nusb::Error) -> ReaderError {
    match e.kind() {
        nusb::ErrorKind::Disconnected | nusb::ErrorKind::NotFound => {
            unplugged(format!("{what}: {e}"))
        }
        _ => ReaderError::Io(std::io::Error::other(format!("{what}: {e}"))),
    }
}

impl UsbSam {
    /// Closed until [`SamLink::reopen`].
    pub fn new(config: &UsbConfig) -> UsbSam {
        UsbSam {
            config: config.clone(),
            claimed: None,
            wire_bytes: 0,
            watch: None,
        }
    }

    fn claim(&self) -> Result<Claimed, ReaderError> {
        let wanted = self.config.describe();
        let info = nusb::list_devices()
            .wait()
            // No bus to list (no USB, no sysfs) means no reader attached.
            .map_err(|e| {
                unplugged(format!(
                    "no {wanted} attached: cannot list USB devices: {e}"
                ))
            })?
            .find(|d| is_reader(&self.config, d))
            .ok_or_else(|| unplugged(format!("no {wanted} attached")))?;
        let device = info
            .open()
            .wait()
            .map_err(|e| open_error(&format!("opening {wanted}"), e))?;
        let config = device
            .active_configuration()
            .map_err(|e| ReaderError::Io(std::io::Error::other(format!("{wanted}: {e}"))))?;
        let endpoints = bulk_endpoints(&config).ok_or_else(|| ReaderError::Protocol {
            command: "USB descriptors",
            detail: format!("{wanted} has no interface with bulk IN and OUT endpoints"),
        })?;
        let interface = device
            .detach_and_claim_interface(endpoints.interface)
            .wait()
            .map_err(|e| open_error(&format!("claiming {wanted}"), e))?;
        if endpoints.alt_setting != 0 {
            interface
                .set_alt_setting(endpoints.alt_setting)
                .wait()
                .map_err(|e| open_error(&format!("{wanted} alternate setting"), e))?;
        }
        let bulk_in = interface
            .endpoint::<Bulk, In>(endpoints.bulk_in)
            .map_err(|e| open_error(&format!("{wanted} bulk IN"), e))?;
        let bulk_out = interface
            .endpoint::<Bulk, Out>(endpoints.bulk_out)
            .map_err(|e| open_error(&format!("{wanted} bulk OUT"), e))?;
        Ok(Claimed {
            _interface: interface,
            bulk_in,
            bulk_out,
        })
    }

    /// A failed transfer as a reader error; a disconnect closes the link.
    fn transfer_error(
        &mut self,
        e: TransferError,
        command: &'static str,
        timeout: Duration,
        received: usize,
    ) -> ReaderError {
        match e {
            TransferError::Cancelled => ReaderError::Timeout {
                command,
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                received,
            },
            TransferError::Disconnected => {
                self.claimed = None;
                unplugged(format!("{} disconnected", self.config.describe()))
            }
            TransferError::Stall => {
                if let Some(claimed) = &mut self.claimed {
                    let _ = claimed.bulk_in.clear_halt().wait();
                    let _ = claimed.bulk_out.clear_halt().wait();
                }
                ReaderError::Protocol {
                    command,
                    detail: "the reader stalled the endpoint".into(),
                }
            }
            e => ReaderError::Io(e.into()),
        }
    }
}

impl SamLink for UsbSam {
    fn reopen(&mut self) -> Result<(), ReaderError> {
        self.close();
        self.claimed = Some(self.claim()?);
        let status = self.transact(&request(Command::SamStatus), self.config.response_timeout());
        match status.map(|r| r.status().into_result()) {
            Ok(Ok(())) => {
                tracing::debug!(reader = %self.config.describe(), "USB reader opened");
                Ok(())
            }
            Ok(Err(e)) => {
                self.close();
                Err(e.into())
            }
            Err(e) => {
                self.close();
                Err(e)
            }
        }
    }

    fn close(&mut self) {
        if self.claimed.take().is_some() {
            tracing::debug!(reader = %self.config.describe(), "USB reader closed");
        }
    }

    fn is_open(&self) -> bool {
        self.claimed.is_some()
    }

    fn location(&self) -> String {
        self.config.describe()
    }

    fn watch_arrivals(&mut self, arrived: Box<dyn Fn() + Send + 'static>) {
        match ArrivalWatch::start(self.config.clone(), arrived) {
            Ok(watch) => self.watch = Some(watch),
            Err(e) => {
                tracing::debug!(error = %e, "no USB hot-plug news; the reopen backoff finds the reader")
            }
        }
    }
}

impl SamChannel for UsbSam {
    fn transact(&mut self, request: &Request, timeout: Duration) -> Result<Response, ReaderError> {
        let command = command_name(request.command());
        let deadline = Instant::now() + timeout;
        let frame = request.to_frame();
        trace::request("usb", request);
        for packet in out_packets(&frame) {
            let claimed = self
                .claimed
                .as_mut()
                .ok_or_else(|| unplugged("the USB reader is closed".into()))?;
            let left = deadline.saturating_duration_since(Instant::now());
            let done = claimed
                .bulk_out
                .transfer_blocking(Buffer::from(packet.to_vec()), left);
            if let Err(e) = done.status {
                return Err(self.transfer_error(e, command, timeout, 0));
            }
            self.wire_bytes += packet.len() as u64;
        }

        let packet_len = match &self.claimed {
            Some(claimed) => claimed.bulk_in.max_packet_size(),
            None => return Err(unplugged("the USB reader is closed".into())),
        };
        let mut answer = InPackets::with_packet_len(packet_len);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.transfer_error(
                    TransferError::Cancelled,
                    command,
                    timeout,
                    answer.received(),
                ));
            }
            let claimed = self
                .claimed
                .as_mut()
                .ok_or_else(|| unplugged("the USB reader is closed".into()))?;
            let done = claimed
                .bulk_in
                .transfer_blocking(Buffer::new(packet_len), left);
            if let Err(e) = done.status {
                return Err(self.transfer_error(e, command, timeout, answer.received()));
            }
            let packet = &done.buffer[..done.actual_len.min(done.buffer.len())];
            self.wire_bytes += packet.len() as u64;
            match answer.push(packet)? {
                Reassembled::Frame(payload) => {
                    let response = Response::from_payload(&payload)?;
                    if plausible_answer(request, &response) {
                        trace::response("usb", request, &response);
                        return Ok(response);
                    }
                    // A late answer to an earlier request: read on.
                    answer = InPackets::with_packet_len(packet_len);
                }
                Reassembled::NeedMore => {}
                // An empty transfer before any byte: the answer is not ready.
                Reassembled::Ended { received: 0 } => {
                    answer = InPackets::with_packet_len(packet_len);
                }
                Reassembled::Ended { received } => {
                    return Err(ReaderError::Truncated { command, received });
                }
            }
        }
    }

    fn wire_bytes(&self) -> u64 {
        self.wire_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration descriptor laid out as USB 2.0 (9.6.3, 9.6.5, 9.6.6)
    /// says: one interface (vendor class) with a bulk IN endpoint 0x81 and
    /// a bulk OUT endpoint 0x02 of 64 bytes, after an interrupt endpoint.
    const DESCRIPTOR: [u8; 39] = [
        0x09, 0x02, 0x27, 0x00, 0x01, 0x01, 0x00, 0x80, 0x32, // configuration
        0x09, 0x04, 0x00, 0x00, 0x03, 0xFF, 0x00, 0x00, 0x00, // interface 0
        0x07, 0x05, 0x83, 0x03, 0x08, 0x00, 0x0A, // interrupt IN 0x83
        0x07, 0x05, 0x81, 0x02, 0x40, 0x00, 0x00, // bulk IN 0x81
        0x07, 0x05, 0x02, 0x02, 0x40, 0x00, 0x00, // bulk OUT 0x02
    ];

    #[test]
    fn the_bulk_endpoints_are_found_in_the_descriptors() {
        let config = ConfigurationDescriptor::new(&DESCRIPTOR).unwrap();
        assert_eq!(
            bulk_endpoints(&config),
            Some(BulkEndpoints {
                interface: 0,
                alt_setting: 0,
                bulk_in: 0x81,
                bulk_out: 0x02,
            })
        );
    }

    #[test]
    fn an_interface_without_bulk_out_is_not_taken() {
        let mut descriptor = DESCRIPTOR.to_vec();
        descriptor.truncate(32);
        descriptor[2] = 32;
        descriptor[13] = 2;
        let config = ConfigurationDescriptor::new(&descriptor).unwrap();
        assert_eq!(bulk_endpoints(&config), None);
    }

    #[test]
    fn a_reader_that_is_not_attached_is_unplugged() {
        // This machine has no USB bus: listing finds nothing (or fails).
        let mut sam = UsbSam::new(&UsbConfig::default());
        let err = sam.reopen().unwrap_err();
        assert!(err.is_unplugged(), "{err}");
        assert!(!sam.is_open());
        assert_eq!(sam.location(), "USB 0400:C35A");
    }

    #[test]
    fn the_hot_plug_thread_stops_with_its_link() {
        let mut sam = UsbSam::new(&UsbConfig::default());
        sam.watch_arrivals(Box::new(|| {}));
        // Whether netlink lets it watch or not, dropping ends its thread
        // (the drop joins it).
        drop(sam);
    }
}

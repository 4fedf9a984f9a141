//! GA 467 frames over a USB reader's bulk endpoints, without I/O.
//!
//! USB ID readers that speak GA 467 directly (no serial adapter) carry the
//! raw frames in bulk packets of 64 bytes: the request frame goes out in
//! packets of up to 64 bytes ([`out_packets`]), the answer frame comes
//! back the same way. A transfer ends with a packet shorter than 64 bytes,
//! so a frame that fills its last packet exactly is followed by a
//! zero-length packet. Some readers pad the last packet of an answer to
//! 64 bytes; the padding after a frame is ignored.
//!
//! [`InPackets`] takes the answer's packets one by one and says when the
//! frame is whole, or that the transfer ended (a short packet) before it
//! was: the transport then reports the answer cut off.

use crate::frame::{Decoded, FrameDecoder, FrameError};

/// Bytes in a full-speed bulk packet.
pub const PACKET_LEN: usize = 64;

/// The OUT packets carrying `frame`, in order: 64 bytes each, the last
/// shorter, and an empty one when the frame fills its last packet.
pub fn out_packets(frame: &[u8]) -> Vec<&[u8]> {
    let mut packets: Vec<&[u8]> = frame.chunks(PACKET_LEN).collect();
    if frame.len().is_multiple_of(PACKET_LEN) {
        packets.push(&[]);
    }
    packets
}

/// What [`InPackets::push`] found.
#[derive(Clone, PartialEq, Eq)]
pub enum Reassembled {
    /// A whole frame's payload; read no further.
    Frame(Vec<u8>),
    /// More packets are needed.
    NeedMore,
    /// The transfer ended (a short or empty packet) after `received`
    /// bytes, before a whole frame.
    Ended { received: usize },
}

impl std::fmt::Debug for Reassembled {
    // A payload may be a read answer full of personal data: size only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reassembled::Frame(payload) => write!(f, "Frame({} bytes)", payload.len()),
            Reassembled::NeedMore => f.write_str("NeedMore"),
            Reassembled::Ended { received } => write!(f, "Ended {{ received: {received} }}"),
        }
    }
}

/// Reassembles one answer frame from its IN packets.
#[derive(Debug)]
pub struct InPackets {
    decoder: FrameDecoder,
    received: usize,
    packet_len: usize,
}

impl Default for InPackets {
    fn default() -> Self {
        InPackets::with_packet_len(PACKET_LEN)
    }
}

impl InPackets {
    /// For 64-byte packets.
    pub fn new() -> InPackets {
        InPackets::default()
    }

    /// For an endpoint whose packets hold `packet_len` bytes (a high-speed
    /// endpoint's 512): a packet shorter than that ends the transfer.
    pub fn with_packet_len(packet_len: usize) -> InPackets {
        InPackets {
            decoder: FrameDecoder::new(),
            received: 0,
            packet_len: packet_len.max(1),
        }
    }

    /// Bytes received so far.
    pub fn received(&self) -> usize {
        self.received
    }

    /// Take the next packet. A bad checksum is an error; a bad length is
    /// skipped, as on a serial line, and the frame searched for after it.
    pub fn push(&mut self, packet: &[u8]) -> Result<Reassembled, FrameError> {
        self.received += packet.len();
        self.decoder.push(packet);
        loop {
            match self.decoder.next_frame() {
                Ok(Decoded::Frame(payload)) => return Ok(Reassembled::Frame(payload)),
                Ok(Decoded::Incomplete) => break,
                Err(FrameError::Length(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(if packet.len() < self.packet_len {
            Reassembled::Ended {
                received: self.received,
            }
        } else {
            Reassembled::NeedMore
        })
    }
}

//! Automatic status back (`GS a`): the command's bytes, ASB blocks decoded
//! into [`PrinterStatus`], and the demultiplexing of blocks and `DLE EOT`
//! replies. Every vector is written from public ESC/POS documentation,
//! never from this crate's encoder:
//!
//! * `GS a n` = `1D 61 n`; n bit 1 on-line/off-line, bit 2 errors, bit 3
//!   paper roll sensor; the status is sent when the command is executed
//!   and whenever it changes; the four bytes are consecutive except for
//!   XOFF: Sewoo LK-P series ESC/POS Command Manual, p. 40,
//!   <https://manualshive.com/en/manual/sewoo/lk-p-series/1250478?page=40>
//!   (the same in Citizen's PPU-231II manual, p. 77,
//!   <https://manualshive.com/en/manual/citizen/ppu-231ii/2610290?page=79>).
//! * First byte (bit 2 drawer pin 3 high, 3 off-line, 4 fixed on, 5 cover
//!   open, 6 paper fed by the feed button): Epson ESC/POS TM-L60II
//!   technical information, `GS a`, p. 1234,
//!   <http://88.208.23.73:8080/en/manual/epson/esc-pos-tm-l60ii/esc-pos-tm-l60ii_technical-information_109143-297.html>.
//! * Second byte (bit 0 waiting for on-line recovery, 2 mechanical error,
//!   3 auto-cutter error, 5 unrecoverable, 6 automatically recoverable; 4
//!   and 7 fixed off): the same, p. 1235,
//!   <https://manualshive.com/en/manual/epson/esc-pos-tm-l60ii/109143?page=298>.
//! * Third byte (bits 0+1 near end `03`, bits 2+3 paper not present `0C`)
//!   and fourth (reserved, bits 4 and 7 fixed off): Epson TM-U220
//!   manual, p. 83, <https://www.easymanua.ls/epson/tm-u220a/manual?p=83>.
//! * Telling them apart: `DLE EOT` `0**1**10`, ASB first byte `0**1**00`,
//!   second to fourth `0**0****`, XON `00010001`, XOFF `00010011`:
//!   Citizen CT-S310 manual, 5.3 "Identification of Send Status", p. 310,
//!   <https://manualsdump.com/en/manuals/citizen_systems-pmu2xxx-ct-s310-bd2-2220/148695/310>.

use kiosk_escpos::asb::{self, ASB_ITEMS};
use kiosk_escpos::{
    AsbStatus, Inbound, InboundDemux, PaperState, PrinterFault, PrinterStatus, StatusQuery,
    Warning, command,
};

fn block(bytes: [u8; 4]) -> PrinterStatus {
    AsbStatus::parse(bytes)
        .unwrap_or_else(|| panic!("{bytes:02X?} is a valid block"))
        .status()
}

#[test]
fn gs_a_is_1d_61_n_with_online_errors_and_paper() {
    assert_eq!(command::automatic_status_back(0), vec![0x1D, 0x61, 0x00]);
    assert_eq!(command::automatic_status_back(0x0F), vec![0x1D, 0x61, 0x0F]);
    // Bits 1 (on-line/off-line), 2 (errors), 3 (paper roll sensor).
    assert_eq!(ASB_ITEMS, 0x02 | 0x04 | 0x08);
    assert_eq!(asb::enable_request(), vec![0x1D, 0x61, 0x0E]);
}

#[test]
fn all_well_is_10_00_00_00() {
    let s = block([0x10, 0x00, 0x00, 0x00]);
    assert_eq!(s, PrinterStatus::READY);
    assert_eq!(s.fault(), None);
    assert!(s.warnings().is_empty());
}

#[test]
fn first_byte_printer_information() {
    let offline = block([0x18, 0x00, 0x00, 0x00]);
    assert!(!offline.online);
    assert_eq!(offline.fault(), Some(PrinterFault::Offline));

    let cover = block([0x38, 0x00, 0x00, 0x00]);
    assert!(cover.cover_open && !cover.online);
    assert_eq!(cover.fault(), Some(PrinterFault::CoverOpen));

    let drawer = block([0x14, 0x00, 0x00, 0x00]);
    assert!(drawer.drawer_pin3_high);
    assert_eq!(drawer.fault(), None);

    let feeding = block([0x50, 0x00, 0x00, 0x00]);
    assert!(feeding.feed_button);
    assert_eq!(feeding.fault(), None);
}

#[test]
fn second_byte_errors() {
    let cutter = block([0x18, 0x08, 0x00, 0x00]);
    assert!(cutter.cutter_error && cutter.error);
    assert_eq!(cutter.fault(), Some(PrinterFault::CutterError));

    let unrecoverable = block([0x18, 0x20, 0x00, 0x00]);
    assert_eq!(
        unrecoverable.fault(),
        Some(PrinterFault::UnrecoverableError)
    );

    let auto = block([0x18, 0x40, 0x00, 0x00]);
    assert_eq!(auto.fault(), Some(PrinterFault::AutoRecoverableError));

    // A mechanical error has no cause of its own in the DLE EOT layout:
    // an error, offline.
    let mechanical = AsbStatus::parse([0x18, 0x04, 0x00, 0x00]).unwrap();
    assert!(mechanical.mechanical_error());
    assert!(mechanical.status().error);
    assert_eq!(mechanical.status().fault(), Some(PrinterFault::Offline));

    let waiting = AsbStatus::parse([0x18, 0x01, 0x00, 0x00]).unwrap();
    assert!(waiting.waiting_online_recovery());
    assert!(!waiting.status().error);
}

#[test]
fn third_byte_paper_roll() {
    let near = block([0x10, 0x00, 0x03, 0x00]);
    assert_eq!(near.paper, PaperState::NearEnd);
    assert_eq!(near.fault(), None);
    assert_eq!(near.warnings(), vec![Warning::PaperNearEnd]);

    // Paper end on a printer without the near-end sensor, and with it.
    for paper in [0x0C, 0x0F] {
        let out = block([0x18, 0x00, paper, 0x00]);
        assert_eq!(out.paper, PaperState::Out);
        assert!(out.paper_end_stop, "offline at paper end: stopped");
        assert_eq!(out.fault(), Some(PrinterFault::PaperOut));
    }
}

#[test]
fn a_block_decodes_as_the_four_dle_eot_replies_of_the_same_printer() {
    // The DLE EOT replies of a printer out of paper (n = 1..4: offline,
    // stopped at paper end, no error, both sensors; the table in the
    // `status` module) and its block say the same.
    let by_query = PrinterStatus::from_bytes([0x1A, 0x32, 0x12, 0x7E]).unwrap();
    assert_eq!(block([0x18, 0x00, 0x0F, 0x00]), by_query);
    let cutter = PrinterStatus::from_bytes([0x1A, 0x52, 0x1A, 0x12]).unwrap();
    assert_eq!(block([0x18, 0x08, 0x00, 0x00]), cutter);
}

#[test]
fn blocks_with_wrong_fixed_bits_are_not_blocks() {
    // First byte: bit 4 must be on, bits 0, 1, 7 off.
    for first in [0x00, 0x08, 0x11, 0x12, 0x90] {
        assert_eq!(AsbStatus::parse([first, 0, 0, 0]), None, "{first:02X}");
    }
    // Second to fourth: bits 4 and 7 off.
    assert_eq!(AsbStatus::parse([0x10, 0x10, 0x00, 0x00]), None);
    assert_eq!(AsbStatus::parse([0x10, 0x00, 0x80, 0x00]), None);
    assert_eq!(AsbStatus::parse([0x10, 0x00, 0x00, 0x10]), None);
}

#[test]
fn demux_tells_blocks_from_replies() {
    let mut d = InboundDemux::new();
    // A block, then the reply to DLE EOT 1 (online).
    assert_eq!(
        d.push_all(&[0x10, 0x00, 0x00, 0x00, 0x12]),
        vec![
            Inbound::Asb(AsbStatus([0x10, 0x00, 0x00, 0x00])),
            Inbound::Reply(0x12),
        ]
    );
    // Replies to DLE EOT 4: near end, paper out.
    assert_eq!(
        d.push_all(&[0x1E, 0x7E]),
        vec![Inbound::Reply(0x1E), Inbound::Reply(0x7E)]
    );
    assert!(StatusQuery::PaperSensor.parse(0x7E).is_some());
    // XOFF and XON amid a block are skipped; the block stands.
    assert_eq!(
        d.push_all(&[0x18, 0x13, 0x00, 0x0C, 0x11, 0x00]),
        vec![
            Inbound::FlowControl(0x13),
            Inbound::FlowControl(0x11),
            Inbound::Asb(AsbStatus([0x18, 0x00, 0x0C, 0x00])),
        ]
    );
    assert_eq!(d.dropped(), 0);
}

#[test]
fn a_block_cut_short_is_dropped_not_applied() {
    let mut d = InboundDemux::new();
    // Two bytes of a block, then a DLE EOT reply: the reply stands.
    assert_eq!(d.push_all(&[0x18, 0x00, 0x12]), vec![Inbound::Reply(0x12)]);
    assert_eq!(d.dropped(), 2);
    // A new first byte (0x38: cover open) restarts.
    assert_eq!(
        d.push_all(&[0x10, 0x00, 0x38, 0x00, 0x00, 0x00]),
        vec![Inbound::Asb(AsbStatus([0x38, 0x00, 0x00, 0x00]))]
    );
    assert_eq!(d.dropped(), 4);
    // A `GS r` style byte outside a block is another thing.
    assert_eq!(d.push_all(&[0x0C]), vec![Inbound::Other(0x0C)]);
    // A reset (link reopened) forgets a block in progress.
    d.push_all(&[0x10, 0x00]);
    assert!(d.in_block());
    d.reset();
    assert!(!d.in_block());
    assert_eq!(d.push_all(&[0x00]), vec![Inbound::Other(0x00)]);
}

//! The control socket, as `kiosk-sim card place ...` and `kiosk-sim
//! printer ...` use it.

use std::time::Duration;

use kiosk_escpos::{Cut, Document, EscposError, PrinterConfig, SerialPrinter};
use kiosk_idcard::frame::CardData;
use kiosk_idcard::{Command, Identity, SamError, SamStatus};
use kiosk_sim::control::{self, ControlRequest, ControlResponse, Device, DeviceStats};
use kiosk_sim::printer::{CutKind, PrinterState};
use kiosk_sim::serve::{CardEntry, PrinterEntry, SamEntry, ServeConfig};
use kiosk_sim::{CardProfile, Fault};

use crate::support::{FakeVpcd, ask, open};

#[test]
fn control_socket_places_removes_faults_and_unplugs() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let link = dir.path().join("sam0");
    let vpcd = FakeVpcd::bind();
    let config = ServeConfig {
        control: Some(socket.clone()),
        pcscd: false,
        sam: vec![SamEntry {
            name: None,
            link: link.clone(),
            baud: 115_200,
            emulate_wire_time: false,
            sam_id: None,
            profile: None,
            fault: None,
        }],
        card: vec![CardEntry {
            name: Some("reader".into()),
            port: vpcd.port,
            tunnel_header: None,
            emulate_baud: None,
            sam_id: None,
            netns: None,
            profile: Some("resident".into()),
            fault: None,
        }],
        printer: vec![],
    };
    let running = config.start().unwrap();
    let send = |req: ControlRequest| {
        let r = control::send(&socket, &req, Duration::from_secs(10)).unwrap();
        assert!(r.ok, "{req:?}: {:?}", r.error);
        r
    };

    // No device named: the first one (sam0).
    send(ControlRequest::Place {
        device: None,
        profile: "resident-expired".into(),
    });
    let mut port = open(&link, 115_200);
    assert_eq!(
        ask(&mut port, Command::FindCard).status(),
        SamStatus::CardFound
    );
    assert_eq!(ask(&mut port, Command::SelectCard).status(), SamStatus::Ok);
    let read = ask(&mut port, Command::ReadTextPhoto);
    let text = CardData::parse(&read.data, false).unwrap().text;
    assert_eq!(
        Identity::decode(&text).unwrap(),
        CardProfile::builtin("resident-expired").unwrap().identity
    );

    send(ControlRequest::Fault {
        device: Some("sam0".into()),
        fault: Fault::Sw3 {
            command: Command::ReadTextPhoto,
            sw3: 0x41,
        },
    });
    assert_eq!(
        ask(&mut port, Command::ReadTextPhoto).status(),
        SamStatus::Error(SamError::ReadFailed)
    );
    send(ControlRequest::Remove {
        device: Some("sam0".into()),
    });
    assert_eq!(
        ask(&mut port, Command::FindCard).status(),
        SamStatus::Error(SamError::NoCard)
    );

    // A profile file works as well as a built-in name.
    let file = dir.path().join("mine.toml");
    std::fs::write(&file, include_str!("../../profiles/resident-longterm.toml")).unwrap();
    send(ControlRequest::Place {
        device: Some("sam0".into()),
        profile: file.to_string_lossy().into_owned(),
    });
    assert_eq!(
        ask(&mut port, Command::FindCard).status(),
        SamStatus::CardFound
    );

    send(ControlRequest::Unplug {
        device: Some("sam0".into()),
    });
    assert!(std::fs::symlink_metadata(&link).is_err());
    send(ControlRequest::Replug {
        device: Some("sam0".into()),
    });
    assert!(std::fs::read_link(&link).is_ok());

    // The virtual card device.
    let mut v = vpcd.accept();
    assert_eq!(v.transmit(&[0x04]), kiosk_sim::vicc::ATR);
    send(ControlRequest::Remove {
        device: Some("reader".into()),
    });
    v.send(&[0x04]);
    assert_eq!(v.recv(), None);

    let stats = send(ControlRequest::Stats { device: None }).stats.unwrap();
    match stats["sam0"] {
        DeviceStats::Sam(s) => assert_eq!(s.reads_completed, 1),
        other => panic!("{other:?}"),
    }
    assert!(matches!(stats["reader"], DeviceStats::Card(c) if c.connections >= 1));
    assert_eq!(
        send(ControlRequest::Devices).devices.unwrap(),
        ["sam0", "reader"]
    );

    // Errors are answers, not hangs.
    for bad in [
        ControlRequest::Place {
            device: Some("nope".into()),
            profile: "resident".into(),
        },
        ControlRequest::Place {
            device: None,
            profile: "no-such-profile".into(),
        },
        ControlRequest::Unplug {
            device: Some("reader".into()),
        },
    ] {
        let r = control::send(&socket, &bad, Duration::from_secs(10)).unwrap();
        assert!(!r.ok && r.error.is_some(), "{bad:?}");
    }

    drop(running);
    assert!(!socket.exists(), "control socket removed");
    assert!(std::fs::symlink_metadata(&link).is_err(), "link removed");
}

#[test]
fn control_requests_use_the_documented_json() {
    let req: ControlRequest =
        serde_json::from_str(r#"{"cmd":"place","device":"sam0","profile":"resident-expired"}"#)
            .unwrap();
    assert_eq!(
        req,
        ControlRequest::Place {
            device: Some("sam0".into()),
            profile: "resident-expired".into()
        }
    );
    let req: ControlRequest =
        serde_json::from_str(r#"{"cmd":"fault","fault":{"kind":"slow","delay_ms":5}}"#).unwrap();
    assert_eq!(
        req,
        ControlRequest::Fault {
            device: None,
            fault: Fault::Slow { delay_ms: 5 }
        }
    );
    assert_eq!(
        serde_json::to_string(&ControlRequest::Remove { device: None }).unwrap(),
        r#"{"cmd":"remove"}"#
    );
}

/// A small queue ticket as kioskd prints one.
fn small_ticket(number: &str) -> Document {
    Document::builder()
        .line("演示支行")
        .line(number)
        .feed(2)
        .cut(Cut::FeedPartial(0))
        .build()
        .unwrap()
}

#[test]
fn control_socket_sets_printer_state_lists_tickets_and_unplugs_a_printer() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let sam_link = dir.path().join("sam0");
    let link = dir.path().join("printer0");
    let config = ServeConfig {
        control: Some(socket.clone()),
        pcscd: false,
        // A SAM first: printer requests without a device still mean the printer.
        sam: vec![SamEntry {
            name: None,
            link: sam_link,
            baud: 115_200,
            emulate_wire_time: false,
            sam_id: None,
            profile: None,
            fault: None,
        }],
        card: vec![],
        printer: vec![PrinterEntry {
            name: None,
            link: link.clone(),
            listen: None,
            baud: 115_200,
            emulate_wire_time: false,
            state: None,
        }],
    };
    let running = config.start().unwrap();
    let Some(Device::Printer(sim)) = running.devices.get("printer0") else {
        panic!("no printer0: {:?}", running.devices.names());
    };
    let send = |req: ControlRequest| {
        let r = control::send(&socket, &req, Duration::from_secs(10)).unwrap();
        assert!(r.ok, "{req:?}: {:?}", r.error);
        r
    };
    assert_eq!(
        send(ControlRequest::Devices).devices.unwrap(),
        ["sam0", "printer0"]
    );

    // A ticket printed through kiosk-escpos comes back decoded, as JSON.
    let mut pc = PrinterConfig::new(&link);
    pc.baud = 115_200;
    pc.status_timeout_ms = 2000;
    let mut printer = SerialPrinter::open(pc).unwrap();
    printer.print(&small_ticket("A001")).unwrap();
    sim.wait_for_tickets(1, Duration::from_secs(5)).unwrap();
    let line = r#"{"cmd":"tickets","device":"printer0","clear":false}"#;
    let req: ControlRequest = serde_json::from_str(line).unwrap();
    assert_eq!(
        req,
        ControlRequest::Tickets {
            device: Some("printer0".into()),
            clear: false
        }
    );
    let r = send(req);
    let tickets = r.tickets.as_ref().unwrap();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].texts(), ["演示支行", "A001"]);
    assert_eq!(tickets[0].cut, Some(CutKind::Partial));
    assert!(r.interrupted.as_ref().is_some_and(|v| v.is_empty()));
    // The answer survives a JSON round trip (what `kiosk-sim printer tickets` prints).
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains(r#""text":"A001""#), "{json}");
    assert_eq!(serde_json::from_str::<ControlResponse>(&json).unwrap(), r);

    // Paper out, by the documented JSON and without a device name.
    let req: ControlRequest =
        serde_json::from_str(r#"{"cmd":"printer_state","device":"printer0","state":"paper_out"}"#)
            .unwrap();
    assert_eq!(
        req,
        ControlRequest::PrinterState {
            device: Some("printer0".into()),
            state: PrinterState::PaperOut
        }
    );
    send(req);
    assert_eq!(sim.state(), PrinterState::PaperOut);
    let err = printer.print(&small_ticket("A002")).unwrap_err();
    assert!(matches!(err, EscposError::PaperOut { .. }), "{err:?}");
    send(ControlRequest::PrinterState {
        device: None,
        state: PrinterState::Ready,
    });
    assert_eq!(sim.state(), PrinterState::Ready);
    printer.print(&small_ticket("A002")).unwrap();
    sim.wait_for_tickets(2, Duration::from_secs(5)).unwrap();

    // `clear` answers the tickets, then forgets them.
    let r = send(ControlRequest::Tickets {
        device: None,
        clear: true,
    });
    let numbers: Vec<_> = r
        .tickets
        .unwrap()
        .iter()
        .map(|t| t.texts()[1].to_string())
        .collect();
    assert_eq!(numbers, ["A001", "A002"]);
    let r = send(ControlRequest::Tickets {
        device: Some("printer0".into()),
        clear: false,
    });
    assert!(r.tickets.unwrap().is_empty());

    let stats = send(ControlRequest::Stats {
        device: Some("printer0".into()),
    })
    .stats
    .unwrap();
    match stats["printer0"] {
        DeviceStats::Printer(s) => {
            assert_eq!(s.tickets, 2);
            assert!(s.rejected_bytes == 0 && s.bytes_in > 0, "{s:?}");
        }
        other => panic!("{other:?}"),
    }

    // Unplug and replug, as for a SAM.
    send(ControlRequest::Unplug {
        device: Some("printer0".into()),
    });
    assert!(std::fs::symlink_metadata(&link).is_err());
    assert!(printer.print(&small_ticket("A003")).is_err());
    send(ControlRequest::Replug {
        device: Some("printer0".into()),
    });
    assert!(std::fs::read_link(&link).is_ok());
    match send(ControlRequest::Stats { device: None }).stats.unwrap()["printer0"] {
        DeviceStats::Printer(s) => assert_eq!(s.unplugs, 1),
        other => panic!("{other:?}"),
    }

    // Printer requests on other devices, and card requests on a printer, are errors.
    for bad in [
        ControlRequest::PrinterState {
            device: Some("sam0".into()),
            state: PrinterState::PaperOut,
        },
        ControlRequest::Tickets {
            device: Some("nope".into()),
            clear: false,
        },
        ControlRequest::Place {
            device: Some("printer0".into()),
            profile: "resident".into(),
        },
        ControlRequest::Remove {
            device: Some("printer0".into()),
        },
        ControlRequest::Fault {
            device: Some("printer0".into()),
            fault: Fault::None,
        },
    ] {
        let r = control::send(&socket, &bad, Duration::from_secs(10)).unwrap();
        assert!(!r.ok && r.error.is_some(), "{bad:?}");
    }

    drop(printer);
    drop(running);
    assert!(!socket.exists(), "control socket removed");
    assert!(std::fs::symlink_metadata(&link).is_err(), "link removed");
}

//! The control socket, as `kiosk-sim card place ...` uses it.

use std::time::Duration;

use kiosk_idcard::frame::CardData;
use kiosk_idcard::{Command, Identity, SamError, SamStatus};
use kiosk_sim::control::{self, ControlRequest, DeviceStats};
use kiosk_sim::serve::{CardEntry, SamEntry, ServeConfig};
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

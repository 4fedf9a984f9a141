//! `cargo xtask demo [--smoke]`: the whole kiosk on simulated devices.
//!
//! Starts `kiosk-sim serve` (a SAM on a pty at `/tmp/kiosk-demo/sam0`, a
//! virtual ID card behind a private pcscd with the vpcd reader, an ESC/POS
//! ticket printer on a pty at `/tmp/kiosk-demo/printer0`) and kioskd on
//! `kiosk-config/demo.toml`, then waits for Ctrl-C. `--smoke` instead
//! places a card on each reader, reads it with kioskctl, takes a queue
//! ticket and checks the printer simulator decoded it, and stops: the
//! demo's own check, run by `cargo xtask test`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::processes::{
    Guard, bin, build_binaries, start_kioskd, wait_for_socket, wait_for_tcp, write_random_hex_key,
};
use crate::root;

pub const DEMO_DIR: &str = "/tmp/kiosk-demo";

/// A `[[queue.services]]` id of `kiosk-config/demo.toml`.
const DEMO_SERVICE: &str = "personal";

/// The line speed of demo.toml's `[printer]` (no `baud` there: kiosk-escpos's
/// default, 9600).
const DEMO_PRINTER_BAUD: &str = "9600";

pub fn run(args: &[String]) -> Result<()> {
    let smoke = args.iter().any(|a| a == "--smoke");
    build_binaries(false)?;
    let dir = Path::new(DEMO_DIR);
    std::fs::create_dir_all(dir)?;
    let control = dir.join("sim.sock");
    let mut guard = Guard(Vec::new());

    let mut sim = Command::new(bin("kiosk-sim", false))
        .args(["serve", "--sam"])
        .arg(dir.join("sam0"))
        .args(["--card-port", "35963", "--pcscd", "--printer"])
        .arg(dir.join("printer0"))
        .args(["--printer-baud", DEMO_PRINTER_BAUD, "--control"])
        .arg(&control)
        .stdin(Stdio::null())
        .spawn()
        .context("starting kiosk-sim")?;
    let waited = wait_for_socket(&control, "kiosk-sim", &mut sim);
    guard.0.push(("kiosk-sim".into(), sim));
    waited?;

    // Keys: the store's (made by kioskd itself) and the one shared with the
    // core-bank simulator.
    let store_key = dir.join("store.key");
    if !store_key.exists() {
        let status = Command::new(bin("kioskd", false))
            .arg("--generate-store-key")
            .arg(&store_key)
            .status()?;
        if !status.success() {
            bail!("cannot create the store key");
        }
    }
    let bank_key = dir.join("bank.key");
    if !bank_key.exists() {
        write_random_hex_key(&bank_key)?;
    }
    let mut bank = Command::new(bin("kiosk-sim", false))
        .args(["corebank", "--listen", "127.0.0.1:18700", "--db"])
        .arg(dir.join("bank.db"))
        .arg("--key-file")
        .arg(&bank_key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("starting the core-bank simulator")?;
    let waited = wait_for_tcp("127.0.0.1:18700", &mut bank);
    guard.0.push(("kiosk-sim corebank".into(), bank));
    waited?;

    let config = root().join("kiosk-config/demo.toml");
    let kioskd = start_kioskd(&config, dir, false, Stdio::inherit())?;
    guard.0.push(("kioskd".into(), kioskd));

    let sim_bin = bin("kiosk-sim", false);
    let ctl = bin("kioskctl", false);
    let socket = dir.join("kioskd.sock");

    // The touchscreen: on this desktop, or on a virtual display (the smoke
    // test always uses one).
    let mut display = crate::ui::display(smoke)?;
    if let Some(xvfb) = display.xvfb.take() {
        guard.0.insert(0, ("Xvfb".into(), xvfb));
    }
    let ui_log = dir.join("kiosk-ui.log");
    // Voice guidance on, through the sound card (without one, kiosk-ui
    // logs that once and goes on silent).
    let voices = crate::voices::default_dir();
    crate::voices::record(&voices)?;
    let voices = voices.to_string_lossy().into_owned();
    let mut ui = crate::ui::start_ui(
        &socket,
        &display,
        false,
        &ui_log,
        &["--voice", "on", "--voices", &voices],
    )?;
    let connected = crate::ui::wait_log(
        &ui_log,
        &["connected to kioskd"],
        &mut ui,
        Duration::from_secs(60),
    );
    guard.0.push(("kiosk-ui".into(), ui));
    connected?;
    if smoke {
        let frame = crate::ui::wait_log(
            &ui_log,
            &["first frame"],
            &mut guard.0.last_mut().expect("kiosk-ui").1,
            Duration::from_secs(60),
        )?;
        println!(
            "kiosk-ui: connected to kioskd, first frame after {:.0} ms",
            crate::ui::field(&frame, "first_frame_ms").unwrap_or(f64::NAN)
        );
    }
    if smoke {
        for device in ["sam0", "card0"] {
            let placed = Command::new(&sim_bin)
                .args(["card", "place", "resident", "--device", device, "--control"])
                .arg(&control)
                .status()?;
            if !placed.success() {
                bail!("placing a card on {device} failed");
            }
            let out = Command::new(&ctl)
                .arg("--socket")
                .arg(&socket)
                .args(["read-card", "--json", "--timeout", "20"])
                .output()?;
            if !out.status.success() {
                bail!(
                    "kioskctl read-card failed on {device}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            println!(
                "{device}: {}",
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .collect::<String>()
            );
            let _ = Command::new(&sim_bin)
                .args(["card", "remove", "--device", device, "--control"])
                .arg(&control)
                .status()?;
            // Wait until kioskd has seen the card go, so the next read is the next card.
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let out = Command::new(&ctl)
                    .arg("--socket")
                    .arg(&socket)
                    .args(["readers", "--json"])
                    .output()?;
                let text = String::from_utf8_lossy(&out.stdout);
                if !text.contains("\"card_present\": true") {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("kioskd still sees a card on {device}");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let number = smoke_queue_ticket(&ctl, &socket, &sim_bin, &control)?;
        let out = Command::new(&ctl)
            .arg("--socket")
            .arg(&socket)
            .args(["sync", "status", "--json"])
            .output()?;
        if !out.status.success() {
            bail!(
                "kioskctl sync status failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        println!(
            "demo smoke test: both readers read a card through kioskd; queue ticket {number} \
             printed and decoded by the printer simulator; sync status answers"
        );
        return Ok(());
    }

    let shown_on = if display.name.is_empty() {
        "this desktop (Wayland)".to_string()
    } else if std::env::var("DISPLAY").ok().as_deref() == Some(display.name.as_str()) {
        format!("this desktop ({})", display.name)
    } else {
        format!(
            "a virtual display {} (no desktop here): `cargo xtask screenshots` renders every screen",
            display.name
        )
    };
    println!(
        "\nThe demo kiosk is running; its touchscreen is on {shown_on}. \
         Technician screen: hold the top-left corner 3 s, PIN 246810. In another terminal:\n\n\
         \x20 export KIOSK_SOCKET={sock}\n\
         \x20 {ctl} events                     # watch\n\
         \x20 {sim} card place resident --device card0 --control {control}   # PC/SC reader\n\
         \x20 {sim} card place foreign-2023 --device sam0 --control {control} # serial SAM\n\
         \x20 {ctl} read-card\n\
         \x20 {sim} card remove --device card0 --control {control}\n\
         \x20 {sim} profiles                   # every simulated card\n\
         \x20 {ctl} queue take {service}         # a queue ticket on the simulated printer\n\
         \x20 {sim} printer tickets --device printer0 --control {control}   # what it printed\n\
         \x20 {sim} printer state paper_out --device printer0 --control {control}\n\
         \x20 {ctl} sync status                # outbox and core-bank link\n\
         \x20 {sim} corebank-ctl --url http://127.0.0.1:18700 stats\n\n\
         Ctrl-C stops everything.",
        sock = socket.display(),
        ctl = ctl.display(),
        sim = sim_bin.display(),
        control = control.display(),
        service = DEMO_SERVICE,
    );
    // Run until the UI's window is closed or kioskd ends (Ctrl-C reaches
    // the whole process group).
    if let Some((_, ui)) = guard.0.last_mut() {
        let _ = ui.wait();
    }
    Ok(())
}

/// Take a ticket with kioskctl and check the printer simulator decoded
/// exactly one ticket, with that number. Returns the number.
fn smoke_queue_ticket(ctl: &Path, socket: &Path, sim_bin: &Path, control: &Path) -> Result<String> {
    let out = Command::new(ctl)
        .arg("--socket")
        .arg(socket)
        .args(["queue", "take", DEMO_SERVICE, "--json"])
        .output()?;
    if !out.status.success() {
        bail!(
            "kioskctl queue take {DEMO_SERVICE} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let taken: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("kioskctl queue take --json")?;
    let Some(number) = taken["number"].as_str().map(str::to_owned) else {
        bail!("no ticket number in {taken}");
    };
    if taken["printed"] != serde_json::Value::Bool(true) {
        bail!("ticket {number} was not printed: {taken}");
    }
    println!("queue: {taken}");
    // kioskd answers once the printer has confirmed; the simulator may
    // still be decoding the tail of the ticket, so look again briefly.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new(sim_bin)
            .args(["printer", "tickets", "--device", "printer0", "--control"])
            .arg(control)
            .output()?;
        if !out.status.success() {
            bail!(
                "kiosk-sim printer tickets failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let answer: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("kiosk-sim printer tickets")?;
        let tickets = answer["tickets"].as_array().cloned().unwrap_or_default();
        let texts: Vec<Vec<String>> = tickets
            .iter()
            .map(|t| {
                t["lines"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|l| l["text"].as_str().map(str::to_owned))
                    .collect()
            })
            .collect();
        match texts.as_slice() {
            [one] if one.iter().any(|l| l.trim() == number) => {
                println!("printer0: {}", one.join(" | "));
                return Ok(number);
            }
            [] if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => bail!(
                "expected one decoded ticket numbered {number} on printer0, got {}",
                serde_json::to_string(&texts)?
            ),
        }
    }
}

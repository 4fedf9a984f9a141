//! `cargo xtask hwtest [--sam PATH]... [--printer PATH]... [--read] [--print]`
//! (or `kiosk-hwtest` with the same arguments on a kiosk): the opt-in hardware check (like probe-rs's hardware tests). It looks for
//! whatever real reader and printer are attached and says what it found:
//!
//! * serial ports (`/dev/serial/by-id/*`, `/dev/ttyUSB*`, `/dev/ttyACM*`,
//!   or the `--sam` / `--printer` paths given): a GA 467 SAM module (baud
//!   detected, status, SAM id; with `--read`, the card on it, masked) or an
//!   ESC/POS printer (its four status bytes; with `--print`, a test page);
//! * PC/SC readers through pcscd (names, and a card's UID when one lies on
//!   the reader);
//! * USB printer-class nodes (`/dev/usb/lp*`), listed.
//!
//! It is not part of `cargo xtask test`: there is no hardware on CI. Its
//! probes are tested against the simulators (a pty SAM and a pty printer),
//! which is also how it can be tried on a laptop. It is a crate of its own
//! because it links libpcsclite: the xtask must build on a machine that has
//! none yet, since it is what installs it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kiosk_escpos::{PrinterConfig, SerialPrinter};
use kiosk_idcard::mask::MaskPolicy;
use kiosk_idreader::{ReadOptions, SamConfig, SerialSam};

/// What one serial port turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    Sam {
        baud: u32,
        sam_id: String,
        /// With `--read`: the card on it, masked, and the read's time.
        card: Option<String>,
    },
    Printer {
        baud: u32,
        status: String,
    },
    Nothing(String),
}

/// Printer speeds tried, most common first.
const PRINTER_BAUDS: [u32; 4] = [9_600, 115_200, 19_200, 38_400];

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let (mut sams, mut printers, mut read, mut print) = (Vec::new(), Vec::new(), false, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--sam" => sams.extend(it.next().map(PathBuf::from)),
            "--printer" => printers.extend(it.next().map(PathBuf::from)),
            "--read" => read = true,
            "--print" => print = true,
            other => bail!(
                "hwtest: unknown argument {other:?} (usage: cargo xtask hwtest [--sam PATH]... [--printer PATH]... [--read] [--print])"
            ),
        }
    }
    let given = !sams.is_empty() || !printers.is_empty();
    let ports = if given { Vec::new() } else { serial_ports() };
    println!("hwtest: looking for ID readers and printers");
    let mut found_any = false;
    for path in sams.iter().chain(&ports) {
        let found = probe_sam(path, read);
        let found = match found {
            Found::Nothing(_) if !given => probe_printer(path, print),
            other => other,
        };
        found_any |= !matches!(found, Found::Nothing(_));
        println!("  {}: {}", path.display(), describe(&found));
    }
    for path in &printers {
        let found = probe_printer(path, print);
        found_any |= !matches!(found, Found::Nothing(_));
        println!("  {}: {}", path.display(), describe(&found));
    }
    if !given {
        found_any |= pcsc_readers();
        for lp in glob_dev("/dev/usb", "lp") {
            found_any = true;
            println!(
                "  {}: a USB printer-class node (printing through it needs [printer] transport \"usb\")",
                lp.display()
            );
        }
    }
    if !found_any {
        println!(
            "  nothing found: no serial port answered as a SAM or a printer, no PC/SC reader, no /dev/usb/lp*"
        );
    }
    Ok(())
}

fn describe(found: &Found) -> String {
    match found {
        Found::Sam { baud, sam_id, card } => format!(
            "GA 467 SAM at {baud} baud, SAM id {sam_id}{}",
            card.as_deref()
                .map(|c| format!("; {c}"))
                .unwrap_or_default()
        ),
        Found::Printer { baud, status } => format!("ESC/POS printer at {baud} baud: {status}"),
        Found::Nothing(why) => format!("nothing that answers ({why})"),
    }
}

/// Try `path` as a SAM module: baud detected, status, id; with `read`,
/// find and read the card on it (shown masked).
fn probe_sam(path: &Path, read: bool) -> Found {
    let config = SamConfig::new(path);
    let mut sam = match SerialSam::open(&config) {
        Ok(sam) => sam,
        Err(e) => return Found::Nothing(format!("as a SAM: {e}")),
    };
    let timeout = Duration::from_secs(2);
    let baud = match sam.detect_baud() {
        Ok(baud) => baud,
        Err(e) => return Found::Nothing(format!("as a SAM: {e}")),
    };
    if let Err(e) = kiosk_idreader::sam_status(&mut sam, timeout) {
        return Found::Nothing(format!("as a SAM: status: {e}"));
    }
    let sam_id = match kiosk_idreader::sam_id(&mut sam, timeout) {
        Ok(id) => id,
        Err(e) => return Found::Nothing(format!("as a SAM: SAM id: {e}")),
    };
    let card = read.then(|| read_masked(&mut sam));
    Found::Sam { baud, sam_id, card }
}

fn read_masked(sam: &mut SerialSam) -> String {
    let options = ReadOptions::default();
    match kiosk_idreader::find_card(sam, &options) {
        Ok(false) => return "no card on it".into(),
        Err(e) => return format!("find card: {e}"),
        Ok(true) => {}
    }
    let started = Instant::now();
    match kiosk_idreader::read_card(sam, &options) {
        Ok(read) => format!(
            "card {:?} {} read in {} ms",
            read.identity.card_type,
            MaskPolicy::default().id_number(&read.identity.number),
            started.elapsed().as_millis()
        ),
        Err(e) => format!("read failed: {e}"),
    }
}

/// Try `path` as an ESC/POS printer at the common speeds; with `print`,
/// print a short test page.
fn probe_printer(path: &Path, print: bool) -> Found {
    let mut last = String::new();
    for baud in PRINTER_BAUDS {
        let config = PrinterConfig {
            baud,
            ..PrinterConfig::new(path)
        };
        match SerialPrinter::open(config) {
            Ok(mut printer) => {
                let status = match printer.status() {
                    Ok(s) => format!("{s:?}"),
                    Err(e) => format!("status: {e}"),
                };
                if print {
                    let page = kiosk_escpos::Document::builder()
                        .text("kiosk hwtest")
                        .newline()
                        .cut(kiosk_escpos::Cut::Partial)
                        .build();
                    if let Err(e) = page.and_then(|p| printer.print(&p)) {
                        return Found::Printer {
                            baud,
                            status: format!("{status}; test page: {e}"),
                        };
                    }
                }
                return Found::Printer { baud, status };
            }
            Err(e) => last = e.to_string(),
        }
    }
    Found::Nothing(format!("as a printer: {last}"))
}

/// The serial ports worth probing: the stable by-id links, else the raw
/// USB-serial and CDC nodes.
fn serial_ports() -> Vec<PathBuf> {
    let by_id = glob_dev("/dev/serial/by-id", "");
    if !by_id.is_empty() {
        return by_id;
    }
    let mut ports = glob_dev("/dev", "ttyUSB");
    ports.extend(glob_dev("/dev", "ttyACM"));
    ports
}

fn glob_dev(dir: &str, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// PC/SC readers through pcscd; `true` when any was found.
fn pcsc_readers() -> bool {
    let ctx = match pcsc::Context::establish(pcsc::Scope::User) {
        Ok(ctx) => ctx,
        Err(e) => {
            println!("  PC/SC: pcscd not reachable ({e})");
            return false;
        }
    };
    let readers = match kiosk_idreader::list_readers(&ctx) {
        Ok(r) => r,
        Err(e) => {
            println!("  PC/SC: cannot list readers ({e})");
            return false;
        }
    };
    for name in &readers {
        let uid = ctx
            .connect(name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
            .ok()
            .and_then(|card| kiosk_idreader::card_uid(&card).ok())
            .map(|uid| format!(", a card with UID {}", hex_upper(&uid)))
            .unwrap_or_else(|| ", no card".into());
        println!("  PC/SC reader {:?}{uid}", name.to_string_lossy());
    }
    !readers.is_empty()
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use kiosk_sim::printer::{PrinterSim, PrinterSimConfig};
    use kiosk_sim::{CardProfile, SamSim, SamSimConfig};

    use super::*;

    /// The probes against the simulators: a SAM is found with its baud
    /// and id and its card read (masked); a printer answers its status;
    /// a printer is not taken for a SAM.
    #[test]
    fn hwtest_finds_a_sam_and_a_printer_on_ptys() {
        let dir = tempfile::tempdir().expect("dir");
        let sam = SamSim::start(SamSimConfig::new(dir.path().join("sam"))).expect("sam sim");
        sam.place(CardProfile::builtin("resident").expect("profile"));
        let Found::Sam { baud, sam_id, card } = probe_sam(sam.link(), true) else {
            panic!("no SAM found");
        };
        assert_eq!(baud, 115_200);
        assert_eq!(sam_id, "05.01-20101216-0011223344-1234567890");
        let card = card.expect("a card");
        assert!(card.contains("Resident"), "{card}");
        let number = &CardProfile::builtin("resident").unwrap().identity.number;
        assert!(!card.contains(number.as_str()), "masked: {card}");

        let printer = PrinterSim::start(PrinterSimConfig::new(dir.path().join("printer")))
            .expect("printer sim");
        assert!(matches!(
            probe_sam(printer.link(), false),
            Found::Nothing(_)
        ));
        let found = probe_printer(printer.link(), false);
        assert!(matches!(found, Found::Printer { .. }), "{found:?}");
    }
}

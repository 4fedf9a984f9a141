//! `kiosk-sim`: run simulated ID-reader devices and control them.
//!
//! ```text
//! kiosk-sim serve --config sim.toml
//! kiosk-sim serve --sam /tmp/kiosk-sim/sam0 --card-port 35963 --profile resident
//! kiosk-sim serve --printer /tmp/kiosk-sim/printer0 [--printer-baud 115200] [--printer-wire-time]
//! kiosk-sim serve --printer-tcp 127.0.0.1:9100
//! kiosk-sim card place resident-expired [--device sam0] [--control SOCKET]
//! kiosk-sim card remove [--device sam0]
//! kiosk-sim card fault slow:1500 [--device sam0]
//! kiosk-sim unplug|replug [--device sam0|printer0]
//! kiosk-sim printer state paper_out [--device printer0] [--control SOCKET]
//! kiosk-sim printer tickets [--clear] [--device printer0] [--control SOCKET]
//! kiosk-sim stats
//! kiosk-sim profiles
//! kiosk-sim corebank --listen 127.0.0.1:8700 --db FILE --key-file FILE [--fixtures FILE]
//!                    [--synthetic N] [--faults JSON] [--otp-ttl-s S] [--otp-min-interval-s S]
//!                    [--allow-kiosk ID ...]
//! kiosk-sim corebank-faults [--url http://127.0.0.1:8700] ['{"error_rate":0.2}']
//! kiosk-sim corebank-ctl [--url URL] stats|faults [JSON]|sms MOBILE|customer ID|reset|clock [ADVANCE_MS]
//! ```

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use kiosk_sim::control::{self, ControlRequest};
use kiosk_sim::printer::PrinterState;
use kiosk_sim::serve::{CardEntry, DEFAULT_CONTROL, PrinterEntry, SamEntry, ServeConfig};
use kiosk_sim::{CardProfile, Fault};
use nix::sys::signal::{SigSet, Signal};
use tracing::info;

#[derive(Debug, Parser)]
#[command(
    name = "kiosk-sim",
    version,
    about = "Simulated GA 467 SAM (pty) and virtual ID card (vpcd) for the kiosk"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run simulated devices and the control socket until SIGINT/SIGTERM.
    Serve(ServeArgs),
    /// Place, remove or break the card of a running `serve`.
    Card {
        #[command(subcommand)]
        action: CardCmd,
    },
    /// Set a printer's state or list the tickets it printed.
    Printer {
        #[command(subcommand)]
        action: PrinterCmd,
    },
    /// Unplug a SAM module or a printer (its link disappears, the kiosk sees EOF).
    Unplug(Target),
    /// Plug a SAM module or a printer back in (same link, new pty).
    Replug(Target),
    /// Print the counters of a running `serve` as JSON.
    Stats(Target),
    /// List the built-in card profiles.
    Profiles,
    /// Run the core-bank simulator (HTTP on loopback) until SIGINT/SIGTERM;
    /// prints its base URL on stdout once listening.
    Corebank(CorebankArgs),
    /// Show the faults of a running core-bank simulator, or set them (JSON).
    CorebankFaults {
        #[arg(long, default_value = DEFAULT_COREBANK_URL)]
        url: String,
        /// A faults JSON object; replaces all faults (omitted fields: no fault).
        json: Option<String>,
    },
    /// Talk to a running core-bank simulator's control API.
    CorebankCtl {
        #[arg(long, default_value = DEFAULT_COREBANK_URL)]
        url: String,
        #[command(subcommand)]
        action: CorebankCtl,
    },
}

const DEFAULT_COREBANK_URL: &str = "http://127.0.0.1:8700";

#[derive(Debug, Args)]
struct CorebankArgs {
    /// Loopback address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8700")]
    listen: std::net::SocketAddr,
    /// The simulator's SQLite file (created if missing; state is kept).
    #[arg(long)]
    db: PathBuf,
    /// Customers file (default: the built-in sim/fixtures/customers.toml).
    #[arg(long)]
    fixtures: Option<PathBuf>,
    /// Also create this many synthetic customers (S000001...).
    #[arg(long, default_value_t = 0)]
    synthetic: usize,
    /// The shared signing key (hex, or raw bytes).
    #[arg(long)]
    key_file: PathBuf,
    /// Faults at start, as JSON (see `corebank-faults`).
    #[arg(long)]
    faults: Option<String>,
    /// OTP lifetime in seconds.
    #[arg(long, default_value_t = 300)]
    otp_ttl_s: u64,
    /// Least seconds between two OTPs for one customer.
    #[arg(long, default_value_t = 30)]
    otp_min_interval_s: u64,
    /// Accept only these kiosk ids (repeatable; default: any).
    #[arg(long = "allow-kiosk", value_name = "ID")]
    allow_kiosk: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum CorebankCtl {
    /// Counters: requests, applications per change, duplicates, faults.
    Stats,
    /// Show the faults, or replace them with a JSON object.
    Faults { json: Option<String> },
    /// Messages sent to a mobile number (OTP codes and notices).
    Sms { mobile: String },
    /// A customer as the simulator holds it now.
    Customer { id: String },
    /// Forget all state and reload the customers.
    Reset,
    /// Show the simulator's clock, or move it forward by ADVANCE_MS.
    Clock { advance_ms: Option<i64> },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Config file (TOML); flags below add devices to it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run a SAM module on a pty behind this symlink (repeatable: sam0, sam1, ...).
    #[arg(long = "sam", value_name = "LINK")]
    sam: Vec<PathBuf>,
    /// The SAM modules' line speed.
    #[arg(long, default_value_t = 115_200)]
    baud: u32,
    /// Delay SAM answers by their wire time at that speed.
    #[arg(long)]
    wire_time: bool,
    /// Run a virtual card connecting to vpcd on this port and the next (repeatable: card0, ...).
    #[arg(long = "card-port", value_name = "PORT")]
    card_port: Vec<u16>,
    /// Emulate the reader's internal SAM line speed for tunnelled frames.
    #[arg(long)]
    card_baud: Option<u32>,
    /// Header of the GA 467 tunnelling APDU.
    #[arg(long, default_value = "FF699600")]
    tunnel_header: String,
    /// A card profile (name or file) placed on every flag-configured device at start.
    #[arg(long)]
    profile: Option<String>,
    /// The control socket (overrides the config file's).
    #[arg(long)]
    control: Option<PathBuf>,
    /// Also run a private pcscd (own network namespace, needs root) with a
    /// vpcd reader for each --card-port.
    #[arg(long)]
    pcscd: bool,
    /// Run an ESC/POS ticket printer on a pty behind this symlink
    /// (repeatable: printer0, printer1, ...).
    #[arg(long = "printer", value_name = "LINK")]
    printer: Vec<PathBuf>,
    /// Run an ESC/POS network printer (raw port, as TCP 9100) listening on
    /// this loopback address (repeatable).
    #[arg(long = "printer-tcp", value_name = "ADDR")]
    printer_tcp: Vec<std::net::SocketAddr>,
    /// The printers' line speed.
    #[arg(long, default_value_t = 115_200)]
    printer_baud: u32,
    /// Read printer data at the speed of the line.
    #[arg(long)]
    printer_wire_time: bool,
}

#[derive(Debug, Args)]
struct Target {
    /// Device name (default: the first configured device).
    #[arg(long)]
    device: Option<String>,
    /// Control socket of the running `kiosk-sim serve`.
    #[arg(long, default_value = DEFAULT_CONTROL)]
    control: PathBuf,
}

#[derive(Debug, Subcommand)]
enum PrinterCmd {
    /// Set the state: ready, paper_near_end, paper_out, cover_open, offline, cutter_error.
    State {
        state: String,
        #[command(flatten)]
        target: PrinterTarget,
    },
    /// Print the tickets decoded so far (and those interrupted) as JSON.
    Tickets {
        /// Forget them once printed.
        #[arg(long)]
        clear: bool,
        #[command(flatten)]
        target: PrinterTarget,
    },
}

#[derive(Debug, Args)]
struct PrinterTarget {
    /// Printer name (default: the first configured printer).
    #[arg(long)]
    device: Option<String>,
    /// Control socket of the running `kiosk-sim serve`.
    #[arg(long, default_value = DEFAULT_CONTROL)]
    control: PathBuf,
}

impl From<PrinterTarget> for Target {
    fn from(t: PrinterTarget) -> Target {
        Target {
            device: t.device,
            control: t.control,
        }
    }
}

#[derive(Debug, Subcommand)]
enum CardCmd {
    /// Place a card: a built-in profile name or a profile file.
    Place {
        profile: String,
        #[command(flatten)]
        target: Target,
    },
    /// Take the card away.
    Remove(Target),
    /// Set a fault: none, bad_checksum, pull_mid_read, slow:MS, sw3:COMMAND:HEX, or JSON.
    Fault {
        fault: String,
        #[command(flatten)]
        target: Target,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve(args) => serve(args),
        Cmd::Card { action } => match action {
            CardCmd::Place { profile, target } => {
                // Check locally first for a clear message (the server resolves it again).
                if CardProfile::resolve(&profile).is_err() {
                    bail!(
                        "unknown profile {profile:?}: see `kiosk-sim profiles`, or give a profile file"
                    );
                }
                let profile = if std::path::Path::new(&profile).exists()
                    && CardProfile::builtin(&profile).is_err()
                {
                    std::fs::canonicalize(&profile)?
                        .to_string_lossy()
                        .into_owned()
                } else {
                    profile
                };
                request(
                    &target,
                    ControlRequest::Place {
                        device: target.device.clone(),
                        profile,
                    },
                )
            }
            CardCmd::Remove(target) => request(
                &target,
                ControlRequest::Remove {
                    device: target.device.clone(),
                },
            ),
            CardCmd::Fault { fault, target } => {
                let fault: Fault = fault.parse()?;
                request(
                    &target,
                    ControlRequest::Fault {
                        device: target.device.clone(),
                        fault,
                    },
                )
            }
        },
        Cmd::Printer { action } => match action {
            PrinterCmd::State { state, target } => {
                let state: PrinterState = state.parse().map_err(anyhow::Error::msg)?;
                let target = Target::from(target);
                request(
                    &target,
                    ControlRequest::PrinterState {
                        device: target.device.clone(),
                        state,
                    },
                )
            }
            PrinterCmd::Tickets { clear, target } => {
                let target = Target::from(target);
                request(
                    &target,
                    ControlRequest::Tickets {
                        device: target.device.clone(),
                        clear,
                    },
                )
            }
        },
        Cmd::Unplug(target) => request(
            &target,
            ControlRequest::Unplug {
                device: target.device.clone(),
            },
        ),
        Cmd::Replug(target) => request(
            &target,
            ControlRequest::Replug {
                device: target.device.clone(),
            },
        ),
        Cmd::Stats(target) => request(
            &target,
            ControlRequest::Stats {
                device: target.device.clone(),
            },
        ),
        Cmd::Corebank(args) => corebank(args),
        Cmd::CorebankFaults { url, json } => corebank_ctl(&url, CorebankCtl::Faults { json }),
        Cmd::CorebankCtl { url, action } => corebank_ctl(&url, action),
        Cmd::Profiles => {
            for p in CardProfile::builtins() {
                println!(
                    "{:<22} {:<22} {}",
                    p.name,
                    format!("{:?}", p.identity.card_type),
                    p.description
                );
            }
            Ok(())
        }
    }
}

fn request(target: &Target, req: ControlRequest) -> anyhow::Result<()> {
    let resp =
        control::send(&target.control, &req, Duration::from_secs(30)).with_context(|| {
            format!(
                "is `kiosk-sim serve` running with --control {}?",
                target.control.display()
            )
        })?;
    if !resp.ok {
        bail!("{}", resp.error.unwrap_or_else(|| "failed".into()));
    }
    if resp.stats.is_some() || resp.devices.is_some() || resp.tickets.is_some() {
        println!("{}", serde_json::to_string_pretty(&resp)?);
    }
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => ServeConfig::load(path)?,
        None => ServeConfig::default(),
    };
    for link in &args.sam {
        config.sam.push(SamEntry {
            name: None,
            link: link.clone(),
            baud: args.baud,
            emulate_wire_time: args.wire_time,
            sam_id: None,
            profile: args.profile.clone(),
            fault: None,
        });
    }
    for port in &args.card_port {
        config.card.push(CardEntry {
            name: None,
            port: *port,
            tunnel_header: Some(args.tunnel_header.clone()),
            emulate_baud: args.card_baud,
            sam_id: None,
            netns: None,
            profile: args.profile.clone(),
            fault: None,
        });
    }
    for link in &args.printer {
        config.printer.push(PrinterEntry {
            name: None,
            link: link.clone(),
            listen: None,
            baud: args.printer_baud,
            emulate_wire_time: args.printer_wire_time,
            state: None,
        });
    }
    for listen in &args.printer_tcp {
        config.printer.push(PrinterEntry {
            name: None,
            link: PathBuf::new(),
            listen: Some(*listen),
            baud: args.printer_baud,
            emulate_wire_time: false,
            state: None,
        });
    }
    config.pcscd |= args.pcscd;
    if let Some(control) = args.control {
        config.control = Some(control);
    }
    if config.sam.is_empty() && config.card.is_empty() && config.printer.is_empty() {
        bail!(
            "nothing to serve: give --config, --sam LINK, --card-port PORT, --printer LINK or --printer-tcp ADDR"
        );
    }
    // pcscd first: a child inherits the signal mask, and a pcscd with
    // SIGTERM blocked cannot be stopped cleanly.
    let pcscd = config.start_pcscd()?;
    // Block the stop signals before any thread starts (threads inherit the
    // mask), then wait for one here: a clean shutdown removes links and sockets.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block().context("blocking signals")?;
    let running = config.start_with(pcscd)?;
    info!(devices = ?running.devices.names(), control = %running.control.path().display(), "kiosk-sim serving");
    let signal = signals.wait().context("waiting for a signal")?;
    info!(?signal, "stopping");
    drop(running);
    Ok(())
}

fn corebank(args: CorebankArgs) -> anyhow::Result<()> {
    use kiosk_sim::corebank::{CoreBankConfig, CoreBankSim, Faults, FixtureSource, KeySource};
    let mut config = CoreBankConfig::new(&args.db, KeySource::File(args.key_file.clone()));
    config.listen = args.listen;
    if let Some(f) = &args.fixtures {
        config.fixtures = FixtureSource::File(f.clone());
    }
    config.synthetic = args.synthetic;
    if let Some(json) = &args.faults {
        config.faults = Faults::from_json(json).map_err(|e| anyhow::anyhow!("--faults: {e}"))?;
    }
    config.otp_ttl_s = args.otp_ttl_s;
    config.otp_min_interval_s = args.otp_min_interval_s;
    if !args.allow_kiosk.is_empty() {
        config.allowed_kiosks = Some(args.allow_kiosk.clone());
    }
    // Block the stop signals before the runtime's threads start (they
    // inherit the mask), then wait for one here.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block().context("blocking signals")?;
    let sim = CoreBankSim::start(config)?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", sim.base_url())?;
        out.flush()?;
    }
    let signal = signals.wait().context("waiting for a signal")?;
    info!(?signal, "stopping");
    sim.stop();
    Ok(())
}

fn corebank_ctl(url: &str, action: CorebankCtl) -> anyhow::Result<()> {
    let (method, path, body) = match action {
        CorebankCtl::Stats => ("GET", "/_sim/stats".to_string(), None),
        CorebankCtl::Faults { json: None } => ("GET", "/_sim/faults".into(), None),
        CorebankCtl::Faults { json: Some(j) } => ("PUT", "/_sim/faults".into(), Some(j)),
        CorebankCtl::Sms { mobile } => ("GET", format!("/_sim/sms?mobile={mobile}"), None),
        CorebankCtl::Customer { id } => ("GET", format!("/_sim/customers/{id}"), None),
        CorebankCtl::Reset => ("POST", "/_sim/reset".into(), Some(String::new())),
        CorebankCtl::Clock { advance_ms: None } => ("GET", "/_sim/clock".into(), None),
        CorebankCtl::Clock {
            advance_ms: Some(ms),
        } => (
            "POST",
            "/_sim/clock".into(),
            Some(format!("{{\"advance_ms\":{ms}}}")),
        ),
    };
    let (status, text) = kiosk_sim::corebank::http_request(url, method, &path, body.as_deref())
        .with_context(|| format!("is `kiosk-sim corebank` running at {url}?"))?;
    let pretty = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(text);
    println!("{pretty}");
    if !(200..300).contains(&status) {
        bail!("HTTP {status}");
    }
    Ok(())
}

//! `kioskctl`: the technician's command line to a running kioskd.
//!
//! Exit codes: 0 done; 1 kioskd refused or the read failed; 2 usage;
//! 3 kioskd unreachable; 4 timed out.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kiosk_proto::{Client, ClientError, ErrorCode, Event, EventEnvelope};

#[derive(Debug, Parser)]
#[command(version, about = "Technician CLI for kioskd")]
struct Args {
    /// kioskd's socket.
    #[arg(long, global = true, env = "KIOSK_SOCKET", default_value = kiosk::config::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Daemon and device status.
    Status,
    /// ID readers and what they see.
    Readers,
    /// Check readers, SAMs, printer, core bank, database and audit chain;
    /// exit 0 when every check passes (or is skipped), 1 when one fails.
    Selftest {
        /// Also print the printer's test page.
        #[arg(long)]
        print_test_page: bool,
    },
    /// Wait for a card and print its identity, masked.
    ReadCard {
        /// Seconds to wait for a card.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// The outbox of changes and the link to the core bank.
    Sync {
        #[command(subcommand)]
        action: SyncCmd,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        action: AuditCmd,
    },
    /// The ticket queue: services, take, reprint, call, status, report.
    Queue {
        #[command(subcommand)]
        action: QueueCmd,
    },
    /// Print events as they happen (masked), until interrupted.
    Events {
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
    /// A new random token for a counter or a secondary queue machine: prints
    /// the token (give it to the counter or put it in the machine's
    /// `token_file`) and its `token_sha256` line for the primary's
    /// `[branch]` (no running kioskd needed).
    BranchToken,
    /// Hash a technician PIN for `[ui] technician_pin_hash`: reads the PIN
    /// from standard input (no running kioskd needed).
    PinHash,
    /// kioskd's configuration file (no running kioskd needed).
    Config {
        #[command(subcommand)]
        action: ConfigCmd,
    },
    /// The local database, read directly (as root or kioskd's user; kioskd
    /// may be running).
    Store {
        #[command(subcommand)]
        action: StoreCmd,
    },
}

#[derive(Debug, Subcommand)]
enum StoreCmd {
    /// Copy the database to FILE (a new file, mode 0600), consistent while
    /// kioskd keeps working; the outbox's personal data stay encrypted.
    /// Restore with `kioskd --config CONFIG --restore FILE`.
    Backup {
        file: PathBuf,
        /// kioskd's configuration (for `[store] path`).
        #[arg(long, env = "KIOSK_CONFIG", default_value = "/etc/kiosk/kiosk.toml")]
        config: PathBuf,
        /// Succeed without writing anything when there is no store yet
        /// (the package's upgrade uses it).
        #[arg(long)]
        if_exists: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCmd {
    /// Check FILE and print every problem, each naming its key; exit 0
    /// when valid, 1 with problems, 2 when FILE cannot be read.
    Check { file: PathBuf },
}

#[derive(Debug, Subcommand)]
enum SyncCmd {
    /// Backlog, oldest pending age, last error, core-bank reachability.
    Status,
    /// Changes in the outbox (masked: no personal data).
    List {
        /// Only this state: pending, in_flight, delivered, rejected.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Send a rejected or backing-off change again now.
    Retry { change_id: String },
    /// Changes the bank rejected for good, with its reasons.
    Rejected,
}

#[derive(Debug, Subcommand)]
enum QueueCmd {
    /// The services and their letters.
    Services,
    /// Take (and print) a ticket for SERVICE.
    Take {
        service: String,
        /// Use the ID card on the reader (masked name, validity check).
        #[arg(long)]
        card: bool,
    },
    /// Print a ticket again, same number (default: the last ticket).
    Reprint { ticket_id: Option<String> },
    /// Counter staff: call the next waiting ticket of SERVICE.
    Call { service: String },
    /// Per service: waiting, last called, last issued.
    Status,
    /// Rule Q9: per service and counter, tickets, served, skipped, waiting
    /// and service time (median, p90, max) of a business day.
    Report {
        /// YYYY-MM-DD; today's business day without it.
        #[arg(long)]
        date: Option<String>,
        /// Comma-separated values with a header line.
        #[arg(long)]
        csv: bool,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCmd {
    /// Check the audit trail's hash chain; exit 1 if it is broken.
    Verify,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Command::Config {
        action: ConfigCmd::Check { file },
    } = &args.command
    {
        return config_check(file, args.json);
    }
    if let Command::PinHash = &args.command {
        return pin_hash();
    }
    if let Command::Store {
        action:
            StoreCmd::Backup {
                file,
                config,
                if_exists,
            },
    } = &args.command
    {
        return store_backup(config, file, *if_exists, args.json);
    }
    if let Command::BranchToken = &args.command {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token = hex::encode(bytes);
        println!("token        {token}");
        println!("token_sha256 = \"{}\"", kiosk::config::token_hash(&token));
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kioskctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kioskctl: {e}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// `config check FILE`: every problem at once; 0 valid, 1 problems,
/// 2 unreadable.
fn pin_hash() -> ExitCode {
    let mut line = zeroize::Zeroizing::new(String::new());
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("kioskctl: cannot read the PIN: {e}");
        return ExitCode::from(2);
    }
    match kiosk::technician::hash_pin(line.trim()) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kioskctl: {e}");
            ExitCode::from(2)
        }
    }
}

/// `store backup FILE`: 0 written, 1 failed, 2 bad config.
fn store_backup(
    config: &std::path::Path,
    file: &std::path::Path,
    if_exists: bool,
    json: bool,
) -> ExitCode {
    let store = match kiosk::config::Config::load_store_section(config) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("kioskctl: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(store) = &store else {
        eprintln!("kioskctl: the configuration has no [store]");
        return ExitCode::from(2);
    };
    if if_exists && !store.path.exists() {
        println!("{}: no store yet, nothing to back up", store.path.display());
        return ExitCode::SUCCESS;
    }
    match kiosk::store::backup(&store.path, file) {
        Ok(report) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "file": file.display().to_string(),
                        "schema_version": report.schema_version,
                        "changes": report.changes,
                        "audit_records": report.audit_records,
                    })
                );
            } else {
                println!(
                    "{}: backup of {} (schema {}, {} changes, {} audit records)",
                    file.display(),
                    store.path.display(),
                    report.schema_version,
                    report.changes,
                    report.audit_records
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kioskctl: {e}");
            ExitCode::FAILURE
        }
    }
}

fn config_check(file: &std::path::Path, json: bool) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "file": file.display().to_string(),
                        "valid": false,
                        "readable": false,
                        "error": e.to_string(),
                    })
                );
            }
            eprintln!("kioskctl: cannot read {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let problems = kiosk::config::Config::problems(&text);
    if json {
        println!(
            "{}",
            serde_json::json!({
                "file": file.display().to_string(),
                "valid": problems.is_empty(),
                "readable": true,
                "problems": problems,
            })
        );
    } else if problems.is_empty() {
        println!("{}: ok", file.display());
    } else {
        for p in &problems {
            println!("{p}");
        }
        eprintln!(
            "kioskctl: {}: {} problem(s)",
            file.display(),
            problems.len()
        );
    }
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn exit_code(e: &ClientError) -> u8 {
    match e {
        ClientError::Connect { .. } => 3,
        ClientError::Timeout(_) => 4,
        ClientError::Api(api) if api.code == ErrorCode::Timeout => 4,
        _ => 1,
    }
}

async fn run(args: &Args) -> Result<(), ClientError> {
    let mut client = Client::connect(&args.socket).await?;
    match &args.command {
        Command::Status => {
            let status = client.status().await?;
            if args.json {
                return print_json(&status);
            }
            println!(
                "kiosk    {} (branch {}, {})",
                status.kiosk_id, status.branch_id, status.profile
            );
            println!("kioskd   {} up {}s", status.daemon_version, status.uptime_s);
            if let Some(b) = status.sync_backlog {
                println!("sync     backlog {b}");
            }
            if let (Some(free), Some(total)) = (status.disk_free_bytes, status.disk_total_bytes) {
                println!(
                    "disk     {} MiB free of {} MiB",
                    free / (1024 * 1024),
                    total / (1024 * 1024)
                );
            }
            for d in &status.devices {
                println!(
                    "{:<8} {:<10} {:<14} {}{}{}",
                    d.kind,
                    d.name,
                    d.state.to_string(),
                    d.detail.as_deref().unwrap_or(""),
                    d.sam_id
                        .as_deref()
                        .map(|s| format!(" sam:{s}"))
                        .unwrap_or_default(),
                    d.last_error
                        .as_deref()
                        .map(|e| format!(" (last error: {e})"))
                        .unwrap_or_default()
                );
            }
        }
        Command::Selftest { print_test_page } => {
            let report = client
                .selftest(kiosk_proto::SelftestParams {
                    print_test_page: *print_test_page,
                })
                .await?;
            if args.json {
                print_json(&report)?;
            } else {
                for c in &report.checks {
                    println!("{:<4} {:<20} {}", c.outcome.as_str(), c.name, c.reason);
                }
                println!(
                    "selftest {}: {} passed, {} failed, {} skipped",
                    if report.ok { "passed" } else { "FAILED" },
                    report.passed,
                    report.failed,
                    report.skipped
                );
            }
            if !report.ok {
                std::process::exit(1);
            }
        }
        Command::Readers => {
            let readers = client.readers().await?;
            if args.json {
                return print_json(&readers);
            }
            for r in &readers {
                println!(
                    "{:<10} {:<9} {:<14} attached:{:<3} card:{:<3} sam:{} reads ok/failed: {}/{}",
                    r.name,
                    r.transport,
                    r.state.to_string(),
                    if r.attached { "yes" } else { "no" },
                    if r.card_present { "yes" } else { "no" },
                    r.sam_id.as_deref().unwrap_or("-"),
                    r.reads_ok,
                    r.reads_failed
                );
            }
        }
        Command::ReadCard { timeout } => {
            if !args.json {
                eprintln!("waiting for a card ({timeout} s)...");
            }
            let read = client.read_card(Some(timeout.saturating_mul(1000))).await?;
            if args.json {
                return print_json(&read);
            }
            let id = &read.identity;
            println!("reader       {}", read.reader);
            println!("card type    {}", id.card_type.corebank_id_type());
            println!("name         {}", id.name);
            if let Some(en) = &id.english_name {
                println!("english name {en}");
            }
            println!("number       {}", id.number);
            println!("birth date   {}", id.birth_date);
            if let Some(a) = &id.address {
                println!("address      {a}");
            }
            println!("valid        {} .. {}", id.valid_from, id.valid_until);
            println!("read in      {} ms", read.read_ms);
        }
        Command::Sync { action } => match action {
            SyncCmd::Status => {
                let st = client.sync_status().await?;
                if args.json {
                    return print_json(&st);
                }
                println!("backlog      {}", st.backlog);
                println!(
                    "oldest       {}",
                    st.oldest_pending_age_s
                        .map(|s| format!("{s} s"))
                        .unwrap_or_else(|| "-".into())
                );
                println!("delivered    {}", st.delivered);
                println!("rejected     {}", st.rejected);
                println!(
                    "core bank    {}",
                    match st.core_reachable {
                        Some(true) => "reachable",
                        Some(false) => "unreachable",
                        None => "not contacted yet",
                    }
                );
                if let Some(skew) = st.clock_skew_ms {
                    println!("clock skew   {skew} ms");
                }
                println!("last error   {}", st.last_error.as_deref().unwrap_or("-"));
            }
            SyncCmd::List { state, limit } => {
                let list = client
                    .sync_list(kiosk_proto::SyncListParams {
                        state: state.clone(),
                        limit: Some(*limit),
                    })
                    .await?;
                if args.json {
                    return print_json(&list);
                }
                print_changes(&list);
            }
            SyncCmd::Retry { change_id } => {
                let c = client.sync_retry(change_id).await?;
                if args.json {
                    return print_json(&c);
                }
                println!("{} is {} again", c.change_id, c.state);
            }
            SyncCmd::Rejected => {
                let list = client.sync_rejected().await?;
                if args.json {
                    return print_json(&list);
                }
                print_changes(&list);
            }
        },
        Command::Audit {
            action: AuditCmd::Verify,
        } => {
            let report = client.audit_verify().await?;
            if args.json {
                print_json(&report)?;
            } else if report.ok {
                println!("audit trail intact: {} records", report.records);
            } else {
                println!(
                    "audit trail BROKEN at record {}: {}",
                    report
                        .first_bad_seq
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "?".into()),
                    report.problem.as_deref().unwrap_or("unknown")
                );
            }
            if !report.ok {
                // A broken chain is a finding, not a failure to talk: exit 1.
                std::process::exit(1);
            }
        }
        Command::Queue { action } => match action {
            QueueCmd::Services => {
                let list = client.queue_services().await?;
                if args.json {
                    return print_json(&list);
                }
                for s in &list {
                    println!("{} {:<12} {} / {}", s.letter, s.id, s.name_zh, s.name_en);
                }
            }
            QueueCmd::Take { service, card } => {
                let t = client.queue_take(service, *card).await?;
                if args.json {
                    return print_json(&t);
                }
                print_ticket(&t);
            }
            QueueCmd::Reprint { ticket_id } => {
                let t = client.queue_reprint(ticket_id.as_deref()).await?;
                if args.json {
                    return print_json(&t);
                }
                print_ticket(&t);
            }
            QueueCmd::Call { service } => {
                let c = client.queue_call(service).await?;
                if args.json {
                    return print_json(&c);
                }
                match &c.number {
                    Some(n) => println!("calling {n} ({}), {} still waiting", c.service, c.waiting),
                    None => println!("nobody is waiting for {}", c.service),
                }
            }
            QueueCmd::Report { date, csv } => {
                let report = client.queue_report(date.as_deref()).await?;
                if args.json {
                    return print_json(&report);
                }
                print_report(&report, *csv);
            }
            QueueCmd::Status => {
                let st = client.queue_status().await?;
                if args.json {
                    return print_json(&st);
                }
                println!("business day {}", st.business_day);
                for s in &st.services {
                    println!(
                        "{} {:<12} waiting {:<4} last called {:<6} last issued {}",
                        s.letter,
                        s.service,
                        s.waiting,
                        s.last_called.as_deref().unwrap_or("-"),
                        s.last_issued.as_deref().unwrap_or("-")
                    );
                }
            }
        },
        Command::Config { .. }
        | Command::PinHash
        | Command::Store { .. }
        | Command::BranchToken => {
            unreachable!("handled before connecting")
        }
        Command::Events { count } => {
            client.subscribe().await?;
            // On stderr, so stdout stays one event per line; a script (or a
            // test) knows from it that no later event will be missed.
            eprintln!("subscribed to kioskd's events (masked); Ctrl-C to stop");
            let mut seen = 0u64;
            while count.is_none_or(|c| seen < c) {
                let ev = client.next_event().await?;
                if args.json {
                    // One JSON object per line (JSON lines), not pretty.
                    let line = serde_json::to_string(&ev)
                        .map_err(|e| ClientError::Protocol(e.to_string()))?;
                    println!("{line}");
                } else {
                    println!("{}", describe(&ev));
                }
                seen += 1;
            }
        }
    }
    Ok(())
}

/// The report as a table or as CSV (seconds; empty when none).
fn print_report(report: &kiosk_proto::QueueReport, csv: bool) {
    let n = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    if csv {
        println!(
            "business_day,service,counter,tickets,served,skipped,wait_median_s,wait_p90_s,wait_max_s,service_median_s,service_p90_s,service_max_s"
        );
    } else {
        println!("business day {}", report.business_day);
        println!(
            "{:<12} {:<8} {:>7} {:>6} {:>7}  {:>17}  {:>17}",
            "service",
            "counter",
            "tickets",
            "served",
            "skipped",
            "wait med/p90/max",
            "serve med/p90/max"
        );
    }
    for r in &report.rows {
        let service = r.service.as_deref().unwrap_or(if csv { "" } else { "*" });
        let counter = r.counter.as_deref().unwrap_or(if csv { "" } else { "*" });
        if csv {
            println!(
                "{},{service},{counter},{},{},{},{},{},{},{},{},{}",
                report.business_day,
                r.tickets,
                r.served,
                r.skipped,
                n(r.waiting.median_s),
                n(r.waiting.p90_s),
                n(r.waiting.max_s),
                n(r.service_time.median_s),
                n(r.service_time.p90_s),
                n(r.service_time.max_s)
            );
        } else {
            let spread = |s: &kiosk_proto::Spread| {
                let d = |v: Option<u64>| v.map(|v| format!("{v}s")).unwrap_or_else(|| "-".into());
                format!("{}/{}/{}", d(s.median_s), d(s.p90_s), d(s.max_s))
            };
            println!(
                "{service:<12} {counter:<8} {:>7} {:>6} {:>7}  {:>17}  {:>17}",
                r.tickets,
                r.served,
                r.skipped,
                spread(&r.waiting),
                spread(&r.service_time)
            );
        }
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<(), ClientError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| ClientError::Protocol(e.to_string()))?;
    println!("{text}");
    Ok(())
}

fn describe(ev: &EventEnvelope) -> String {
    let what = match &ev.event {
        Event::DeviceState {
            device,
            state,
            detail,
        } => {
            format!(
                "device {device} {state} {}",
                detail.as_deref().unwrap_or("")
            )
        }
        Event::ReaderAttached { reader } => format!("reader {reader} attached"),
        Event::ReaderDetached { reader } => format!("reader {reader} detached"),
        Event::CardPresent { reader } => format!("card present on {reader}"),
        Event::CardAbsent { reader } => format!("card removed from {reader}"),
        Event::CardRead {
            reader,
            identity,
            read_ms,
        } => format!(
            "card read on {reader} in {read_ms} ms: {} {} {} valid {}..{}",
            identity.card_type.corebank_id_type(),
            identity.name,
            identity.number,
            identity.valid_from,
            identity.valid_until
        ),
        Event::ReadFailed {
            reader,
            code,
            message,
        } => format!("read failed on {reader}: {code}: {message}"),
        Event::ChangeRecorded { change_id, kind } => {
            format!("change {change_id} ({kind}) recorded")
        }
        Event::ChangeDelivered {
            change_id,
            outcome,
            core_ref,
        } => {
            format!("change {change_id} delivered: {outcome} ({core_ref})")
        }
        Event::ChangeRejected {
            change_id,
            code,
            message,
        } => {
            format!("change {change_id} rejected by the bank: {code}: {message}")
        }
        Event::CoreBankLink { reachable, detail } => format!(
            "core bank {}{}",
            if *reachable {
                "reachable"
            } else {
                "unreachable"
            },
            detail
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        ),
        Event::Session(info) => format!(
            "session {} {}{}",
            info.flow.as_deref().unwrap_or("-"),
            info.stage,
            info.message
                .as_ref()
                .map(|m| format!(": [{}] {}", m.code, m.en))
                .unwrap_or_default()
        ),
        Event::TicketIssued {
            ticket_id,
            number,
            service,
            printed,
        } => format!(
            "ticket {number} ({service}) issued, {}: {ticket_id}",
            if *printed { "printed" } else { "NOT printed" }
        ),
        Event::PayloadsPurged { count } => {
            format!("personal data of {count} settled change(s) purged (retention)")
        }
    };
    format!("#{} {}", ev.seq, what)
}

fn print_ticket(t: &kiosk_proto::QueueTicketInfo) {
    println!("ticket   {} ({}) id {}", t.number, t.service, t.ticket_id);
    println!("ahead    {}", t.waiting_ahead);
    println!("printed  {}", if t.printed { "yes" } else { "NO" });
    println!(
        "message  [{}] {} / {}",
        t.message.code, t.message.zh, t.message.en
    );
    if let Some(v) = &t.validity {
        println!(
            "validity {v}{}",
            t.change_id
                .as_deref()
                .map(|c| format!(" (change {c} recorded)"))
                .unwrap_or_default()
        );
    }
}

fn print_changes(list: &[kiosk_proto::ChangeSummary]) {
    for c in list {
        println!(
            "{} {:<11} {:<10} {:<9} tries:{} {}{}",
            c.change_id,
            c.kind,
            c.customer_id,
            c.state,
            c.attempts,
            c.outcome
                .map(|o| o.as_str())
                .or(c.rejection_code.as_deref())
                .unwrap_or(""),
            c.last_error
                .as_deref()
                .or(c.rejection_message.as_deref())
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
    }
}

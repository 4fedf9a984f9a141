//! The technician's `selftest`: each reader (and its SAM), the printer, the
//! core bank (reachability and clock skew), the database's integrity and
//! the audit chain, each with a pass/fail/skip result and a reason.

use std::sync::Arc;
use std::time::Duration;

use kiosk_proto::{CheckOutcome, DeviceState, SelftestCheck, SelftestParams, SelftestReport};

use crate::changes::Changes;
use crate::config::Config;
use crate::printer::Printer;
use crate::readers::Readers;

/// How long one device command may take.
const DEVICE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the core bank's health check may take.
const BANK_TIMEOUT: Duration = Duration::from_secs(10);

fn check(
    name: impl Into<String>,
    outcome: CheckOutcome,
    reason: impl Into<String>,
) -> SelftestCheck {
    SelftestCheck {
        name: name.into(),
        outcome,
        reason: reason.into(),
    }
}

/// The selftest, over the services it checks.
#[derive(Debug, Clone)]
pub struct Selftest {
    pub config: Arc<Config>,
    pub readers: Arc<Readers>,
    pub printer: Arc<Printer>,
    pub changes: Arc<Changes>,
}

impl Selftest {
    /// Run every check; a failing check never stops the others.
    pub async fn run(&self, params: SelftestParams) -> SelftestReport {
        let mut checks = Vec::new();
        checks.extend(self.check_readers().await);
        checks.extend(self.check_printer(params.print_test_page).await);
        checks.push(self.check_corebank().await);
        checks.extend(self.check_store().await);
        let count = |o: CheckOutcome| checks.iter().filter(|c| c.outcome == o).count() as u32;
        let (passed, failed, skipped) = (
            count(CheckOutcome::Pass),
            count(CheckOutcome::Fail),
            count(CheckOutcome::Skip),
        );
        SelftestReport {
            ok: failed == 0,
            passed,
            failed,
            skipped,
            checks,
        }
    }

    async fn check_readers(&self) -> Vec<SelftestCheck> {
        let names: Vec<String> = self.config.readers.iter().map(|r| r.name.clone()).collect();
        if names.is_empty() {
            return vec![check(
                "reader",
                CheckOutcome::Skip,
                "no ID reader configured",
            )];
        }
        let mut out = Vec::new();
        for name in names {
            let slot = self.readers.slot(&name).cloned();
            let reader = name.clone();
            let result = tokio::task::spawn_blocking(move || {
                let slot = slot?;
                let guard = slot.lock().unwrap_or_else(|p| p.into_inner());
                guard.as_ref().map(|h| h.check(DEVICE_TIMEOUT))
            })
            .await
            .ok()
            .flatten();
            let rname = format!("reader:{reader}");
            let sname = format!("sam:{reader}");
            match result {
                None => {
                    out.push(check(
                        rname,
                        CheckOutcome::Fail,
                        format!("reader {reader} is not running"),
                    ));
                    out.push(check(
                        sname,
                        CheckOutcome::Skip,
                        format!("reader {reader} is not running"),
                    ));
                }
                Some(Err(e)) => {
                    out.push(check(
                        rname,
                        CheckOutcome::Fail,
                        format!("reader {reader} did not answer: {e}"),
                    ));
                    out.push(check(
                        sname,
                        CheckOutcome::Skip,
                        format!("reader {reader} did not answer"),
                    ));
                }
                Some(Ok(c)) => {
                    if let Some(id) = &c.sam_id {
                        self.readers.set_sam_id(&reader, id.clone());
                    }
                    let state = c.state;
                    let detail = c
                        .detail
                        .clone()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default();
                    if matches!(state, DeviceState::Online | DeviceState::Busy) {
                        let mut what = format!("reader {reader} is {state}");
                        if let Some(p) = &c.pcsc_reader {
                            what.push_str(&format!(", PC/SC reader {p}"));
                        }
                        if let Some(b) = c.baud {
                            what.push_str(&format!(", SAM port at {b} baud"));
                        }
                        if c.card_present {
                            what.push_str(", test card present");
                        }
                        out.push(check(rname, CheckOutcome::Pass, what));
                    } else {
                        out.push(check(
                            rname,
                            CheckOutcome::Fail,
                            format!("reader {reader} is {state}{detail}"),
                        ));
                    }
                    let sam_id = c
                        .sam_id
                        .as_deref()
                        .map(|s| format!(" (SAM id {s})"))
                        .unwrap_or_default();
                    out.push(match c.sam_status {
                        Some(Ok(())) => check(
                            sname,
                            CheckOutcome::Pass,
                            format!("SAM of reader {reader} answers its status request{sam_id}"),
                        ),
                        Some(Err(f)) => check(
                            sname,
                            CheckOutcome::Fail,
                            format!("SAM of reader {reader}: {} ({})", f.message, f.code),
                        ),
                        None => check(
                            sname,
                            CheckOutcome::Skip,
                            format!("SAM of reader {reader} cannot be reached now (no card on the reader)"),
                        ),
                    });
                }
            }
        }
        out
    }

    async fn check_printer(&self, print_test_page: bool) -> Vec<SelftestCheck> {
        let Some(section) = self.config.printer.as_ref() else {
            return vec![check(
                "printer",
                CheckOutcome::Skip,
                "no printer configured",
            )];
        };
        let name = section.name.clone();
        let cname = format!("printer:{name}");
        let Some(handle) = self.printer.handle() else {
            return vec![check(
                cname,
                CheckOutcome::Fail,
                format!("printer {name} is not running"),
            )];
        };
        let h = handle.clone();
        let status = tokio::task::spawn_blocking(move || h.status(DEVICE_TIMEOUT)).await;
        let mut out = Vec::new();
        let printable = match status {
            Ok(Ok(st)) => match st.fault() {
                None => {
                    out.push(check(
                        cname,
                        CheckOutcome::Pass,
                        format!("printer {name} is ready"),
                    ));
                    true
                }
                Some(f) => {
                    out.push(check(
                        cname,
                        CheckOutcome::Fail,
                        format!("printer {name}: {f}"),
                    ));
                    false
                }
            },
            Ok(Err(e)) => {
                out.push(check(
                    cname,
                    CheckOutcome::Fail,
                    format!("printer {name} did not answer: {e}"),
                ));
                false
            }
            Err(e) => {
                out.push(check(
                    cname,
                    CheckOutcome::Fail,
                    format!("printer {name}: {e}"),
                ));
                false
            }
        };
        let pname = format!("test_page:{name}");
        if !print_test_page {
            out.push(check(
                pname,
                CheckOutcome::Skip,
                "not asked (--print-test-page)",
            ));
        } else if !printable {
            out.push(check(
                pname,
                CheckOutcome::Fail,
                format!("printer {name} cannot print"),
            ));
        } else {
            let printed =
                tokio::task::spawn_blocking(move || handle.test_page(DEVICE_TIMEOUT)).await;
            out.push(match printed {
                Ok(Ok(p)) => check(
                    pname,
                    CheckOutcome::Pass,
                    format!("test page printed on {name} ({} bytes)", p.bytes),
                ),
                Ok(Err(e)) => check(
                    pname,
                    CheckOutcome::Fail,
                    format!("test page on {name}: {e}"),
                ),
                Err(e) => check(
                    pname,
                    CheckOutcome::Fail,
                    format!("test page on {name}: {e}"),
                ),
            });
        }
        out
    }

    async fn check_corebank(&self) -> SelftestCheck {
        if self.config.corebank.is_none() {
            return check("corebank", CheckOutcome::Skip, "no core bank configured");
        }
        let Some(client) = self.changes.bank_client() else {
            return check(
                "corebank",
                CheckOutcome::Fail,
                "the core-bank client could not be made",
            );
        };
        match tokio::time::timeout(BANK_TIMEOUT, client.health()).await {
            Err(_) => check(
                "corebank",
                CheckOutcome::Fail,
                format!(
                    "core bank did not answer within {} s",
                    BANK_TIMEOUT.as_secs()
                ),
            ),
            Ok(Err(e)) => check(
                "corebank",
                CheckOutcome::Fail,
                format!("core bank unreachable: {e}"),
            ),
            Ok(Ok(h)) => {
                let skew = -h.skew_ms;
                let rt = h.round_trip.as_millis();
                if h.status != "ok" {
                    check(
                        "corebank",
                        CheckOutcome::Fail,
                        format!("core bank reports status {:?}", h.status),
                    )
                } else if h.skew_exceeds_limit {
                    check(
                        "corebank",
                        CheckOutcome::Fail,
                        format!("clock skew {skew} ms exceeds the limit (round trip {rt} ms)"),
                    )
                } else {
                    check(
                        "corebank",
                        CheckOutcome::Pass,
                        format!("reachable, clock skew {skew} ms (round trip {rt} ms)"),
                    )
                }
            }
        }
    }

    async fn check_store(&self) -> Vec<SelftestCheck> {
        let Some(store) = self.changes.store().cloned() else {
            return vec![
                check("database", CheckOutcome::Skip, "no store configured"),
                check("audit_chain", CheckOutcome::Skip, "no store configured"),
            ];
        };
        let result = tokio::task::spawn_blocking(move || {
            (
                store.audit().integrity_check(),
                store.audit().audit_verify(),
            )
        })
        .await;
        let Ok((integrity, audit)) = result else {
            return vec![check(
                "database",
                CheckOutcome::Fail,
                "the check did not finish",
            )];
        };
        let db = match integrity {
            Ok(problems) if problems.is_empty() => {
                check("database", CheckOutcome::Pass, "integrity_check: ok")
            }
            Ok(problems) => check(
                "database",
                CheckOutcome::Fail,
                format!("integrity_check: {}", problems.join("; ")),
            ),
            Err(e) => check(
                "database",
                CheckOutcome::Fail,
                format!("integrity_check: {e}"),
            ),
        };
        let chain = match audit {
            Ok(r) => match &r.first_bad {
                None => check(
                    "audit_chain",
                    CheckOutcome::Pass,
                    format!("{} records, chain whole", r.records),
                ),
                Some(b) => check(
                    "audit_chain",
                    CheckOutcome::Fail,
                    format!("record {} breaks the chain: {}", b.seq, b.reason),
                ),
            },
            Err(e) => check(
                "audit_chain",
                CheckOutcome::Fail,
                format!("audit verify: {e}"),
            ),
        };
        vec![db, chain]
    }
}

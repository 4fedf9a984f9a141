//! The queue flow in kioskd (rules Q1–Q4, and I7 on a swipe): the API
//! methods `queue_services`, `queue_take`, `queue_reprint`, `queue_call`
//! and `queue_status`. The decisions are in [`crate::flows::queue`]; this
//! module does the I/O: the store (the number is committed before
//! printing), the printer, the core bank.

use chrono::{DateTime, NaiveDate, Utc};
use kiosk_corebank::CardEvidence;
use kiosk_escpos::QueueTicket;
use kiosk_idcard::Identity;
use kiosk_proto::{
    ApiError, ErrorCode, Event, QueueCalled, QueueReport, QueueReportParams, QueueReprintParams,
    QueueServiceInfo, QueueServiceParams, QueueServiceStatus, QueueStatusInfo, QueueTakeParams,
    QueueTicketInfo, TicketMessage,
};
use uuid::Uuid;

use crate::config::BranchRole;
use crate::deps::Deps;
use crate::flows::id_rules::ValidityDecision;
use crate::flows::queue::{self as flow, IssueRequest, MaskedName, PrintOutcome, QueueConfig};
use crate::flows::ticket::{CounterAction, LifecycleError};
use crate::store::{ActRequest, Actor, AuditAction, AuditEntry, NewTicket, Store, TicketRow};

/// Rule Q7: what the customer (and the technician) hear when a secondary
/// queue machine gets no number from the primary.
pub const PRIMARY_UNREACHABLE_ZH: &str = "本机暂时无法取号，请使用其他取号机或咨询工作人员。";
pub const PRIMARY_UNREACHABLE_EN: &str = "This machine cannot give out numbers right now. Please use another queue machine or ask the staff.";

/// The refusal the customer reads (the UI shows `message`); the
/// technician's `detail` goes to the log and the `queue_primary` device.
fn primary_unreachable(detail: &str) -> ApiError {
    tracing::warn!(%detail, "refused: no number from the primary queue machine (rule Q7)");
    ApiError::new(
        ErrorCode::PrimaryUnreachable,
        format!("{PRIMARY_UNREACHABLE_ZH} / {PRIMARY_UNREACHABLE_EN}"),
    )
}

/// A swiped card: the read's serial number (a card left on the reader by
/// the previous customer is no swipe), its masked name, and the identity
/// (zeroized on drop by its crate) with the read's evidence.
struct SwipedCard {
    read_serial: u64,
    masked_name: Option<MaskedName>,
    identity: Identity,
    evidence: CardEvidence,
}

impl std::fmt::Debug for SwipedCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwipedCard")
            .field("read_serial", &self.read_serial)
            .field("masked_name", &self.masked_name)
            .finish_non_exhaustive()
    }
}

/// The outcome of rule I7 on a swiped card.
#[derive(Debug, Default)]
struct ValidityCheck {
    code: Option<String>,
    change_id: Option<String>,
}

/// The queue machine's turn: tickets are numbered and printed one at a
/// time, in order.
#[derive(Debug, Default)]
struct QueueTurn {
    /// The card read the last ticket used (rule Q3: a card left on the
    /// reader is not the next customer's swipe).
    last_swipe_used: Option<u64>,
}

/// The queue service: it numbers (through the store), prints (through the
/// printer) and, on a swipe, checks the card (through the readers and the
/// core bank).
#[derive(Debug)]
pub struct Queue {
    deps: Deps,
    /// Serialises ticket issuing (numbering, waiting ahead, printing order).
    turn: tokio::sync::Mutex<QueueTurn>,
    /// Bumped after each committed queue event (write before you tell):
    /// the branch stream then reads the new events from the store's log.
    committed: tokio::sync::watch::Sender<u64>,
}

impl Queue {
    pub fn new(deps: Deps) -> Queue {
        Queue {
            deps,
            turn: tokio::sync::Mutex::default(),
            committed: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Say that queue events were committed (after the commit).
    pub fn announce(&self) {
        self.committed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Wakes up after each [`Queue::announce`]; the events themselves are
    /// in the store's queue log.
    pub fn committed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.committed.subscribe()
    }

    fn queue_config(&self) -> Result<&QueueConfig, ApiError> {
        self.deps.config.queue.as_ref().ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotAllowed,
                "this kiosk has no [queue] configured",
            )
        })
    }

    async fn blocking_store<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, crate::Error> + Send + 'static,
    {
        self.deps.changes.with_store(f).await
    }

    /// `queue_services`.
    pub fn queue_services(&self) -> Result<Vec<QueueServiceInfo>, ApiError> {
        Ok(self
            .queue_config()?
            .services
            .iter()
            .map(|s| QueueServiceInfo {
                id: s.id.clone(),
                letter: s.letter.to_string(),
                name_zh: s.name_zh.clone(),
                name_en: s.name_en.clone(),
            })
            .collect())
    }

    fn swiped_card(&self) -> Option<SwipedCard> {
        let masking = self.deps.config.masking;
        self.deps
            .readers
            .with_current_card(|read, sam_id, read_serial| SwipedCard {
                read_serial,
                masked_name: MaskedName::new(&read.identity.name, &masking),
                identity: read.identity.clone(),
                evidence: CardEvidence {
                    sam_id: sam_id.unwrap_or("").to_string(),
                    card_uid: read.card_uid.map(hex::encode_upper).unwrap_or_default(),
                },
            })
    }

    /// Rule Q3: look the swiped card's holder up and record a newer
    /// validity at once (no confirmation screen at a queue machine), when
    /// every ID rule holds ([`flow::swipe_decision`] decides; this does the
    /// I/O). Otherwise nothing is recorded and `validity` says why.
    async fn check_validity(&self, card: &SwipedCard) -> ValidityCheck {
        let withheld = |code: &'static str| ValidityCheck {
            code: Some(code.into()),
            change_id: None,
        };
        let settings = crate::session::flow_settings(&self.deps.config, false);
        let now = Utc::now();
        let request = match flow::swipe_lookup(&card.identity, settings.today(now)) {
            Ok(request) => request,
            Err(code) => {
                tracing::info!(reason = code, "ID validity not updated on a queue swipe");
                return withheld(code);
            }
        };
        let Some(client) = self.deps.changes.bank_client() else {
            tracing::info!("ID validity not checked on a queue swipe: no core bank configured");
            return withheld("not_checked");
        };
        let answer = client.lookup(&request).await;
        drop(request);
        let decision = flow::swipe_decision(
            &card.identity,
            &card.evidence,
            answer,
            settings.today(now),
            settings.update_window,
        );
        tracing::info!(decision = decision.code(), "ID validity on a queue swipe");
        let (customer_id, change) = match decision {
            flow::SwipeDecision::Withhold {
                customer_id: None,
                code,
            } => return withheld(code),
            flow::SwipeDecision::Withhold {
                customer_id: Some(customer_id),
                code,
            } => {
                self.audit_swipe(&customer_id, code).await;
                return withheld(code);
            }
            flow::SwipeDecision::Record {
                customer_id,
                change,
            } => (customer_id, change),
        };
        let code = ValidityDecision::Newer.code();
        self.audit_swipe(&customer_id, code).await;
        match self
            .deps
            .changes
            .record_change(
                customer_id,
                change,
                Actor::Kiosk,
                "id validity newer than on file: recorded at the queue machine (rule Q3)".into(),
            )
            .await
        {
            Ok(c) => ValidityCheck {
                code: Some(code.into()),
                change_id: Some(c.change_id),
            },
            Err(e) => {
                tracing::error!(code = ?e.code, "cannot record the ID validity change");
                withheld("not_recorded")
            }
        }
    }

    /// Rule S3: the lookup and its outcome, masked (the customer id only).
    async fn audit_swipe(&self, customer_id: &str, code: &str) {
        let entry = AuditEntry {
            at_ms: Utc::now().timestamp_millis(),
            actor: Actor::CustomerSession,
            action: AuditAction::Lookup,
            subject: Some(customer_id.to_string()),
            detail: format!("queue machine swipe: id validity {code} (rule Q3)"),
        };
        if let Err(e) = self.deps.changes.audit(entry).await {
            tracing::error!(code = ?e.code, "cannot audit the lookup");
        }
    }

    /// Print `ticket` on the printer (blocking pool, bounded wait).
    async fn print_ticket(&self, ticket: &QueueTicket) -> PrintOutcome {
        self.deps.printer.print(ticket.document()).await
    }

    /// Tell the customer and the technician what came of a print.
    async fn finish_print(
        &self,
        plan: &flow::TicketPlan,
        outcome: &PrintOutcome,
    ) -> Result<(bool, TicketMessage), ApiError> {
        let decision = flow::print_decision(plan, outcome);
        if let Some(notice) = &decision.technician {
            tracing::warn!(code = notice.code, detail = %notice.detail, "ticket printer");
            if decision.reprint_needed {
                self.deps.printer.note_error(&notice.detail);
            }
        }
        let printed = !decision.reprint_needed;
        if printed {
            let id = plan.ticket_id.hyphenated().to_string();
            self.blocking_store(move |s| s.tickets().mark_ticket_printed(&id))
                .await?;
        }
        Ok((
            printed,
            TicketMessage {
                code: decision.message.code.to_string(),
                zh: decision.message.zh,
                en: decision.message.en,
            },
        ))
    }

    /// `queue_take`: commit the number (rule Q2), print (rule Q1), tell the
    /// customer at once when the printer cannot (rule Q4); with a swiped
    /// card, the masked name and rule I7 (rule Q3).
    pub async fn queue_take(&self, params: QueueTakeParams) -> Result<QueueTicketInfo, ApiError> {
        let config = self.queue_config()?.clone();
        self.deps.changes.require_store()?;
        // Numbers and prints in the same order; held until the ticket is
        // out (not while the bank is asked about a swiped card).
        let mut turn = self.turn.lock().await;
        // Rule Q3: a card read after the last ticket that used one; a card
        // left on the reader by the previous customer is no swipe.
        let card = if params.use_card {
            self.swiped_card()
                .filter(|c| turn.last_swipe_used != Some(c.read_serial))
        } else {
            None
        };
        if let Some(c) = &card {
            turn.last_swipe_used = Some(c.read_serial);
        }
        let now = Utc::now();
        let request = flow::number_request(&config, &params.service, now)
            .map_err(|e| ApiError::new(ErrorCode::NotFound, e.to_string()))?;
        let letter = config
            .service(&request.service_id)
            .map(|s| s.letter)
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "unknown service"))?;
        // Time-ordered (v7): each ticket's id goes to the end of its index.
        let ticket_id = Uuid::now_v7();
        let masked_name = card.as_ref().and_then(|c| c.masked_name.clone());
        let new = NewTicket {
            ticket_id: ticket_id.hyphenated().to_string(),
            service_id: request.service_id.clone(),
            letter,
            business_day: request.business_day,
            issued_at_ms: now.timestamp_millis(),
            number_digits: config.number_digits,
            masked_name: masked_name.as_ref().map(|n| n.as_str().to_string()),
            issued_for: None,
        };
        // The printer's turn is taken in numbering order (under `turn`) and
        // its status check runs while the number is committed; the ticket
        // is sent only once the number is on disk (rule Q2: committed
        // before anything is printed; on a secondary queue machine, by the
        // primary, rule Q7). A failure before then drops the turn: nothing
        // is printed.
        let print_turn = self.deps.printer.reserve();
        let row = self.number_ticket(new).await?;
        tracing::info!(
            ticket_id = %row.ticket_id,
            number = %row.number_text,
            service = %row.service_id,
            "ticket number committed"
        );
        self.announce();
        let plan = flow::plan_ticket(
            &config,
            &self.deps.config.kiosk.branch_name,
            &IssueRequest {
                service_id: request.service_id.clone(),
                // The store's: the clock's day, or the last day used if
                // the clock went back (rule Q2).
                business_day: row.business_day,
                number: row.number,
                ticket_id,
                issued_at: now,
                waiting_ahead: row.waiting_ahead,
                masked_name: masked_name.clone(),
            },
        )
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
        // The printer serves its turns in order: the next ticket may be
        // numbered while this one prints and is checked after printing.
        drop(turn);
        // Print and (with a card) check the validity side by side: the
        // ticket never waits for the bank.
        let print = print_turn.print(plan.ticket.document());
        let (outcome, validity) = tokio::join!(print, async {
            match &card {
                Some(c) => self.check_validity(c).await,
                None => ValidityCheck::default(),
            }
        });
        drop(card);
        let (printed, message) = self.finish_print(&plan, &outcome).await?;
        self.deps.bus.emit(Event::TicketIssued {
            ticket_id: row.ticket_id.clone(),
            number: row.number_text.clone(),
            service: row.service_id.clone(),
            printed,
        });
        Ok(QueueTicketInfo {
            ticket_id: row.ticket_id,
            number: row.number_text,
            service: row.service_id,
            waiting_ahead: row.waiting_ahead,
            printed,
            message,
            masked_name: masked_name.map(|n| n.as_str().to_string()),
            validity: validity.code,
            change_id: validity.change_id,
        })
    }

    /// This machine takes its numbers from the branch's primary (rule Q7).
    fn is_secondary(&self) -> bool {
        self.deps
            .config
            .branch
            .as_ref()
            .is_some_and(|b| b.role == BranchRole::Secondary)
    }

    /// Number `new`: in the local store, or (a secondary) by the primary,
    /// keeping a copy here for reprints. A secondary that cannot reach the
    /// primary refuses, in both languages; it never numbers on its own.
    async fn number_ticket(&self, new: NewTicket) -> Result<TicketRow, ApiError> {
        if !self.is_secondary() {
            return self
                .blocking_store(move |s| s.tickets().issue_ticket(&new))
                .await;
        }
        let Some(link) = self.deps.primary.clone() else {
            return Err(primary_unreachable("no link configured"));
        };
        let grant = link.take_number(&new.service_id).await.map_err(|e| {
            tracing::warn!(error = %e, "no number from the primary queue machine");
            primary_unreachable(&e.to_string())
        })?;
        let business_day = NaiveDate::parse_from_str(&grant.business_day, "%Y-%m-%d")
            .map_err(|_| primary_unreachable("the primary's business day is not a date"))?;
        let row = TicketRow {
            ticket_id: grant.ticket_id,
            service_id: grant.service,
            letter: grant.letter.chars().next().unwrap_or(new.letter),
            business_day,
            number: grant.number,
            number_text: grant.number_text,
            issued_at_ms: grant.issued_at_ms,
            waiting_ahead: grant.waiting_ahead,
            masked_name: new.masked_name,
            state: "waiting".into(),
            printed: false,
            called_at_ms: None,
            counter: None,
        };
        let copy = row.clone();
        self.blocking_store(move |s| s.tickets().record_granted(&copy, "primary"))
            .await?;
        Ok(row)
    }

    /// On the primary (rule Q7): a number for another queue machine,
    /// `machine`, which prints it. No personal data comes with it.
    pub async fn grant_number(&self, machine: &str, service: &str) -> Result<TicketRow, ApiError> {
        let config = self.queue_config()?.clone();
        let now = Utc::now();
        let request = flow::number_request(&config, service, now)
            .map_err(|e| ApiError::new(ErrorCode::NotFound, e.to_string()))?;
        let letter = config
            .service(&request.service_id)
            .map(|s| s.letter)
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "unknown service"))?;
        let new = NewTicket {
            ticket_id: Uuid::now_v7().hyphenated().to_string(),
            service_id: request.service_id,
            letter,
            business_day: request.business_day,
            issued_at_ms: now.timestamp_millis(),
            number_digits: config.number_digits,
            masked_name: None,
            issued_for: Some(machine.to_string()),
        };
        let row = self
            .blocking_store(move |s| s.tickets().issue_ticket(&new))
            .await?;
        tracing::info!(ticket_id = %row.ticket_id, number = %row.number_text, %machine, "ticket number granted to a queue machine");
        self.announce();
        Ok(row)
    }

    /// `queue_report` (rule Q9): the statistics of a business day (the
    /// primary's, asked for on a secondary).
    pub async fn queue_report(&self, params: QueueReportParams) -> Result<QueueReport, ApiError> {
        let config = self.queue_config()?.clone();
        if self.is_secondary() {
            let link = self
                .deps
                .primary
                .clone()
                .ok_or_else(|| primary_unreachable("no link configured"))?;
            return link
                .report(params.date.as_deref())
                .await
                .map_err(|e| primary_unreachable(&e.to_string()));
        }
        let asked = flow::business_day(Utc::now(), &config);
        let day = match &params.date {
            Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| {
                ApiError::new(
                    ErrorCode::BadRequest,
                    format!("date {d:?} is not YYYY-MM-DD"),
                )
            })?,
            None => {
                self.blocking_store(move |s| s.tickets().queue_day(asked))
                    .await?
            }
        };
        let times = self
            .blocking_store(move |s| s.calls().day_times(day))
            .await?;
        let services: Vec<String> = config.services.iter().map(|s| s.id.clone()).collect();
        Ok(QueueReport {
            business_day: day.format("%Y-%m-%d").to_string(),
            rows: crate::flows::queue_report::daily_report(&services, &times),
        })
    }

    /// The gauges of the metrics: per service, waiting now and the longest
    /// current wait. Empty on a machine that does not number (none, or a
    /// secondary: the primary's own metrics have them).
    pub async fn gauges(&self) -> Vec<crate::metrics::QueueGauge> {
        let Ok(config) = self.queue_config().cloned() else {
            return Vec::new();
        };
        if self.is_secondary() || self.deps.changes.store().is_none() {
            return Vec::new();
        }
        let now = Utc::now();
        let asked = flow::business_day(now, &config);
        let Ok((waiting, oldest)) = self
            .blocking_store(move |s| {
                let (_, waiting, _) = s.calls().snapshot(asked)?;
                Ok((waiting, s.calls().oldest_waiting(asked)?))
            })
            .await
        else {
            return Vec::new();
        };
        let now_ms = now.timestamp_millis();
        config
            .services
            .iter()
            .map(|s| crate::metrics::QueueGauge {
                service: s.id.clone(),
                waiting: waiting.get(&s.id).copied().unwrap_or(0),
                longest_wait_s: oldest
                    .get(&s.id)
                    .and_then(|at| u64::try_from(now_ms - at).ok())
                    .map_or(0, |ms| ms / 1000),
            })
            .collect()
    }

    /// `queue_reprint`: the same ticket and number again (rule Q4), with
    /// the people waiting ahead now.
    pub async fn queue_reprint(
        &self,
        params: QueueReprintParams,
    ) -> Result<QueueTicketInfo, ApiError> {
        let config = self.queue_config()?.clone();
        let _turn = self.turn.lock().await;
        let row: TicketRow = match params.ticket_id {
            Some(id) => {
                self.blocking_store(move |s| s.tickets().ticket(&id))
                    .await?
            }
            None => self.blocking_store(|s| s.tickets().last_ticket()).await?,
        }
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such ticket"))?;
        let ticket_id = Uuid::parse_str(&row.ticket_id)
            .map_err(|_| ApiError::new(ErrorCode::Internal, "stored ticket id is not a UUID"))?;
        let masked_name = row
            .masked_name
            .as_deref()
            .and_then(|n| MaskedName::new(n, &self.deps.config.masking));
        let issued_at =
            DateTime::<Utc>::from_timestamp_millis(row.issued_at_ms).unwrap_or_default();
        let plan = flow::plan_ticket(
            &config,
            &self.deps.config.kiosk.branch_name,
            &IssueRequest {
                service_id: row.service_id.clone(),
                business_day: row.business_day,
                number: row.number,
                ticket_id,
                issued_at,
                waiting_ahead: row.waiting_ahead,
                masked_name: masked_name.clone(),
            },
        )
        .map_err(|e| ApiError::new(ErrorCode::NotFound, e.to_string()))?;
        let row_for_count = row.clone();
        // A secondary's copy is not queued here: the number the primary
        // gave is what it knows.
        let ahead = if self.is_secondary() {
            row.waiting_ahead
        } else {
            self.blocking_store(move |s| s.tickets().waiting_ahead(&row_for_count))
                .await?
        };
        let outcome = self.print_ticket(&plan.reprint(ahead)).await;
        let (printed, message) = self.finish_print(&plan, &outcome).await?;
        tracing::info!(ticket_id = %row.ticket_id, number = %row.number_text, printed, "ticket reprinted");
        Ok(QueueTicketInfo {
            ticket_id: row.ticket_id,
            number: row.number_text,
            service: row.service_id,
            waiting_ahead: ahead,
            printed,
            message,
            masked_name: masked_name.map(|n| n.as_str().to_string()),
            validity: None,
            change_id: None,
        })
    }

    /// `queue_call` (a technician): the next waiting ticket of a service,
    /// today; it belongs to no counter (rule Q5's counters call through
    /// the branch API).
    pub async fn queue_call(&self, params: QueueServiceParams) -> Result<QueueCalled, ApiError> {
        let config = self.queue_config()?;
        if self.is_secondary() {
            return Err(ApiError::new(
                ErrorCode::NotAllowed,
                "this is a secondary queue machine: tickets are called on the primary",
            ));
        }
        let now = Utc::now();
        let request = flow::number_request(config, &params.service, now)
            .map_err(|e| ApiError::new(ErrorCode::NotFound, e.to_string()))?;
        let letter = config
            .service(&request.service_id)
            .map(|s| s.letter)
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "unknown service"))?;
        let act = ActRequest {
            counter: None,
            services: vec![request.service_id.clone()],
            action: CounterAction::CallNext,
            number: None,
            ticket_id: None,
            business_day: request.business_day,
            now_ms: now.timestamp_millis(),
            known_services: config.services.iter().map(|s| s.id.clone()).collect(),
        };
        let service = request.service_id.clone();
        let (called, counts) = self
            .blocking_store(move |s| {
                let called = match s.calls().act(&act, &crate::flows::ticket::RULES) {
                    Ok(acted) => Some(acted),
                    Err(crate::Error::Lifecycle(LifecycleError::NobodyWaiting { .. })) => None,
                    Err(e) => return Err(e),
                };
                let day = s.tickets().queue_day(act.business_day)?;
                Ok((called, s.tickets().queue_counts(letter, &service, day)?))
            })
            .await?;
        if called.is_some() {
            self.announce();
        }
        Ok(QueueCalled {
            service: request.service_id,
            ticket_id: called.as_ref().map(|a| a.ticket.ticket_id.clone()),
            number: called.map(|a| a.ticket.number_text),
            waiting: counts.waiting,
        })
    }

    /// `queue_status`: per service, today.
    pub async fn queue_status(&self) -> Result<QueueStatusInfo, ApiError> {
        let config = self.queue_config()?.clone();
        if self.is_secondary() {
            let link = self
                .deps
                .primary
                .clone()
                .ok_or_else(|| primary_unreachable("no link configured"))?;
            return link
                .status()
                .await
                .map_err(|e| primary_unreachable(&e.to_string()));
        }
        let asked = flow::business_day(Utc::now(), &config);
        let services: Vec<(char, String)> = config
            .services
            .iter()
            .map(|s| (s.letter, s.id.clone()))
            .collect();
        let (day, counts) = self
            .blocking_store(move |s| {
                let day = s.tickets().queue_day(asked)?;
                let counts = services
                    .iter()
                    .map(|(l, id)| s.tickets().queue_counts(*l, id, day))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((day, counts))
            })
            .await?;
        let text = |l: char, n: Option<u32>| {
            n.map(|n| flow::format_ticket_number(l, n, config.number_digits))
        };
        Ok(QueueStatusInfo {
            business_day: day.format("%Y-%m-%d").to_string(),
            services: config
                .services
                .iter()
                .zip(counts)
                .map(|(s, c)| QueueServiceStatus {
                    service: s.id.clone(),
                    letter: s.letter.to_string(),
                    waiting: c.waiting,
                    last_called: text(s.letter, c.last_called),
                    last_issued: text(s.letter, c.last_issued),
                })
                .collect(),
        })
    }
}

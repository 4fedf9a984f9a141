//! The queue flow in kioskd (rules Q1–Q4, and I7 on a swipe): the API
//! methods `queue_services`, `queue_take`, `queue_reprint`, `queue_call`
//! and `queue_status`. The decisions are in [`crate::flows::queue`]; this
//! module does the I/O: the store (the number is committed before
//! printing), the printer, the core bank.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use kiosk_corebank::{
    CardEvidence, ChangeKind, CoreBankClient, IdType, IdValidityChange, LONG_TERM, LookupRequest,
};
use kiosk_escpos::{EscposError, Printed, QueueTicket};
use kiosk_idcard::{CardType, Validity};
use kiosk_proto::{
    ApiError, ErrorCode, Event, QueueCalled, QueueReprintParams, QueueServiceInfo,
    QueueServiceParams, QueueServiceStatus, QueueStatusInfo, QueueTakeParams, QueueTicketInfo,
    TicketMessage,
};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::daemon::Shared;
use crate::flows::queue::{
    self as flow, IssueRequest, MaskedName, PrintOutcome, QueueConfig, ValidityDecision,
};
use crate::store::{Actor, AuditAction, AuditEntry, NewTicket, Store, TicketRow};

fn api_error(code: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError {
        code,
        message: message.into(),
    }
}

/// What a queue machine needs of a swiped card. Personal data: no
/// `Debug` of the fields, dropped when the ticket is done.
struct SwipedCard {
    masked_name: Option<MaskedName>,
    id_type: IdType,
    number: Zeroizing<String>,
    name: Zeroizing<String>,
    issuer: Zeroizing<String>,
    valid_from: NaiveDate,
    valid_until: Validity,
    sam_id: String,
    card_uid: String,
}

impl std::fmt::Debug for SwipedCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwipedCard")
            .field("masked_name", &self.masked_name)
            .finish_non_exhaustive()
    }
}

fn id_type(card: CardType) -> IdType {
    match card {
        CardType::Resident => IdType::Resident,
        CardType::ForeignPermanent2017 | CardType::ForeignPermanent2023 => IdType::ForeignPermanent,
        CardType::HkMoTwResidence => IdType::HkMoTwResidence,
    }
}

fn validity_text(v: Validity) -> String {
    match v {
        Validity::Until(d) => d.format("%Y-%m-%d").to_string(),
        Validity::LongTerm => LONG_TERM.to_string(),
    }
}

fn parse_validity(text: &str) -> Option<Validity> {
    if text == LONG_TERM {
        Some(Validity::LongTerm)
    } else {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .map(Validity::Until)
    }
}

/// The outcome of rule I7 on a swiped card.
#[derive(Debug, Default)]
struct ValidityCheck {
    code: Option<String>,
    change_id: Option<String>,
}

impl Shared {
    fn queue_config(&self) -> Result<&QueueConfig, ApiError> {
        self.config.queue.as_ref().ok_or_else(|| {
            api_error(
                ErrorCode::NotAllowed,
                "this kiosk has no [queue] configured",
            )
        })
    }

    fn queue_store(&self) -> Result<Arc<Store>, ApiError> {
        self.store
            .clone()
            .ok_or_else(|| api_error(ErrorCode::NotAllowed, "this kiosk has no store configured"))
    }

    async fn blocking_store<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, crate::Error> + Send + 'static,
    {
        let store = self.queue_store()?;
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| api_error(ErrorCode::Internal, format!("store task failed: {e}")))?
            .map_err(|e| {
                if e.is_store_unavailable() {
                    api_error(ErrorCode::StoreUnavailable, e.to_string())
                } else {
                    tracing::error!(error = %e, "queue store failure");
                    api_error(ErrorCode::Internal, e.to_string())
                }
            })
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
        let masking = self.config.masking;
        self.with_current_card(|read, sam_id| SwipedCard {
            masked_name: MaskedName::new(&read.identity.name, &masking),
            id_type: id_type(read.identity.card_type),
            number: Zeroizing::new(read.identity.number.clone()),
            name: Zeroizing::new(read.identity.name.clone()),
            issuer: Zeroizing::new(read.identity.issuer.clone()),
            valid_from: read.identity.valid_from,
            valid_until: read.identity.valid_until,
            sam_id: sam_id.unwrap_or("").to_string(),
            card_uid: read.card_uid.map(hex::encode_upper).unwrap_or_default(),
        })
    }

    fn corebank_client(&self) -> Option<CoreBankClient> {
        self.corebank_client
            .get_or_init(|| {
                let bank = self.config.corebank.as_ref()?;
                match CoreBankClient::new(bank, &self.config.kiosk.id) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::error!(error = %e, "core bank client unavailable");
                        None
                    }
                }
            })
            .clone()
    }

    /// Rule Q3/I7: look the swiped card's holder up and record a newer
    /// validity at once (no confirmation screen at a queue machine). An
    /// unreachable bank, an unknown customer or a mismatch records nothing.
    async fn check_validity(&self, card: &SwipedCard) -> ValidityCheck {
        let not_checked = |why: &str| {
            tracing::info!(reason = why, "ID validity not checked on a queue swipe");
            ValidityCheck {
                code: Some("not_checked".into()),
                change_id: None,
            }
        };
        let Some(client) = self.corebank_client() else {
            return not_checked("no core bank configured");
        };
        let request = LookupRequest {
            id_type: card.id_type,
            id_number: card.number.to_string(),
            name: card.name.to_string(),
        };
        let customer = match client.lookup(&request).await {
            Ok(c) => c,
            Err(e) => {
                // Only the error's kind: its text never carries personal
                // data, but keep the log minimal (rule S1).
                let kind = if e.is_transient() {
                    "core bank unreachable or busy"
                } else {
                    e.code().unwrap_or("core bank refused the lookup")
                };
                return not_checked(kind);
            }
        };
        if customer.id_type != card.id_type {
            // Rule I5: never change a document type here.
            return not_checked("document type on file differs");
        }
        let (Some(on_file_until), Ok(on_file_from)) = (
            parse_validity(&customer.id_valid_until),
            NaiveDate::parse_from_str(&customer.id_valid_from, "%Y-%m-%d"),
        ) else {
            return not_checked("validity on file unreadable");
        };
        let decision = flow::validity_update_decision(
            card.valid_until,
            card.valid_from,
            on_file_until,
            on_file_from,
        );
        tracing::info!(
            customer_id = %customer.customer_id,
            decision = decision.code(),
            "ID validity on a queue swipe"
        );
        // Rule S3: the lookup and its outcome, masked (the customer id only).
        let entry = AuditEntry {
            at_ms: Utc::now().timestamp_millis(),
            actor: Actor::CustomerSession,
            action: AuditAction::Lookup,
            subject: Some(customer.customer_id.clone()),
            detail: format!(
                "queue machine swipe: id validity {} (rule I7)",
                decision.code()
            ),
        };
        if let Err(e) = self.blocking_store(move |s| s.audit_append(&entry)).await {
            tracing::error!(code = ?e.code, "cannot audit the lookup");
        }
        if decision != ValidityDecision::Newer {
            return ValidityCheck {
                code: Some(decision.code().into()),
                change_id: None,
            };
        }
        let kind = ChangeKind::IdValidity {
            id_validity: IdValidityChange {
                id_type: card.id_type,
                id_number: card.number.to_string(),
                valid_from: card.valid_from.format("%Y-%m-%d").to_string(),
                valid_until: validity_text(card.valid_until),
                issuer: card.issuer.to_string(),
                card_evidence: CardEvidence {
                    sam_id: card.sam_id.clone(),
                    card_uid: card.card_uid.clone(),
                },
            },
        };
        match self
            .record_change(
                customer.customer_id.clone(),
                kind,
                Actor::Kiosk,
                "id validity newer than on file: recorded at the queue machine (rule Q3)".into(),
            )
            .await
        {
            Ok(c) => ValidityCheck {
                code: Some(decision.code().into()),
                change_id: Some(c.change_id),
            },
            Err(e) => {
                tracing::error!(code = ?e.code, "cannot record the ID validity change");
                ValidityCheck {
                    code: Some("not_recorded".into()),
                    change_id: None,
                }
            }
        }
    }

    /// Print `ticket` on the printer (blocking pool, bounded wait).
    async fn print_ticket(&self, ticket: &QueueTicket) -> PrintOutcome {
        self.print_document(ticket.document()).await
    }

    /// Print a customer's receipt (rule P6): the slip API of the customer
    /// flows. Every value on the slip must already be masked.
    pub async fn print_slip(&self, slip: &kiosk_escpos::Slip) -> PrintOutcome {
        self.print_document(slip.document()).await
    }

    async fn print_document(
        &self,
        document: Result<kiosk_escpos::Document, EscposError>,
    ) -> PrintOutcome {
        let Some(handle) = self.printer_handle() else {
            return PrintOutcome::NotPrinted {
                fault: None,
                reason: "no printer configured".into(),
            };
        };
        let document = match document {
            Ok(d) => d,
            Err(e) => {
                return PrintOutcome::NotPrinted {
                    fault: None,
                    reason: e.to_string(),
                };
            }
        };
        let timeout = self
            .config
            .printer
            .as_ref()
            .map(|p| {
                let c = p.driver_config();
                c.write_timeout() + c.status_timeout() * 4 + Duration::from_secs(2)
            })
            .unwrap_or(Duration::from_secs(10));
        let result: Result<Printed, EscposError> =
            tokio::task::spawn_blocking(move || handle.print(document, timeout))
                .await
                .unwrap_or(Err(EscposError::DeviceStopped));
        PrintOutcome::from_result(&result)
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
            if decision.reprint_needed
                && let Some(p) = self.printer_state_mut().as_mut()
            {
                p.last_error = Some(notice.detail.clone());
            }
        }
        let printed = !decision.reprint_needed;
        if printed {
            let id = plan.ticket_id.hyphenated().to_string();
            self.blocking_store(move |s| s.mark_ticket_printed(&id))
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
        self.queue_store()?;
        let card = if params.use_card {
            self.swiped_card()
        } else {
            None
        };
        // Numbers and prints in the same order; held until the ticket is
        // out (not while the bank is asked about a swiped card).
        let turn = self.queue_lock.lock().await;
        let now = Utc::now();
        let request = flow::number_request(&config, &params.service, now)
            .map_err(|e| api_error(ErrorCode::NotFound, e.to_string()))?;
        let letter = config
            .service(&request.service_id)
            .map(|s| s.letter)
            .ok_or_else(|| api_error(ErrorCode::NotFound, "unknown service"))?;
        let ticket_id = Uuid::new_v4();
        let masked_name = card.as_ref().and_then(|c| c.masked_name.clone());
        let new = NewTicket {
            ticket_id: ticket_id.hyphenated().to_string(),
            service_id: request.service_id.clone(),
            letter,
            business_day: request.business_day,
            issued_at_ms: now.timestamp_millis(),
            number_digits: config.number_digits,
            masked_name: masked_name.as_ref().map(|n| n.as_str().to_string()),
        };
        // Rule Q2: committed (fsync'd) before anything is printed.
        let row = self.blocking_store(move |s| s.issue_ticket(&new)).await?;
        tracing::info!(
            ticket_id = %row.ticket_id,
            number = %row.number_text,
            service = %row.service_id,
            "ticket number committed"
        );
        let plan = flow::plan_ticket(
            &config,
            &self.config.kiosk.branch_name,
            &IssueRequest {
                service_id: request.service_id.clone(),
                business_day: request.business_day,
                number: row.number,
                ticket_id,
                issued_at: now,
                waiting_ahead: row.waiting_ahead,
                masked_name: masked_name.clone(),
            },
        )
        .map_err(|e| api_error(ErrorCode::Internal, e.to_string()))?;
        // Print and (with a card) check the validity side by side: the
        // ticket never waits for the bank.
        let print = async {
            let outcome = self.print_ticket(&plan.ticket).await;
            drop(turn);
            outcome
        };
        let (outcome, validity) = tokio::join!(print, async {
            match &card {
                Some(c) => self.check_validity(c).await,
                None => ValidityCheck::default(),
            }
        });
        drop(card);
        let (printed, message) = self.finish_print(&plan, &outcome).await?;
        self.emit(Event::TicketIssued {
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

    /// `queue_reprint`: the same ticket and number again (rule Q4), with
    /// the people waiting ahead now.
    pub async fn queue_reprint(
        &self,
        params: QueueReprintParams,
    ) -> Result<QueueTicketInfo, ApiError> {
        let config = self.queue_config()?.clone();
        let _turn = self.queue_lock.lock().await;
        let row: TicketRow = match params.ticket_id {
            Some(id) => self.blocking_store(move |s| s.ticket(&id)).await?,
            None => self.blocking_store(|s| s.last_ticket()).await?,
        }
        .ok_or_else(|| api_error(ErrorCode::NotFound, "no such ticket"))?;
        let ticket_id = Uuid::parse_str(&row.ticket_id)
            .map_err(|_| api_error(ErrorCode::Internal, "stored ticket id is not a UUID"))?;
        let masked_name = row
            .masked_name
            .as_deref()
            .and_then(|n| MaskedName::new(n, &self.config.masking));
        let issued_at =
            DateTime::<Utc>::from_timestamp_millis(row.issued_at_ms).unwrap_or_default();
        let plan = flow::plan_ticket(
            &config,
            &self.config.kiosk.branch_name,
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
        .map_err(|e| api_error(ErrorCode::NotFound, e.to_string()))?;
        let row_for_count = row.clone();
        let ahead = self
            .blocking_store(move |s| s.waiting_ahead(&row_for_count))
            .await?;
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

    /// `queue_call`: the next waiting ticket of a service, today.
    pub async fn queue_call(&self, params: QueueServiceParams) -> Result<QueueCalled, ApiError> {
        let config = self.queue_config()?;
        let request = flow::number_request(config, &params.service, Utc::now())
            .map_err(|e| api_error(ErrorCode::NotFound, e.to_string()))?;
        let letter = config
            .service(&request.service_id)
            .map(|s| s.letter)
            .ok_or_else(|| api_error(ErrorCode::NotFound, "unknown service"))?;
        let day = request.business_day;
        let now_ms = Utc::now().timestamp_millis();
        let (called, counts) = self
            .blocking_store(move |s| {
                let called = s.call_next_ticket(letter, day, now_ms)?;
                Ok((called, s.queue_counts(letter, day)?))
            })
            .await?;
        Ok(QueueCalled {
            service: request.service_id,
            ticket_id: called.as_ref().map(|t| t.ticket_id.clone()),
            number: called.map(|t| t.number_text),
            waiting: counts.waiting,
        })
    }

    /// `queue_status`: per service, today.
    pub async fn queue_status(&self) -> Result<QueueStatusInfo, ApiError> {
        let config = self.queue_config()?.clone();
        let day = flow::business_day(Utc::now(), &config);
        let letters: Vec<char> = config.services.iter().map(|s| s.letter).collect();
        let counts = self
            .blocking_store(move |s| {
                letters
                    .iter()
                    .map(|l| s.queue_counts(*l, day))
                    .collect::<Result<Vec<_>, _>>()
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

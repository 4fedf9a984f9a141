//! Every JSON example of `docs/local-api.md` goes through the typed
//! messages of this crate and comes out the same: the wire the document
//! promises third-party clients is the wire the types make.
//!
//! An example is one JSON object or array in a ```json block, or a line
//! of a plain ``` block such as the example session (a block may hold
//! several, one per line). Examples with `...` placeholders are not JSON
//! and are skipped; each of the others must be read by one of the typed
//! messages below and written back equal, `null` and an absent key
//! counting as the same.

use kiosk_proto::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Drop `null` members, recursively: `"x": null` and no `x` are one.
fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// `v` read as `T` and written back, if `T` reads it.
fn through<T: Serialize + DeserializeOwned>(v: &Value) -> Option<Value> {
    let typed: T = serde_json::from_value(v.clone()).ok()?;
    serde_json::to_value(typed).ok().map(without_nulls)
}

/// Reads an example as one typed message and writes it back.
type Reader = fn(&Value) -> Option<Value>;

/// The typed messages an example may be, by name.
fn readers() -> Vec<(&'static str, Reader)> {
    vec![
        ("RequestLine", through::<RequestLine>),
        ("ResponseEnvelope", through::<ResponseEnvelope>),
        ("EventEnvelope", through::<EventEnvelope>),
        ("SessionInfo", through::<SessionInfo>),
        ("SessionInput", through::<SessionInput>),
        ("SessionInputParams", through::<SessionInputParams>),
        ("HelloInfo", through::<HelloInfo>),
        ("StatusInfo", through::<StatusInfo>),
        ("[ReaderInfo]", through::<Vec<ReaderInfo>>),
        ("CardReadInfo", through::<CardReadInfo>),
        ("SyncStatusInfo", through::<SyncStatusInfo>),
        ("ChangeSummary", through::<ChangeSummary>),
        ("AuditReport", through::<AuditReport>),
        ("SelftestReport", through::<SelftestReport>),
        ("QueueTicketInfo", through::<QueueTicketInfo>),
        ("QueueStatusInfo", through::<QueueStatusInfo>),
        ("[QueueServiceInfo]", through::<Vec<QueueServiceInfo>>),
        ("QueueCalled", through::<QueueCalled>),
        ("QueueReport", through::<QueueReport>),
        ("QueueReportRow", through::<QueueReportRow>),
        ("SubmitChangeParams", through::<SubmitChangeParams>),
        ("SubmittedChange", through::<SubmittedChange>),
        ("TechnicianUnlocked", through::<TechnicianUnlocked>),
        ("ApiError", through::<ApiError>),
    ]
}

/// The JSON examples of a document's code blocks (see the module docs):
/// (the values, how many lines were skipped as placeholders). A line's
/// `data: ` prefix (a server-sent event) is dropped first.
fn doc_examples(doc: &str) -> (Vec<Value>, usize) {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line.trim()) {
            (None, "```json" | "```") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), _) => {
                block.push_str(line.trim_start().strip_prefix("data: ").unwrap_or(line));
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    let mut placeholders = 0;
    let mut all = Vec::new();
    for block in &blocks {
        // The block as JSON values; where a placeholder spoils it, its
        // lines one by one (each line of a block of one-line examples).
        let whole: Result<Vec<Value>, _> = serde_json::Deserializer::from_str(block)
            .into_iter::<Value>()
            .collect();
        let values = whole.unwrap_or_else(|_| {
            block
                .lines()
                .filter(|l| !l.trim().is_empty())
                .filter_map(|l| {
                    let v = serde_json::from_str::<Value>(l).ok();
                    if v.is_none() {
                        placeholders += 1;
                    }
                    v
                })
                .collect()
        });
        all.extend(values.into_iter().filter(|v| v.is_object() || v.is_array()));
    }
    (all, placeholders)
}

#[test]
fn every_documented_example_is_what_the_typed_messages_write() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/local-api.md"))
        .expect("docs/local-api.md");
    let (values, placeholders) = doc_examples(&doc);
    let (mut checked, mut failures) = (0, Vec::new());
    let mut used = std::collections::BTreeSet::new();
    for v in values {
        let want = without_nulls(v.clone());
        let read_by: Vec<&str> = readers()
            .into_iter()
            .filter(|(_, read)| read(&v).as_ref() == Some(&want))
            .map(|(name, _)| name)
            .collect();
        if read_by.is_empty() {
            failures.push(v.to_string());
        } else {
            checked += 1;
            used.extend(read_by);
        }
    }
    assert!(
        failures.is_empty(),
        "examples no typed message writes back the same:\n{}",
        failures.join("\n")
    );
    // The document's typed examples are all here (a parser that found
    // nothing would pass vacuously).
    assert!(
        checked >= 20,
        "only {checked} examples checked ({placeholders} skipped)"
    );
    for typed in [
        "RequestLine",
        "EventEnvelope",
        "SessionInfo",
        "SessionInput",
        "StatusInfo",
    ] {
        assert!(used.contains(typed), "no example read as {typed}: {used:?}");
    }
}

/// The branch API's examples (docs/branch-api.md), the server-sent
/// events' `data:` lines included, are what the `branch` types write.
#[test]
fn every_branch_api_example_is_what_the_branch_types_write() {
    use kiosk_proto::branch::*;
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/branch-api.md"
    ))
    .expect("docs/branch-api.md");
    let readers: Vec<(&str, Reader)> = vec![
        ("BranchTicket", through::<BranchTicket>),
        ("StreamEvent", through::<StreamEvent>),
        ("QueueState", through::<QueueState>),
        ("CounterView", through::<CounterView>),
        ("ActionResult", through::<ActionResult>),
        ("NumberGrant", through::<NumberGrant>),
        ("NumberRequest", through::<NumberRequest>),
        ("ActionBody", through::<ActionBody>),
        ("ErrorBody", through::<ErrorBody>),
        ("Health", through::<Health>),
        ("QueueReportRow", through::<QueueReportRow>),
    ];
    let (values, _) = doc_examples(&doc);
    let mut used = std::collections::BTreeSet::new();
    for v in &values {
        let want = without_nulls(v.clone());
        let read_by: Vec<&str> = readers
            .iter()
            .filter(|(_, read)| read(v).as_ref() == Some(&want))
            .map(|(name, _)| *name)
            .collect();
        assert!(!read_by.is_empty(), "no branch type writes back {v}");
        used.extend(read_by);
    }
    for typed in ["StreamEvent", "BranchTicket", "NumberGrant"] {
        assert!(used.contains(typed), "no example read as {typed}: {used:?}");
    }
}

/// The refusals the session table of `docs/local-api.md` shows inline
/// (`{"refusal": "expired_card", ...}`) are what [`Refusal`] reads and
/// writes back.
#[test]
fn the_documented_refusals_are_what_the_typed_refusal_writes() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/local-api.md"))
        .expect("docs/local-api.md");
    let row = doc
        .lines()
        .find(|l| l.starts_with("| `refusal` |"))
        .expect("the refusal row of the session table");
    let examples: Vec<&str> = row
        .split('`')
        .filter(|part| part.starts_with('{') && part.ends_with('}'))
        .collect();
    assert!(examples.len() >= 3, "{row}");
    for example in examples {
        let v: Value = serde_json::from_str(example).expect(example);
        assert_eq!(through::<Refusal>(&v), Some(without_nulls(v)), "{example}");
    }
}

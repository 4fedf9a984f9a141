//! The counter page and the hall display in a real browser (rules Q5, Q6,
//! Q10): Debian's Chromium, headless, driven over WebDriver (chromedriver,
//! fantoccini), against a primary kioskd serving the branch API over HTTPS
//! with a certificate of a CA made for the test. The browser and its driver
//! listen on loopback only and are stopped by the test (their process
//! group is killed when the rig drops).
//!
//! With `KIOSK_PAGES_SCREENS=DIR` the first test also writes `counter.png`
//! and `display.png` into DIR (`cargo xtask screenshots` does, into
//! docs/screens).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use kiosk_proto::DeviceState;
use serde_json::{Value, json};

use super::branch::{free_port, pki, token};
use super::harness::{DEADLINE, Kioskd};
use super::queue::{Setup, queue_toml, setup, wait_printer};

/// How often a condition in the page is looked at again.
const POLL: Duration = Duration::from_millis(50);

/// chromedriver and the Chromium it starts, in a process group of their
/// own, killed as a whole when dropped.
struct Browser {
    driver: Child,
    client: Option<Client>,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        use std::os::unix::process::CommandExt;
        let profile = tempfile::tempdir().expect("profile dir");
        let port = free_port();
        // chromedriver accepts local connections only by default and binds
        // loopback; the browser's DevTools port is its own, on loopback.
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                profile.path().join("chromedriver.log").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver (Debian package chromium-driver; cargo xtask setup)");
        let mut browser = Browser {
            driver,
            client: None,
            _profile: profile,
        };
        let user_data = browser._profile.path().join("chromium");
        let caps = json!({
            "browserName": "chrome",
            // The test CA is not in the browser's store.
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": "/usr/lib/chromium/chromium",
                "args": [
                    "--headless=new",
                    // Root in a container: no user namespace sandbox.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", user_data.display()),
                    "--window-size=1280,800",
                    "--remote-debugging-address=127.0.0.1",
                    // A hall display plays without a click.
                    "--autoplay-policy=no-user-gesture-required",
                    "--mute-audio",
                    "--no-first-run",
                    "--lang=zh-CN",
                ],
            },
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let started = Instant::now();
        // chromedriver is ready when it accepts a session.
        let client = loop {
            match ClientBuilder::new(connector.clone())
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(c) => break c,
                Err(e) if started.elapsed() < DEADLINE => {
                    let _ = e;
                    tokio::time::sleep(POLL).await;
                }
                Err(e) => panic!("no WebDriver session: {e}"),
            }
        };
        browser.client = Some(client);
        browser
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("session")
    }

    /// End the session (chromedriver stops Chromium), then chromedriver.
    async fn stop(mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and every Chromium process.
        let pgid = nix::unistd::Pid::from_raw(i32::try_from(self.driver.id()).expect("pid"));
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.driver.wait();
    }
}

/// A JavaScript expression's value, once `ready` accepts it (or panic at
/// the deadline with the last value).
async fn until(c: &Client, expr: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let v = c
            .execute(&format!("return {expr};"), vec![])
            .await
            .unwrap_or(Value::Null);
        if ready(&v) {
            return v;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{expr}: still {v} after {DEADLINE:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The primary queue machine with its printer, counters 1 and 2, the hall
/// display announcing in Chinese and English from a clip folder.
struct PagesRig {
    primary: Kioskd,
    setup: Setup,
    url: String,
    http: reqwest::Client,
    tokens: BTreeMap<String, String>,
}

/// Tiny silent WAV files for every clip of the catalogue kioskd ships:
/// real files the page fetches and plays (espeak-ng ones are made by
/// `cargo xtask hall-voices`).
fn write_clips(dir: &Path) {
    let catalogue = include_str!("../../src/pages/hall-voices.tsv");
    let samples = 400u32; // 50 ms at 8 kHz, 16 bit, mono
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + samples * 2).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&8000u32.to_le_bytes());
    wav.extend_from_slice(&16000u32.to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(samples * 2).to_le_bytes());
    wav.resize(wav.len() + samples as usize * 2, 0);
    for line in catalogue.lines() {
        let mut f = line.split('\t');
        let (Some(lang), Some(id)) = (f.next(), f.next()) else {
            panic!("catalogue line {line:?}")
        };
        std::fs::create_dir_all(dir.join(lang)).expect("clip dir");
        std::fs::write(dir.join(lang).join(format!("{id}.wav")), &wav).expect("clip");
    }
}

async fn rig() -> PagesRig {
    let setup = setup();
    let pki = pki(setup.dir.path());
    let voices = setup.dir.path().join("hall-voices");
    write_clips(&voices);
    let port = free_port();
    let mut tokens = BTreeMap::new();
    let mut counters = String::new();
    for (id, services) in [("1", r#"["vip", "personal"]"#), ("2", r#"["personal"]"#)] {
        let t = token(id);
        counters.push_str(&format!(
            "\n[[branch.counters]]\nid = \"{id}\"\nservices = {services}\ntoken_sha256 = \"{}\"\n",
            kiosk::config::token_hash(&t)
        ));
        tokens.insert(id.to_string(), t);
    }
    let toml = format!(
        r#"{queue}
[branch]
role = "primary"
listen = "127.0.0.1:{port}"
tls_cert = "{cert}"
tls_key = "{key}"
voices_dir = "{voices}"
display_languages = ["zh", "en"]
{counters}
"#,
        queue = queue_toml(setup.dir.path(), Some(setup.printer.link())),
        cert = pki.cert.display(),
        key = pki.key.display(),
        voices = voices.display(),
    );
    let primary = Kioskd::start_profile("queue_machine", "", &toml, false);
    let mut events = primary.subscriber().await;
    wait_printer(&mut events, DeviceState::Online).await;
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pki.ca_pem).expect("CA"))
        .timeout(DEADLINE)
        .build()
        .expect("client");
    PagesRig {
        primary,
        setup,
        url: format!("https://127.0.0.1:{port}"),
        http,
        tokens,
    }
}

impl PagesRig {
    /// A ticket taken at the queue machine's own screen.
    async fn take(&self, service: &str) -> String {
        let mut c = self.primary.client().await;
        c.queue_take(service, false).await.expect("ticket").number
    }

    /// A counter action over the API (the counter page's own requests go
    /// through the browser).
    async fn act(&self, counter: &str, action: &str) -> Value {
        let r = self
            .http
            .post(format!("{}/api/v1/counters/{counter}/{action}", self.url))
            .bearer_auth(&self.tokens[counter])
            .send()
            .await
            .expect("send");
        assert!(
            r.status().is_success(),
            "{counter} {action}: {}",
            r.status()
        );
        r.json().await.expect("json")
    }
}

/// The clips of one call, once in each language (rule Q6).
fn announcement(number: &str, counter: &str) -> Vec<String> {
    let spell = |lang: &str, s: &str| -> Vec<String> {
        s.chars()
            .map(|ch| {
                if ch.is_ascii_digit() {
                    format!("{lang}/digit_{ch}")
                } else {
                    format!("{lang}/letter_{ch}")
                }
            })
            .collect()
    };
    let mut clips = Vec::new();
    for lang in ["zh", "en"] {
        clips.push(format!("{lang}/please"));
        clips.extend(spell(lang, number));
        clips.push(format!("{lang}/number_to"));
        clips.extend(spell(lang, counter));
        if lang == "zh" {
            clips.push("zh/counter_end".into());
        }
    }
    clips.extend(clips.clone()); // twice
    clips
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

async fn screenshot(c: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("KIOSK_PAGES_SCREENS") {
        let png = c.screenshot().await.expect("screenshot");
        std::fs::create_dir_all(&dir).expect("screens dir");
        std::fs::write(Path::new(&dir).join(name), png).expect("write screenshot");
    }
}

/// Log in on the counter page, call the next ticket with its button, see
/// the call on the hall display, newest and highlighted, announced twice in
/// Chinese then English by clips fetched and played in order; errors of
/// the API shown on the counter page; nothing personal on either page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_q6_a_call_from_the_counter_page_is_shown_and_announced_on_the_display() {
    let rig = rig().await;
    // Earlier calls of the day, at counter 2: the display lists them
    // without announcing them again.
    for n in ["A001", "A002"] {
        assert_eq!(rig.take("personal").await, n);
    }
    rig.act("2", "call-next").await;
    rig.act("2", "serve").await;
    rig.act("2", "call-next").await;
    let browser = Browser::start().await;
    let c = browser.client();
    // The display in the first window.
    c.goto(&format!("{}/display", rig.url))
        .await
        .expect("display");
    c.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("#link[data-state='open']"))
        .await
        .expect("the display follows the stream");
    let display = c.window().await.expect("window");
    // The counter page in a second one.
    let counter = c.new_window(true).await.expect("new window").handle;
    c.switch_to_window(counter.clone()).await.expect("switch");
    c.goto(&format!("{}/counter", rig.url))
        .await
        .expect("counter");
    c.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("#login:not([hidden])"))
        .await
        .expect("login form");
    // A wrong token is refused, clearly.
    c.find(Locator::Id("counter-id"))
        .await
        .expect("id")
        .send_keys("1")
        .await
        .expect("type");
    c.find(Locator::Id("counter-token"))
        .await
        .expect("token")
        .send_keys("not-a-token")
        .await
        .expect("type");
    c.find(Locator::Id("login-button"))
        .await
        .expect("login")
        .click()
        .await
        .expect("click");
    c.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css(
            "#error[data-code='unauthorized']:not([hidden])",
        ))
        .await
        .expect("unauthorized shown");
    let id = c.find(Locator::Id("counter-id")).await.expect("id");
    id.clear().await.expect("clear");
    id.send_keys("1").await.expect("type");
    let t = c.find(Locator::Id("counter-token")).await.expect("token");
    t.clear().await.expect("clear");
    t.send_keys(&rig.tokens["1"]).await.expect("type");
    c.find(Locator::Id("login-button"))
        .await
        .expect("login")
        .click()
        .await
        .expect("click");
    c.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css(
            "#desk:not([hidden]) #services li[data-service='personal']",
        ))
        .await
        .expect("logged in");
    // Nobody waits: the API's refusal is on the page, in both languages.
    c.find(Locator::Id("call-next"))
        .await
        .expect("button")
        .click()
        .await
        .expect("click");
    let error = c
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css(
            "#error[data-code='nobody_waiting']:not([hidden])",
        ))
        .await
        .expect("nobody_waiting shown");
    let text = error.text().await.expect("text");
    assert!(text.contains("没有等候的客户"), "{text}");
    // A customer takes A003 at the queue machine; the counter page counts it.
    assert_eq!(rig.take("personal").await, "A003");
    c.wait()
        .at_most(DEADLINE)
        .for_element(Locator::XPath(
            "//ul[@id='services']/li[@data-service='personal']/span[@class='count' and text()='1']",
        ))
        .await
        .expect("one waiting on the counter page");
    c.find(Locator::Id("call-next"))
        .await
        .expect("button")
        .click()
        .await
        .expect("click");
    c.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("#current-number[data-number='A003']"))
        .await
        .expect("A003 is the counter's current ticket");
    assert!(
        c.find(Locator::Id("error"))
            .await
            .expect("error")
            .attr("hidden")
            .await
            .expect("attr")
            .is_some()
    );
    screenshot(c, "counter.png").await;
    // The display shows it, newest and highlighted.
    c.switch_to_window(display).await.expect("switch");
    let newest = c
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css(
            "#calls li.newest[data-number='A003'][data-counter='1']",
        ))
        .await
        .expect("A003 on the display");
    let text = newest.text().await.expect("text");
    assert!(text.contains("A003") && text.contains("1号窗口"), "{text}");
    let shown = c
        .execute(
            "return Array.from(document.querySelectorAll('#calls li')).map(li => li.dataset.number + '>' + li.dataset.counter);",
            vec![],
        )
        .await
        .expect("calls");
    assert_eq!(strings(&shown), ["A003>1", "A002>2", "A001>2"]);
    // Announced twice, zh then en, every clip fetched and played in order
    // (the earlier calls are not announced again).
    let expected = announcement("A003", "1");
    let queued = until(c, "window.kioskVoiceLog", |v| {
        v.as_array().is_some_and(|a| a.len() >= expected.len())
    })
    .await;
    assert_eq!(strings(&queued), expected);
    let played = until(c, "window.kioskVoicePlayed", |v| {
        v.as_array().is_some_and(|a| a.len() >= expected.len())
    })
    .await;
    let played = strings(&played);
    assert_eq!(
        played,
        expected
            .iter()
            .map(|c| format!("{c}:ended"))
            .collect::<Vec<_>>()
    );
    let waiting = c
        .find(Locator::Css("#waiting li[data-service='personal'] .count"))
        .await
        .expect("waiting");
    assert_eq!(waiting.text().await.expect("text"), "0");
    let branch = c.find(Locator::Id("branch")).await.expect("branch");
    assert!(!branch.text().await.expect("text").is_empty());
    screenshot(c, "display.png").await;
    // Rule Q10: the pages carry numbers, services and counters only.
    let html = c.source().await.expect("source");
    assert!(!html.contains("张") && !html.contains("110101"), "{html}");
    browser.stop().await;
    drop(rig.setup);
}

/// kioskd is killed and started again under an open display: the display
/// reconnects by itself (no reload), the call made while it was away
/// appears and is announced, nothing is shown or announced twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_q6_the_display_reconnects_after_a_kioskd_restart_losing_and_repeating_no_call() {
    let mut rig = rig().await;
    let browser = Browser::start().await;
    let c = browser.client();
    c.goto(&format!("{}/display?lang=zh", rig.url))
        .await
        .expect("display");
    c.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("#link[data-state='open']"))
        .await
        .expect("the display follows the stream");
    c.execute("window.kioskPageLoads = 1; return 0;", vec![])
        .await
        .expect("mark");
    assert_eq!(rig.take("personal").await, "A001");
    rig.act("1", "call-next").await;
    c.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("#calls li.newest[data-number='A001']"))
        .await
        .expect("A001 on the display");
    rig.primary.kill();
    c.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("#link[data-state='reconnecting']"))
        .await
        .expect("the display noticed");
    rig.primary.start_again();
    let mut events = rig.primary.subscriber().await;
    wait_printer(&mut events, DeviceState::Online).await;
    rig.act("1", "serve").await;
    assert_eq!(rig.take("personal").await, "A002");
    rig.act("1", "call-next").await;
    rig.act("1", "recall").await;
    c.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("#calls li.newest[data-number='A002']"))
        .await
        .expect("A002 on the display, without a reload");
    let zh = |n: &str| -> Vec<String> {
        let once: Vec<String> = announcement(n, "1")
            .into_iter()
            .take_while(|c| c.starts_with("zh/"))
            .collect();
        [once.clone(), once].concat()
    };
    let expected = [zh("A001"), zh("A002"), zh("A002")].concat();
    let queued = until(c, "window.kioskVoiceLog", |v| {
        v.as_array().is_some_and(|a| a.len() >= expected.len())
    })
    .await;
    assert_eq!(
        strings(&queued),
        expected,
        "each call announced once, twice over"
    );
    let shown = c
        .execute(
            "return Array.from(document.querySelectorAll('#calls li')).map(li => li.dataset.number);",
            vec![],
        )
        .await
        .expect("calls");
    assert_eq!(
        strings(&shown),
        ["A002", "A002", "A001"],
        "call, recall, first call"
    );
    let loads = c
        .execute("return window.kioskPageLoads || 0;", vec![])
        .await
        .expect("loads");
    assert_eq!(loads, json!(1), "the page was not reloaded");
    browser.stop().await;
}

/// The pages and clips are served from the binary and from `voices_dir`
/// only: unknown pages, other languages and names that are not plain clip
/// ids are `404`, whatever they point at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_voice_clips_are_served_from_the_binary_and_the_clip_folder_only() {
    let rig = rig().await;
    let get = |path: &str| rig.http.get(format!("{}{path}", rig.url)).send();
    for (path, mime) in [
        ("/counter", "text/html; charset=utf-8"),
        ("/display", "text/html; charset=utf-8"),
        ("/pages/display.js", "text/javascript; charset=utf-8"),
        ("/pages/common.css", "text/css; charset=utf-8"),
        ("/voices/zh/please.wav", "audio/wav"),
        ("/voices/en/letter_A.wav", "audio/wav"),
    ] {
        let r = get(path).await.expect("get");
        assert_eq!(r.status(), reqwest::StatusCode::OK, "{path}");
        assert_eq!(r.headers()["content-type"], mime, "{path}");
    }
    let config: Value = get("/pages/display-config.json")
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(config, json!({"languages": ["zh", "en"], "voices": true}));
    for path in [
        "/pages/nope.js",
        "/voices/fr/please.wav",
        "/voices/zh/please.mp3",
        "/voices/zh/nope.wav",
        "/voices/zh/..%2F..%2Fkiosk.toml",
        "/voices/zh/%2E%2E.wav",
        "/voices/..%2Fzh/please.wav",
    ] {
        let r = get(path).await.expect("get");
        assert_eq!(r.status(), reqwest::StatusCode::NOT_FOUND, "{path}");
    }
}

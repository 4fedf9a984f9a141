//! Pinyin through librime (Debian `librime-dev`, schema `pinyin_simp`
//! from `rime-data-pinyin-simp`), with the `rime-api` crate.
//!
//! librime is one engine per process. The first [`RimePinyin`] sets it up
//! with a fresh temporary user data directory and deploys the schema
//! there from the system's shared data; the last one dropped finalizes it
//! and removes the directory (rule S2). Learning is off (the schema's user
//! dictionary is disabled), so nothing typed is written there anyway, and
//! librime logs fatal errors only: no keystroke reaches a log. The
//! deployment (over a second) runs on its own thread; the session opens at
//! the first key.
//! librime's session table is not meant for concurrent callers, so every
//! call goes through one lock.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, Once};

use anyhow::{Context, Result, bail};
use rime_api::{DeployResult, KeyEvent, Session, Traits};
use zeroize::Zeroizing;

use crate::keyboard::{PinyinEngine, PinyinKey, PinyinState};

/// The system's shared Rime data (Debian's rime-data packages).
pub const SHARED_DATA: &str = "/usr/share/rime-data";
/// Simplified-Chinese pinyin with phrases (`rime-data-pinyin-simp`).
const SCHEMA: &str = "pinyin_simp";

/// Only this schema is deployed; its user dictionary (learning) is off.
const DEFAULT_PATCH: &str = "patch:\n  schema_list:\n    - schema: pinyin_simp\n";
const SCHEMA_PATCH: &str = "patch:\n  translator/enable_user_dict: false\n";

/// X11 keysyms librime takes (letters and digits are their ASCII codes).
const XK_BACKSPACE: i32 = 0xff08;
const XK_ESCAPE: i32 = 0xff1b;
const XK_PAGE_UP: i32 = 0xff55;
const XK_PAGE_DOWN: i32 = 0xff56;
/// librime's fatal level: nothing below it is logged.
const LOG_FATAL_ONLY: u8 = 3;

/// The process's librime: how many engines use it, and its user directory.
struct Shared {
    users: usize,
    user_dir: Option<tempfile::TempDir>,
}

static RIME: Mutex<Shared> = Mutex::new(Shared {
    users: 0,
    user_dir: None,
});
static SETUP: Once = Once::new();

fn lock() -> MutexGuard<'static, Shared> {
    // A panic while holding the lock leaves librime as it was.
    RIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn traits(user_dir: &Path) -> Result<Traits> {
    let mut traits = Traits::new();
    traits
        .set_shared_data_dir(SHARED_DATA)
        .set_user_data_dir(user_dir.to_str().context("temporary directory path")?)
        .set_distribution_name("kiosk-ui")
        .set_distribution_code_name("kiosk-ui")
        .set_distribution_version(env!("CARGO_PKG_VERSION"))
        .set_app_name("rime.kiosk-ui")
        // An empty log directory means standard error, never files.
        .set_log_dir("")
        .set_min_log_level(LOG_FATAL_ONLY);
    Ok(traits)
}

/// Start librime and deploy the schema, unless another engine has.
fn start(shared: &mut Shared) -> Result<()> {
    if shared.users > 0 {
        shared.users += 1;
        return Ok(());
    }
    let dir = tempfile::Builder::new()
        .prefix("kiosk-ui-rime-")
        .tempdir()
        .context("creating librime's user directory")?;
    std::fs::write(dir.path().join("default.custom.yaml"), DEFAULT_PATCH)?;
    std::fs::write(
        dir.path().join(format!("{SCHEMA}.custom.yaml")),
        SCHEMA_PATCH,
    )?;
    let mut traits = traits(dir.path())?;
    // Logging is set up once per process (glog allows no second time).
    SETUP.call_once(|| rime_api::setup(&mut traits));
    rime_api::initialize(&mut traits);
    if rime_api::full_deploy_and_wait() != DeployResult::Success {
        rime_api::finalize();
        bail!("librime could not deploy {SCHEMA} from {SHARED_DATA}");
    }
    shared.user_dir = Some(dir);
    shared.users = 1;
    Ok(())
}

fn stop(shared: &mut Shared) {
    shared.users -= 1;
    if shared.users == 0 {
        rime_api::finalize();
        // Removes the directory: nothing of it outlives the engines.
        shared.user_dir = None;
    }
}

/// A librime session typing Simplified Chinese pinyin.
///
/// Deploying takes librime over a second, so it runs on a thread of its
/// own from [`RimePinyin::start`]: the UI shows its first screen at once,
/// and the session opens at the first key (by then long deployed).
pub struct RimePinyin {
    deploy: Option<std::thread::JoinHandle<Result<()>>>,
    /// This engine counts among librime's users (the deploy succeeded).
    holds_librime: bool,
    session: Option<Session>,
}

impl std::fmt::Debug for RimePinyin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The composition is the customer's: never shown.
        f.debug_struct("RimePinyin")
            .field("open", &self.session.is_some())
            .finish_non_exhaustive()
    }
}

impl RimePinyin {
    /// Start librime in the background (deploying the schema the first
    /// time); fails at once only when the schema is not installed.
    pub fn start() -> Result<RimePinyin> {
        let schema = Path::new(SHARED_DATA).join(format!("{SCHEMA}.schema.yaml"));
        if !schema.exists() {
            bail!("{} is missing (rime-data-pinyin-simp)", schema.display());
        }
        let deploy = std::thread::Builder::new()
            .name("librime-deploy".into())
            .spawn(|| start(&mut lock()))
            .context("starting librime's deployment")?;
        Ok(RimePinyin {
            deploy: Some(deploy),
            holds_librime: false,
            session: None,
        })
    }

    /// Wait for the deployment, once; `false` when it failed.
    fn join_deploy(&mut self) -> bool {
        if let Some(deploy) = self.deploy.take() {
            match deploy.join() {
                Ok(Ok(())) => self.holds_librime = true,
                Ok(Err(e)) => tracing::error!("pinyin input unavailable: {e:#}"),
                Err(_) => {
                    tracing::error!("pinyin input unavailable: librime's deployment panicked")
                }
            }
        }
        self.holds_librime
    }

    /// The session, opened at the first call.
    fn open(&mut self) {
        if self.session.is_some() || !self.join_deploy() {
            return;
        }
        let _guard = lock();
        let opened = rime_api::create_session().and_then(|s| {
            s.select_schema(SCHEMA)?;
            Ok(s)
        });
        match opened {
            Ok(session) => self.session = Some(session),
            Err(e) => tracing::error!("pinyin input unavailable: opening a librime session: {e}"),
        }
    }

    fn key(session: &Session, key_code: i32) {
        session.process_key(KeyEvent {
            key_code,
            modifiers: 0,
        });
    }

    /// The composition and the page of candidates now.
    fn state(session: &Session) -> PinyinState {
        let mut state = PinyinState {
            first_page: true,
            last_page: true,
            ..PinyinState::default()
        };
        if let Some(commit) = session.commit() {
            state.committed = Zeroizing::new(commit.text().to_string());
        }
        if let Some(context) = session.context() {
            state.preedit = Zeroizing::new(
                context
                    .composition()
                    .preedit
                    .unwrap_or_default()
                    .to_string(),
            );
            let menu = context.menu();
            state.first_page = menu.page_no == 0;
            state.last_page = menu.is_last_page;
            state.candidates = menu
                .candidates
                .iter()
                .map(|c| Zeroizing::new(c.text.to_string()))
                .collect();
        }
        state
    }
}

impl PinyinEngine for RimePinyin {
    fn reset(&mut self) {
        // Not opened yet: nothing to drop, and no wait for the deployment
        // (it holds the lock) on a screen change.
        if let Some(session) = &self.session {
            let _guard = lock();
            Self::key(session, XK_ESCAPE);
            // Escape may commit nothing; a pending commit is dropped here.
            drop(session.commit());
        }
    }

    fn press(&mut self, key: PinyinKey) -> PinyinState {
        self.open();
        let _guard = lock();
        let Some(session) = &self.session else {
            return PinyinState::default();
        };
        let code = match key {
            PinyinKey::Letter(c) if c.is_ascii_lowercase() => c as i32,
            PinyinKey::Letter(_) => return Self::state(session),
            PinyinKey::Backspace => XK_BACKSPACE,
            PinyinKey::NextPage => XK_PAGE_DOWN,
            PinyinKey::PreviousPage => XK_PAGE_UP,
            // The selector's keys are 1..9 then 0.
            PinyinKey::Select(i) if i < 9 => '1' as i32 + i as i32,
            PinyinKey::Select(9) => '0' as i32,
            PinyinKey::Select(_) => return Self::state(session),
        };
        Self::key(session, code);
        Self::state(session)
    }
}

impl Drop for RimePinyin {
    fn drop(&mut self) {
        self.join_deploy();
        let mut shared = lock();
        if let Some(mut session) = self.session.take() {
            let _ = session.close();
        }
        if self.holds_librime {
            stop(&mut shared);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real engine: the phrase comes as one candidate, paging works,
    /// and backspace edits the pinyin.
    #[test]
    fn librime_offers_the_phrase_pages_and_edits_the_pinyin() {
        let mut rime = RimePinyin::start().expect("librime with pinyin_simp");
        let mut state = PinyinState::default();
        for c in "shiyanxiaoxue".chars() {
            state = rime.press(PinyinKey::Letter(c));
        }
        let at = state
            .candidates
            .iter()
            .position(|c| c.as_str() == "实验小学")
            .unwrap_or_else(|| panic!("{:?}", state.candidates));
        assert!(state.first_page);
        let state = rime.press(PinyinKey::Select(at));
        assert_eq!(state.committed.as_str(), "实验小学");
        assert!(state.preedit.is_empty());

        for c in "shi".chars() {
            rime.press(PinyinKey::Letter(c));
        }
        rime.press(PinyinKey::Letter('i'));
        let first = rime.press(PinyinKey::Backspace);
        assert!(!first.last_page, "shi has many candidates");
        let second = rime.press(PinyinKey::NextPage);
        assert!(!second.first_page);
        assert_ne!(first.candidates, second.candidates);
        let back = rime.press(PinyinKey::PreviousPage);
        assert_eq!(back.candidates, first.candidates);
        rime.reset();
        let state = rime.press(PinyinKey::Backspace);
        assert!(state.preedit.is_empty() && state.candidates.is_empty());
    }
}

//! The UI's technician PIN.
//!
//! The PIN lives in the config only as an Argon2 hash (`[ui]
//! technician_pin_hash`, made by `kioskctl pin-hash`). A right PIN gives the
//! UI's connection the technician role for a while; wrong ones are counted
//! kiosk-wide: after `technician_pin_attempts` of them each further try
//! waits out a lockout that doubles (up to an hour), so guessing a 6-digit
//! PIN at the screen takes years. Every try is audited by the API layer,
//! right or wrong, never with the PIN.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::store::{PinLockout, Store};

/// The wall clock in Unix ms (the kept lockout outlives the process).
fn unix_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `[ui]`: the touchscreen UI's technician screen.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiSection {
    /// The technician PIN as an Argon2 PHC string (`kioskctl pin-hash`
    /// makes one); without it the UI's technician screen stays shut.
    pub technician_pin_hash: Option<String>,
    /// How long a right PIN gives the UI's connection the technician role.
    pub technician_unlock_s: u64,
    /// Wrong PINs allowed before the lockout starts.
    pub technician_pin_attempts: u32,
    /// The first lockout, doubled at each further wrong PIN (at most 1 h).
    pub technician_lockout_s: u64,
}

impl Default for UiSection {
    fn default() -> Self {
        UiSection {
            technician_pin_hash: None,
            technician_unlock_s: 300,
            technician_pin_attempts: 3,
            technician_lockout_s: 60,
        }
    }
}

/// Longest lockout.
const MAX_LOCKOUT: Duration = Duration::from_secs(3600);
/// A PIN's length: at least a million PINs to guess through the lockout.
const MIN_PIN_DIGITS: usize = 6;
const MAX_PIN_DIGITS: usize = 12;

/// Whether `hash` is a PHC string this module can verify against.
pub fn check_hash(hash: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(hash).map_err(|e| format!("not an Argon2 PHC string ({e})"))?;
    if !parsed.algorithm.as_str().starts_with("argon2") {
        return Err(format!(
            "algorithm {} is not argon2 (use `kioskctl pin-hash`)",
            parsed.algorithm
        ));
    }
    Ok(())
}

/// Hash a PIN for the config (`kioskctl pin-hash`).
pub fn hash_pin(pin: &str) -> Result<String, String> {
    if !(MIN_PIN_DIGITS..=MAX_PIN_DIGITS).contains(&pin.len())
        || !pin.chars().all(|c| c.is_ascii_digit())
    {
        return Err(format!(
            "a PIN is {MIN_PIN_DIGITS} to {MAX_PIN_DIGITS} digits"
        ));
    }
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(pin.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing failed: {e}"))
}

/// The answer to a PIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinCheck {
    Right,
    /// Wrong; this many tries are left before the lockout starts (0: the
    /// next wrong one locks).
    Wrong {
        tries_left: u32,
        locked_for: Option<Duration>,
    },
    /// Locked out: no PIN is even checked for this long.
    Locked {
        retry_in: Duration,
    },
    /// No PIN is configured: the technician screen stays shut.
    NotConfigured,
}

#[derive(Debug, Default)]
struct Attempts {
    failures: u32,
    locked_until: Option<Instant>,
}

/// Checks PINs and counts the wrong ones.
#[derive(Debug)]
pub struct PinGate {
    hash: Option<String>,
    free_tries: u32,
    first_lockout: Duration,
    attempts: Mutex<Attempts>,
    /// Where the count and the lockout are kept across restarts.
    store: Option<Arc<Store>>,
}

impl PinGate {
    pub fn new(ui: &UiSection) -> PinGate {
        PinGate::with_store(ui, None)
    }

    /// A gate whose count and lockout live in `store` too, so a restart of
    /// kioskd gives no more guesses (without a store they are in memory).
    pub fn with_store(ui: &UiSection, store: Option<Arc<Store>>) -> PinGate {
        let mut attempts = Attempts::default();
        match store.as_ref().map(|s| s.pin_lockout()) {
            Some(Ok(kept)) => {
                attempts.failures = kept.failures;
                let left = kept.locked_until_ms.saturating_sub(unix_ms());
                if left > 0 {
                    attempts.locked_until =
                        Some(Instant::now() + Duration::from_millis(left.unsigned_abs()));
                }
            }
            Some(Err(e)) => tracing::error!(error = %e, "cannot read the PIN lockout"),
            None => {}
        }
        PinGate {
            hash: ui.technician_pin_hash.clone(),
            free_tries: ui.technician_pin_attempts,
            first_lockout: Duration::from_secs(ui.technician_lockout_s),
            attempts: Mutex::new(attempts),
            store,
        }
    }

    /// Write the count and the lockout to the store, if there is one.
    fn keep(&self, attempts: &Attempts, now: Instant) {
        let Some(store) = &self.store else {
            return;
        };
        let locked_until_ms = attempts.locked_until.map_or(0, |until| {
            let left = until.saturating_duration_since(now);
            unix_ms().saturating_add(i64::try_from(left.as_millis()).unwrap_or(i64::MAX))
        });
        let kept = PinLockout {
            failures: attempts.failures,
            locked_until_ms,
        };
        if let Err(e) = store.set_pin_lockout(&kept) {
            tracing::error!(error = %e, "cannot keep the PIN lockout");
        }
    }

    /// Check `pin` at `now` (slow: Argon2; call it off the async threads).
    ///
    /// One attempt is in flight kiosk-wide: the attempts' lock is held
    /// from the lockout check through the hash to the count, so parallel
    /// connections wait their turn and each sees the lockout the one
    /// before it set. The attempt is counted as wrong before the hash
    /// runs (a right PIN clears the count).
    pub fn check(&self, pin: &str, now: Instant) -> PinCheck {
        let Some(hash) = &self.hash else {
            return PinCheck::NotConfigured;
        };
        let mut attempts = self.lock();
        if let Some(until) = attempts.locked_until
            && now < until
        {
            return PinCheck::Locked {
                retry_in: until - now,
            };
        }
        attempts.failures += 1;
        // Counted (and kept) before the hash runs: a crash or a restart
        // during it costs the guesser the try.
        self.keep(&attempts, now);
        let right = PasswordHash::new(hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(pin.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        if right {
            *attempts = Attempts::default();
            self.keep(&attempts, now);
            return PinCheck::Right;
        }
        if attempts.failures < self.free_tries {
            return PinCheck::Wrong {
                tries_left: self.free_tries - attempts.failures,
                locked_for: None,
            };
        }
        let doublings = (attempts.failures - self.free_tries).min(16);
        let lockout = (self.first_lockout * 2u32.pow(doublings)).min(MAX_LOCKOUT);
        attempts.locked_until = Some(now + lockout);
        self.keep(&attempts, now);
        PinCheck::Wrong {
            tries_left: 0,
            locked_for: Some(lockout),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Attempts> {
        self.attempts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(pin: &str) -> PinGate {
        PinGate::new(&UiSection {
            technician_pin_hash: Some(hash_pin(pin).unwrap()),
            technician_unlock_s: 300,
            technician_pin_attempts: 3,
            technician_lockout_s: 60,
        })
    }

    #[test]
    fn the_right_pin_unlocks_and_clears_the_count() {
        let g = gate("246810");
        let t = Instant::now();
        assert!(matches!(
            g.check("111111", t),
            PinCheck::Wrong { tries_left: 2, .. }
        ));
        assert_eq!(g.check("246810", t), PinCheck::Right);
        assert!(matches!(
            g.check("111111", t),
            PinCheck::Wrong { tries_left: 2, .. }
        ));
    }

    #[test]
    fn wrong_pins_lock_out_with_a_doubling_wait() {
        let g = gate("246810");
        let t = Instant::now();
        g.check("1", t);
        g.check("2", t);
        assert_eq!(
            g.check("3", t),
            PinCheck::Wrong {
                tries_left: 0,
                locked_for: Some(Duration::from_secs(60))
            }
        );
        // Locked: even the right PIN is not checked.
        assert!(matches!(
            g.check("246810", t + Duration::from_secs(59)),
            PinCheck::Locked { .. }
        ));
        assert_eq!(
            g.check("4", t + Duration::from_secs(60)),
            PinCheck::Wrong {
                tries_left: 0,
                locked_for: Some(Duration::from_secs(120))
            }
        );
        assert_eq!(
            g.check("246810", t + Duration::from_secs(181)),
            PinCheck::Right
        );
    }

    /// The lockout holds against parallel guesses: many connections trying
    /// at once get no more checks than one connection trying in turn
    /// (three wrong PINs, then locked), because each attempt is counted
    /// before its PIN is hashed and one attempt is in flight at a time.
    #[test]
    fn parallel_guesses_get_no_more_tries_than_serial_ones() {
        let g = std::sync::Arc::new(gate("246810"));
        let start = std::sync::Arc::new(std::sync::Barrier::new(12));
        let t = Instant::now();
        let answers: Vec<PinCheck> = (0..12)
            .map(|i| {
                let (g, start) = (g.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    g.check(&format!("{:06}", 100_000 + i), t)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect();
        let checked = answers
            .iter()
            .filter(|a| matches!(a, PinCheck::Wrong { .. }))
            .count();
        assert_eq!(checked, 3, "{answers:?}");
        assert_eq!(
            answers
                .iter()
                .filter(|a| matches!(a, PinCheck::Locked { .. }))
                .count(),
            9
        );
    }

    /// The count and the lockout survive a restart of kioskd: stopping it
    /// (or crashing it) is no way to more guesses.
    #[test]
    fn the_lockout_survives_a_restart() {
        let t = crate::store::testutil::TestDir::new();
        let ui = UiSection {
            technician_pin_hash: Some(hash_pin("246810").unwrap()),
            ..UiSection::default()
        };
        let store = std::sync::Arc::new(t.open());
        let g = PinGate::with_store(&ui, Some(store.clone()));
        let start = Instant::now();
        for pin in ["111111", "222222"] {
            assert!(matches!(g.check(pin, start), PinCheck::Wrong { .. }));
        }
        drop(g);
        // kioskd restarts: one try left, then locked.
        let g = PinGate::with_store(&ui, Some(store.clone()));
        assert!(matches!(
            g.check("333333", start),
            PinCheck::Wrong {
                tries_left: 0,
                locked_for: Some(_)
            }
        ));
        drop(g);
        drop(store);
        let store = std::sync::Arc::new(t.open());
        let g = PinGate::with_store(&ui, Some(store));
        assert!(
            matches!(g.check("246810", Instant::now()), PinCheck::Locked { .. }),
            "locked after the restart, even for the right PIN"
        );
    }

    #[test]
    fn no_hash_keeps_the_screen_shut() {
        let g = PinGate::new(&UiSection::default());
        assert_eq!(g.check("1234", Instant::now()), PinCheck::NotConfigured);
    }

    #[test]
    fn hashes_are_checked_and_pins_are_digits() {
        assert!(check_hash(&hash_pin("123456").unwrap()).is_ok());
        assert!(check_hash("1234").is_err());
        assert!(check_hash("$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA").is_err());
        assert!(hash_pin("12a4").is_err());
        assert!(hash_pin("123").is_err());
        assert!(hash_pin("12345").is_err(), "at least 6 digits");
        assert!(hash_pin("1234567890123").is_err(), "at most 12 digits");
    }
}

//! Handwriting through Zinnia (Debian `libzinnia-dev`, model from
//! `tegaki-zinnia-simplified-chinese`).
//!
//! No maintained Rust binding of Zinnia exists, so this module declares
//! the few functions of its C API (`zinnia.h`) it needs. It is the crate's
//! only `unsafe` code; each call says why it is sound.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int};
use std::ptr::NonNull;

use anyhow::{Result, bail};
use zeroize::Zeroizing;

use crate::keyboard::{Point, Recognizer};

/// The Simplified Chinese model Debian ships.
pub const MODEL: &str = "/usr/share/tegaki/models/zinnia/handwriting-zh_CN.model";
/// Candidates asked for per drawing.
const CANDIDATES: usize = 20;
/// The square the strokes are scaled to (Zinnia takes integer points).
const CANVAS: usize = 1000;

#[repr(C)]
struct ZinniaRecognizerT {
    _opaque: [u8; 0],
}
#[repr(C)]
struct ZinniaCharacterT {
    _opaque: [u8; 0],
}
#[repr(C)]
struct ZinniaResultT {
    _opaque: [u8; 0],
}

#[link(name = "zinnia")]
unsafe extern "C" {
    fn zinnia_recognizer_new() -> *mut ZinniaRecognizerT;
    fn zinnia_recognizer_destroy(recognizer: *mut ZinniaRecognizerT);
    fn zinnia_recognizer_open(recognizer: *mut ZinniaRecognizerT, filename: *const c_char)
    -> c_int;
    fn zinnia_recognizer_classify(
        recognizer: *mut ZinniaRecognizerT,
        character: *const ZinniaCharacterT,
        nbest: usize,
    ) -> *mut ZinniaResultT;
    fn zinnia_character_new() -> *mut ZinniaCharacterT;
    fn zinnia_character_destroy(character: *mut ZinniaCharacterT);
    fn zinnia_character_set_width(character: *mut ZinniaCharacterT, width: usize);
    fn zinnia_character_set_height(character: *mut ZinniaCharacterT, height: usize);
    fn zinnia_character_add(
        character: *mut ZinniaCharacterT,
        id: usize,
        x: c_int,
        y: c_int,
    ) -> c_int;
    fn zinnia_result_value(result: *mut ZinniaResultT, i: usize) -> *const c_char;
    fn zinnia_result_size(result: *mut ZinniaResultT) -> usize;
    fn zinnia_result_destroy(result: *mut ZinniaResultT);
}

/// A Zinnia recogniser with its model loaded.
#[derive(Debug)]
pub struct ZinniaRecognizer {
    recognizer: NonNull<ZinniaRecognizerT>,
}

impl ZinniaRecognizer {
    /// Load the model at `model`.
    pub fn open(model: &str) -> Result<ZinniaRecognizer> {
        let path = CString::new(model)?;
        // SAFETY: no arguments; a null result (out of memory) is checked.
        let Some(recognizer) = NonNull::new(unsafe { zinnia_recognizer_new() }) else {
            bail!("zinnia_recognizer_new failed");
        };
        let this = ZinniaRecognizer { recognizer };
        // SAFETY: the recogniser is live (owned by `this`); the path is a
        // NUL-terminated string that outlives the call.
        if unsafe { zinnia_recognizer_open(this.recognizer.as_ptr(), path.as_ptr()) } == 0 {
            bail!("Zinnia cannot open the model {model} (tegaki-zinnia-simplified-chinese)");
        }
        Ok(this)
    }

    /// The characters `strokes` may be (points from 0 to 1), best first.
    pub fn classify(&self, strokes: &[Zeroizing<Vec<Point>>]) -> Vec<Zeroizing<String>> {
        // SAFETY: no arguments; a null result is checked.
        let Some(character) = NonNull::new(unsafe { zinnia_character_new() }) else {
            return Vec::new();
        };
        let character = Character(character);
        // SAFETY: `character` is live until the end of this function.
        unsafe {
            zinnia_character_set_width(character.0.as_ptr(), CANVAS);
            zinnia_character_set_height(character.0.as_ptr(), CANVAS);
        }
        for (id, stroke) in strokes.iter().enumerate() {
            for [x, y] in stroke.iter() {
                let scale = |v: f32| (v.clamp(0.0, 1.0) * CANVAS as f32).round() as c_int;
                // SAFETY: as above; Zinnia copies the point.
                unsafe { zinnia_character_add(character.0.as_ptr(), id, scale(*x), scale(*y)) };
            }
        }
        // SAFETY: both pointers are live; Zinnia does not keep them. The
        // recogniser is used by one thread at a time (`&self` of a type
        // that is neither Send nor Sync).
        let result = unsafe {
            zinnia_recognizer_classify(self.recognizer.as_ptr(), character.0.as_ptr(), CANDIDATES)
        };
        let Some(result) = NonNull::new(result) else {
            return Vec::new();
        };
        let result = Classified(result);
        // SAFETY: `result` is live until it is dropped below.
        let size = unsafe { zinnia_result_size(result.0.as_ptr()) };
        (0..size)
            .filter_map(|i| {
                // SAFETY: `i` is below the result's size; the string is
                // NUL-terminated and owned by `result`, copied at once.
                let value = unsafe { zinnia_result_value(result.0.as_ptr(), i) };
                if value.is_null() {
                    return None;
                }
                // SAFETY: non-null, NUL-terminated, alive while `result` is.
                let text = unsafe { CStr::from_ptr(value) };
                text.to_str().ok().map(|s| Zeroizing::new(s.to_string()))
            })
            .collect()
    }
}

impl Recognizer for ZinniaRecognizer {
    fn recognize(&mut self, strokes: &[Zeroizing<Vec<Point>>]) -> Vec<Zeroizing<String>> {
        self.classify(strokes)
    }
}

impl Drop for ZinniaRecognizer {
    fn drop(&mut self) {
        // SAFETY: the recogniser was created by zinnia_recognizer_new and
        // is destroyed once, here.
        unsafe { zinnia_recognizer_destroy(self.recognizer.as_ptr()) }
    }
}

/// A drawing passed to Zinnia, destroyed on drop.
struct Character(NonNull<ZinniaCharacterT>);

impl Drop for Character {
    fn drop(&mut self) {
        // SAFETY: created by zinnia_character_new, destroyed once, here.
        unsafe { zinnia_character_destroy(self.0.as_ptr()) }
    }
}

/// Zinnia's answer, destroyed on drop.
struct Classified(NonNull<ZinniaResultT>);

impl Drop for Classified {
    fn drop(&mut self) {
        // SAFETY: returned by zinnia_recognizer_classify, destroyed once.
        unsafe { zinnia_result_destroy(self.0.as_ptr()) }
    }
}

/// Stroke sequences recorded for tests: `testdata/handwriting.txt`.
#[cfg(any(test, feature = "testing"))]
pub mod recorded {
    use super::Point;

    /// The recorded characters: each character, then one line per stroke
    /// of `x,y` points on a 300 × 300 pad (y down).
    pub const STROKES: &str = include_str!("../testdata/handwriting.txt");

    /// The strokes recorded for `character`, scaled to 0..1.
    pub fn strokes_of(character: char) -> Option<Vec<Vec<Point>>> {
        let mut found: Option<Vec<Vec<Point>>> = None;
        for line in STROKES.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.chars().count() == 1 && !line.contains(',') {
                if found.is_some() {
                    break;
                }
                if line.starts_with(character) {
                    found = Some(Vec::new());
                }
                continue;
            }
            if let Some(strokes) = found.as_mut() {
                let stroke = line
                    .split_whitespace()
                    .filter_map(|p| {
                        let (x, y) = p.split_once(',')?;
                        Some([
                            x.parse::<f32>().ok()? / 300.0,
                            y.parse::<f32>().ok()? / 300.0,
                        ])
                    })
                    .collect();
                strokes.push(stroke);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each recorded character is among Zinnia's first candidates.
    #[test]
    fn zinnia_recognises_each_recorded_character() {
        let zinnia = ZinniaRecognizer::open(MODEL).expect("the zh_CN model");
        for c in ['实', '验', '小', '学'] {
            let strokes: Vec<Zeroizing<Vec<Point>>> = recorded::strokes_of(c)
                .unwrap_or_else(|| panic!("{c} recorded"))
                .into_iter()
                .map(Zeroizing::new)
                .collect();
            let candidates = zinnia.classify(&strokes);
            let rank = candidates.iter().position(|k| k.starts_with(c));
            assert!(
                rank.is_some_and(|r| r < 8),
                "{c}: {:?}",
                candidates.iter().map(|k| k.as_str()).collect::<Vec<_>>()
            );
        }
    }
}

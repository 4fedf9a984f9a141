//! De-identified display (rule S1): ID numbers show the first 3 and last 4
//! characters, phone numbers the first 3 and last 4, names the first character.
//!
//! Masking counts characters, not bytes, so Chinese names mask correctly, and
//! an input too short to hide anything between the kept head and tail is
//! masked entirely: revealing a whole short value would defeat the purpose.

/// How many characters of each kind stay visible. Defaults per rule S1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaskPolicy {
    pub id_keep_head: usize,
    pub id_keep_tail: usize,
    pub phone_keep_head: usize,
    pub phone_keep_tail: usize,
    pub name_keep_head: usize,
}

impl Default for MaskPolicy {
    fn default() -> Self {
        MaskPolicy {
            id_keep_head: 3,
            id_keep_tail: 4,
            phone_keep_head: 3,
            phone_keep_tail: 4,
            name_keep_head: 1,
        }
    }
}

impl MaskPolicy {
    /// `110101199001011234` → `110***********1234`.
    pub fn id_number(&self, number: &str) -> String {
        keep_ends(number, self.id_keep_head, self.id_keep_tail)
    }
    /// `13812345678` → `138****5678`.
    pub fn phone(&self, phone: &str) -> String {
        keep_ends(phone, self.phone_keep_head, self.phone_keep_tail)
    }
    /// `张三` → `张*`, `欧阳娜娜` → `欧***`; Latin names mask per character too.
    /// A name no longer than the kept head (`张`) is masked entirely (`*`).
    pub fn name(&self, name: &str) -> String {
        keep_ends(name, self.name_keep_head, 0)
    }
    /// Addresses are never shown: always `***`-style, keeping nothing.
    pub fn address(&self, _address: &str) -> String {
        "***".to_string()
    }
    /// Birth date: year hidden too (`****-**-**`).
    pub fn birth_date(&self) -> String {
        "****-**-**".to_string()
    }
}

/// Keep `head` leading and `tail` trailing characters, `*` for each other
/// one; all `*` unless at least one character would be hidden.
fn keep_ends(value: &str, head: usize, tail: usize) -> String {
    let n = value.chars().count();
    if n <= head.saturating_add(tail) {
        return "*".repeat(n);
    }
    value
        .chars()
        .enumerate()
        .map(|(i, c)| if i < head || i >= n - tail { c } else { '*' })
        .collect()
}

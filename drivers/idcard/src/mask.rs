//! De-identified display (rule S1): ID numbers show the first 3 and last 4
//! characters, phone numbers the first 3 and last 4, names the first character.

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
        MaskPolicy { id_keep_head: 3, id_keep_tail: 4, phone_keep_head: 3, phone_keep_tail: 4, name_keep_head: 1 }
    }
}

impl MaskPolicy {
    /// `110101199001011234` → `110***********1234`.
    pub fn id_number(&self, number: &str) -> String {
        todo!()
    }
    /// `13812345678` → `138****5678`.
    pub fn phone(&self, phone: &str) -> String {
        todo!()
    }
    /// `张三` → `张*`, `欧阳娜娜` → `欧***`; Latin names mask per character too.
    pub fn name(&self, name: &str) -> String {
        todo!()
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

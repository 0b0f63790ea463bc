//! Access codes and grant passwords (DESIGN §3).
//!
//! Access code: 12 Crockford base32 symbols (60 bits), shown `XXXX-XXXX-XXXX`; input
//! tolerates case, dashes, spaces and the O/0, I/L/1 confusions.
//! Password: 10 symbols from a 32-symbol alphabet without look-alikes (50 bits).

use rand::{CryptoRng, Rng, RngCore};

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Lowercase without l and o, digits without 0 and 1: nothing to confuse on paper.
const PASSWORD_ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
pub const ACCESS_CODE_LEN: usize = 12;
pub const PASSWORD_LEN: usize = 10;

/// A normalised access code: 12 Crockford symbols, no dashes.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessCode(String);

impl std::fmt::Debug for AccessCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessCode(<redacted>)")
    }
}

impl AccessCode {
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let s = (0..ACCESS_CODE_LEN)
            .map(|_| CROCKFORD[rng.gen_range(0..32)] as char)
            .collect();
        AccessCode(s)
    }

    /// Parses what a person typed. `None` if it cannot be a code.
    pub fn parse(input: &str) -> Option<Self> {
        if input.len() > 64 {
            return None;
        }
        let mut out = String::with_capacity(ACCESS_CODE_LEN);
        for c in input.chars() {
            let c = match c.to_ascii_uppercase() {
                ' ' | '-' | '\t' => continue,
                'O' => '0',
                'I' | 'L' => '1',
                c if c.is_ascii() && CROCKFORD.contains(&(c as u8)) => c,
                _ => return None,
            };
            out.push(c);
        }
        (out.len() == ACCESS_CODE_LEN).then_some(AccessCode(out))
    }

    pub fn normalized(&self) -> &str {
        &self.0
    }

    /// `XXXX-XXXX-XXXX`, for letters and screens.
    pub fn display(&self) -> String {
        format!("{}-{}-{}", &self.0[0..4], &self.0[4..8], &self.0[8..12])
    }
}

/// A grant password as issued (shown once, then only its argon2id hash is kept).
#[derive(Clone, PartialEq, Eq)]
pub struct GrantPassword(String);

impl std::fmt::Debug for GrantPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GrantPassword(<redacted>)")
    }
}

impl GrantPassword {
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let s = (0..PASSWORD_LEN)
            .map(|_| PASSWORD_ALPHABET[rng.gen_range(0..32)] as char)
            .collect();
        GrantPassword(s)
    }

    /// What a person typed, folded the way the letter prints it (case, spaces).
    /// Returns `None` for input that is far too long to be a password.
    pub fn normalize_input(input: &str) -> Option<String> {
        if input.len() > 128 {
            return None;
        }
        Some(
            input
                .chars()
                .filter(|c| !c.is_whitespace() && *c != '-')
                .flat_map(char::to_lowercase)
                .collect(),
        )
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_tolerate_typing() {
        let mut rng = rand::thread_rng();
        let code = AccessCode::generate(&mut rng);
        let shown = code.display();
        assert_eq!(shown.len(), 14);
        assert_eq!(AccessCode::parse(&shown), Some(code.clone()));
        assert_eq!(AccessCode::parse(&shown.to_lowercase()), Some(code.clone()));
        assert_eq!(AccessCode::parse(&shown.replace('-', " ")), Some(code));
        assert_eq!(
            AccessCode::parse("oIlA-BCDE-FGHJ").map(|c| c.normalized().to_string()),
            Some("011ABCDEFGHJ".to_string())
        );
        assert!(AccessCode::parse("ABCD-EFGH-JKM").is_none());
        assert!(AccessCode::parse("ABCD-EFGH-JKMNP").is_none());
        assert!(AccessCode::parse("ABCD-EFGH-JKMU").is_none());
        assert!(AccessCode::parse("<script>").is_none());
    }

    #[test]
    fn passwords_use_the_unambiguous_alphabet() {
        let mut rng = rand::thread_rng();
        for _ in 0..200 {
            let p = GrantPassword::generate(&mut rng);
            assert_eq!(p.expose().len(), PASSWORD_LEN);
            assert!(p.expose().bytes().all(|b| PASSWORD_ALPHABET.contains(&b)));
            assert!(!p.expose().contains(['l', 'o', '0', '1']));
        }
        assert_eq!(
            GrantPassword::normalize_input(" AbC de "),
            Some("abcde".into())
        );
        assert_eq!(
            PASSWORD_ALPHABET
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            32
        );
    }
}

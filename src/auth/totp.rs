//! TOTP (RFC 6238: HMAC-SHA1, 30 s steps, 6 digits), time passed in.

use hmac::{Hmac, Mac};
use rand::{CryptoRng, RngCore};

pub const STEP_SECS: i64 = 30;
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new 160-bit seed, as authenticator apps expect.
pub fn new_secret<R: RngCore + CryptoRng>(rng: &mut R) -> Vec<u8> {
    let mut s = vec![0u8; 20];
    rng.fill_bytes(&mut s);
    s
}

/// RFC 4648 base32 without padding (what `oathtool -b` and otpauth URIs take).
pub fn base32_encode(data: &[u8]) -> String {
    let mut out = String::new();
    let mut buf: u32 = 0;
    let mut bits = 0;
    for &b in data {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

pub fn code_at(secret: &[u8], step: i64) -> String {
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(&step.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = (h[19] & 0x0f) as usize;
    let bin = (u32::from(h[off] & 0x7f) << 24)
        | (u32::from(h[off + 1]) << 16)
        | (u32::from(h[off + 2]) << 8)
        | u32::from(h[off + 3]);
    format!("{:06}", bin % 1_000_000)
}

/// The step a code matches within ±1 step of `now`, if any, and only if it is newer
/// than `last_used_step` (each step is usable once).
pub fn verify(secret: &[u8], code: &str, now: i64, last_used_step: i64) -> Option<i64> {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = now.div_euclid(STEP_SECS);
    [current - 1, current, current + 1]
        .into_iter()
        .filter(|s| *s > last_used_step)
        .find(|s| {
            let expected = code_at(secret, *s);
            subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), code.as_bytes()).into()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_vectors() {
        let secret = b"12345678901234567890";
        // RFC 6238 Appendix B (SHA1), last six digits.
        assert_eq!(code_at(secret, 59 / 30), "287082");
        assert_eq!(code_at(secret, 1111111109 / 30), "081804");
        assert_eq!(code_at(secret, 2000000000 / 30), "279037");
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
    }

    #[test]
    fn window_and_replay() {
        let secret = b"12345678901234567890";
        let now = 1_111_111_109;
        let step = now / 30;
        assert_eq!(verify(secret, &code_at(secret, step), now, 0), Some(step));
        assert_eq!(
            verify(secret, &code_at(secret, step - 1), now, 0),
            Some(step - 1)
        );
        assert_eq!(verify(secret, &code_at(secret, step + 2), now, 0), None);
        assert_eq!(verify(secret, &code_at(secret, step), now, step), None);
    }
}

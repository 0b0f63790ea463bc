//! `lichtkasten bench`: encryption throughput of the stored-object format, next to
//! OpenSSL's AES-256-GCM on the same machine, and peak memory of the process.

use crate::crypto::Key32;
use crate::crypto::stream::{Decryptor, Encryptor, ObjectContext};
use std::time::Instant;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Best `aes-256-gcm` figure of `openssl speed` for 16 KiB blocks, in MB/s.
fn openssl_mb_s() -> Option<f64> {
    let out = std::process::Command::new("openssl")
        .args([
            "speed",
            "-evp",
            "aes-256-gcm",
            "-seconds",
            "3",
            "-bytes",
            "16384",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("AES-256-GCM") || l.starts_with("aes-256-gcm"))?;
    let last = line.split_whitespace().last()?;
    let kb_s: f64 = last.trim_end_matches('k').parse().ok()?;
    Some(kb_s * 1000.0 / 1_000_000.0)
}

pub fn encryption(mib: usize) -> anyhow::Result<()> {
    let mut rng = rand::thread_rng();
    let dek = Key32::generate(&mut rng);
    let ctx = ObjectContext {
        study_id: "bench",
        object_id: "bench",
    };
    let chunk = vec![0x5au8; 1024 * 1024];
    let rss_before = peak_rss_kib();

    // Streamed: ciphertext is produced and dropped chunk by chunk, as a store upload would.
    let started = Instant::now();
    let mut enc = Encryptor::new(&mut rng, &dek, ctx);
    let mut sealed_total = 0usize;
    let mut out = Vec::with_capacity(2 * 1024 * 1024);
    let mut dec = Decryptor::new(&dek, ctx);
    let mut plain = Vec::with_capacity(2 * 1024 * 1024);
    let mut decrypt_secs = 0.0;
    for _ in 0..mib {
        out.clear();
        enc.update(&chunk, &mut out)?;
        sealed_total += out.len();
        let t = Instant::now();
        plain.clear();
        dec.update(&out, &mut plain)?;
        decrypt_secs += t.elapsed().as_secs_f64();
    }
    out.clear();
    enc.finish(&mut out)?;
    plain.clear();
    let t = Instant::now();
    dec.update(&out, &mut plain)?;
    dec.finish(&mut plain)?;
    decrypt_secs += t.elapsed().as_secs_f64();
    let total_secs = started.elapsed().as_secs_f64();
    let encrypt_secs = total_secs - decrypt_secs;
    let mb = (mib * 1024 * 1024) as f64 / 1_000_000.0;
    let enc_rate = mb / encrypt_secs;
    let dec_rate = mb / decrypt_secs;
    println!(
        "object size        {mib} MiB (stored {} bytes)",
        sealed_total + out.len()
    );
    println!("encrypt            {enc_rate:.0} MB/s");
    println!("decrypt+verify     {dec_rate:.0} MB/s");
    match openssl_mb_s() {
        Some(ossl) => {
            println!("openssl aes-256-gcm {ossl:.0} MB/s (16 KiB blocks, 1 core)");
            println!("ratio encrypt/openssl {:.2}", enc_rate / ossl);
        }
        None => println!("openssl speed not available"),
    }
    if let (Some(before), Some(after)) = (rss_before, peak_rss_kib()) {
        println!("peak RSS           {after} KiB (before run {before} KiB)");
    }
    Ok(())
}

//! National-cipher figures beside their international counterparts, in one run: SM3 vs
//! SHA-256, SM4-GCM vs AES-128-GCM (16 KiB records), SM2 vs ECDSA P-256 sign and verify, and
//! full handshakes per second (client and server in this thread, in memory) for RFC 8998
//! (TLS_SM4_GCM_SM3, curveSM2, SM2 certificate), TLCP (ECC_SM4_GCM_SM3, two SM2 certificates)
//! and TLS 1.3 on ring (AES-GCM, X25519, ECDSA). With `JIANMEN_TONGSUO` set (tests/run.sh builds it) Tongsuo's `speed` for SM3,
//! SM4-GCM and SM2 is printed below for comparison.
//!
//! Then a dudect-style check that SM4 takes the same time whatever it encrypts (Welch's t-test
//! between a fixed and random plaintexts, one block per call, the classes interleaved at random),
//! and last the line `SM4-GCM: N% of Tongsuo` (16 KiB, this run).
//!
//! Usage: `cargo run --release -p jianmen-benches --bin gm`

use std::sync::Arc;
use std::time::{Duration, Instant};

use jianmen_gm::sm2::{DEFAULT_ID, Sm2PrivateKey};
use jianmen_gm::sm3::sm3;
use jianmen_gm::sm4::Sm4Gcm;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ServerConfig, ServerConnection};

/// How long each figure is measured.
const SPAN: Duration = Duration::from_secs(2);

/// Runs `f` repeatedly for [`SPAN`]; returns operations per second.
fn rate(mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < SPAN {
        f();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn line(what: &str, sm: f64, intl: f64, unit: &str, intl_name: &str) {
    println!("{what:<28} {sm:>12.1} {unit:<10} {intl_name:<22} {intl:>12.1} {unit}");
}

/// One full handshake; returns the time the server side spent.
fn handshake(server: &Arc<ServerConfig>, client: &Arc<rustls::ClientConfig>) -> Duration {
    let name = ServerName::try_from("bench.test").expect("name");
    let mut c = ClientConnection::new(client.clone(), name).expect("client");
    let started = Instant::now();
    let mut s = ServerConnection::new(server.clone()).expect("server");
    let mut server_time = started.elapsed();
    while c.is_handshaking() || s.is_handshaking() {
        let mut buf = Vec::new();
        c.write_tls(&mut buf).expect("write");
        let started = Instant::now();
        s.read_tls(&mut buf.as_slice()).expect("read");
        s.process_new_packets().expect("server handshake");
        let mut buf = Vec::new();
        s.write_tls(&mut buf).expect("write");
        server_time += started.elapsed();
        c.read_tls(&mut buf.as_slice()).expect("read");
        c.process_new_packets().expect("client handshake");
    }
    server_time
}

/// Full handshakes per second of server CPU (the client's work not counted).
fn server_rate(server: &Arc<ServerConfig>, client: &Arc<rustls::ClientConfig>) -> f64 {
    let start = Instant::now();
    let (mut n, mut busy) = (0u32, Duration::ZERO);
    while start.elapsed() < SPAN {
        busy += handshake(server, client);
        n += 1;
    }
    f64::from(n) / busy.as_secs_f64()
}

/// Full TLCP handshakes per second (ECC_SM4_GCM_SM3), client and server on one thread over an
/// in-memory pipe.
fn tlcp_rate() -> Result<f64, Box<dyn std::error::Error>> {
    use jianmen_gm::cert::{Usage, self_signed};
    use jianmen_gm::tlcp;
    let (sign, enc) = (Sm2PrivateKey::generate(), Sm2PrivateKey::generate());
    let config = Arc::new(tlcp::ServerConfig::new(
        vec![self_signed(&sign, "bench.test", 1, Usage::Signing)?],
        &sign,
        self_signed(&enc, "bench.test", 1, Usage::Encryption)?,
        enc,
    )?);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(rate(|| {
        rt.block_on(async {
            let (a, b) = tokio::io::duplex(1 << 16);
            let (server, client) =
                tokio::join!(tlcp::accept(config.clone(), b), tlcp::connect(a, &[]));
            assert!(server.is_ok() && client.is_ok(), "TLCP handshake failed");
        });
    }))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "{:<28} {:>12} {:<10} {:<22} {:>12}",
        "operation", "SM", "", "international", ""
    );
    let data = vec![0x5au8; 16 * 1024];
    let mb = data.len() as f64 / 1e6;
    line(
        "SM3 (16 KiB)",
        rate(|| {
            std::hint::black_box(sm3(&data));
        }) * mb,
        rate(|| {
            std::hint::black_box(ring::digest::digest(&ring::digest::SHA256, &data));
        }) * mb,
        "MB/s",
        "SHA-256 (ring)",
    );
    let gcm = Sm4Gcm::new(&[7; 16]);
    let sm4_gcm = rate(|| {
        std::hint::black_box(gcm.seal(&[1; 12], b"", &data));
    }) * mb;
    let aes = ring::aead::LessSafeKey::new(ring::aead::UnboundKey::new(
        &ring::aead::AES_128_GCM,
        &[7; 16],
    )?);
    line(
        "SM4-GCM seal (16 KiB)",
        sm4_gcm,
        rate(|| {
            let mut buf = data.clone();
            let nonce = ring::aead::Nonce::assume_unique_for_key([1; 12]);
            std::hint::black_box(
                aes.seal_in_place_append_tag(nonce, ring::aead::Aad::empty(), &mut buf)
                    .is_ok(),
            );
        }) * mb,
        "MB/s",
        "AES-128-GCM (ring)",
    );
    let sm2 = Sm2PrivateKey::generate();
    let public = sm2.public_key();
    let signer = sm2.signer(DEFAULT_ID)?;
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| "P-256 key")?;
    let ecdsa = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| "P-256 key")?;
    let message = b"handshake transcript hash and context";
    line(
        "SM2 sign",
        rate(|| {
            std::hint::black_box(signer.sign(message));
        }),
        rate(|| {
            std::hint::black_box(ecdsa.sign(&rng, message).ok());
        }),
        "/s",
        "ECDSA P-256 sign",
    );
    let sm2_sig = sm2.sign(DEFAULT_ID, message)?;
    let p256_sig = ecdsa.sign(&rng, message).map_err(|_| "sign")?;
    let p256_public = ring::signature::UnparsedPublicKey::new(
        &ECDSA_P256_SHA256_ASN1,
        ecdsa.public_key().as_ref().to_vec(),
    );
    line(
        "SM2 verify",
        rate(|| {
            std::hint::black_box(public.verify(DEFAULT_ID, message, &sm2_sig).is_ok());
        }),
        rate(|| {
            std::hint::black_box(p256_public.verify(message, p256_sig.as_ref()).is_ok());
        }),
        "/s",
        "ECDSA P-256 verify",
    );
    let sm_server = jianmen_gm::tls::sm_server_config_for(
        jianmen_gm::tls::Identity::self_signed_sm2("bench.test")?,
    )?;
    let sm_client = jianmen_gm::tls::client_config_with(jianmen_gm::rfc8998::provider())?;
    let intl_server =
        jianmen_gm::tls::server_config_for(jianmen_gm::tls::Identity::self_signed("bench.test")?)?;
    let intl_client =
        jianmen_gm::tls::client_config_with(rustls::crypto::ring::default_provider())?;
    let intl_both = rate(|| {
        handshake(&intl_server, &intl_client);
    });
    line(
        "RFC 8998 handshakes (both)",
        rate(|| {
            handshake(&sm_server, &sm_client);
        }),
        intl_both,
        "/s",
        "TLS 1.3 ring (both)",
    );
    line(
        "TLCP ECC handshakes (both)",
        tlcp_rate()?,
        intl_both,
        "/s",
        "TLS 1.3 ring (both)",
    );
    line(
        "RFC 8998 server side",
        server_rate(&sm_server, &sm_client),
        server_rate(&intl_server, &intl_client),
        "/core-s",
        "TLS 1.3 ring server",
    );
    println!("(both: client and server in this one thread; server side: per second of server CPU)");

    let mut tongsuo_sm4_gcm = None;
    if let Ok(tongsuo) = std::env::var("JIANMEN_TONGSUO") {
        println!("\nTongsuo `speed` (one core) for the same primitives:");
        for args in [
            &["speed", "-seconds", "2", "-bytes", "16384", "-evp", "sm3"][..],
            &[
                "speed", "-seconds", "2", "-bytes", "16384", "-evp", "sm4-gcm",
            ][..],
            &["speed", "-seconds", "2", "sm2"][..],
        ] {
            let out = std::process::Command::new(&tongsuo).args(args).output()?;
            let text = String::from_utf8_lossy(&out.stdout);
            if args.contains(&"sm4-gcm") {
                tongsuo_sm4_gcm = thousands_of_bytes(&text, "SM4-GCM").map(|b| b / 1e6);
            }
            for l in text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .rev()
                .take(3)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                println!("  {l}");
            }
        }
    } else {
        println!("\n(set JIANMEN_TONGSUO to Tongsuo's binary to print its `speed` beside)");
    }

    println!(
        "\nSM4 in constant time on this CPU: {}",
        if jianmen_gm::sm4::Sm4Cipher::constant_time() {
            "yes (AES-NI)"
        } else {
            "no (RustCrypto's table look-ups)"
        }
    );
    let key = [0x42u8; 16];
    let table = {
        use sm4::cipher::{BlockCipherEncrypt, KeyInit};
        let table = sm4::Sm4::new(&key.into());
        sm4_timing_t(400_000, |block| {
            let mut b = (*block).into();
            table.encrypt_block(&mut b);
            b[0] == 0
        })
    };
    for (what, t) in [
        (
            "SM4 as the gateway runs it",
            sm4_timing_t(400_000, |block| {
                jianmen_gm::sm4::cbc_encrypt(&key, &[0; 16], block).is_ok()
            }),
        ),
        ("RustCrypto's table SM4", table),
    ] {
        println!(
            "dudect-style check, {what}, one block, fixed vs random plaintext, 400,000 calls: |t| = {:.2} ({})",
            t.abs(),
            if t.abs() < 4.5 {
                "no timing difference found; 4.5 would be one"
            } else {
                "a timing difference: |t| ≥ 4.5"
            }
        );
    }
    match tongsuo_sm4_gcm {
        Some(theirs) => println!(
            "SM4-GCM: {:.0}% of Tongsuo ({sm4_gcm:.1} vs {theirs:.1} MB/s)",
            100.0 * sm4_gcm / theirs
        ),
        None => println!("SM4-GCM: n/a of Tongsuo (set JIANMEN_TONGSUO)"),
    }
    Ok(())
}

/// Bytes per second in a `speed` table row (`NAME ... 12345.67k`, thousands of bytes).
fn thousands_of_bytes(text: &str, name: &str) -> Option<f64> {
    let row = text.lines().find(|l| l.trim_start().starts_with(name))?;
    let last = row.split_whitespace().last()?;
    Some(last.strip_suffix('k')?.parse::<f64>().ok()? * 1e3)
}

/// Welch's t between the times of encrypting one fixed block and random blocks under one key,
/// the two classes drawn at random per call and every input made before the timing starts (so
/// that making a random block is not what is timed); the slowest 5% cropped (interrupts).
fn sm4_timing_t(calls: usize, mut encrypt: impl FnMut(&[u8; 16]) -> bool) -> f64 {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let inputs: Vec<(usize, [u8; 16])> = (0..calls)
        .map(|_| {
            let class = (next() & 1) as usize;
            let (a, b) = (next().to_le_bytes(), next().to_le_bytes());
            let random = std::array::from_fn(|i| if i < 8 { a[i] } else { b[i - 8] });
            (class, if class == 0 { [0; 16] } else { random })
        })
        .collect();
    let mut times: [Vec<f64>; 2] = [Vec::with_capacity(calls), Vec::with_capacity(calls)];
    for (class, block) in &inputs {
        let started = Instant::now();
        let out = encrypt(block);
        let took = started.elapsed();
        std::hint::black_box(out);
        times[*class].push(took.as_nanos() as f64);
    }
    let mut all: Vec<f64> = times.iter().flatten().copied().collect();
    all.sort_by(f64::total_cmp);
    let crop = all[all.len() * 95 / 100];
    let stats = |v: &Vec<f64>| {
        let kept: Vec<f64> = v.iter().copied().filter(|t| *t <= crop).collect();
        let n = kept.len() as f64;
        let mean = kept.iter().sum::<f64>() / n;
        let var = kept.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var, n)
    };
    let ((m0, v0, n0), (m1, v1, n1)) = (stats(&times[0]), stats(&times[1]));
    (m0 - m1) / (v0 / n0 + v1 / n1).sqrt()
}

//! The audit package for the authorities: a tar holding `audit.csv` (for reading),
//! `audit.json` (every row with its chain fields), `manifest.json` (gateway, time, row count,
//! head hash, each file's SM3 digest and size, the signer's public key) and `manifest.sig` (the
//! SM2 signature over the manifest). [`verify`] checks all of it: signature (optionally against a
//! registered key), digests, no missing or extra files, and the hash chain itself.

use std::io::Read;

use serde::{Deserialize, Serialize};

use super::{AuditError, ChainHash, Chained, chain_hash, verify_chain};
use jianmen_gm::hex;
use jianmen_gm::signing::{self, PackageSigner};

/// The SM2 key that signs this gateway's exports (`data_dir/keys/audit-export-sm2.pk8`,
/// created on first use).
pub fn signer(data_dir: &std::path::Path) -> Result<signing::Sm2Signer, signing::SigningError> {
    signing::Sm2Signer::load_or_create(&data_dir.join("keys").join("audit-export-sm2.pk8"))
}

/// Format name in the manifest.
pub const FORMAT: &str = "jianmen-audit-export/2";

/// Largest package [`verify`] reads, and largest member in it.
pub const MAX_PACKAGE_BYTES: u64 = 1 << 30;

/// Why a package could not be built or does not verify.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Not a package of this format (or damaged beyond reading).
    #[error("not an audit package: {0}")]
    Malformed(String),
    /// The manifest's signature does not verify.
    #[error("manifest signature: {0}")]
    Signature(#[from] signing::SigningError),
    /// Signed, but not by the expected key.
    #[error("signed by key {found}, not the registered key {expected}")]
    WrongKey {
        /// Fingerprint of the package's key.
        found: String,
        /// Fingerprint of the expected key.
        expected: String,
    },
    /// A file does not match its manifest digest, or is missing.
    #[error("{file}: {why}")]
    File {
        /// The member.
        file: String,
        /// What is wrong.
        why: String,
    },
    /// The rows themselves do not chain.
    #[error(transparent)]
    Chain(#[from] AuditError),
}

fn malformed(e: impl std::fmt::Display) -> ExportError {
    ExportError::Malformed(e.to_string())
}

/// A member file and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Name in the tar.
    pub name: String,
    /// SM3, hex.
    pub sm3: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// What the package says about itself; signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The gateway that exported it.
    pub hostname: String,
    /// When (RFC 3339).
    pub created_at: String,
    /// Rows in the package.
    pub rows: i64,
    /// Hash of the last row.
    pub head_hash: String,
    /// The chain's hash algorithm.
    pub chain_algorithm: String,
    /// Member files.
    pub files: Vec<FileDigest>,
    /// Signature algorithm of `manifest.sig`.
    pub signature_algorithm: String,
    /// The signer's public key, hex.
    pub public_key: String,
}

/// What a verified package holds.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    /// Its manifest.
    pub manifest: Manifest,
    /// Fingerprint of the key that signed it.
    pub key_fingerprint: String,
}

fn sm3_hex(data: &[u8]) -> String {
    hex(&jianmen_gm::sm3::sm3(data))
}

/// A CSV cell: quoted, and text a spreadsheet would run as a formula defused with a `'`.
fn csv_cell(s: &str) -> String {
    let defused = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    format!("\"{}\"", defused.replace('"', "\"\""))
}

/// Builds the package from every row of the log (oldest first); `rows` must already verify.
pub fn build(
    rows: &[Chained],
    chain: &dyn ChainHash,
    hostname: &str,
    signer: &dyn PackageSigner,
) -> Result<Vec<u8>, ExportError> {
    let (count, head) = verify_chain(chain, rows)?;
    let json = serde_json::to_vec_pretty(rows).map_err(malformed)?;
    let mut csv = String::from("seq,at,actor,action,detail,algorithm,prev,hash\r\n");
    for r in rows {
        let e = &r.entry;
        let cells = [
            e.seq.to_string(),
            e.at.clone(),
            e.actor.clone(),
            e.action.clone(),
            e.detail.clone(),
            r.algorithm.clone(),
            r.prev.clone(),
            r.hash.clone(),
        ];
        csv.push_str(
            &cells
                .iter()
                .map(|c| csv_cell(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        csv.push_str("\r\n");
    }
    let members: [(&str, &[u8]); 2] = [("audit.csv", csv.as_bytes()), ("audit.json", &json)];
    let manifest = Manifest {
        format: FORMAT.into(),
        hostname: hostname.into(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        rows: count,
        head_hash: head,
        chain_algorithm: chain.name().into(),
        files: members
            .iter()
            .map(|(name, data)| FileDigest {
                name: (*name).into(),
                sm3: sm3_hex(data),
                bytes: data.len() as u64,
            })
            .collect(),
        signature_algorithm: signer.algorithm().into(),
        public_key: hex(&signer.public_key()),
    };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).map_err(malformed)?;
    let signature = hex(&signer.sign(&manifest_bytes));
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("manifest.json", manifest_bytes.as_slice()),
        ("manifest.sig", signature.as_bytes()),
    ]
    .into_iter()
    .chain(members)
    {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
        tar.append_data(&mut header, name, data)
            .map_err(malformed)?;
    }
    tar.into_inner().map_err(malformed)
}

/// Bytes of a hex string.
pub fn unhex(s: &str) -> Result<Vec<u8>, ExportError> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed("bad hex"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(malformed))
        .collect()
}

/// Verifies a package; with `registered_key`, it must also be signed by that key.
pub fn verify(package: &[u8], registered_key: Option<&[u8]>) -> Result<Verified, ExportError> {
    if package.len() as u64 > MAX_PACKAGE_BYTES {
        return Err(malformed("larger than 1 GiB"));
    }
    let mut members: Vec<(String, Vec<u8>)> = Vec::new();
    let mut archive = tar::Archive::new(package);
    for entry in archive.entries().map_err(malformed)? {
        let entry = entry.map_err(malformed)?;
        if members.len() >= 8 {
            return Err(malformed("too many members"));
        }
        let name = entry
            .path()
            .map_err(malformed)?
            .to_string_lossy()
            .into_owned();
        if members.iter().any(|(n, _)| *n == name) {
            return Err(malformed(format!("{name} appears twice")));
        }
        let mut data = Vec::new();
        entry
            .take(MAX_PACKAGE_BYTES)
            .read_to_end(&mut data)
            .map_err(malformed)?;
        members.push((name, data));
    }
    let member = |name: &str| {
        members
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.as_slice())
            .ok_or_else(|| ExportError::File {
                file: name.into(),
                why: "missing".into(),
            })
    };
    let manifest_bytes = member("manifest.json")?;
    let manifest: Manifest = serde_json::from_slice(manifest_bytes).map_err(malformed)?;
    if manifest.format != FORMAT {
        return Err(malformed(format!("format {}", manifest.format)));
    }
    let key = unhex(&manifest.public_key)?;
    let signature = unhex(
        std::str::from_utf8(member("manifest.sig")?)
            .map_err(malformed)?
            .trim(),
    )?;
    signing::verify(
        &manifest.signature_algorithm,
        &key,
        manifest_bytes,
        &signature,
    )?;
    if let Some(expected) = registered_key
        && expected != key.as_slice()
    {
        return Err(ExportError::WrongKey {
            found: signing::fingerprint(&key),
            expected: signing::fingerprint(expected),
        });
    }
    for f in &manifest.files {
        let data = member(&f.name)?;
        if data.len() as u64 != f.bytes || sm3_hex(data) != f.sm3 {
            return Err(ExportError::File {
                file: f.name.clone(),
                why: "does not match the manifest's digest".into(),
            });
        }
    }
    if let Some((extra, _)) = members
        .iter()
        .find(|(n, _)| !n.starts_with("manifest.") && !manifest.files.iter().any(|f| f.name == *n))
    {
        return Err(ExportError::File {
            file: extra.clone(),
            why: "not listed in the manifest".into(),
        });
    }
    let rows: Vec<Chained> = serde_json::from_slice(member("audit.json")?).map_err(malformed)?;
    let chain = chain_hash(&manifest.chain_algorithm)
        .ok_or_else(|| malformed(format!("unknown chain hash {}", manifest.chain_algorithm)))?;
    let (count, head) = verify_chain(chain.as_ref(), &rows)?;
    if count != manifest.rows || head != manifest.head_hash {
        return Err(ExportError::File {
            file: "audit.json".into(),
            why: "rows or head hash differ from the manifest".into(),
        });
    }
    Ok(Verified {
        key_fingerprint: signing::fingerprint(&key),
        manifest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Sm3Chain;
    use crate::audit::{AuditLog, Entry};
    use jianmen_gm::signing::Sm2Signer;

    fn rebuild(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            tar.append_data(&mut h, name, data.as_slice()).unwrap();
        }
        tar.into_inner().unwrap()
    }

    fn unpack(package: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut a = tar::Archive::new(package);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().to_string_lossy().into_owned();
                let mut d = Vec::new();
                e.read_to_end(&mut d).unwrap();
                (name, d)
            })
            .collect()
    }

    #[tokio::test]
    async fn packages_verify_and_every_tampering_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&dir.path().join("audit.db")).await.unwrap();
        log.append(
            "console:secadmin",
            "quarantine.release",
            "=cmd|' /C calc'!A0",
        )
        .await
        .unwrap();
        log.append("console:auditor", "audit.verify", "ok")
            .await
            .unwrap();
        let signer = Sm2Signer::load_or_create(&dir.path().join("k.pk8")).unwrap();
        let rows = log.chained().await.unwrap();
        let package = build(&rows, &Sm3Chain, "gw.test", &signer).unwrap();
        let ok = verify(&package, Some(&signer.public_key())).unwrap();
        assert_eq!(ok.manifest.rows, 2);
        let csv = unpack(&package)
            .into_iter()
            .find(|(n, _)| n == "audit.csv")
            .unwrap()
            .1;
        assert!(
            String::from_utf8(csv).unwrap().contains("\"'=cmd"),
            "formula defused"
        );

        // Another key.
        let other = Sm2Signer::load_or_create(&dir.path().join("o.pk8")).unwrap();
        assert!(matches!(
            verify(&package, Some(&other.public_key())),
            Err(ExportError::WrongKey { .. })
        ));
        let members = unpack(&package);
        let with = |name: &str, data: Vec<u8>| {
            let m: Vec<(&str, Vec<u8>)> = members
                .iter()
                .map(|(n, d)| (n.as_str(), if n == name { data.clone() } else { d.clone() }))
                .collect();
            rebuild(&m)
        };
        // An edited CSV, an edited JSON row (digest), a re-signed-looking manifest edit.
        assert!(matches!(
            verify(&with("audit.csv", b"seq\r\n".to_vec()), None),
            Err(ExportError::File { .. })
        ));
        let json = &members.iter().find(|(n, _)| n == "audit.json").unwrap().1;
        let edited = String::from_utf8(json.clone())
            .unwrap()
            .replace("secadmin", "nobody");
        assert!(verify(&with("audit.json", edited.into_bytes()), None).is_err());
        let manifest = &members
            .iter()
            .find(|(n, _)| n == "manifest.json")
            .unwrap()
            .1;
        let edited = String::from_utf8(manifest.clone())
            .unwrap()
            .replace("gw.test", "gw.evil");
        assert!(matches!(
            verify(&with("manifest.json", edited.into_bytes()), None),
            Err(ExportError::Signature(_))
        ));
        // A row removed and the package rebuilt and re-signed by someone with the key: the
        // chain still gives it away.
        let mut cut = rows.clone();
        cut.remove(0);
        let forged: Vec<Chained> = cut
            .into_iter()
            .map(|mut r| {
                r.entry = Entry { seq: 1, ..r.entry };
                r
            })
            .collect();
        assert!(build(&forged, &Sm3Chain, "gw.test", &signer).is_err());
        assert!(verify(b"not a tar at all", None).is_err());
        assert!(verify(&[], None).is_err());
    }
}

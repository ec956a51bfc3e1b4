//! SM2 (GB/T 32918, GM/T 0003): keys, signatures with a distinguishing ID, and public-key
//! encryption. Signatures travel DER-encoded (as in X.509 and TLS), ciphertexts as the
//! GM/T 0009 ASN.1 structure (as TLCP's key exchange carries them).

use sm2::dsa::signature::{Signer, Verifier};
use sm2::dsa::{Signature, SigningKey, VerifyingKey};
use sm2::elliptic_curve::Generate;
use sm2::elliptic_curve::common::getrandom::SysRng;
use sm2::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use sm2::pke::{DecryptingKey, EncryptingKey};
use sm2::{PublicKey, SecretKey};

use super::GmError;
use super::sm3::{Sm3Hasher, sm3};

/// The distinguishing ID that X.509 certificates and most signatures use (GM/T 0009).
pub const DEFAULT_ID: &str = "1234567812345678";

/// An SM2 private key.
#[derive(Clone)]
pub struct Sm2PrivateKey(SecretKey);

impl std::fmt::Debug for Sm2PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sm2PrivateKey(…)")
    }
}

/// An SM2 private key bound to one distinguishing ID.
#[derive(Clone)]
pub struct Sm2IdSigner(SigningKey);

impl std::fmt::Debug for Sm2IdSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sm2IdSigner(…)")
    }
}

impl Sm2IdSigner {
    /// Signs `message`; the signature in DER.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: Signature = self.0.sign(message);
        signature.to_der().to_vec()
    }
}

/// An SM2 public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sm2PublicKey(PublicKey);

impl Sm2PrivateKey {
    /// A new random key.
    pub fn generate() -> Self {
        Sm2PrivateKey(SecretKey::generate())
    }

    /// From the 32-byte big-endian scalar.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, GmError> {
        SecretKey::from_slice(bytes)
            .map(Sm2PrivateKey)
            .map_err(|_| GmError::BadKey)
    }

    /// From an unencrypted PKCS#8 document (DER).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, GmError> {
        SecretKey::from_pkcs8_der(der)
            .map(Sm2PrivateKey)
            .map_err(|_| GmError::BadKey)
    }

    /// From a SEC1 `ECPrivateKey` document (DER), as `openssl ecparam -genkey` writes.
    pub fn from_sec1_der(der: &[u8]) -> Result<Self, GmError> {
        SecretKey::from_sec1_der(der)
            .map(Sm2PrivateKey)
            .map_err(|_| GmError::BadKey)
    }

    /// From an unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, GmError> {
        SecretKey::from_pkcs8_pem(pem)
            .map(Sm2PrivateKey)
            .map_err(|_| GmError::BadKey)
    }

    /// The unencrypted PKCS#8 document (DER); keep it secret.
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, GmError> {
        self.0
            .to_pkcs8_der()
            .map(|d| d.as_bytes().to_vec())
            .map_err(|_| GmError::BadKey)
    }

    /// The unencrypted PKCS#8 PEM; keep it secret.
    pub fn to_pkcs8_pem(&self) -> Result<String, GmError> {
        self.0
            .to_pkcs8_pem(LineEnding::LF)
            .map(|p| p.to_string())
            .map_err(|_| GmError::BadKey)
    }

    /// Encrypted PKCS#8 PEM (`-----BEGIN ENCRYPTED PRIVATE KEY-----`): PBES2 with scrypt and
    /// AES-256-CBC, parameters OpenSSL 3 and Tongsuo read.
    pub fn to_pkcs8_encrypted_pem(&self, password: &[u8]) -> Result<String, GmError> {
        self.0
            .to_pkcs8_encrypted_pem(password, LineEnding::LF)
            .map(|p| p.to_string())
            .map_err(|_| GmError::BadKey)
    }

    /// The 32-byte scalar; keep it secret.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes().into()
    }

    /// Its public key.
    pub fn public_key(&self) -> Sm2PublicKey {
        Sm2PublicKey(self.0.public_key())
    }

    /// Signs `message` (SM3 over Z(id, key) ‖ message); the signature in DER.
    pub fn sign(&self, id: &str, message: &[u8]) -> Result<Vec<u8>, GmError> {
        Ok(self.signer(id)?.sign(message))
    }

    /// A signer for one ID, for signing many messages (it keeps Z and the public key).
    pub fn signer(&self, id: &str) -> Result<Sm2IdSigner, GmError> {
        SigningKey::new(id, &self.0)
            .map(Sm2IdSigner)
            .map_err(|_| GmError::BadKey)
    }

    /// Decrypts a GM/T 0009 ASN.1 ciphertext (C1, C3, C2).
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, GmError> {
        DecryptingKey::new(self.0.clone())
            .decrypt_der(ciphertext)
            .map_err(|_| GmError::Decrypt)
    }
}

/// The recommended curve's a, b and generator (GB/T 32918.5), big-endian.
const CURVE_A: [u8; 32] = hex32("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC");
const CURVE_B: [u8; 32] = hex32("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93");
const GENERATOR_X: [u8; 32] =
    hex32("32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7");
const GENERATOR_Y: [u8; 32] =
    hex32("BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0");

const fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        _ => c - b'A' + 10,
    }
}

const fn hex32(s: &str) -> [u8; 32] {
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nibble(b[2 * i]) << 4) | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

/// One side's keys in an SM2 key agreement.
pub struct AgreementParty<'a> {
    /// The long-term key (TLCP: the encryption certificate's).
    pub static_key: &'a Sm2PublicKey,
    /// The ephemeral key of this exchange.
    pub ephemeral: &'a Sm2PublicKey,
    /// The distinguishing ID.
    pub id: &'a str,
}

/// SM2 key agreement (GB/T 32918.3 §6.1, without the optional confirmation hashes), as TLCP's
/// ECDHE suites use it: `own_static`/`own_ephemeral` are our private keys, `us` and `peer` the
/// public halves; the initiator's Z comes first in the KDF input. Returns `len` shared bytes.
pub fn key_agreement(
    initiator: bool,
    own_static: &Sm2PrivateKey,
    own_ephemeral: &Sm2PrivateKey,
    us: &AgreementParty<'_>,
    peer: &AgreementParty<'_>,
    len: usize,
) -> Result<Vec<u8>, GmError> {
    use sm2::elliptic_curve::Group;
    use sm2::elliptic_curve::PrimeField;
    use sm2::elliptic_curve::point::AffineCoordinates;
    use sm2::{ProjectivePoint, Scalar};

    // x̄ = 2^127 + (x mod 2^127), from the x coordinate of an ephemeral point.
    let x_bar = |point: &PublicKey| -> Result<Scalar, GmError> {
        let x = point.as_affine().x();
        let mut bytes = [0u8; 32];
        bytes[16..].copy_from_slice(&x[16..]);
        bytes[16] |= 0x80;
        Option::from(Scalar::from_repr(bytes.into())).ok_or(GmError::BadKey)
    };
    let d = *own_static.0.to_nonzero_scalar();
    let r = *own_ephemeral.0.to_nonzero_scalar();
    let t = d + x_bar(&us.ephemeral.0)? * r;
    let peer_sum = peer.static_key.0.to_projective()
        + peer.ephemeral.0.to_projective() * x_bar(&peer.ephemeral.0)?;
    // The cofactor of the recommended curve is 1.
    let shared = (peer_sum * t).to_affine();
    if bool::from(ProjectivePoint::from(shared).is_identity()) {
        return Err(GmError::BadKey);
    }
    let encoded = PublicKey::from_affine(shared)
        .map_err(|_| GmError::BadKey)?
        .to_sec1_bytes();
    let (z_own, z_peer) = (us.static_key.z(us.id)?, peer.static_key.z(peer.id)?);
    let (z_a, z_b) = if initiator {
        (z_own, z_peer)
    } else {
        (z_peer, z_own)
    };
    let input = [&encoded[1..], &z_a, &z_b].concat();
    // KDF (GB/T 32918.4 §5.4.3): SM3 over input ‖ 32-bit counter from 1.
    let mut out = Vec::with_capacity(len + 32);
    let mut counter: u32 = 1;
    while out.len() < len {
        out.extend(sm3(&[&input[..], &counter.to_be_bytes()].concat()));
        counter += 1;
    }
    out.truncate(len);
    Ok(out)
}

impl Sm2PublicKey {
    /// From an uncompressed (`04‖x‖y`) or compressed SEC1 point.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, GmError> {
        PublicKey::from_sec1_bytes(bytes)
            .map(Sm2PublicKey)
            .map_err(|_| GmError::BadKey)
    }

    /// From a SubjectPublicKeyInfo (DER), as in a certificate.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, GmError> {
        PublicKey::from_public_key_der(der)
            .map(Sm2PublicKey)
            .map_err(|_| GmError::BadKey)
    }

    /// The uncompressed SEC1 point (65 bytes, `04‖x‖y`).
    pub fn to_sec1(&self) -> Vec<u8> {
        self.0.to_sec1_bytes().to_vec()
    }

    /// The SubjectPublicKeyInfo (DER).
    pub fn to_spki_der(&self) -> Result<Vec<u8>, GmError> {
        self.0
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .map_err(|_| GmError::BadKey)
    }

    /// Checks a DER signature over `message` made with `id`.
    pub fn verify(&self, id: &str, message: &[u8], signature: &[u8]) -> Result<(), GmError> {
        let key = VerifyingKey::new(id, self.0).map_err(|_| GmError::BadKey)?;
        let signature = Signature::from_der(signature).map_err(|_| GmError::BadSignature)?;
        key.verify(message, &signature)
            .map_err(|_| GmError::BadSignature)
    }

    /// Z = SM3(ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG ‖ x ‖ y) (GB/T 32918.2 §5.5): what binds an identity
    /// to this key in signatures and key agreement.
    pub fn z(&self, id: &str) -> Result<[u8; 32], GmError> {
        let bits = u16::try_from(id.len() * 8).map_err(|_| GmError::Length)?;
        let point = self.to_sec1();
        let mut h = Sm3Hasher::new();
        h.update(&bits.to_be_bytes());
        h.update(id.as_bytes());
        for constant in [CURVE_A, CURVE_B, GENERATOR_X, GENERATOR_Y] {
            h.update(&constant);
        }
        h.update(&point[1..]);
        Ok(h.finish())
    }

    /// Encrypts `message` to this key: a GM/T 0009 ASN.1 ciphertext.
    pub fn encrypt(&self, message: &[u8]) -> Result<Vec<u8>, GmError> {
        EncryptingKey::new(self.0)
            .encrypt_der(&mut SysRng, message)
            .map_err(|_| GmError::Random)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::hex;

    fn to_hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn signatures_verify_only_for_their_message_id_and_key() {
        let key = Sm2PrivateKey::generate();
        let public = key.public_key();
        let sig = key.sign(DEFAULT_ID, b"audit export manifest").unwrap();
        assert!(
            public
                .verify(DEFAULT_ID, b"audit export manifest", &sig)
                .is_ok()
        );
        assert_eq!(
            public.verify(DEFAULT_ID, b"audit export manifesT", &sig),
            Err(GmError::BadSignature)
        );
        assert!(
            public
                .verify("TLSv1.3+GM+Cipher+Suite", b"audit export manifest", &sig)
                .is_err()
        );
        let other = Sm2PrivateKey::generate().public_key();
        assert!(
            other
                .verify(DEFAULT_ID, b"audit export manifest", &sig)
                .is_err()
        );
        assert!(public.verify(DEFAULT_ID, b"x", b"\x30\x03garbage").is_err());
    }

    #[test]
    fn signatures_interoperate_with_the_independent_implementation() {
        // Ours verified by sm-crypto (public key as hex x‖y, signature DER), and theirs by us.
        let key = Sm2PrivateKey::generate();
        let public_hex = to_hex(&key.public_key().to_sec1()[1..]);
        let sig = key.sign(DEFAULT_ID, b"message digest").unwrap();
        let verifier = sm_crypto::sm2::Verify::new_with_id(DEFAULT_ID.as_bytes(), &public_hex);
        assert!(verifier.verify_der(b"message digest", &sig, true));

        let (sk, pk) = sm_crypto::sm2::gen_keypair();
        let theirs = sm_crypto::sm2::Sign::new_with_id(DEFAULT_ID.as_bytes(), &sk)
            .sign_der(b"message digest", true);
        let public = Sm2PublicKey::from_sec1(&hex(&format!("04{pk}"))).unwrap();
        assert!(
            public
                .verify(DEFAULT_ID, b"message digest", &theirs)
                .is_ok()
        );
        // The same private scalar gives the same public key in both.
        let same = Sm2PrivateKey::from_bytes(&hex(&sk)).unwrap();
        assert_eq!(same.public_key(), public);
    }

    #[test]
    fn z_of_the_gm_t_0003_5_sample_key() {
        let public = Sm2PublicKey::from_sec1(&hex(
            "0409F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020\
             CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13",
        ))
        .unwrap();
        assert_eq!(
            public.z(DEFAULT_ID).unwrap().to_vec(),
            hex("B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3")
        );
    }

    #[test]
    fn encrypted_pkcs8_round_trips_and_needs_the_password() {
        let key = Sm2PrivateKey::generate();
        let pem = key.to_pkcs8_encrypted_pem(b"correct horse").unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        let der = crate::decrypt_pkcs8_pem(&pem, b"correct horse").unwrap();
        assert_eq!(
            Sm2PrivateKey::from_pkcs8_der(&der).unwrap().to_bytes(),
            key.to_bytes()
        );
        assert_eq!(
            crate::decrypt_pkcs8_pem(&pem, b"wrong horse"),
            Err(GmError::Decrypt)
        );
        assert!(crate::decrypt_pkcs8_pem(&key.to_pkcs8_pem().unwrap(), b"x").is_err());
    }

    #[test]
    fn key_agreement_gives_both_sides_the_same_key() {
        let (a, ra, b, rb) = (
            Sm2PrivateKey::generate(),
            Sm2PrivateKey::generate(),
            Sm2PrivateKey::generate(),
            Sm2PrivateKey::generate(),
        );
        let (pa, pra, pb, prb) = (
            a.public_key(),
            ra.public_key(),
            b.public_key(),
            rb.public_key(),
        );
        let party = |k, e| AgreementParty {
            static_key: k,
            ephemeral: e,
            id: DEFAULT_ID,
        };
        let ka = key_agreement(true, &a, &ra, &party(&pa, &pra), &party(&pb, &prb), 48).unwrap();
        let kb = key_agreement(false, &b, &rb, &party(&pb, &prb), &party(&pa, &pra), 48).unwrap();
        assert_eq!(ka.len(), 48);
        assert_eq!(ka, kb);
        // Roles matter (Z order), and so does every key.
        let swapped =
            key_agreement(false, &a, &ra, &party(&pa, &pra), &party(&pb, &prb), 48).unwrap();
        assert_ne!(ka, swapped);
        let other = Sm2PrivateKey::generate();
        let wrong = key_agreement(
            false,
            &b,
            &other,
            &party(&pb, &other.public_key()),
            &party(&pa, &pra),
            48,
        )
        .unwrap();
        assert_ne!(ka, wrong);
    }

    #[test]
    fn gm_t_0003_5_sample_signature_verifies() {
        // GB/T 32918.5 / GM/T 0003.5 annex: the recommended curve, ID 1234567812345678,
        // message "message digest".
        let public = Sm2PublicKey::from_sec1(&hex(
            "0409F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020\
             CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13",
        ))
        .unwrap();
        let private = Sm2PrivateKey::from_bytes(&hex(
            "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8",
        ))
        .unwrap();
        assert_eq!(private.public_key(), public);
        let r = hex("F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3");
        let s = hex("B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA");
        let sig = Signature::from_scalars(
            <[u8; 32]>::try_from(r.as_slice()).unwrap(),
            <[u8; 32]>::try_from(s.as_slice()).unwrap(),
        )
        .unwrap();
        let der = sig.to_der().to_vec();
        assert!(public.verify(DEFAULT_ID, b"message digest", &der).is_ok());
        assert!(public.verify(DEFAULT_ID, b"message digesT", &der).is_err());
    }

    #[test]
    fn encryption_interoperates_with_the_independent_implementation() {
        let key = Sm2PrivateKey::generate();
        let public_hex = to_hex(&key.public_key().to_sec1()[1..]);
        let private_hex = to_hex(&key.to_bytes());
        let ours = key.public_key().encrypt(b"pre-master secret").unwrap();
        assert_eq!(
            sm_crypto::sm2::Decrypt::new(&private_hex).decrypt_asna1(&ours),
            b"pre-master secret"
        );
        let theirs = sm_crypto::sm2::Encrypt::new(&public_hex).encrypt_asna1(b"pre-master secret");
        assert_eq!(key.decrypt(&theirs).unwrap(), b"pre-master secret");
    }

    #[test]
    fn encryption_round_trips_and_refuses_tampering() {
        let key = Sm2PrivateKey::generate();
        let mut premaster = vec![0x01, 0x01];
        premaster.extend_from_slice(&[0x5a; 46]);
        let c = key.public_key().encrypt(&premaster).unwrap();
        assert_eq!(key.decrypt(&c).unwrap(), premaster);
        let mut bad = c.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert_eq!(key.decrypt(&bad), Err(GmError::Decrypt));
        assert!(key.decrypt(&c[..c.len() / 2]).is_err());
        assert!(Sm2PrivateKey::generate().decrypt(&c).is_err());
    }

    #[test]
    fn keys_round_trip_through_pkcs8_and_spki() {
        let key = Sm2PrivateKey::generate();
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = Sm2PrivateKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(back.to_bytes(), key.to_bytes());
        let der = key.to_pkcs8_der().unwrap();
        assert_eq!(
            Sm2PrivateKey::from_pkcs8_der(&der).unwrap().to_bytes(),
            key.to_bytes()
        );
        let spki = key.public_key().to_spki_der().unwrap();
        assert_eq!(
            Sm2PublicKey::from_spki_der(&spki).unwrap(),
            key.public_key()
        );
        assert!(
            Sm2PrivateKey::from_pkcs8_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            )
            .is_err()
        );
        assert!(Sm2PrivateKey::from_bytes(&[0; 32]).is_err());
        assert!(Sm2PublicKey::from_sec1(&[4; 65]).is_err());
    }
}

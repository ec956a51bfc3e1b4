//! The SM4 block cipher under the modes: constant time on x86-64 with AES-NI
//! ([`super::aesni`]) and on aarch64 with the ARMv8 AES instructions ([`super::neon`]), else
//! RustCrypto's `sm4`, whose S-box is a table in memory indexed by secret data (a cache-timing
//! leak to code sharing the CPU; [`Sm4Cipher::constant_time`] says which runs).

use cbc::cipher::consts::U16;
use cbc::cipher::{
    AlgorithmName, BlockCipherDecClosure, BlockCipherDecrypt, BlockCipherEncClosure,
    BlockCipherEncrypt, BlockSizeUser, Key, KeyInit, KeySizeUser,
};

#[cfg(target_arch = "x86_64")]
use super::aesni::AesNi as Native;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use super::lanes::{Engine, RoundKeys};
#[cfg(target_arch = "aarch64")]
use super::neon::Neon as Native;

/// SM4 with the fastest constant-time implementation this CPU has.
#[derive(Clone)]
pub struct Sm4Cipher(Inner);

#[derive(Clone)]
enum Inner {
    /// Round keys for this CPU's constant-time engine.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    Simd(RoundKeys<Native>),
    Table(::sm4::Sm4),
}

impl Sm4Cipher {
    /// Whether SM4 runs in constant time on this machine.
    pub fn constant_time() -> bool {
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        if Native::available() {
            return true;
        }
        false
    }

    /// RustCrypto's implementation whatever the CPU (tests compare the two).
    #[cfg(test)]
    pub(super) fn table(key: &[u8; 16]) -> Sm4Cipher {
        Sm4Cipher(Inner::Table(::sm4::Sm4::new(key.into())))
    }
}

impl KeySizeUser for Sm4Cipher {
    type KeySize = U16;
}

impl KeyInit for Sm4Cipher {
    fn new(key: &Key<Self>) -> Self {
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        if let Some(rk) = RoundKeys::new(&(*key).into()) {
            return Sm4Cipher(Inner::Simd(rk));
        }
        Sm4Cipher(Inner::Table(::sm4::Sm4::new(key)))
    }
}

impl BlockSizeUser for Sm4Cipher {
    type BlockSize = U16;
}

impl BlockCipherEncrypt for Sm4Cipher {
    fn encrypt_with_backend(&self, f: impl BlockCipherEncClosure<BlockSize = U16>) {
        match &self.0 {
            #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
            Inner::Simd(rk) => f.call(&rk.lanes(false)),
            Inner::Table(table) => table.encrypt_with_backend(f),
        }
    }
}

impl BlockCipherDecrypt for Sm4Cipher {
    fn decrypt_with_backend(&self, f: impl BlockCipherDecClosure<BlockSize = U16>) {
        match &self.0 {
            #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
            Inner::Simd(rk) => f.call(&rk.lanes(true)),
            Inner::Table(table) => table.decrypt_with_backend(f),
        }
    }
}

impl AlgorithmName for Sm4Cipher {
    fn write_alg_name(f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SM4")
    }
}

impl core::fmt::Debug for Sm4Cipher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Sm4Cipher { .. }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbc::cipher::Block;

    /// A fixed pseudo-random stream (xorshift), so failures reproduce.
    fn stream(seed: u64, n: usize) -> Vec<u8> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect()
    }

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[test]
    fn every_s_box_input_matches_gb_t_32907() {
        if Native::available() {
            // Every input byte, in every position of the word.
            for x in 0..=255u8 {
                let word = u32::from_be_bytes([x, x ^ 0x5a, x ^ 0xa5, !x]);
                let ours = super::super::lanes::tau_checked::<Native>(word).to_be_bytes();
                for (byte, input) in ours.iter().zip([x, x ^ 0x5a, x ^ 0xa5, !x]) {
                    assert_eq!(*byte, SBOX[input as usize], "S-box of {input:#04x}");
                }
            }
        }
    }

    #[test]
    fn both_implementations_agree_on_blocks_keys_and_modes() {
        for seed in 1..300u64 {
            // 1 to 40 blocks: whole batches of 16 and every size of tail.
            let count = 1 + seed as usize % 40;
            let bytes = stream(seed, 16 + 16 * count);
            let key: [u8; 16] = bytes[..16].try_into().unwrap();
            let (fast, table) = (Sm4Cipher::new(&key.into()), Sm4Cipher::table(&key));
            let mut a: Vec<Block<Sm4Cipher>> = bytes[16..]
                .chunks_exact(16)
                .map(|c| Block::<Sm4Cipher>::try_from(c).unwrap())
                .collect();
            let mut b = a.clone();
            fast.encrypt_blocks(&mut a);
            for block in &mut b {
                table.encrypt_block(block);
            }
            assert_eq!(a, b, "encryption, seed {seed}");
            fast.decrypt_blocks(&mut a);
            table.decrypt_blocks(&mut b);
            assert_eq!(a, b, "decryption, seed {seed}");
            assert_eq!(a.concat(), bytes[16..], "round trip, seed {seed}");
        }
    }

    /// GB/T 32907-2016's S-box (Table 1), for the check above.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[rustfmt::skip]
    const SBOX: [u8; 256] = [
        0xd6, 0x90, 0xe9, 0xfe, 0xcc, 0xe1, 0x3d, 0xb7, 0x16, 0xb6, 0x14, 0xc2, 0x28, 0xfb, 0x2c, 0x05,
        0x2b, 0x67, 0x9a, 0x76, 0x2a, 0xbe, 0x04, 0xc3, 0xaa, 0x44, 0x13, 0x26, 0x49, 0x86, 0x06, 0x99,
        0x9c, 0x42, 0x50, 0xf4, 0x91, 0xef, 0x98, 0x7a, 0x33, 0x54, 0x0b, 0x43, 0xed, 0xcf, 0xac, 0x62,
        0xe4, 0xb3, 0x1c, 0xa9, 0xc9, 0x08, 0xe8, 0x95, 0x80, 0xdf, 0x94, 0xfa, 0x75, 0x8f, 0x3f, 0xa6,
        0x47, 0x07, 0xa7, 0xfc, 0xf3, 0x73, 0x17, 0xba, 0x83, 0x59, 0x3c, 0x19, 0xe6, 0x85, 0x4f, 0xa8,
        0x68, 0x6b, 0x81, 0xb2, 0x71, 0x64, 0xda, 0x8b, 0xf8, 0xeb, 0x0f, 0x4b, 0x70, 0x56, 0x9d, 0x35,
        0x1e, 0x24, 0x0e, 0x5e, 0x63, 0x58, 0xd1, 0xa2, 0x25, 0x22, 0x7c, 0x3b, 0x01, 0x21, 0x78, 0x87,
        0xd4, 0x00, 0x46, 0x57, 0x9f, 0xd3, 0x27, 0x52, 0x4c, 0x36, 0x02, 0xe7, 0xa0, 0xc4, 0xc8, 0x9e,
        0xea, 0xbf, 0x8a, 0xd2, 0x40, 0xc7, 0x38, 0xb5, 0xa3, 0xf7, 0xf2, 0xce, 0xf9, 0x61, 0x15, 0xa1,
        0xe0, 0xae, 0x5d, 0xa4, 0x9b, 0x34, 0x1a, 0x55, 0xad, 0x93, 0x32, 0x30, 0xf5, 0x8c, 0xb1, 0xe3,
        0x1d, 0xf6, 0xe2, 0x2e, 0x82, 0x66, 0xca, 0x60, 0xc0, 0x29, 0x23, 0xab, 0x0d, 0x53, 0x4e, 0x6f,
        0xd5, 0xdb, 0x37, 0x45, 0xde, 0xfd, 0x8e, 0x2f, 0x03, 0xff, 0x6a, 0x72, 0x6d, 0x6c, 0x5b, 0x51,
        0x8d, 0x1b, 0xaf, 0x92, 0xbb, 0xdd, 0xbc, 0x7f, 0x11, 0xd9, 0x5c, 0x41, 0x1f, 0x10, 0x5a, 0xd8,
        0x0a, 0xc1, 0x31, 0x88, 0xa5, 0xcd, 0x7b, 0xbd, 0x2d, 0x74, 0xd0, 0x12, 0xb8, 0xe5, 0xb4, 0xb0,
        0x89, 0x69, 0x97, 0x4a, 0x0c, 0x96, 0x77, 0x7e, 0x65, 0xb9, 0xf1, 0x09, 0xc5, 0x6e, 0xc6, 0x84,
        0x18, 0xf0, 0x7d, 0xec, 0x3a, 0xdc, 0x4d, 0x20, 0x79, 0xee, 0x5f, 0x3e, 0xd7, 0xcb, 0x39, 0x48,
    ];
}

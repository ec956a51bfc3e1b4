//! SM4 on aarch64 with the ARMv8 AES instructions (Kunpeng 920, most ARMv8.2 servers): constant
//! time, the same construction as [`super::aesni`] — an affine map into AES's field by two `TBL`
//! nibble look-ups, `AESE` with a zero key (its ShiftRows undone in advance), an affine map back —
//! so no memory is indexed by secret data. The four lanes of a register hold the same word of
//! four blocks; the words are gathered and scattered in ordinary code (data movement only).

use core::arch::aarch64::{
    uint8x16_t, uint32x4_t, vaeseq_u8, vandq_u8, vcombine_u8, vcombine_u32, vcreate_u8,
    vcreate_u32, vdupq_n_u8, vdupq_n_u32, veorq_u32, vgetq_lane_u32, vorrq_u32, vqtbl1q_u8,
    vreinterpretq_u8_u32, vreinterpretq_u32_u8, vshlq_n_u32, vshrq_n_u8, vshrq_n_u32,
};

use super::lanes::{Engine, INV_SHIFT_ROWS, LANES, POST_HI, POST_LO, PRE_HI, PRE_LO};

/// SM4 with NEON and the AES instructions.
pub(super) struct Neon;

impl Engine for Neon {
    fn available() -> bool {
        std::arch::is_aarch64_feature_detected!("aes")
    }

    #[target_feature(enable = "neon,aes")]
    unsafe fn crypt<const G: usize>(
        rk: &[u32; 32],
        reverse: bool,
        groups: &mut [[[u8; 16]; LANES]; G],
    ) {
        let mut x = [[vdupq_n_u32(0); 4]; G];
        for (x, blocks) in x.iter_mut().zip(groups.iter()) {
            for (j, word) in x.iter_mut().enumerate() {
                let w = |b: &[u8; 16]| {
                    u32::from_be_bytes([b[4 * j], b[4 * j + 1], b[4 * j + 2], b[4 * j + 3]])
                };
                *word = from_words([w(&blocks[0]), w(&blocks[1]), w(&blocks[2]), w(&blocks[3])]);
            }
        }
        for i in 0..32 {
            let k = vdupq_n_u32(if reverse { rk[31 - i] } else { rk[i] });
            for x in &mut x {
                let t = veorq_u32(
                    veorq_u32(x[(i + 1) % 4], x[(i + 2) % 4]),
                    veorq_u32(x[(i + 3) % 4], k),
                );
                x[i % 4] = veorq_u32(x[i % 4], linear(sbox(t)));
            }
        }
        for (blocks, x) in groups.iter_mut().zip(x) {
            // The output is the last four words in reverse order.
            let words = [
                to_words(x[3]),
                to_words(x[2]),
                to_words(x[1]),
                to_words(x[0]),
            ];
            for (lane, block) in blocks.iter_mut().enumerate() {
                for (j, word) in words.iter().enumerate() {
                    block[4 * j..4 * j + 4].copy_from_slice(&word[lane].to_be_bytes());
                }
            }
        }
    }

    #[target_feature(enable = "neon,aes")]
    unsafe fn tau(word: u32) -> u32 {
        vgetq_lane_u32::<0>(sbox(vdupq_n_u32(word)))
    }
}

/// The S-box on all sixteen bytes.
#[target_feature(enable = "neon,aes")]
fn sbox(x: uint32x4_t) -> uint32x4_t {
    let y = affine(vreinterpretq_u8_u32(x), PRE_LO, PRE_HI);
    let y = vqtbl1q_u8(y, table(INV_SHIFT_ROWS));
    let z = vaeseq_u8(y, vdupq_n_u8(0));
    vreinterpretq_u32_u8(affine(z, POST_LO, POST_HI))
}

/// An affine map on each byte, as the sum of its images of the low and high nibbles.
#[target_feature(enable = "neon")]
fn affine(x: uint8x16_t, lo: [u8; 16], hi: [u8; 16]) -> uint8x16_t {
    let low = vandq_u8(x, vdupq_n_u8(0x0f));
    let high = vshrq_n_u8::<4>(x);
    let sum = veorq_u32(
        vreinterpretq_u32_u8(vqtbl1q_u8(table(lo), low)),
        vreinterpretq_u32_u8(vqtbl1q_u8(table(hi), high)),
    );
    vreinterpretq_u8_u32(sum)
}

/// SM4's linear transform L on each 32-bit lane: B ⊕ (B⋘2) ⊕ (B⋘10) ⊕ (B⋘18) ⊕ (B⋘24),
/// as B ⊕ (B⋘24) ⊕ ((B ⊕ (B⋘8) ⊕ (B⋘16))⋘2).
#[target_feature(enable = "neon")]
fn linear(b: uint32x4_t) -> uint32x4_t {
    let rol8 = vorrq_u32(vshlq_n_u32::<8>(b), vshrq_n_u32::<24>(b));
    let rol16 = vorrq_u32(vshlq_n_u32::<16>(b), vshrq_n_u32::<16>(b));
    let rol24 = vorrq_u32(vshlq_n_u32::<24>(b), vshrq_n_u32::<8>(b));
    let t = veorq_u32(veorq_u32(b, rol8), rol16);
    let rol2 = vorrq_u32(vshlq_n_u32::<2>(t), vshrq_n_u32::<30>(t));
    veorq_u32(veorq_u32(b, rol24), rol2)
}

#[target_feature(enable = "neon")]
fn from_words(w: [u32; 4]) -> uint32x4_t {
    let lo = u64::from(w[0]) | u64::from(w[1]) << 32;
    let hi = u64::from(w[2]) | u64::from(w[3]) << 32;
    vcombine_u32(vcreate_u32(lo), vcreate_u32(hi))
}

#[target_feature(enable = "neon")]
fn to_words(v: uint32x4_t) -> [u32; 4] {
    [
        vgetq_lane_u32::<0>(v),
        vgetq_lane_u32::<1>(v),
        vgetq_lane_u32::<2>(v),
        vgetq_lane_u32::<3>(v),
    ]
}

#[target_feature(enable = "neon")]
fn table(t: [u8; 16]) -> uint8x16_t {
    let half = |h: &[u8]| u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
    vcombine_u8(vcreate_u8(half(&t[..8])), vcreate_u8(half(&t[8..])))
}

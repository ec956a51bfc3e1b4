//! What the SIMD implementations of SM4 share: the key schedule over their constant-time S-box
//! and the cipher backend that hands blocks to them in groups of four. Each implementation
//! ([`super::aesni`], [`super::neon`]) is an [`Engine`]: the rounds on groups of four blocks
//! whose words share registers, and τ for the key schedule.

use core::marker::PhantomData;

use cbc::cipher::consts::U16;
use cbc::cipher::{
    Block, BlockCipherDecBackend, BlockCipherEncBackend, BlockSizeUser, InOut, InOutBuf, ParBlocks,
    ParBlocksSizeUser,
};

/// Blocks in one register's lanes (a group).
pub(super) const LANES: usize = 4;
/// Groups the backend hands over at once (`ParBlocksSize` is their blocks).
const GROUPS: usize = 4;
const _: () = assert!(GROUPS * LANES == 16, "ParBlocksSize is U16");

/// Blocks as an engine takes them.
type Groups = [[[u8; 16]; LANES]; GROUPS];

/// A constant-time SM4 for one kind of CPU.
pub(super) trait Engine {
    /// Whether this CPU has the instructions.
    fn available() -> bool;

    /// Encrypts (round keys in order) or decrypts (reversed) `G` groups of four blocks in
    /// place, the groups' rounds interleaved so that one group's instructions fill another's
    /// waits.
    ///
    /// # Safety
    /// [`Engine::available`] must have said yes.
    unsafe fn crypt<const G: usize>(
        rk: &[u32; 32],
        reverse: bool,
        groups: &mut [[[u8; 16]; LANES]; G],
    );

    /// SM4's S-box on each byte of `word` (τ of the key schedule).
    ///
    /// # Safety
    /// [`Engine::available`] must have said yes.
    unsafe fn tau(word: u32) -> u32;
}

/// [`Engine::tau`] where the CPU has the instructions (tests compare it with the standard).
#[cfg(test)]
pub(super) fn tau_checked<E: Engine>(word: u32) -> u32 {
    assert!(E::available());
    // SAFETY: just checked.
    unsafe { E::tau(word) }
}

/// The system parameter FK of GB/T 32907.
const FK: [u32; 4] = [0xa3b1_bac6, 0x56aa_3350, 0x677d_9197, 0xb270_22dc];

/// Round keys for engine `E`, which exist only where the CPU has its instructions: holding one
/// is the proof every `unsafe` call below relies on.
pub(super) struct RoundKeys<E> {
    rk: [u32; 32],
    engine: PhantomData<E>,
}

impl<E> Clone for RoundKeys<E> {
    fn clone(&self) -> Self {
        RoundKeys {
            rk: self.rk,
            engine: PhantomData,
        }
    }
}

impl<E: Engine> RoundKeys<E> {
    /// The round keys of `key` (the S-box in constant time); `None` without the instructions.
    pub(super) fn new(key: &[u8; 16]) -> Option<RoundKeys<E>> {
        if !E::available() {
            return None;
        }
        let mut k = [0u32; 4];
        for (i, word) in key.chunks_exact(4).enumerate() {
            k[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]) ^ FK[i];
        }
        let mut rk = [0u32; 32];
        for (i, out) in rk.iter_mut().enumerate() {
            // CK: bytes (4i + j) · 7 mod 256.
            let ck = u32::from_be_bytes(core::array::from_fn(|j| ((4 * i + j) * 7 % 256) as u8));
            // SAFETY: `available()` said yes above.
            let b = unsafe { E::tau(k[1] ^ k[2] ^ k[3] ^ ck) };
            *out = k[0] ^ b ^ b.rotate_left(13) ^ b.rotate_left(23);
            k = [k[1], k[2], k[3], *out];
        }
        Some(RoundKeys {
            rk,
            engine: PhantomData,
        })
    }

    /// The backend that encrypts, or with `reverse` decrypts, under these keys.
    pub(super) fn lanes(&self, reverse: bool) -> Lanes<'_, E> {
        Lanes {
            rk: &self.rk,
            reverse,
            engine: PhantomData,
        }
    }
}

/// The cipher backend: round keys in order (encryption) or reversed (decryption).
pub(super) struct Lanes<'a, E> {
    rk: &'a [u32; 32],
    reverse: bool,
    engine: PhantomData<E>,
}

impl<E: Engine> Lanes<'_, E> {
    /// Runs the first `n` blocks of `groups` through as few groups as hold them: a single block
    /// costs one group, a whole batch all of them.
    fn crypt(&self, n: usize, groups: &mut Groups) {
        let (rk, reverse) = (self.rk, self.reverse);
        // SAFETY: `Lanes` is only made from `RoundKeys`, which exist only where `available()`
        // said yes.
        unsafe {
            match n.div_ceil(LANES) {
                0 => {}
                1 => E::crypt::<1>(rk, reverse, first(groups)),
                2 => E::crypt::<2>(rk, reverse, first(groups)),
                _ => E::crypt::<GROUPS>(rk, reverse, groups),
            }
        }
    }

    fn one(&self, mut block: InOut<'_, '_, Block<Self>>) {
        let mut groups = Groups::default();
        groups[0][0] = (*block.get_in()).into();
        self.crypt(1, &mut groups);
        block.get_out().copy_from_slice(&groups[0][0]);
    }

    fn many(&self, mut blocks: InOut<'_, '_, ParBlocks<Self>>) {
        let mut groups = Groups::default();
        for (i, lane) in groups.as_flattened_mut().iter_mut().enumerate() {
            *lane = (*blocks.get(i).get_in()).into();
        }
        self.crypt(GROUPS * LANES, &mut groups);
        for (i, lane) in groups.as_flattened().iter().enumerate() {
            blocks.get(i).get_out().copy_from_slice(lane);
        }
    }

    fn tail(&self, mut blocks: InOutBuf<'_, '_, Block<Self>>) {
        let n = blocks.len().min(GROUPS * LANES);
        let mut groups = Groups::default();
        for (i, lane) in groups.as_flattened_mut().iter_mut().take(n).enumerate() {
            *lane = (*blocks.get(i).get_in()).into();
        }
        self.crypt(n, &mut groups);
        for (i, lane) in groups.as_flattened().iter().take(n).enumerate() {
            blocks.get(i).get_out().copy_from_slice(lane);
        }
    }
}

/// The first `N` of the groups.
fn first<const N: usize>(groups: &mut Groups) -> &mut [[[u8; 16]; LANES]; N] {
    match groups.first_chunk_mut::<N>() {
        Some(first) => first,
        None => unreachable!("N ≤ GROUPS"),
    }
}

impl<E> BlockSizeUser for Lanes<'_, E> {
    type BlockSize = U16;
}

impl<E> ParBlocksSizeUser for Lanes<'_, E> {
    type ParBlocksSize = U16;
}

impl<E: Engine> BlockCipherEncBackend for Lanes<'_, E> {
    fn encrypt_block(&self, block: InOut<'_, '_, Block<Self>>) {
        self.one(block);
    }

    fn encrypt_par_blocks(&self, blocks: InOut<'_, '_, ParBlocks<Self>>) {
        self.many(blocks);
    }

    fn encrypt_tail_blocks(&self, blocks: InOutBuf<'_, '_, Block<Self>>) {
        self.tail(blocks);
    }
}

impl<E: Engine> BlockCipherDecBackend for Lanes<'_, E> {
    fn decrypt_block(&self, block: InOut<'_, '_, Block<Self>>) {
        self.one(block);
    }

    fn decrypt_par_blocks(&self, blocks: InOut<'_, '_, ParBlocks<Self>>) {
        self.many(blocks);
    }

    fn decrypt_tail_blocks(&self, blocks: InOutBuf<'_, '_, Block<Self>>) {
        self.tail(blocks);
    }
}

// SM4's S-box as AES's: an affine map into AES's field (applied as the images of a byte's low and
// high nibble, the constant in the low table), AES's S-box, an affine map back. Derived from the
// field isomorphism and AES's affine map; `every_s_box_input_matches_gb_t_32907` checks them.
/// Into AES's field: the images of the low and high nibble (the constant in the low table).
pub(super) const PRE_LO: [u8; 16] = [
    0x3e, 0xb2, 0x0e, 0x82, 0xbb, 0x37, 0x8b, 0x07, 0xa1, 0x2d, 0x91, 0x1d, 0x24, 0xa8, 0x14, 0x98,
];
pub(super) const PRE_HI: [u8; 16] = [
    0x00, 0xdc, 0x2e, 0xf2, 0xc5, 0x19, 0xeb, 0x37, 0x08, 0xd4, 0x26, 0xfa, 0xcd, 0x11, 0xe3, 0x3f,
];
/// Back from AES's S-box output to SM4's.
pub(super) const POST_LO: [u8; 16] = [
    0x6c, 0xd4, 0xa6, 0x1e, 0x52, 0xea, 0x98, 0x20, 0x0b, 0xb3, 0xc1, 0x79, 0x35, 0x8d, 0xff, 0x47,
];
pub(super) const POST_HI: [u8; 16] = [
    0x00, 0xe0, 0x50, 0xb0, 0x9d, 0x7d, 0xcd, 0x2d, 0xc0, 0x20, 0x90, 0x70, 0x5d, 0xbd, 0x0d, 0xed,
];
/// Undoes the ShiftRows that AES's last-round instructions apply after SubBytes.
pub(super) const INV_SHIFT_ROWS: [u8; 16] = [0, 13, 10, 7, 4, 1, 14, 11, 8, 5, 2, 15, 12, 9, 6, 3];

//! The identifiers data-leak prevention looks for in outgoing text: 居民身份证号 (GB 11643),
//! bank card numbers, mainland mobile numbers, 统一社会信用代码 (GB 32100), passport numbers and
//! 密级 markings. Each finding is validated the way the issuing scheme defines it (check digits,
//! dates, prefixes), so that order numbers, timestamps and other digit runs do not count; what a
//! policy sees is a count per detector and masked samples, never the data itself.
//!
//! Every detector makes one pass over the text (linear in its length, no backtracking), so a
//! hostile message costs no more than its size.

use std::collections::{BTreeMap, HashSet};

use chrono::NaiveDate;

/// What a detector recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Detector {
    /// 居民身份证号: 18 characters, valid province, birth date and ISO 7064 MOD 11-2 check.
    ResidentId,
    /// Payment card: 16–19 digits, a card scheme's prefix, Luhn check.
    BankCard,
    /// Mainland mobile number: 11 digits on an allocated 1xx prefix, with or without +86.
    Mobile,
    /// 统一社会信用代码: 18 characters, GB 32100 check character.
    CreditCode,
    /// Passport number of the People's Republic of China (E/G series).
    Passport,
    /// 密级 marking: 绝密★, 机密★, 秘密★ (the ★ form the standard prescribes).
    Classification,
    /// E-mail address: a list of many is a customer or staff list leaving.
    EmailAddress,
}

impl Detector {
    /// The name used in configuration, JSON and the console.
    pub fn name(self) -> &'static str {
        match self {
            Detector::ResidentId => "resident_id",
            Detector::BankCard => "bank_card",
            Detector::Mobile => "mobile",
            Detector::CreditCode => "credit_code",
            Detector::Passport => "passport",
            Detector::Classification => "classification",
            Detector::EmailAddress => "email_address",
        }
    }

    /// Every detector, in report order.
    pub const ALL: [Detector; 7] = [
        Detector::ResidentId,
        Detector::BankCard,
        Detector::Mobile,
        Detector::CreditCode,
        Detector::Passport,
        Detector::Classification,
        Detector::EmailAddress,
    ];

    /// The detector a configuration name gives, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }
}

/// Masked samples kept per detector: enough for a reviewer to recognise the data, never the list.
pub const SAMPLES_PER_DETECTOR: usize = 3;

/// What one detector found in a text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// Distinct identifiers (the same number written twice counts once).
    pub distinct: usize,
    /// The first few, with all but their first and last characters replaced by `*`.
    pub samples: Vec<String>,
}

/// Everything validated in a text, per detector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings(BTreeMap<Detector, Found>);

impl Findings {
    /// What `detector` found, if anything.
    pub fn get(&self, detector: Detector) -> Option<&Found> {
        self.0.get(&detector)
    }

    /// Each detector that found something, in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = (Detector, &Found)> {
        self.0.iter().map(|(d, f)| (*d, f))
    }
}

/// Collects identifiers as they are validated: distinct values counted, a few kept masked.
#[derive(Default)]
struct Collector {
    seen: HashSet<(Detector, String)>,
    findings: Findings,
}

impl Collector {
    /// Counts `value` once; keeps `sample` (what may be shown of it) among the first few.
    fn add(&mut self, detector: Detector, value: &str, sample: impl FnOnce() -> String) {
        if !self.seen.insert((detector, value.to_owned())) {
            return;
        }
        let found = self.findings.0.entry(detector).or_default();
        found.distinct += 1;
        if found.samples.len() < SAMPLES_PER_DETECTOR {
            found.samples.push(sample());
        }
    }
}

/// Finds every validated identifier in `text`. `today` bounds birth dates (none in the future).
pub fn find(text: &str, today: NaiveDate) -> Findings {
    let mut found = Collector::default();
    for token in alnum_tokens(text) {
        let upper = token.to_ascii_uppercase();
        if is_resident_id(&upper, today) {
            found.add(Detector::ResidentId, &upper, || mask(&upper, 4, 4));
        } else if is_credit_code(&upper) {
            found.add(Detector::CreditCode, &upper, || mask(&upper, 4, 4));
        } else if is_passport(&upper) {
            found.add(Detector::Passport, &upper, || mask(&upper, 1, 2));
        }
    }
    for run in digit_runs(text) {
        let digits = &run.digits;
        // An ID number of digits only was counted above; some also pass a card's checks.
        if is_resident_id(digits, today) {
            continue;
        }
        if is_bank_card(&run) {
            found.add(Detector::BankCard, digits, || mask(digits, 4, 4));
        } else if let Some(mobile) = mobile_number(&run) {
            found.add(Detector::Mobile, mobile, || mask(mobile, 3, 4));
        }
    }
    for mark in classification_marks(text) {
        // A marking is not personal data: shown as it is.
        found.add(Detector::Classification, mark, || mark.to_owned());
    }
    for address in email_addresses(text) {
        let address = address.to_ascii_lowercase();
        found.add(Detector::EmailAddress, &address, || {
            let (local, domain) = address.split_once('@').unwrap_or_default();
            format!("{}***@{domain}", local.chars().next().unwrap_or('*'))
        });
    }
    found.findings
}

/// `value` with its middle replaced by `*`, keeping `keep_start` and `keep_end` characters.
pub fn mask(value: &str, keep_start: usize, keep_end: usize) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= keep_start + keep_end {
        return "*".repeat(chars.len());
    }
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < keep_start || i >= chars.len() - keep_end {
                *c
            } else {
                '*'
            }
        })
        .collect()
}

/// Maximal runs of ASCII letters and digits: an identifier is a whole run, never part of a
/// longer one.
fn alnum_tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
}

/// A run of digits in which single spaces or hyphens may separate groups ("6222 0212 3456 7890",
/// "138-1234-5678", "+86 138 1234 5678"), as written by hand.
struct DigitRun {
    /// The digits alone.
    digits: String,
    /// How many digits each group has, in order: the layout tells a card (groups of four) or a
    /// mainland mobile (3-4-4) from, say, a US number written 1-800-555-0199.
    groups: Vec<usize>,
}

impl DigitRun {
    /// The run without a leading country-code group (86 or 0086), if it has one.
    fn without_country_code(&self) -> Option<(&str, &[usize])> {
        let first = *self.groups.first()?;
        let code = &self.digits[..first];
        (self.groups.len() > 1 && (code == "86" || code == "0086"))
            .then(|| (&self.digits[first..], &self.groups[1..]))
    }
}

/// The digit runs of `text`; a run touching a letter is not a number, and runs longer than any
/// identifier are skipped.
fn digit_runs(text: &str) -> impl Iterator<Item = DigitRun> + '_ {
    const LONGEST: usize = 19;
    let bytes = text.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            if !bytes[i].is_ascii_digit() {
                i += 1;
                continue;
            }
            let start = i;
            let mut run = DigitRun {
                digits: String::new(),
                groups: vec![0],
            };
            let mut too_long = false;
            while i < bytes.len() {
                if bytes[i].is_ascii_digit() {
                    if run.digits.len() < LONGEST {
                        run.digits.push(char::from(bytes[i]));
                        if let Some(last) = run.groups.last_mut() {
                            *last += 1;
                        }
                    } else {
                        too_long = true;
                    }
                    i += 1;
                } else if matches!(bytes[i], b' ' | b'-')
                    && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
                {
                    if !too_long {
                        run.groups.push(0);
                    }
                    i += 1;
                } else {
                    break;
                }
            }
            let touches_letter = |at: Option<&u8>| at.is_some_and(u8::is_ascii_alphabetic);
            let before = start.checked_sub(1).and_then(|b| bytes.get(b));
            if too_long || touches_letter(before) || touches_letter(bytes.get(i)) {
                continue;
            }
            return Some(run);
        }
        None
    })
}

/// Province-level region codes of GB/T 2260 (the first two digits of an ID number).
const PROVINCES: [u8; 34] = [
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82,
];

/// 居民身份证号 (GB 11643-1999): 17 digits and an ISO 7064 MOD 11-2 check character.
fn is_resident_id(token: &str, today: NaiveDate) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: [u8; 11] = *b"10X98765432";
    let b = token.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let number = |range: std::ops::Range<usize>| -> u32 {
        b[range].iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'))
    };
    let province = number(0..2);
    if !PROVINCES.iter().any(|p| u32::from(*p) == province) {
        return false;
    }
    let birth = NaiveDate::from_ymd_opt(number(6..10) as i32, number(10..12), number(12..14));
    let earliest = NaiveDate::from_ymd_opt(1900, 1, 1);
    if !birth.is_some_and(|d| Some(d) >= earliest && d <= today) {
        return false;
    }
    let sum: u32 = b[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    b[17] == CHECK[(sum % 11) as usize]
}

/// 统一社会信用代码 (GB 32100-2015): department, category, 6-digit region, 9-character
/// organisation code, check character — from 31 characters (no I, O, S, V, Z).
fn is_credit_code(token: &str) -> bool {
    const CHARS: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    const WEIGHTS: [u32; 17] = [
        1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
    ];
    let b = token.as_bytes();
    if b.len() != 18 || !matches!(b[0], b'1'..=b'9' | b'A' | b'N' | b'Y') {
        return false;
    }
    // The region (characters 3–8) is numeric; a code of digits only is an ID-like number.
    if !b[2..8].iter().all(u8::is_ascii_digit) || b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let value = |c: &u8| CHARS.iter().position(|x| x == c).map(|v| v as u32);
    let mut sum = 0;
    for (c, w) in b[..17].iter().zip(WEIGHTS) {
        match value(c) {
            Some(v) => sum += v * w,
            None => return false,
        }
    }
    let check = (31 - sum % 31) % 31;
    value(&b[17]) == Some(check)
}

/// Passport of the People's Republic of China: E or G and 8 digits, or E, a letter other than I
/// and O, and 7 digits.
fn is_passport(token: &str) -> bool {
    let b = token.as_bytes();
    b.len() == 9
        && match (b[0], b[1]) {
            (b'E' | b'G', d) if d.is_ascii_digit() => b[1..].iter().all(u8::is_ascii_digit),
            (b'E', l) if l.is_ascii_uppercase() && l != b'I' && l != b'O' => {
                b[2..].iter().all(u8::is_ascii_digit)
            }
            _ => false,
        }
}

/// A payment card number: a scheme's prefix and length, and the Luhn check; written whole or in
/// groups of four.
fn is_bank_card(run: &DigitRun) -> bool {
    let b = run.digits.as_bytes();
    let (last, rest) = run.groups.split_last().unwrap_or((&0, &[]));
    if !(rest.iter().all(|g| *g == 4) && (rest.is_empty() || (1..=4).contains(last))) {
        return false;
    }
    let prefix = |n: usize| -> u32 {
        b[..n.min(b.len())]
            .iter()
            .fold(0, |v, d| v * 10 + u32::from(d - b'0'))
    };
    let scheme = match b.len() {
        // UnionPay (62) and the domestic bank ranges under 60, 16 to 19 digits.
        16..=19 if matches!(prefix(2), 60 | 62) => true,
        // Visa, Mastercard (51–55, 2221–2720) and JCB (3528–3589) cards Chinese banks issue.
        16 => {
            b[0] == b'4'
                || (51..=55).contains(&prefix(2))
                || (2221..=2720).contains(&prefix(4))
                || (3528..=3589).contains(&prefix(4))
        }
        _ => false,
    };
    scheme && luhn(b)
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 1 {
                if d > 4 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A mainland mobile number, with or without the country code 86: the 11 digits, written whole
/// or 3-4-4, when they start with an allocated prefix.
fn mobile_number(run: &DigitRun) -> Option<&str> {
    let (digits, groups) = run
        .without_country_code()
        .unwrap_or((&run.digits, &run.groups));
    let number = match (digits.len(), groups) {
        (11, [11] | [3, 4, 4]) => digits,
        (13, [13]) if digits.starts_with("86") => &digits[2..],
        (15, [15]) if digits.starts_with("0086") => &digits[4..],
        _ => return None,
    };
    let b = number.as_bytes();
    let allocated = b[0] == b'1'
        && match b[1] {
            b'3' | b'8' => true,
            b'4' => matches!(b[2], b'5'..=b'9'),
            b'5' => b[2] != b'4',
            b'6' => matches!(b[2], b'2' | b'5' | b'6' | b'7'),
            b'7' => matches!(b[2], b'0'..=b'8'),
            b'9' => b[2] != b'4',
            _ => false,
        };
    allocated.then_some(number)
}

/// 密级 markings (GB/T 9704: the level, a ★, then the period): 绝密★, 机密★, 秘密★. The plain
/// words are ordinary Chinese ("保守秘密"), so only the marked form counts.
fn classification_marks(text: &str) -> impl Iterator<Item = &'static str> + '_ {
    const LEVELS: [&str; 3] = ["绝密", "机密", "秘密"];
    text.match_indices('★').filter_map(move |(at, _)| {
        let before = &text[..at];
        let before = before.trim_end_matches([' ', '\u{3000}']);
        LEVELS.into_iter().find(|level| before.ends_with(level))
    })
}

/// The e-mail addresses written in `text`: words (split at spaces and the punctuation that
/// surrounds addresses in lists) with one `@`, a plain local part and a dotted domain.
fn email_addresses(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '<' | '>' | ',' | ';' | '(' | ')' | '"' | '\'' | '[' | ']' | ':'
            )
            || !c.is_ascii()
    })
    .filter(|word| {
        let Some((local, domain)) = word.split_once('@') else {
            return false;
        };
        let domain = domain.trim_end_matches('.');
        !local.is_empty()
            && local.len() <= 64
            && local
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._%+-".contains(&b))
            && domain.contains('.')
            && domain.len() <= 253
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 5).unwrap()
    }

    fn detected(text: &str) -> Vec<(Detector, String)> {
        find(text, today())
            .iter()
            .flat_map(|(d, f)| f.samples.iter().map(move |s| (d, s.clone())))
            .collect()
    }

    /// Appends the GB 11643 check character to 17 digits.
    fn with_check(first17: &str) -> String {
        (0..11u8)
            .map(|i| {
                let c = if i == 10 { 'X' } else { char::from(b'0' + i) };
                format!("{first17}{c}")
            })
            .find(|id| is_resident_id(id, today()))
            .unwrap()
    }

    #[test]
    fn resident_ids_need_province_birth_date_and_check_character() {
        // GB 11643's own example.
        assert!(is_resident_id("11010519491231002X", today()));
        let id = with_check("44030419900307451");
        assert!(is_resident_id(&id, today()));
        // One digit changed: the check character no longer fits.
        let mut wrong = id.clone().into_bytes();
        wrong[10] = if wrong[10] == b'0' { b'1' } else { b'0' };
        assert!(!is_resident_id(
            std::str::from_utf8(&wrong).unwrap(),
            today()
        ));
        // Province 99 does not exist; 31 February and a birth in the future are no dates.
        for first17 in [
            "99030419900307451",
            "44030419900231451",
            "44030420300101451",
        ] {
            for c in "0123456789X".chars() {
                assert!(!is_resident_id(&format!("{first17}{c}"), today()));
            }
        }
    }

    #[test]
    fn an_id_is_found_in_chinese_text_and_masked() {
        let id = with_check("11010119900307451");
        let text = format!("员工身份证号：{id}，请核对。");
        assert_eq!(
            detected(&text),
            [(
                Detector::ResidentId,
                format!("1101{}{}", "*".repeat(10), &id[14..])
            )]
        );
        // Part of a longer run is not an identifier.
        assert!(detected(&format!("ORDER{id}")).is_empty());
        assert!(detected(&format!("{id}7")).is_empty());
    }

    #[test]
    fn bank_cards_need_a_scheme_prefix_and_the_luhn_check() {
        let card = |text: &str| {
            digit_runs(text)
                .next()
                .is_some_and(|run| is_bank_card(&run))
        };
        assert!(card("6222021234567890128"));
        assert!(!card("6222021234567890127"));
        assert!(card("4111 1111 1111 1111"));
        // Luhn-valid but no card scheme starts so; or not grouped as cards are.
        assert!(!card("1234567812345670"));
        assert!(!card("411111 1111111111"));
        assert_eq!(
            detected("卡号 6222 0212 3456 7890 128 已冻结"),
            [(Detector::BankCard, "6222***********0128".to_owned())]
        );
    }

    #[test]
    fn mobile_numbers_need_an_allocated_prefix() {
        assert_eq!(
            detected("电话 +86 138-1234-5678 或 15912345678"),
            [
                (Detector::Mobile, "138****5678".to_owned()),
                (Detector::Mobile, "159****5678".to_owned())
            ]
        );
        // 12x and 154 are not allocated to mobiles; a US number is not grouped 3-4-4.
        assert!(detected("12012345678 15412345678 1-800-555-0199 1 800 555 0199").is_empty());
    }

    #[test]
    fn credit_codes_need_the_gb_32100_check_character() {
        // Of the 31 characters, exactly one completes a code; I, O, S, V and Z never do.
        let first17 = "91350100M000100Y4";
        let valid: Vec<String> = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
            .chars()
            .map(|c| format!("{first17}{c}"))
            .filter(|code| is_credit_code(code))
            .collect();
        assert_eq!(valid.len(), 1, "{valid:?}");
        let code = &valid[0];
        assert!(!"IOSVZ".contains(&code[17..]));
        // GB 32100's worked example: 91350100M000100Y43.
        assert_eq!(code, "91350100M000100Y43");
        assert_eq!(
            detected(&format!("统一社会信用代码：{code}")),
            [(Detector::CreditCode, "9135**********0Y43".to_owned())]
        );
    }

    #[test]
    fn passports_follow_the_e_and_g_series() {
        assert_eq!(
            detected("护照号码 E12345678 / EA1234567; not Q12345678 or EI1234567"),
            [
                (Detector::Passport, "E******78".to_owned()),
                (Detector::Passport, "E******67".to_owned())
            ]
        );
    }

    #[test]
    fn classification_needs_the_star_form() {
        assert_eq!(
            detected("机密★1年 本文件……保守秘密，不得外传。秘密 ★启用前"),
            [
                (Detector::Classification, "机密".to_owned()),
                (Detector::Classification, "秘密".to_owned())
            ]
        );
        assert!(detected("这是我们之间的秘密，绝密消息").is_empty());
    }

    #[test]
    fn distinct_identifiers_are_counted_and_a_few_kept_masked() {
        let ids: Vec<String> = (1..=5)
            .map(|n| with_check(&format!("1101011990030745{n}")))
            .collect();
        // The first written twice, in upper and lower case.
        let text = format!("{} {}", ids.join("\n"), ids[0].to_lowercase());
        let found = find(&text, today());
        let ids_found = found.get(Detector::ResidentId).unwrap();
        assert_eq!(ids_found.distinct, 5);
        assert_eq!(ids_found.samples.len(), SAMPLES_PER_DETECTOR);
        assert!(ids_found.samples.iter().all(|s| s.contains("**********")));
        assert_eq!(found.iter().count(), 1);
    }

    #[test]
    fn ordinary_digit_runs_are_not_identifiers() {
        // Timestamps, order numbers, prices, IP addresses, long hashes.
        let text = "订单号 202612051230450001 时间 20261205123045 金额 12345.67 \
                    IP 192.168.1.1 发票 0123456789012345678901234567890 编号 2026-12-05";
        assert!(detected(text).is_empty(), "{:?}", detected(text));
    }

    #[test]
    fn email_addresses_are_counted_from_lists_and_masked() {
        let text = "To: 张伟 <Zhang.Wei@corp.test>, li@corp.test; wang+x@sub.partner.test\n\
                    zhang.wei@corp.test again; not an address: a@b, @corp.test, x@-, user@host";
        let found = find(text, today());
        let emails = found.get(Detector::EmailAddress).unwrap();
        assert_eq!(emails.distinct, 3, "{emails:?}");
        assert_eq!(emails.samples[0], "z***@corp.test");
    }

    #[test]
    fn a_long_hostile_text_is_scanned_in_one_pass() {
        // Megabytes of digits and separators: every run is too long or not an identifier.
        let text = "1 2-3 ".repeat(400_000) + &"9".repeat(2_000_000);
        assert!(detected(&text).is_empty());
    }
}

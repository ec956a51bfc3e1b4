//! Finding a closer (`?=` after `=?`, `>` after `<`) for many openers in one pass. Hostile input
//! carries thousands of openers and no closer; searching the rest of the text once per opener
//! is quadratic (a Subject of 150,000 `=?a?B?x` held a scanning thread for 35 s). [`NextMatch`]
//! remembers what it found, so a text costs at most one pass whatever its openers.

/// The next occurrence of a needle at or after a position that only moves forward.
pub struct NextMatch<'a> {
    hay: &'a [u8],
    needle: &'a [u8],
    /// The last search: where it started and what it found (`None`: nothing from there on).
    last: Option<(usize, Option<usize>)>,
    /// Bytes examined so far: the work this search cost, for the scan's accounting and tests.
    pub examined: usize,
}

impl<'a> NextMatch<'a> {
    /// Searches `hay` for `needle` (not empty).
    pub fn new(hay: &'a [u8], needle: &'a [u8]) -> Self {
        Self {
            hay,
            needle,
            last: None,
            examined: 0,
        }
    }

    /// Where the needle next starts at or after `from`. Calls with non-decreasing `from` examine
    /// each byte of the haystack at most once (plus the needle's length per call).
    pub fn at_or_after(&mut self, from: usize) -> Option<usize> {
        if let Some((start, found)) = self.last
            && from >= start
        {
            match found {
                None => return None,
                Some(at) if at >= from => return Some(at),
                Some(_) => {}
            }
        }
        let start = from.min(self.hay.len());
        let found = self.hay[start..]
            .windows(self.needle.len())
            .position(|w| w == self.needle)
            .map(|p| start + p);
        self.examined += found.map_or(self.hay.len(), |at| at + self.needle.len()) - start;
        self.last = Some((start, found));
        found
    }
}

#[cfg(test)]
mod tests {
    use super::NextMatch;

    #[test]
    fn finds_each_occurrence_in_order_and_reuses_what_it_found() {
        let hay = b"a?=bb?=c";
        let mut m = NextMatch::new(hay, b"?=");
        assert_eq!(m.at_or_after(0), Some(1));
        assert_eq!(m.at_or_after(1), Some(1));
        let examined = m.examined;
        assert_eq!(m.at_or_after(0), Some(1), "answered from memory");
        assert_eq!(m.examined, examined);
        assert_eq!(m.at_or_after(2), Some(5));
        assert_eq!(m.at_or_after(6), None);
        assert_eq!(m.at_or_after(7), None);
        assert_eq!(m.at_or_after(100), None);
    }

    #[test]
    fn many_openers_without_a_closer_cost_one_pass() {
        let hay = "=?a?B?x".repeat(10_000);
        let mut m = NextMatch::new(hay.as_bytes(), b"?=");
        for from in (0..hay.len()).step_by(7) {
            assert_eq!(m.at_or_after(from), None);
        }
        assert!(m.examined <= hay.len(), "{} > {}", m.examined, hay.len());
    }
}

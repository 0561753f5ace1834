//! The failover status-code matcher (`failover_status_codes`, spec §8).
//!
//! Grammar: comma- or newline-separated tokens, each `N` or `A-B` (spaces allowed), codes
//! 100–999 with `A ≤ B`. Ranges are sorted and merged; lookup is a binary search. An empty spec
//! matches nothing.

/// Sorted, merged, inclusive status ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusMatcher {
    ranges: Vec<(u16, u16)>,
}

impl StatusMatcher {
    /// Parses a spec, or explains the first bad token.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut ranges = Vec::new();
        for token in spec.split([',', '\n']) {
            let token = token.trim();
            if token.is_empty() {
                continue;
            }
            let (a, b) = match token.split_once('-') {
                Some((a, b)) => (parse_code(a, token)?, parse_code(b, token)?),
                None => {
                    let c = parse_code(token, token)?;
                    (c, c)
                }
            };
            if a > b {
                return Err(format!("range {token:?} starts after it ends"));
            }
            ranges.push((a, b));
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
        for (a, b) in ranges {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        Ok(Self { ranges: merged })
    }

    /// Whether `status` is in any range.
    pub fn matches(&self, status: u16) -> bool {
        self.ranges
            .binary_search_by(|&(a, b)| {
                if b < status {
                    std::cmp::Ordering::Less
                } else if a > status {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_ok()
    }

    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.ranges
    }
}

fn parse_code(s: &str, token: &str) -> Result<u16, String> {
    let code: u16 = s
        .trim()
        .parse()
        .map_err(|_| format!("{token:?} is not a status code or range"))?;
    if !(100..=999).contains(&code) {
        return Err(format!(
            "status code {code} in {token:?} is outside 100-999"
        ));
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_excludes_404_only() {
        let m = StatusMatcher::parse("400-403,405-999").unwrap();
        for c in [400, 401, 403, 405, 429, 500, 503, 999] {
            assert!(m.matches(c), "{c}");
        }
        for c in [200, 204, 301, 399, 404] {
            assert!(!m.matches(c), "{c}");
        }
    }

    #[test]
    fn ranges_merge_including_adjacent_ones() {
        let m = StatusMatcher::parse(" 500 - 502 ,\n429, 503-504, 501").unwrap();
        assert_eq!(m.ranges(), &[(429, 429), (500, 504)]);
    }

    #[test]
    fn bad_specs_are_rejected_and_empty_matches_nothing() {
        assert!(StatusMatcher::parse("abc").is_err());
        assert!(StatusMatcher::parse("99").is_err());
        assert!(StatusMatcher::parse("1000").is_err());
        assert!(StatusMatcher::parse("503-500").is_err());
        let empty = StatusMatcher::parse(" , ").unwrap();
        assert!(!empty.matches(500));
    }
}

//! Exact comparison of JSON numbers.
//!
//! # The rule
//! A JSON number is compared by its exact decimal value, never through
//! `f64`: `9007199254740993` differs from `9007199254740992`, and
//! `12345678901234567890` from `12345678901234567891`, although each pair is
//! one `f64`. Spelling does not matter: `1`, `1.0`, `1e0` and `10E-1` are
//! equal, and so are `0` and `-0`.
//!
//! Only when the values differ and at least one side is written as a
//! float (it has a fraction or an exponent) may a route's tolerance accept
//! the difference: `|a − b| ≤ absolute` or `|a − b| ≤ relative × max(|a|, |b|)`,
//! computed in `f64`. Two integers are always compared exactly, whatever
//! the tolerance: an id or an amount in minor units is never "close enough".
//!
//! Each number is reduced to a sign, its significant digits (no leading or
//! trailing zeros) and a decimal exponent; two numbers are equal when these
//! are. An exponent too long to hold (more than 30 digits) is compared by
//! its spelling instead, which can only call two equal numbers different,
//! never the reverse.

/// Tolerance for numbers written as floats (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Tolerance {
    pub absolute: f64,
    pub relative: f64,
}

impl Tolerance {
    pub fn is_exact(&self) -> bool {
        self.absolute == 0.0 && self.relative == 0.0
    }
}

/// A JSON number reduced to sign, significant digits and exponent:
/// value = 0.`digits` × 10^`exponent`, negated when `negative`.
#[derive(Debug, PartialEq, Eq)]
struct Decimal<'a> {
    negative: bool,
    /// Significant digits, without leading or trailing zeros; empty for zero.
    digits: String,
    exponent: i128,
    /// The spelling, for exponents too long to hold.
    overflow: Option<&'a str>,
}

/// Whether `text` is a JSON number literal (RFC 8259 grammar, nothing around it).
pub fn is_number(text: &str) -> bool {
    split(text).is_some()
}

/// Whether a JSON number literal is written as an integer (no fraction, no exponent).
pub fn is_integer(text: &str) -> bool {
    !text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'))
}

/// Whether two JSON number literals denote the same value, or, when one
/// is written as a float, are within `tolerance`.
pub fn equal(a: &str, b: &str, tolerance: Tolerance) -> bool {
    if a == b {
        return true;
    }
    match (decimal(a), decimal(b)) {
        (Some(x), Some(y)) if x == y => return true,
        (Some(_), Some(_)) => {}
        // Not numbers: only the same spelling is equal.
        _ => return false,
    }
    if tolerance.is_exact() || (is_integer(a) && is_integer(b)) {
        return false;
    }
    let (Ok(x), Ok(y)) = (a.parse::<f64>(), b.parse::<f64>()) else {
        return false;
    };
    let delta = (x - y).abs();
    if !delta.is_finite() {
        return false;
    }
    delta <= tolerance.absolute || delta <= tolerance.relative * x.abs().max(y.abs())
}

/// The parts of a literal: sign, integer digits, fraction digits, exponent text.
fn split(text: &str) -> Option<(bool, &str, &str, &str)> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (int, rest) = rest.split_at(int_len);
    if int.is_empty() || (int.len() > 1 && int.starts_with('0')) {
        return None;
    }
    let (frac, rest) = match rest.strip_prefix('.') {
        Some(rest) => {
            let n = rest.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 {
                return None;
            }
            rest.split_at(n)
        }
        None => ("", rest),
    };
    let exp = match rest.strip_prefix(['e', 'E']) {
        Some(exp) => {
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            exp
        }
        None if rest.is_empty() => "",
        None => return None,
    };
    Some((negative, int, frac, exp))
}

fn decimal(text: &str) -> Option<Decimal<'_>> {
    let (negative, int, frac, exp) = split(text)?;
    let all: String = int.chars().chain(frac.chars()).collect();
    let leading = all.bytes().take_while(|&b| b == b'0').count();
    let digits = all[leading..].trim_end_matches('0').to_owned();
    if digits.is_empty() {
        // Zero, whatever its sign, spelling or exponent.
        return Some(Decimal {
            negative: false,
            digits,
            exponent: 0,
            overflow: None,
        });
    }
    let exp_digits = exp.trim_start_matches(['+', '-']).trim_start_matches('0');
    if exp_digits.len() > 30 {
        return Some(Decimal {
            negative,
            digits,
            exponent: 0,
            overflow: Some(exp),
        });
    }
    let mut e: i128 = exp_digits.parse().unwrap_or(0);
    if exp.starts_with('-') {
        e = -e;
    }
    // 0.digits × 10^exponent: the integer part's length moves the point.
    let exponent = e + int.len() as i128 - leading as i128;
    Some(Decimal {
        negative,
        digits,
        exponent,
        overflow: None,
    })
}

fn canonical_key(d: &Decimal<'_>) -> String {
    match d.overflow {
        Some(exp) => format!("{}0.{}e{exp}", if d.negative { "-" } else { "" }, d.digits),
        None => format!(
            "{}0.{}e{}",
            if d.negative { "-" } else { "" },
            d.digits,
            d.exponent
        ),
    }
}

/// The canonical spelling of a number literal: equal values, equal keys.
pub fn canonical(text: &str) -> String {
    match decimal(text) {
        Some(d) => canonical_key(&d),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXACT: Tolerance = Tolerance {
        absolute: 0.0,
        relative: 0.0,
    };

    #[test]
    fn integers_beyond_2_pow_53_compare_exactly() {
        assert!(!equal("9007199254740993", "9007199254740992", EXACT));
        assert!(!equal(
            "12345678901234567890",
            "12345678901234567891",
            EXACT
        ));
        assert!(!equal(
            "123456789012345678901234567890",
            "123456789012345678901234567891",
            EXACT
        ));
        assert!(equal("-9223372036854775809", "-9223372036854775809", EXACT));
    }

    #[test]
    fn the_same_value_in_another_spelling_is_equal() {
        for (a, b) in [
            ("1", "1.0"),
            ("1", "1e0"),
            ("1", "10E-1"),
            ("100", "1e2"),
            ("0", "-0"),
            ("0", "0.000e5"),
            ("0.5", "5e-1"),
            ("9007199254740993", "9007199254740993.000"),
            ("-12.50", "-1.25E+1"),
        ] {
            assert!(equal(a, b, EXACT), "{a} vs {b}");
        }
    }

    #[test]
    fn floats_that_round_to_the_same_f64_still_differ() {
        assert!(!equal("9007199254740993.0", "9007199254740992.0", EXACT));
        assert!(!equal("0.1000000000000000000001", "0.1", EXACT));
    }

    #[test]
    fn a_tolerance_applies_to_floats_only() {
        let t = Tolerance {
            absolute: 0.01,
            relative: 0.0,
        };
        assert!(equal("1.004", "1", t));
        assert!(equal("1.004", "1.0", t));
        assert!(!equal("1.02", "1", t));
        // Two integers are never "close enough".
        assert!(!equal(
            "100",
            "101",
            Tolerance {
                absolute: 5.0,
                relative: 0.0
            }
        ));
        let r = Tolerance {
            absolute: 0.0,
            relative: 1e-9,
        };
        assert!(equal("1000000.0000001", "1000000", r));
        assert!(!equal("1000000.01", "1000000", r));
    }

    #[test]
    fn huge_exponents_do_not_panic_or_collide() {
        assert!(!equal(
            "1e999999999999999999999999999",
            "1e999999999999999999999999998",
            EXACT
        ));
        assert!(equal(
            "1e99999999999999999999999999999999999",
            "1e99999999999999999999999999999999999",
            EXACT
        ));
        assert!(!equal(
            "1e99999999999999999999999999999999999",
            "1e99999999999999999999999999999999998",
            EXACT
        ));
    }

    #[test]
    fn the_grammar_is_json_s() {
        for ok in ["0", "-0", "1.5", "1e5", "1E+5", "-1.5e-5", "10"] {
            assert!(is_number(ok), "{ok}");
        }
        for bad in [
            "", "-", "01", "1.", ".5", "1e", "+1", "1e+", "0x10", " 1", "1 ", "NaN",
        ] {
            assert!(!is_number(bad), "{bad}");
        }
    }

    #[test]
    fn canonical_keys_agree_with_equality() {
        assert_eq!(canonical("1.0"), canonical("1"));
        assert_ne!(canonical("9007199254740993"), canonical("9007199254740992"));
    }
}

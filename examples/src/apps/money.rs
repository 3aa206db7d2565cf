//! Exact sums of JSON amounts: amounts are added as whole millionths, so
//! totals do not pick up binary floating-point noise (0.1 + 0.2 is 0.3).

/// An amount in millionths.
pub type Micros = i128;

/// `amount` (as a JSON number was parsed) in millionths, rounded half away from zero.
pub fn to_micros(amount: f64) -> Micros {
    if !amount.is_finite() {
        return 0;
    }
    // Display prints the shortest decimal that reads back as the same f64,
    // and never in exponent form: parse that, not the binary value.
    let text = format!("{amount}");
    let (negative, text) = match text.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, text.as_str()),
    };
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let int: i128 = int.parse().unwrap_or(0);
    let mut digits: Vec<u32> = frac.chars().filter_map(|c| c.to_digit(10)).collect();
    let round_up = digits.get(6).is_some_and(|d| *d >= 5);
    digits.resize(6, 0);
    let frac = digits.iter().fold(0i128, |acc, d| acc * 10 + i128::from(*d)) + i128::from(round_up);
    let value = int * 1_000_000 + frac;
    if negative {
        -value
    } else {
        value
    }
}

/// A decimal string: `1234.5`, `-0.25`, `7`.
pub fn format_micros(m: Micros) -> String {
    let sign = if m < 0 { "-" } else { "" };
    let abs = m.unsigned_abs();
    let (int, frac) = (abs / 1_000_000, abs % 1_000_000);
    if frac == 0 {
        format!("{sign}{int}")
    } else {
        let frac = format!("{frac:06}");
        format!("{sign}{int}.{}", frac.trim_end_matches('0'))
    }
}

/// The nearest f64, for JSON output.
pub fn micros_to_f64(m: Micros) -> f64 {
    m as f64 / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_are_exact() {
        assert_eq!(format_micros(to_micros(0.1) + to_micros(0.2)), "0.3");
        assert_eq!(micros_to_f64(to_micros(0.1) + to_micros(0.2)), 0.3);
        assert_eq!(format_micros(to_micros(1234.5)), "1234.5");
        assert_eq!(format_micros(to_micros(-0.25)), "-0.25");
        assert_eq!(format_micros(to_micros(7.0)), "7");
        assert_eq!(format_micros(to_micros(1e21)), "1000000000000000000000");
        assert_eq!(format_micros(to_micros(0.0000005)), "0.000001");
    }
}

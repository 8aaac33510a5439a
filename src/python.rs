//! Python's behaviour where ElectrumX's output or input depends on it: `int()` of a
//! string, `{:,d}`, `str()` and `repr()` of decoded JSON, truthiness, type names, and
//! ElectrumX's `util.formatted_time`. Clients and operators see these exact texts, so
//! they live in one place and every module uses the same rules.

use serde_json::Value;

/// Python's `int(text)`: surrounding whitespace, a sign, digits with single `_` between.
pub fn py_int(text: &str) -> Option<i64> {
    let PyInt { negative, digits } = py_int_text(text)?;
    let value: i64 = digits.parse().ok()?;
    Some(if negative { -value } else { value })
}

/// An integer of any size as Python holds it: a sign and its decimal digits (no leading
/// zeros; zero is "0" and never negative).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PyInt {
    pub negative: bool,
    pub digits: String,
}

impl PyInt {
    /// From a sign and decimal digits (leading zeros dropped).
    pub fn new(negative: bool, digits: &str) -> PyInt {
        let digits = digits.trim_start_matches('0');
        let digits = if digits.is_empty() { "0" } else { digits };
        PyInt {
            negative: negative && digits != "0",
            digits: digits.to_string(),
        }
    }

    /// Python's `{:,d}`.
    pub fn with_commas(&self) -> String {
        let mut out = String::with_capacity(self.digits.len() * 4 / 3 + 2);
        if self.negative {
            out.push('-');
        }
        let len = self.digits.len();
        for (i, c) in self.digits.chars().enumerate() {
            if i > 0 && (len - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    }
}

impl std::fmt::Display for PyInt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.negative {
            f.write_str("-")?;
        }
        f.write_str(&self.digits)
    }
}

/// Python's `int(text)` of any size.
fn py_int_text(text: &str) -> Option<PyInt> {
    let text = text.trim();
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    Some(PyInt::new(negative, &digits.replace('_', "")))
}

/// The exact decimal digits of a finite double's integer part (truncated toward zero),
/// as Python's `int(float)`: a double past 2^53 is an integer, printed in full.
fn float_integer_digits(f: f64) -> String {
    let f = f.abs().trunc();
    if f < 1e18 {
        return (f as u64).to_string();
    }
    // f = mantissa * 2^exponent exactly, with exponent > 0 here.
    let bits = f.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32 - 1075;
    let mantissa = (bits & ((1 << 52) - 1)) | (1 << 52);
    // Little-endian limbs of 10^9.
    const BASE: u64 = 1_000_000_000;
    let mut limbs = vec![mantissa % BASE, mantissa / BASE];
    for _ in 0..exponent {
        let mut carry = 0;
        for limb in &mut limbs {
            let doubled = *limb * 2 + carry;
            *limb = doubled % BASE;
            carry = doubled / BASE;
        }
        if carry > 0 {
            limbs.push(carry);
        }
    }
    while limbs.len() > 1 && limbs.last() == Some(&0) {
        limbs.pop();
    }
    let mut text = limbs.last().map(u64::to_string).unwrap_or_default();
    for limb in limbs.iter().rev().skip(1) {
        text.push_str(&format!("{limb:09}"));
    }
    text
}

/// Python's `int(value)` of a decoded JSON value: integers, booleans, floats truncated
/// toward zero, strings as `int(str)`; `None` where Python raises (null, lists, objects,
/// other strings). Integer literals past 64 bits reach here already rounded to a double
/// by the JSON parser, so they are exact only where the double is (2^64 is).
pub fn py_int_of(value: &Value) -> Option<PyInt> {
    match value {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Some(PyInt::new(false, &u.to_string()))
            } else if let Some(i) = n.as_i64() {
                Some(PyInt::new(i < 0, &i.unsigned_abs().to_string()))
            } else {
                let f = n.as_f64().filter(|f| f.is_finite())?;
                Some(PyInt::new(f < 0.0, &float_integer_digits(f)))
            }
        }
        Value::Bool(b) => Some(PyInt::new(false, if *b { "1" } else { "0" })),
        Value::String(s) => py_int_text(s),
        _ => None,
    }
}

/// Formats an integer with thousands separators, as Python's `{:,d}` (ElectrumX uses it
/// in error messages and the admin tables).
pub fn with_commas(n: i128) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// ElectrumX's `util.formatted_time`: days, hours and minutes, with seconds only while
/// under an hour ("1d 02h 03m", "05m 09s", "07s"). `sep` joins the parts (the sessions
/// table uses "").
pub fn formatted_time(secs: u64, sep: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut t = secs;
    for (n, suffix) in [(86_400u64, 'd'), (3600, 'h'), (60, 'm')] {
        let value = t / n;
        if !parts.is_empty() || value > 0 {
            let width = if suffix == 'd' { 0 } else { 2 };
            parts.push(format!("{value:0width$}{suffix}"));
        }
        t %= n;
    }
    if parts.len() < 3 {
        parts.push(format!("{t:02}s"));
    }
    parts.join(sep)
}

/// Python's `str()` of a decoded JSON value, for ElectrumX's messages
/// ("{value} is not a valid script hash").
pub fn py_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// Python's `repr()` of a decoded JSON value.
pub fn py_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(py_repr).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("'{k}': {}", py_repr(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

/// Python's truthiness of a decoded JSON value (`if verbose:`): false for null, false,
/// zero, and empty strings, lists and objects.
pub fn py_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

/// Python's type name of a decoded JSON value, for "returned bad result type" messages.
pub fn py_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Python's `repr()` of a string, for messages that print one (`DaemonError({...})`):
/// single quotes unless the text has a single quote and no double quote, backslash
/// escapes for the quote, backslash and control characters. Non-ASCII characters are
/// kept, except the common unprintable ones (C1 controls, separators, format
/// characters), which Python escapes too.
pub fn py_str_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_ascii() || py_printable(c) => out.push(c),
            c if (c as u32) <= 0xff => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) <= 0xffff => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push(quote);
    out
}

/// Python's `str.isprintable()` for one non-ASCII character, for the characters that
/// can plausibly appear in a daemon's message (Unicode categories Cc, Zs, Zl, Zp, Cf,
/// Co and surrogates are unprintable).
fn py_printable(c: char) -> bool {
    !matches!(c as u32,
        0x80..=0xa0
        | 0xad
        | 0x600..=0x605
        | 0x61c
        | 0x6dd
        | 0x70f
        | 0x1680
        | 0x180e
        | 0x2000..=0x200f
        | 0x2028..=0x202f
        | 0x205f..=0x206f
        | 0x3000
        | 0xe000..=0xf8ff
        | 0xfeff
        | 0xfff9..=0xfffb
        | 0xf0000..)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn int_of_json_values_is_exact_as_python() {
        let int = |v: Value| py_int_of(&v).map(|i| i.to_string());
        assert_eq!(int(json!(5)).as_deref(), Some("5"));
        assert_eq!(int(json!(-1)).as_deref(), Some("-1"));
        assert_eq!(int(json!(true)).as_deref(), Some("1"));
        // Floats truncate toward zero: int(-1.5) == -1, int(-0.5) == 0.
        assert_eq!(int(json!(1.9)).as_deref(), Some("1"));
        assert_eq!(int(json!(-1.5)).as_deref(), Some("-1"));
        assert_eq!(int(json!(-0.5)).as_deref(), Some("0"));
        assert_eq!(int(json!(" -05 ")).as_deref(), Some("-5"));
        assert_eq!(int(json!("1.5")), None);
        assert_eq!(int(json!(null)), None);
        // 2^64 (a double to serde_json) and 1e300 in full, as Python's int(1e300).
        let big: Value = serde_json::from_str("18446744073709551616").unwrap();
        assert_eq!(int(big).as_deref(), Some("18446744073709551616"));
        let huge = int(json!(1e300)).unwrap();
        assert_eq!(huge.len(), 301);
        assert!(huge.starts_with("1000000000000000052504760255204420248704468581108159154"));
        assert!(huge.ends_with("5803737830233794788090059368953234970799945081119038967640880074652742780142494579258788820056842838115669472196386865459400540160"));
        assert_eq!(int(json!(-1e19)).as_deref(), Some("-10000000000000000000"));
        assert_eq!(
            py_int_of(&json!(1e19)).unwrap().with_commas(),
            "10,000,000,000,000,000,000"
        );
    }

    #[test]
    fn ints_parse_as_python_does() {
        assert_eq!(py_int(" 12 "), Some(12));
        assert_eq!(py_int("+7"), Some(7));
        assert_eq!(py_int("-1_000"), Some(-1000));
        for bad in [
            "",
            "-",
            "+",
            "_1",
            "1_",
            "1__0",
            "0x10",
            "1.5",
            "1e3",
            "99999999999999999999",
        ] {
            assert_eq!(py_int(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn times_read_like_electrumx() {
        assert_eq!(formatted_time(0, " "), "00s");
        assert_eq!(formatted_time(7, " "), "07s");
        assert_eq!(formatted_time(309, " "), "05m 09s");
        assert_eq!(formatted_time(3600, " "), "01h 00m 00s");
        assert_eq!(formatted_time(93_784, " "), "1d 02h 03m");
        assert_eq!(formatted_time(12 * 86_400, ""), "12d00h00m");
        assert_eq!(formatted_time(2967, ""), "49m27s");
    }

    #[test]
    fn json_values_print_and_name_as_python() {
        assert_eq!(py_str(&json!("a'b")), "a'b");
        assert_eq!(py_str(&json!([null, true, "a'b"])), "[None, True, 'a\\'b']");
        assert_eq!(py_str(&json!({"k": 1})), "{'k': 1}");
        assert_eq!(py_type(&json!(1.5)), "float");
        assert_eq!(py_type(&json!(2)), "int");
        assert_eq!(py_type(&json!({})), "dict");
        assert!(!py_truthy(&json!(0.0)) && py_truthy(&json!([0])));
        assert_eq!(with_commas(-1_234_567), "-1,234,567");
    }
}

//! Python's behaviour where ElectrumX's output or input depends on it: `int()` of a
//! string, `{:,d}`, `str()` and `repr()` of decoded JSON, truthiness, type names, and
//! ElectrumX's `util.formatted_time`. Clients and operators see these exact texts, so
//! they live in one place and every module uses the same rules.

use serde_json::Value;

/// Python's `int(text)`: surrounding whitespace, a sign, digits with single `_` between.
pub fn py_int(text: &str) -> Option<i64> {
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
    let value: i64 = digits.replace('_', "").parse().ok()?;
    Some(if negative { -value } else { value })
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

//! The JSONPath subset of field mappings: where a value is read (`source_path`) and where it is
//! written (`target_path`).
//!
//! ```text
//! path  := '$' step*
//! step  := '.' name            a member:  $.customer.email
//!        | '[' "quoted" ']'    a member whose name is not a plain name:  $["first name"]
//!        | '[' digits ']'      an array element (0-based, at most MAX_INDEX):  $.lines[0]
//!        | '[*]'               every element of an array:  $.items[*].sku
//! name  := letters, digits, '_' and '-' (Unicode letters and digits too)
//! ```
//!
//! A quoted name is a JSON string (`\"`, `\\`, `\u00e9` and the other JSON escapes).  A target
//! has at least one step, and as many `[*]` as its source: the n-th `[*]` of the target takes
//! the index of the n-th `[*]` of the source, so `$.items[*].sku` → `$.lines[*].code` maps
//! each item to the line of the same index.  Parsing is one pass over the text.

/// The longest path text taken, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;
/// The most steps in a path.
pub const MAX_STEPS: usize = 32;
/// The largest array index in a path (a target index pads the array with nulls up to it).
pub const MAX_INDEX: u32 = 9_999;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(u32),
    Each,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub steps: Vec<Step>,
}

impl Path {
    /// How many `[*]` the path has.
    pub fn wildcards(&self) -> usize {
        self.steps.iter().filter(|s| **s == Step::Each).count()
    }
}

/// Why a path is not one of ours: the byte offset and what was expected there.
#[derive(Debug, PartialEq, Eq)]
pub struct PathError {
    pub at: usize,
    pub message: &'static str,
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at character {}: {}", self.at + 1, self.message)
    }
}

fn err(at: usize, message: &'static str) -> PathError {
    PathError { at, message }
}

fn name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

/// Parse a path of the subset above.
pub fn parse(text: &str) -> Result<Path, PathError> {
    if text.len() > MAX_PATH_BYTES {
        return Err(err(MAX_PATH_BYTES, "the path is longer than 1024 bytes"));
    }
    let bytes = text.as_bytes();
    if bytes.first() != Some(&b'$') {
        return Err(err(0, "a path starts with $"));
    }
    let mut steps = Vec::new();
    let mut i = 1;
    while i < bytes.len() {
        if steps.len() == MAX_STEPS {
            return Err(err(i, "a path has at most 32 steps"));
        }
        match bytes[i] {
            b'.' => {
                let start = i + 1;
                let end = text[start..]
                    .char_indices()
                    .find(|&(_, c)| !name_char(c))
                    .map_or(text.len(), |(k, _)| start + k);
                if end == start {
                    return Err(err(
                        start,
                        "expected a name after '.' (quote other names: $[\"a b\"])",
                    ));
                }
                steps.push(Step::Key(text[start..end].to_string()));
                i = end;
            }
            b'[' => {
                let start = i + 1;
                match bytes.get(start) {
                    Some(b'*') => {
                        if bytes.get(start + 1) != Some(&b']') {
                            return Err(err(start + 1, "expected ']' after '[*'"));
                        }
                        steps.push(Step::Each);
                        i = start + 2;
                    }
                    Some(b'0'..=b'9') => {
                        let end = bytes[start..]
                            .iter()
                            .position(|b| !b.is_ascii_digit())
                            .map_or(bytes.len(), |k| start + k);
                        if bytes.get(end) != Some(&b']') {
                            return Err(err(end, "expected ']' after an index"));
                        }
                        let index = text[start..end]
                            .parse::<u32>()
                            .ok()
                            .filter(|n| *n <= MAX_INDEX)
                            .ok_or_else(|| err(start, "an index is at most 9999"))?;
                        steps.push(Step::Index(index));
                        i = end + 1;
                    }
                    Some(b'"') => {
                        let (name, end) = quoted(text, start)?;
                        if bytes.get(end) != Some(&b']') {
                            return Err(err(end, "expected ']' after a quoted name"));
                        }
                        steps.push(Step::Key(name));
                        i = end + 1;
                    }
                    _ => {
                        return Err(err(
                            start,
                            "expected an index, * or a quoted name after '['",
                        ))
                    }
                }
            }
            _ => return Err(err(i, "expected '.' or '[' (or the end of the path)")),
        }
    }
    Ok(Path { steps })
}

/// A JSON string starting at `start` (its opening quote): the name and the offset after it.
fn quoted(text: &str, start: usize) -> Result<(String, usize), PathError> {
    let bytes = text.as_bytes();
    let mut k = start + 1;
    while k < bytes.len() {
        match bytes[k] {
            b'\\' => k += 2,
            b'"' => {
                let name: String = serde_json::from_str(&text[start..=k])
                    .map_err(|_| err(start, "not a valid JSON string"))?;
                if name.contains('\0') {
                    // jsonb cannot hold it: a key with one would not survive a dump.
                    return Err(err(start, "a name cannot hold \\u0000"));
                }
                return Ok((name, k + 1));
            }
            _ => k += 1,
        }
    }
    Err(err(start, "an unterminated quoted name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Step {
        Step::Key(s.into())
    }

    #[test]
    fn the_subset() {
        assert_eq!(parse("$").unwrap().steps, vec![]);
        assert_eq!(parse("$.a.b").unwrap().steps, vec![key("a"), key("b")]);
        assert_eq!(
            parse("$.items[*].sku").unwrap().steps,
            vec![key("items"), Step::Each, key("sku")]
        );
        assert_eq!(
            parse("$.a[0][12]").unwrap().steps,
            vec![key("a"), Step::Index(0), Step::Index(12)]
        );
        assert_eq!(
            parse(r#"$["first name"]["a\"b"].x-y_z"#).unwrap().steps,
            vec![key("first name"), key("a\"b"), key("x-y_z")]
        );
        assert_eq!(parse("$.straße").unwrap().steps, vec![key("straße")]);
        assert_eq!(parse(r#"$["\u00e9"]"#).unwrap().steps, vec![key("é")]);
        assert_eq!(parse("$.a[*][*]").unwrap().wildcards(), 2);
    }

    #[test]
    fn what_is_refused_and_where() {
        for (text, at) in [
            ("", 0),
            ("a.b", 0),
            ("$.", 2),
            ("$..a", 2),
            ("$.a b", 3),
            ("$a", 1),
            ("$[", 2),
            ("$[-1]", 2),
            ("$[1", 3),
            ("$[10000]", 2),
            ("$[99999999999999999999]", 2),
            ("$[*", 3),
            ("$[\"a]", 2),
            ("$[\"a\"", 5),
            ("$[\"\\q\"]", 2),
            ("$.a[?(@.b)]", 4),
            ("$.*", 2),
            (r#"$["a\u0000"]"#, 2),
        ] {
            assert_eq!(parse(text).map_err(|e| e.at), Err(at), "{text}");
        }
        assert!(parse(&format!("${}", ".a".repeat(32))).is_ok());
        assert!(parse(&format!("${}", ".a".repeat(33))).is_err());
        assert!(parse(&format!("$.{}", "a".repeat(1100))).is_err());
    }
}

//! Argo Rollouts writes metric conditions in expr-lang (`result[0] >= 0.95 and len(result) > 0`);
//! fledge in CEL (`result[0] >= 0.95 && size(result) > 0`). The common forms translate word for
//! word; what does not is reported so a person checks it.

/// The CEL form of an expr-lang condition, or why it could not be translated.
pub fn to_cel(expr: &str) -> Result<String, String> {
    let mut out = String::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        // Strings pass through as they are; both languages quote with ' and ".
        if c == '\'' || c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i = (i + 1).min(chars.len());
            out.extend(&chars[start..i]);
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace()).copied();
            let previous = out.trim_end().chars().last();
            let member = previous == Some('.');
            let call = next == Some('(');
            let replaced = match word.as_str() {
                _ if member => word.clone(),
                "and" => "&&".into(),
                "or" => "||".into(),
                "not" => "!".into(),
                "nil" => "null".into(),
                "len" if call => "size".into(),
                "asInt" if call => "int".into(),
                "asFloat" if call => "double".into(),
                "isNaN" | "isInf" | "all" | "any" | "none" | "one" | "filter" | "map" | "count"
                | "default" | "matches"
                    if call =>
                {
                    return Err(format!(
                        "{word}() has no direct CEL equivalent: write the condition in CEL"
                    ));
                }
                _ => word.clone(),
            };
            out.push_str(&replaced);
            continue;
        }
        if c == '#' {
            return Err("`#` (expr-lang's element in a predicate) has no CEL equivalent".into());
        }
        out.push(c);
        i += 1;
    }
    // `not x` became `! x`: keep it tidy.
    Ok(out.replace("! ", "!"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_the_common_forms() {
        for (expr, cel) in [
            ("result[0] >= 0.95", "result[0] >= 0.95"),
            (
                "len(result) > 0 and result[0] < 5",
                "size(result) > 0 && result[0] < 5",
            ),
            (
                "result == 'true' or not (result > 1)",
                "result == 'true' || !(result > 1)",
            ),
            ("asInt(result) == 0", "int(result) == 0"),
            ("result.and == 'or'", "result.and == 'or'"),
            ("result != nil", "result != null"),
        ] {
            assert_eq!(to_cel(expr).as_deref(), Ok(cel), "{expr}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_translate() {
        assert!(to_cel("all(result, # > 0.9)").is_err());
        assert!(to_cel("isNaN(result)").unwrap_err().contains("isNaN()"));
    }
}

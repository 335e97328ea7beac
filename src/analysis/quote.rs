//! Where an `{{args.NAME}}` stands, and how its value is written there so that it stays one
//! value: a CEL literal, an escaped PromQL string or a plain PromQL token, a percent-encoded
//! URL component, an escaped JSON string. An argument may carry any text (a label of the
//! Rollout, a Secret); it must never change the structure of a condition, a query or a URL.
//! Pure.

use std::ops::Range;

/// The language of a metric field, by its path in the metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// `successCondition`, `failureCondition`.
    Cel,
    /// `provider.prometheus.query`.
    PromQl,
    /// `provider.web.url`, `provider.prometheus.address`.
    Url,
    /// A header's value.
    HeaderValue,
    /// A header's name.
    HeaderName,
    /// `provider.web.body`: JSON when it starts with `{` or `[`, else text.
    Body,
    /// `provider.web.jsonPath`.
    JsonPath,
    /// Anything under `provider.job`: written into a Job.
    Job,
    /// A query in a language fledge does not parse (Graphite, InfluxQL, Flux, Datadog's, NRQL,
    /// CloudWatch's metric math).
    Query,
    /// `count` and the limits: a whole number.
    Count,
    /// `interval`, `initialDelay`: a duration.
    Duration,
    /// Other fields (durations, names): checked by their own rules after substitution.
    Text,
}

impl Field {
    pub fn of(path: &str) -> Field {
        let header = |p: &str| {
            (p.starts_with("provider.web.headers[")
                || p.starts_with("provider.prometheus.headers[")
                || p.starts_with("provider.graphite.headers["))
            .then(|| p.rsplit('.').next().unwrap_or_default().to_string())
        };
        match path {
            "successCondition" | "failureCondition" => Field::Cel,
            "count" | "failureLimit" | "inconclusiveLimit" | "consecutiveErrorLimit" => {
                Field::Count
            }
            "interval" | "initialDelay" => Field::Duration,
            "provider.prometheus.query" => Field::PromQl,
            "provider.web.url"
            | "provider.prometheus.address"
            | "provider.graphite.address"
            | "provider.influxdb.address"
            | "provider.datadog.address"
            | "provider.newRelic.address"
            | "provider.cloudWatch.address" => Field::Url,
            "provider.graphite.query"
            | "provider.influxdb.query"
            | "provider.datadog.query"
            | "provider.newRelic.query" => Field::Query,
            // Dimension values, expressions and labels go into a signed form body, where any
            // text stays one value; only an expression is a language fledge cannot quote in.
            p if p.starts_with("provider.cloudWatch.metricDataQueries[")
                && p.ends_with(".expression") =>
            {
                Field::Query
            }
            p if p.starts_with("provider.datadog.queries.") => Field::Query,
            "provider.web.body" => Field::Body,
            "provider.web.jsonPath" => Field::JsonPath,
            p if p.starts_with("provider.job") => Field::Job,
            p => match header(p).as_deref() {
                Some("value") => Field::HeaderValue,
                Some("key") => Field::HeaderName,
                _ => Field::Text,
            },
        }
    }
}

/// Where one placeholder stands within its field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spot {
    /// Raw text.
    Text,
    /// CEL code: the value becomes a literal.
    CelCode,
    /// Inside a CEL string with this quote (`'`, `"`, `'''`, `"""`); `raw` for `r'...'`.
    CelString { quote: &'static str, raw: bool },
    /// PromQL outside any string: a number, a duration or a name only.
    PromCode,
    /// Inside a PromQL string quoted with this character.
    PromString(char),
    /// The URL starts with the value: an http(s) URL. `more` when the template goes on after it.
    UrlBase { more: bool },
    /// Between `://` and the path: a host and port.
    UrlHost,
    /// Path, query or fragment: percent-encoded.
    UrlComponent,
    /// A header value.
    HeaderValue,
    /// A header name.
    HeaderName,
    /// JSON outside a string: a number or boolean as is, anything else a JSON string.
    JsonCode,
    /// Inside a JSON string.
    JsonString,
    /// JSONPath outside quotes: a name or an index only.
    PathCode,
    /// Inside a JSONPath string with this quote.
    PathString(char),
    /// Written into a Job: never a Secret's value.
    Job,
    /// In a query fledge cannot quote in: a name, a number or a duration only.
    QueryToken,
    /// A whole-number field: the value must be one.
    Count,
    /// A duration field: the value must be one.
    Duration,
}

/// The spot of each placeholder (given by its range in `text`), scanning `text` as `field`.
/// Placeholders are opaque to the scan: what a value holds never changes where the next one
/// stands.
pub fn spots(field: Field, text: &str, placeholders: &[Range<usize>]) -> Vec<Spot> {
    match field {
        Field::Cel => scan(text, placeholders, Lang::Cel),
        Field::PromQl => scan(text, placeholders, Lang::PromQl),
        Field::JsonPath => scan(text, placeholders, Lang::JsonPath),
        Field::Body if matches!(text.trim_start().chars().next(), Some('{' | '[')) => {
            scan(text, placeholders, Lang::Json)
        }
        Field::Url => url_spots(text, placeholders),
        Field::HeaderValue => vec![Spot::HeaderValue; placeholders.len()],
        Field::HeaderName => vec![Spot::HeaderName; placeholders.len()],
        Field::Job => vec![Spot::Job; placeholders.len()],
        Field::Query => vec![Spot::QueryToken; placeholders.len()],
        Field::Count => vec![Spot::Count; placeholders.len()],
        Field::Duration => vec![Spot::Duration; placeholders.len()],
        Field::Body | Field::Text => vec![Spot::Text; placeholders.len()],
    }
}

/// Lexer state: code, or inside a string (its closing quote, raw or not), or a comment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lex {
    Code,
    Str(&'static str, bool),
    Comment,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lang {
    Cel,
    PromQl,
    Json,
    JsonPath,
}

/// Lexes `text` outside the placeholders; the state at each placeholder gives its spot.
fn scan(text: &str, placeholders: &[Range<usize>], lang: Lang) -> Vec<Spot> {
    // `step(text, at, state)` gives the next state and how many bytes it read.
    let step = match lang {
        Lang::Cel => cel_step,
        Lang::PromQl => promql_step,
        Lang::Json => json_step,
        Lang::JsonPath => jsonpath_step,
    };
    let mut out = Vec::new();
    let mut state = Lex::Code;
    let mut at = 0;
    let mut next = placeholders.iter().peekable();
    while at < text.len() {
        if let Some(p) = next.peek()
            && p.start == at
        {
            out.push(spot_of(lang, state));
            at = p.end;
            next.next();
            continue;
        }
        let (s, n) = step(text, at, state);
        state = s;
        at += n.max(1);
        while !text.is_char_boundary(at) {
            at += 1;
        }
    }
    // Placeholders at the very end (or past a scan that ended early).
    for _ in next {
        out.push(spot_of(lang, state));
    }
    out
}

fn spot_of(lang: Lang, state: Lex) -> Spot {
    let cel = lang == Lang::Cel;
    let promql = lang == Lang::PromQl;
    let json = lang == Lang::Json;
    match state {
        Lex::Code | Lex::Comment if cel => Spot::CelCode,
        Lex::Code | Lex::Comment if promql => Spot::PromCode,
        Lex::Code | Lex::Comment if json => Spot::JsonCode,
        Lex::Code | Lex::Comment => Spot::PathCode,
        Lex::Str(quote, raw) if cel => Spot::CelString { quote, raw },
        Lex::Str(quote, _) if promql => Spot::PromString(quote.chars().next().unwrap_or('"')),
        Lex::Str(_, _) if json => Spot::JsonString,
        Lex::Str(quote, _) => Spot::PathString(quote.chars().next().unwrap_or('\'')),
    }
}

fn quote_at(text: &str, at: usize, quotes: &[&'static str]) -> Option<&'static str> {
    quotes.iter().copied().find(|q| text[at..].starts_with(q))
}

/// A string's end, or an escape (two bytes) inside it.
fn in_string(text: &str, at: usize, quote: &'static str, raw: bool) -> (Lex, usize) {
    if !raw && text[at..].starts_with('\\') {
        return (Lex::Str(quote, raw), 2);
    }
    if text[at..].starts_with(quote) {
        return (Lex::Code, quote.len());
    }
    (Lex::Str(quote, raw), 1)
}

fn cel_step(text: &str, at: usize, state: Lex) -> (Lex, usize) {
    match state {
        Lex::Str(q, raw) => in_string(text, at, q, raw),
        Lex::Comment if text[at..].starts_with('\n') => (Lex::Code, 1),
        Lex::Comment => (Lex::Comment, 1),
        Lex::Code if text[at..].starts_with("//") => (Lex::Comment, 2),
        Lex::Code => match quote_at(text, at, &["'''", "\"\"\"", "'", "\""]) {
            Some(q) => {
                // `r'...'`, `R"..."`, `br'...'`: the letters just before the quote.
                let prefix: String = text[..at]
                    .chars()
                    .rev()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let raw = prefix.len() <= 2
                    && prefix.chars().all(|c| "rRbB".contains(c))
                    && prefix.chars().any(|c| "rR".contains(c));
                (Lex::Str(q, raw), q.len())
            }
            None => (Lex::Code, 1),
        },
    }
}

fn promql_step(text: &str, at: usize, state: Lex) -> (Lex, usize) {
    match state {
        Lex::Str("`", _) => in_string(text, at, "`", true),
        Lex::Str(q, raw) => in_string(text, at, q, raw),
        Lex::Comment if text[at..].starts_with('\n') => (Lex::Code, 1),
        Lex::Comment => (Lex::Comment, 1),
        Lex::Code if text[at..].starts_with('#') => (Lex::Comment, 1),
        Lex::Code => match quote_at(text, at, &["\"", "'", "`"]) {
            Some(q) => (Lex::Str(q, q == "`"), 1),
            None => (Lex::Code, 1),
        },
    }
}

fn json_step(text: &str, at: usize, state: Lex) -> (Lex, usize) {
    match state {
        Lex::Str(q, raw) => in_string(text, at, q, raw),
        _ if text[at..].starts_with('"') => (Lex::Str("\"", false), 1),
        _ => (Lex::Code, 1),
    }
}

fn jsonpath_step(text: &str, at: usize, state: Lex) -> (Lex, usize) {
    match state {
        Lex::Str(q, raw) => in_string(text, at, q, raw),
        _ => match quote_at(text, at, &["'", "\""]) {
            Some(q) => (Lex::Str(q, false), 1),
            None => (Lex::Code, 1),
        },
    }
}

/// URL spots, from the literal text before each placeholder: at the very start the value is the
/// URL's base; between `://` and the first `/`, `?` or `#` it is the host; after, a component.
fn url_spots(text: &str, placeholders: &[Range<usize>]) -> Vec<Spot> {
    let mut out = Vec::new();
    // What the literal text so far says: 0 before `://`, 1 in the authority, 2 after it.
    let mut part = 0;
    let mut done = 0;
    let mut literal = String::new();
    for p in placeholders {
        literal.push_str(&text[done..p.start]);
        done = p.end;
        if part == 0
            && let Some(i) = literal.find("://")
        {
            part = 1;
            literal.drain(..i + 3);
        }
        if part == 1 && literal.contains(['/', '?', '#']) {
            part = 2;
        }
        out.push(match part {
            0 if literal.is_empty() && out.is_empty() => {
                // The base gives scheme and host; what follows it is the path.
                part = 2;
                Spot::UrlBase {
                    more: p.end < text.len(),
                }
            }
            0 | 1 => Spot::UrlHost,
            _ => Spot::UrlComponent,
        });
    }
    out
}

/// Why a value cannot stand where it is, without the value (it may be a Secret).
pub type Refusal = String;

/// The text to put in place of a placeholder for `value` at `spot`. `None` is a value not known
/// yet (a lint before the Rollout gives it): a stand-in that is valid wherever it stands.
pub fn write(spot: Spot, value: Option<&str>, secret: bool) -> Result<String, Refusal> {
    if spot == Spot::Job && secret {
        return Err(
            "comes from a Secret and would be written into the Job's spec, where anyone \
                    who can read Jobs sees it: give the Job the Secret through its container's \
                    env valueFrom.secretKeyRef instead"
                .into(),
        );
    }
    let Some(v) = value else {
        return Ok(match spot {
            Spot::UrlBase { .. } => "http://placeholder.invalid".into(),
            Spot::UrlHost => "placeholder.invalid".into(),
            // A stand-in that passes the field's own checks (0 would be "no end").
            Spot::Count => "1".into(),
            Spot::Duration => "1s".into(),
            _ => super::args::PLACEHOLDER.into(),
        });
    };
    match spot {
        Spot::Text | Spot::Job => Ok(v.to_string()),
        Spot::CelCode => Ok(cel_literal(v)),
        Spot::CelString { quote, raw: false } => Ok(escape_c_like(v, quote)),
        Spot::CelString { quote, raw: true } => {
            let q = quote.chars().next().unwrap_or('"');
            if v.contains(q) || (quote.len() == 1 && v.contains(['\n', '\r'])) {
                Err(format!(
                    "stands in a raw string (r{quote}...{quote}) of the condition and holds a \
                     {q} or a line break, which a raw string cannot escape: use a normal string"
                ))
            } else {
                Ok(v.to_string())
            }
        }
        Spot::PromString('`') => {
            if v.contains('`') {
                Err(
                    "stands in a `...` string of the query and holds a `, which such a \
                     string cannot escape: use \"...\""
                        .into(),
                )
            } else {
                Ok(v.to_string())
            }
        }
        Spot::PromString(q) => Ok(escape_c_like(v, if q == '\'' { "'" } else { "\"" })),
        Spot::PromCode => {
            if promql_token(v) {
                Ok(v.to_string())
            } else {
                Err(
                    "stands outside quotes in the query, where only a number, a duration (like \
                     5m) or a metric or label name may stand, and its value is none of those: \
                     put it in a quoted label matcher (label=\"{{args.NAME}}\") to use any text"
                        .into(),
                )
            }
        }
        Spot::QueryToken => {
            if query_token(v) {
                Ok(v.to_string())
            } else {
                Err(
                    "stands in a query whose quoting fledge does not know, where only a name, \
                     a number or a duration may stand (letters, digits and . _ - : /), and its \
                     value holds something else"
                        .into(),
                )
            }
        }
        Spot::Count => match v.trim().parse::<u32>() {
            Ok(n) if i32::try_from(n).is_ok() => Ok(n.to_string()),
            _ => Err("is not a whole number of at least 0, which this field takes".into()),
        },
        Spot::Duration => match crate::api::duration::parse(v.trim()) {
            Ok(_) => Ok(v.trim().to_string()),
            Err(_) => Err(
                "is not a duration (a number and a unit s, m or h, like 30s, 5m, 1h30m), which \
                 this field takes"
                    .into(),
            ),
        },
        Spot::UrlBase { more } => url_base(v, more).map(|()| v.to_string()),
        Spot::UrlHost => {
            if url_host(v) {
                Ok(v.to_string())
            } else {
                Err(
                    "stands in the host of the URL, where only a host name, an address and a \
                     port may stand"
                        .into(),
                )
            }
        }
        Spot::UrlComponent => Ok(percent_encode(v)),
        Spot::HeaderValue => {
            if v.chars().any(|c| c.is_control() && c != '\t') {
                Err(
                    "holds a line break or another control character, which a header value \
                     cannot"
                        .into(),
                )
            } else {
                Ok(v.to_string())
            }
        }
        Spot::HeaderName => {
            if !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            {
                Ok(v.to_string())
            } else {
                Err("is not a valid header name".into())
            }
        }
        Spot::JsonCode => Ok(match serde_json::from_str::<serde_json::Value>(v) {
            Ok(serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => v.trim().to_string(),
            _ => serde_json::Value::String(v.to_string()).to_string(),
        }),
        Spot::JsonString => {
            let quoted = serde_json::Value::String(v.to_string()).to_string();
            Ok(quoted[1..quoted.len() - 1].to_string())
        }
        Spot::PathCode => {
            if !v.is_empty()
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                Ok(v.to_string())
            } else {
                Err(
                    "stands outside quotes in jsonPath, where only a name or an index may \
                     stand: quote it (['{{args.NAME}}']) to use any text"
                        .into(),
                )
            }
        }
        Spot::PathString(q) => Ok(escape_c_like(v, if q == '\'' { "'" } else { "\"" })),
    }
}

/// A number (`0.99`, `-5`, `1e3`) or `true`/`false` as is, anything else a quoted string: a
/// literal in every case, so `0 || true` is the string "0 || true", not an expression.
fn cel_literal(v: &str) -> String {
    let number = regex_number(v);
    if number && v.starts_with(['-', '+']) {
        format!("({v})")
    } else if number || v == "true" || v == "false" {
        v.to_string()
    } else {
        format!("\"{}\"", escape_c_like(v, "\""))
    }
}

fn regex_number(v: &str) -> bool {
    let v = v.strip_prefix(['-', '+']).unwrap_or(v);
    let (mantissa, exponent) = match v.find(['e', 'E']) {
        Some(i) => (&v[..i], Some(&v[i + 1..])),
        None => (v, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => digits(int) && digits(frac),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

/// Backslash escapes for a string closed by `quote`: the backslash, the quote, line breaks and
/// other control characters (as `\uXXXX`, which CEL, PromQL and JSONPath all read).
fn escape_c_like(v: &str, quote: &str) -> String {
    let q = quote.chars().next().unwrap_or('"');
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

const PROMQL_KEYWORDS: [&str; 13] = [
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "atan2",
    "@",
];

/// A number, a duration (`5m`, `1h30m`) or a name (`http_requests_total`), not a keyword.
/// A value that cannot end a string, open a call or start another clause in any query language:
/// metric and tag names (`app.errors`, `service:checkout`, `eu-west-1/web`), numbers, durations.
fn query_token(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:/".contains(&b))
}

fn promql_token(v: &str) -> bool {
    if regex_number(v) {
        return true;
    }
    let duration = {
        let mut rest = v;
        let mut ok = !v.is_empty();
        while ok && !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let unit = ["ms", "s", "m", "h", "d", "w", "y"]
                .into_iter()
                .find(|u| rest[digits..].starts_with(u));
            match unit {
                Some(u) if digits > 0 => rest = &rest[digits + u.len()..],
                _ => ok = false,
            }
        }
        ok
    };
    let name = v
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        && !PROMQL_KEYWORDS.contains(&v.to_ascii_lowercase().as_str());
    duration || name
}

fn url_base(v: &str, more: bool) -> Result<(), Refusal> {
    let refuse = || {
        Err(
            "gives the start of the URL, so it must be an http:// or https:// URL (with no ? \
             or # when the URL goes on after it)"
                .to_string(),
        )
    };
    match reqwest::Url::parse(v) {
        Ok(u)
            if ["http", "https"].contains(&u.scheme())
                && u.host().is_some()
                && !(more && (v.contains('?') || v.contains('#'))) =>
        {
            Ok(())
        }
        _ => refuse(),
    }
}

fn url_host(v: &str) -> bool {
    let (host, port) = match v.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
        _ => (v, None),
    };
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(ip6) => ip6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        }
    };
    host_ok && port.is_none_or(|p| !p.is_empty())
}

/// Every byte but the unreserved ones (`A-Z a-z 0-9 - . _ ~`) as `%XX`: the value is one path
/// segment or query value, whatever `/`, `?`, `&` or `#` it holds.
pub fn percent_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(field: Field, text: &str) -> Vec<Spot> {
        let mut ranges = Vec::new();
        let mut from = 0;
        while let Some(s) = text[from..].find("{{") {
            let s = from + s;
            let e = s + text[s..].find("}}").unwrap() + 2;
            ranges.push(s..e);
            from = e;
        }
        spots(field, text, &ranges)
    }

    #[test]
    fn finds_where_each_placeholder_stands() {
        assert_eq!(
            at(
                Field::Cel,
                r#"result >= {{a}} && result.s == '{{b}}' && r"{{c}}" != '''x{{d}}'''"#
            ),
            [
                Spot::CelCode,
                Spot::CelString {
                    quote: "'",
                    raw: false
                },
                Spot::CelString {
                    quote: "\"",
                    raw: true
                },
                Spot::CelString {
                    quote: "'''",
                    raw: false
                },
            ]
        );
        assert_eq!(
            at(
                Field::PromQl,
                "rate(x{a=\"{{a}}\", b='\\'{{b}}'}[{{c}}]) # \"{{d}}\n > `{{e}}`"
            ),
            [
                Spot::PromString('"'),
                Spot::PromString('\''),
                Spot::PromCode,
                Spot::PromCode,
                Spot::PromString('`'),
            ]
        );
        assert_eq!(
            at(Field::Url, "{{a}}/api/{{b}}?q={{c}}"),
            [
                Spot::UrlBase { more: true },
                Spot::UrlComponent,
                Spot::UrlComponent
            ]
        );
        assert_eq!(
            at(Field::Url, "http://{{a}}:9090/x/{{b}}"),
            [Spot::UrlHost, Spot::UrlComponent]
        );
        assert_eq!(
            at(Field::Body, r#"{"a": {{a}}, "b": "x{{b}}"}"#),
            [Spot::JsonCode, Spot::JsonString]
        );
        assert_eq!(at(Field::Body, "a={{a}}"), [Spot::Text]);
    }

    #[test]
    fn hostile_values_stay_one_value() {
        let cel = |v| write(Spot::CelCode, Some(v), false).unwrap();
        assert_eq!(cel("0.99"), "0.99");
        assert_eq!(cel("-1"), "(-1)");
        assert_eq!(cel("0 || true"), "\"0 || true\"");
        assert_eq!(cel("\" || true || \""), r#""\" || true || \"""#);
        let in_single = Spot::CelString {
            quote: "'",
            raw: false,
        };
        assert_eq!(
            write(in_single, Some("x' || 'a"), false).unwrap(),
            "x\\' || \\'a"
        );
        let prom = write(Spot::PromString('"'), Some("x\"} or vector(1) #\\"), false).unwrap();
        assert_eq!(prom, "x\\\"} or vector(1) #\\\\");
        for ok in ["5m", "1h30m", "0.5", "-2", "http_requests_total", "le"] {
            assert!(write(Spot::PromCode, Some(ok), false).is_ok(), "{ok}");
        }
        for bad in ["1) or vector(1", "x{a=\"b\"}", "or", "", "5m]"] {
            assert!(write(Spot::PromCode, Some(bad), false).is_err(), "{bad}");
        }
        assert_eq!(
            write(Spot::UrlComponent, Some("a/b?c=d&e#f g"), false).unwrap(),
            "a%2Fb%3Fc%3Dd%26e%23f%20g"
        );
        assert!(write(Spot::UrlHost, Some("evil.example/x?"), false).is_err());
        assert!(write(Spot::UrlHost, Some("user@evil.example"), false).is_err());
        assert!(write(Spot::UrlHost, Some("prom.monitoring:9090"), false).is_ok());
        assert!(write(Spot::UrlBase { more: false }, Some("http://h/x?y=1"), false).is_ok());
        assert!(write(Spot::UrlBase { more: true }, Some("http://h/x?y=1"), false).is_err());
        assert!(
            write(
                Spot::UrlBase { more: false },
                Some("file:///etc/passwd"),
                false
            )
            .is_err()
        );
        assert!(write(Spot::HeaderValue, Some("a\r\nX-Evil: 1"), false).is_err());
        assert_eq!(
            write(Spot::JsonString, Some("a\",\"admin\":true,\"b\":\""), false).unwrap(),
            "a\\\",\\\"admin\\\":true,\\\"b\\\":\\\""
        );
        assert_eq!(write(Spot::JsonCode, Some("12"), false).unwrap(), "12");
        assert_eq!(
            write(Spot::JsonCode, Some("1, \"x\": 2"), false).unwrap(),
            "\"1, \\\"x\\\": 2\""
        );
        assert!(write(Spot::PathCode, Some("a || @"), false).is_err());
        assert!(write(Spot::Job, Some("s3cret"), true).is_err());
        assert!(write(Spot::Job, None, true).is_err());
        assert_eq!(write(Spot::Job, Some("v1"), false).unwrap(), "v1");
    }
}

//! Structural checks of an object against a CRD's OpenAPI v3 schema, as the API server makes them
//! at admission: types, required fields, unknown fields (kubectl's strict field validation),
//! ranges, lengths, patterns, enums and date-times. CEL rules are checked by kube's client-side
//! evaluator (see [`super::lint`]).

use serde_json::Value;

/// One problem: field path and message.
pub type Found = (String, String);

/// Checks `value` at `path` against `schema`, appending what is wrong to `out`.
pub fn check(schema: &Value, value: &Value, path: &str, out: &mut Vec<Found>) {
    let mut bad = |message: String| out.push((path.to_string(), message));
    if value.is_null() {
        if schema["nullable"] != true {
            bad("must not be null".into());
        }
        return;
    }
    if schema["x-kubernetes-int-or-string"] == true {
        // A pattern holds for the string form, a minimum for the number form.
        match value {
            Value::String(s) => check_string(schema, s, path, out),
            Value::Number(n) if value.is_i64() || value.is_u64() => {
                check_number(schema, n, path, out)
            }
            _ => bad(format!(
                "must be an integer or a string, not {}",
                type_name(value)
            )),
        }
        return;
    }
    if let Some(all) = schema["allOf"].as_array() {
        for s in all {
            check(s, value, path, out);
        }
    }
    let Some(ty) = schema["type"].as_str() else {
        return;
    };
    let ok = match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    };
    if !ok {
        out.push((
            path.to_string(),
            format!("must be {} {ty}, not {}", article(ty), type_name(value)),
        ));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
        out.push((
            path.to_string(),
            format!("{value} is not one of {}", list.join(", ")),
        ));
    }
    match value {
        Value::String(s) => check_string(schema, s, path, out),
        Value::Number(n) => check_number(schema, n, path, out),
        Value::Array(items) => {
            if let Some(max) = schema["maxItems"].as_u64()
                && items.len() as u64 > max
            {
                out.push((path.to_string(), format!("must have at most {max} items")));
            }
            if let Some(min) = schema["minItems"].as_u64()
                && (items.len() as u64) < min
            {
                out.push((path.to_string(), format!("must have at least {min} items")));
            }
            for (i, item) in items.iter().enumerate() {
                check(&schema["items"], item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => check_object(schema, map, path, out),
        _ => {}
    }
}

fn check_number(schema: &Value, n: &serde_json::Number, path: &str, out: &mut Vec<Found>) {
    let n = n.as_f64().unwrap_or_default();
    if let Some(min) = schema["minimum"].as_f64()
        && n < min
    {
        out.push((path.to_string(), format!("must be at least {min}, not {n}")));
    }
    if let Some(max) = schema["maximum"].as_f64()
        && n > max
    {
        out.push((path.to_string(), format!("must be at most {max}, not {n}")));
    }
}

fn check_string(schema: &Value, s: &str, path: &str, out: &mut Vec<Found>) {
    let len = s.chars().count() as u64;
    if let Some(min) = schema["minLength"].as_u64()
        && len < min
    {
        let what = if min == 1 {
            "must not be empty".to_string()
        } else {
            format!("must be at least {min} characters long")
        };
        out.push((path.to_string(), what));
    }
    if let Some(max) = schema["maxLength"].as_u64()
        && len > max
    {
        out.push((
            path.to_string(),
            format!("must be at most {max} characters long"),
        ));
    }
    if let Some(pattern) = schema["pattern"].as_str() {
        match regex::Regex::new(pattern) {
            Ok(re) if !re.is_match(s) => out.push((
                path.to_string(),
                format!("{s:?} does not match the pattern {pattern}"),
            )),
            _ => {}
        }
    }
    if schema["format"] == "date-time" && s.parse::<k8s_openapi::jiff::Timestamp>().is_err() {
        out.push((
            path.to_string(),
            format!("{s:?} is not an RFC 3339 time like 2026-01-02T15:04:05Z"),
        ));
    }
}

fn check_object(
    schema: &Value,
    map: &serde_json::Map<String, Value>,
    path: &str,
    out: &mut Vec<Found>,
) {
    let child = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    if let Some(required) = schema["required"].as_array() {
        for key in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(key) {
                out.push((child(key), "required field is missing".into()));
            }
        }
    }
    if let Some(max) = schema["maxProperties"].as_u64()
        && map.len() as u64 > max
    {
        out.push((path.to_string(), format!("must have at most {max} entries")));
    }
    let properties = schema["properties"].as_object();
    let additional = &schema["additionalProperties"];
    let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
    for (key, v) in map {
        if let Some(s) = properties.and_then(|p| p.get(key)) {
            check(s, v, &child(key), out);
        } else if additional.is_object() {
            check(additional, v, &format!("{path}[{key}]"), out);
        } else if !preserve && (properties.is_some() || additional == false) {
            out.push((child(key), "unknown field".into()));
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn article(ty: &str) -> &'static str {
    if ty.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn found(schema: Value, value: Value) -> Vec<String> {
        let mut out = Vec::new();
        check(&schema, &value, "spec", &mut out);
        out.iter().map(|(p, m)| format!("{p}: {m}")).collect()
    }

    #[test]
    fn types_required_unknown_ranges_and_patterns() {
        let schema = json!({"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "minLength": 1},
            "replicas": {"type": "integer", "minimum": 0},
            "when": {"type": "string", "format": "date-time"},
            "d": {"type": "string", "pattern": "^[0-9]+s$"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "list": {"type": "array", "maxItems": 1, "items": {"type": "integer"}},
            "size": {"x-kubernetes-int-or-string": true},
        }});
        assert_eq!(
            found(
                schema.clone(),
                json!({"replicas": -1, "when": "yesterday", "d": "5m", "labels": {"a": 1},
                       "list": [1, "x"], "size": true, "extra": 1})
            ),
            [
                "spec.name: required field is missing",
                "spec.d: \"5m\" does not match the pattern ^[0-9]+s$",
                "spec.extra: unknown field",
                "spec.labels[a]: must be a string, not an integer",
                "spec.list: must have at most 1 items",
                "spec.list[1]: must be an integer, not a string",
                "spec.replicas: must be at least 0, not -1",
                "spec.size: must be an integer or a string, not a boolean",
                "spec.when: \"yesterday\" is not an RFC 3339 time like 2026-01-02T15:04:05Z",
            ]
        );
        assert!(
            found(
                schema,
                json!({"name": "web", "size": "25%", "when": "2026-01-02T15:04:05Z"})
            )
            .is_empty()
        );
    }
}

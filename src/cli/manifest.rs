//! Reading manifests for the offline commands (`lint`, `plan`, `convert`): one file or stdin,
//! any number of YAML or JSON documents, `kind: List` flattened.

use serde_json::Value;

/// One object of a manifest stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// Position in the stream, from 1, as people count documents.
    pub index: usize,
    pub value: Value,
}

impl Document {
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }

    pub fn api_version(&self) -> &str {
        self.value["apiVersion"].as_str().unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }

    /// `Rollout "web"`, or `document 3` when it has no kind.
    pub fn title(&self) -> String {
        match (self.kind(), self.name()) {
            ("", _) => format!("document {}", self.index),
            (kind, "") => format!("{kind} (document {})", self.index),
            (kind, name) => format!("{kind} {name:?}"),
        }
    }
}

/// Reads `path`, or stdin for `-`.
pub fn read(path: &str) -> Result<String, String> {
    if path == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| format!("reading stdin: {e}"))?;
        return Ok(text);
    }
    std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))
}

/// How a source is named in messages.
pub fn source_name(path: &str) -> &str {
    if path == "-" { "<stdin>" } else { path }
}

/// Splits a YAML (or JSON) stream into its objects; empty documents are skipped.
pub fn parse(text: &str) -> Result<Vec<Document>, String> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let yaml = serde_yaml::Value::deserialize(doc)
            .map_err(|e| format!("document {}: not valid YAML: {e}", i + 1))?;
        if yaml.is_null() {
            continue;
        }
        let value: Value = serde_json::to_value(&yaml)
            .map_err(|e| format!("document {}: not a JSON-compatible object: {e}", i + 1))?;
        if !value.is_object() {
            return Err(format!("document {}: expected an object", i + 1));
        }
        if value["kind"] == "List"
            && let Some(items) = value["items"].as_array()
        {
            for item in items {
                out.push(Document {
                    index: out.len() + 1,
                    value: item.clone(),
                });
            }
            continue;
        }
        out.push(Document {
            index: out.len() + 1,
            value,
        });
    }
    Ok(out)
}

/// The `.yaml` and `.yml` files under `dir`, subdirectories included, sorted: what a directory
/// of manifests (examples/, a GitOps path) holds.
pub fn yaml_files(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_streams_and_flattens_lists() {
        let docs = parse(
            "---\nkind: A\nmetadata: {name: a}\n---\n---\n{\"kind\": \"List\", \"items\": [{\"kind\": \"B\"}, {\"kind\": \"C\"}]}\n",
        )
        .unwrap();
        let kinds: Vec<&str> = docs.iter().map(Document::kind).collect();
        assert_eq!(kinds, ["A", "B", "C"]);
        assert_eq!(docs[0].title(), "A \"a\"");
        assert_eq!(docs[1].title(), "B (document 2)");
        assert!(
            parse("a: [")
                .unwrap_err()
                .contains("document 1: not valid YAML")
        );
        assert!(parse("- 1\n").unwrap_err().contains("expected an object"));
    }
}

//! Just enough XML for the answers of AWS's Query APIs (CloudWatch, STS): elements, text and
//! the five entities plus character references. Attributes, comments, processing instructions
//! and namespaces are skipped; anything else malformed is an error, never a panic.

/// An element: its name (any prefix dropped), its text and its child elements.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The element at a path of child names.
    pub fn at(&self, path: &[&str]) -> Option<&Element> {
        path.iter().try_fold(self, |e, name| e.child(name))
    }

    /// The trimmed text of the child at `path`.
    pub fn text_at(&self, path: &[&str]) -> Option<String> {
        self.at(path).map(|e| e.text.trim().to_string())
    }

    /// The children named `member` of the child at `path` (how the Query APIs write lists).
    pub fn members(&self, path: &[&str]) -> Vec<&Element> {
        self.at(path)
            .map(|e| e.children.iter().filter(|c| c.name == "member").collect())
            .unwrap_or_default()
    }
}

/// The document's root element.
pub fn parse(text: &str) -> Result<Element, String> {
    let mut stack: Vec<Element> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        if let Some(top) = stack.last_mut() {
            top.text.push_str(&unescape(&rest[..open])?);
        } else if !rest[..open].trim().is_empty() {
            return Err("text outside the root element".into());
        }
        rest = &rest[open..];
        if let Some(r) = rest.strip_prefix("<!--") {
            let end = r.find("-->").ok_or("an unclosed comment")?;
            rest = &r[end + 3..];
            continue;
        }
        if rest.starts_with("<?") || rest.starts_with("<!") {
            let end = rest.find('>').ok_or("an unclosed declaration")?;
            rest = &rest[end + 1..];
            continue;
        }
        let end = rest.find('>').ok_or("an unclosed tag")?;
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let done = stack.pop().ok_or("a closing tag with nothing open")?;
            if local(name.trim()) != done.name {
                return Err(format!("<{}> closed by </{}>", done.name, name.trim()));
            }
            match stack.last_mut() {
                Some(parent) => parent.children.push(done),
                None => return Ok(done),
            }
            continue;
        }
        let closed = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let name = local(tag.split_whitespace().next().ok_or("an empty tag")?).to_string();
        let element = Element {
            name,
            ..Default::default()
        };
        if closed {
            match stack.last_mut() {
                Some(parent) => parent.children.push(element),
                None => return Ok(element),
            }
        } else {
            stack.push(element);
        }
    }
    Err("the document ends before its root element closes".into())
}

fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let end = rest[amp..].find(';').ok_or("an unterminated entity")? + amp;
        let entity = &rest[amp + 1..end];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            e => {
                let code = match e.strip_prefix("#x").or_else(|| e.strip_prefix("#X")) {
                    Some(h) => u32::from_str_radix(h, 16).ok(),
                    None => e.strip_prefix('#').and_then(|d| d.parse().ok()),
                };
                code.and_then(char::from_u32)
                    .ok_or_else(|| format!("unknown entity &{e};"))?
            }
        };
        out.push(c);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_elements_lists_and_entities() {
        let doc = parse(
            r#"<?xml version="1.0"?>
<R xmlns="http://x/"><!-- c --><A>1 &amp; 2 &#x3C;&#62;</A><L><member>a</member><member/></L><E/></R>"#,
        )
        .unwrap();
        assert_eq!(doc.name, "R");
        assert_eq!(doc.text_at(&["A"]).as_deref(), Some("1 & 2 <>"));
        assert_eq!(doc.members(&["L"]).len(), 2);
        assert!(doc.child("E").is_some());
        for bad in ["<a><b></a>", "<a>", "x<a/>", "<a>&nope;</a>", ""] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}

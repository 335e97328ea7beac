//! The commands that read manifests and need no cluster: lint, plan, convert.

use fledge::cli::{convert, exit, lint, manifest, timeline};

fn documents(file: &str) -> Result<Vec<manifest::Document>, String> {
    let text = manifest::read(file)?;
    manifest::parse(&text).map_err(|e| format!("{}: {e}", manifest::source_name(file)))
}

pub fn lint(file: &str) -> Result<u8, String> {
    let docs = documents(file)?;
    let (text, code) = lint::render(manifest::source_name(file), &lint::lint(&docs));
    if code == exit::OK {
        print!("{text}");
    } else {
        eprint!("{text}");
    }
    Ok(code)
}

pub fn plan(file: &str) -> Result<u8, String> {
    let docs = documents(file)?;
    let reports = lint::lint(&docs);
    if reports.iter().any(|r| r.errors() > 0) {
        let (text, _) = lint::render(manifest::source_name(file), &reports);
        eprint!("{text}");
        return Ok(exit::FAILED);
    }
    print!("{}", timeline::render(&docs)?);
    Ok(exit::OK)
}

pub fn convert(file: &str) -> Result<u8, String> {
    let docs = documents(file)?;
    let output = convert::convert(&docs)?;
    print!("{output}");
    Ok(exit::OK)
}

//! AWS Signature Version 4 for one request: the canonical request, the string to sign, the key
//! derived from the secret for the day, region and service, and the `Authorization` header.
//! Tested against the examples AWS publishes (its SigV4 test suite and the General Reference's
//! IAM `ListUsers` example), so a signer that is wrong anywhere in the chain fails them.

use sha2::{Digest, Sha256};

/// The algorithm's name, first word of the `Authorization` header.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Credentials: long-lived (an access key) or temporary (with a session token).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Logs and panics never show the secret or the token.
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// What is signed of a request.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The `Host` header as sent: the host, and the port when it is not the scheme's default.
    pub host: &'a str,
    /// The path as sent (already percent-encoded), like `/`.
    pub path: &'a str,
    /// Query parameters, not encoded.
    pub query: &'a [(String, String)],
    /// Other headers to sign (`content-type`, say), besides `host`, `x-amz-date` and the token.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// Where and when: the region, the service (`monitoring`, `sts`) and the time, as
/// `YYYYMMDD'T'HHMMSS'Z'`.
#[derive(Clone, Debug)]
pub struct Scope<'a> {
    pub region: &'a str,
    pub service: &'a str,
    pub amz_date: &'a str,
}

impl Scope<'_> {
    fn date(&self) -> &str {
        &self.amz_date[..self.amz_date.len().min(8)]
    }

    fn credential_scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date(),
            self.region,
            self.service
        )
    }
}

/// A time as SigV4 writes it (`20150830T123600Z`).
pub fn amz_date(t: k8s_openapi::jiff::Timestamp) -> String {
    t.strftime("%Y%m%dT%H%M%SZ").to_string()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(data)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// The key of the day, region and service.
pub fn signing_key(secret: &str, scope: &Scope) -> [u8; 32] {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), scope.date().as_bytes());
    let k_region = hmac_sha256(&k_date, scope.region.as_bytes());
    let k_service = hmac_sha256(&k_region, scope.service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// The headers signed, lower-cased, values trimmed with inner runs of spaces made one, sorted.
fn signed_headers(request: &Request, scope: &Scope, token: Option<&str>) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    headers.push(("host".into(), request.host.to_string()));
    headers.push(("x-amz-date".into(), scope.amz_date.to_string()));
    if let Some(t) = token {
        headers.push(("x-amz-security-token".into(), t.to_string()));
    }
    headers.sort();
    headers
}

/// The canonical request (step 1 of AWS's signing process).
pub fn canonical_request(request: &Request, scope: &Scope, token: Option<&str>) -> String {
    let encode = crate::analysis::quote::percent_encode;
    let mut query: Vec<(String, String)> = request
        .query
        .iter()
        .map(|(k, v)| (encode(k), encode(v)))
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let headers = signed_headers(request, scope, token);
    let names = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let lines: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let path = if request.path.is_empty() {
        "/"
    } else {
        request.path
    };
    format!(
        "{}\n{path}\n{query}\n{lines}\n{names}\n{}",
        request.method,
        sha256_hex(request.body)
    )
}

/// The string to sign (step 2).
pub fn string_to_sign(canonical_request: &str, scope: &Scope) -> String {
    format!(
        "{ALGORITHM}\n{}\n{}\n{}",
        scope.amz_date,
        scope.credential_scope(),
        sha256_hex(canonical_request.as_bytes())
    )
}

/// The headers to add to `request`: `x-amz-date`, `x-amz-security-token` for temporary
/// credentials, and `authorization`.
pub fn sign(credentials: &Credentials, scope: &Scope, request: &Request) -> Vec<(String, String)> {
    let token = credentials.session_token.as_deref();
    let canonical = canonical_request(request, scope, token);
    let to_sign = string_to_sign(&canonical, scope);
    let signature = hex(&hmac_sha256(
        &signing_key(&credentials.secret_access_key, scope),
        to_sign.as_bytes(),
    ));
    let names = signed_headers(request, scope, token)
        .into_iter()
        .map(|(k, _)| k)
        .collect::<Vec<_>>()
        .join(";");
    let mut out = vec![("x-amz-date".to_string(), scope.amz_date.to_string())];
    if let Some(t) = token {
        out.push(("x-amz-security-token".into(), t.to_string()));
    }
    out.push((
        "authorization".into(),
        format!(
            "{ALGORITHM} Credential={}/{}, SignedHeaders={names}, Signature={signature}",
            credentials.access_key_id,
            scope.credential_scope()
        ),
    ));
    out
}

/// The `Host` header a URL is sent with: the port only when it is not the scheme's default.
pub fn host(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The credentials of every AWS example.
    fn example() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    fn authorization(
        method: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> String {
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let scope = Scope {
            region: "us-east-1",
            service: "service",
            amz_date: "20150830T123600Z",
        };
        let request = Request {
            method,
            host: "example.amazonaws.com",
            path: "/",
            query: &query,
            headers: &headers,
            body,
        };
        let signed = sign(&example(), &scope, &request);
        assert_eq!(signed[0], ("x-amz-date".into(), "20150830T123600Z".into()));
        signed.last().unwrap().1.clone()
    }

    /// AWS's SigV4 test suite (aws-sig-v4-test-suite): the expected `Authorization` of each case.
    #[test]
    fn signs_the_aws_test_suite_cases() {
        let start = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/\
                     aws4_request, SignedHeaders=";
        // get-vanilla
        assert_eq!(
            authorization("GET", &[], &[], b""),
            format!(
                "{start}host;x-amz-date, Signature=\
                 5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
            )
        );
        // get-vanilla-query-order-key-case: parameters sorted by name.
        assert_eq!(
            authorization(
                "GET",
                &[("Param2", "value2"), ("Param1", "value1")],
                &[],
                b""
            ),
            format!(
                "{start}host;x-amz-date, Signature=\
                 b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
            )
        );
        // post-vanilla
        assert_eq!(
            authorization("POST", &[], &[], b""),
            format!(
                "{start}host;x-amz-date, Signature=\
                 5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
            )
        );
        // post-x-www-form-urlencoded: the body hashed, its content type signed.
        assert_eq!(
            authorization(
                "POST",
                &[],
                &[("Content-Type", "application/x-www-form-urlencoded")],
                b"Param1=value1"
            ),
            format!(
                "{start}content-type;host;x-amz-date, Signature=\
                 ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
            )
        );
    }

    /// The General Reference's worked example (IAM `ListUsers`): each step's published value.
    #[test]
    fn reproduces_each_step_of_the_iam_example() {
        let scope = Scope {
            region: "us-east-1",
            service: "iam",
            amz_date: "20150830T123600Z",
        };
        let query = [
            ("Action".to_string(), "ListUsers".to_string()),
            ("Version".to_string(), "2010-05-08".to_string()),
        ];
        let headers = [(
            "Content-Type".to_string(),
            "application/x-www-form-urlencoded; charset=utf-8".to_string(),
        )];
        let request = Request {
            method: "GET",
            host: "iam.amazonaws.com",
            path: "/",
            query: &query,
            headers: &headers,
            body: b"",
        };
        let canonical = canonical_request(&request, &scope, None);
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        assert_eq!(
            hex(&signing_key(&example().secret_access_key, &scope)),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        assert_eq!(
            sign(&example(), &scope, &request).last().unwrap().1,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    /// RFC 4231 test case 2 and a key longer than a block (test case 6).
    #[test]
    fn hmac_matches_rfc_4231() {
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn a_session_token_is_sent_and_signed() {
        let mut c = example();
        c.session_token = Some("tok/en".into());
        let scope = Scope {
            region: "eu-west-1",
            service: "monitoring",
            amz_date: "20261130T120000Z",
        };
        let request = Request {
            method: "POST",
            host: "monitoring.eu-west-1.amazonaws.com",
            path: "/",
            query: &[],
            headers: &[],
            body: b"x",
        };
        let signed = sign(&c, &scope, &request);
        assert_eq!(signed[1], ("x-amz-security-token".into(), "tok/en".into()));
        assert!(
            signed[2]
                .1
                .contains("SignedHeaders=host;x-amz-date;x-amz-security-token,"),
            "{signed:?}"
        );
        assert!(!format!("{c:?}").contains("EXAMPLEKEY"));
    }
}

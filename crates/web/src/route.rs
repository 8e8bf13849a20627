//! The pages' addresses: the part of the URL after `#`.

/// A page and its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// The model repository, searched (`#/?q=…&mode=…`).
    Repository {
        /// Search text.
        q: String,
        /// `he`, `mpc`, or empty for any.
        mode: String,
    },
    /// A model's card and splits (`#/model/NAME`).
    Model(String),
    /// An encrypted query of a model (`#/query/NAME`).
    Query(String),
    /// A creator's upload (`#/upload`).
    Upload,
    /// The federation's dashboard and proof check (`#/federation`).
    Federation,
    /// Anything else.
    NotFound,
}

impl Route {
    /// The route of a location's hash (with or without its `#`).
    pub fn parse(hash: &str) -> Route {
        let hash = hash.strip_prefix('#').unwrap_or(hash);
        let (path, query) = hash.split_once('?').unwrap_or((hash, ""));
        let parts: Option<Vec<String>> = path
            .split('/')
            .filter(|p| !p.is_empty())
            .map(|p| percent_decode(p, false))
            .collect();
        let Some(parts) = parts else {
            return Route::NotFound;
        };
        match parts
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            [] => {
                let params = form_params(query);
                let get = |k: &str| {
                    params
                        .iter()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                Route::Repository {
                    q: get("q"),
                    mode: get("mode"),
                }
            }
            ["model", name, ..] => Route::Model((*name).to_string()),
            ["query", name, ..] => Route::Query((*name).to_string()),
            ["upload", ..] => Route::Upload,
            ["federation", ..] => Route::Federation,
            _ => Route::NotFound,
        }
    }

    /// Which link of the header names this page (`data-nav`).
    pub fn nav(&self) -> &'static str {
        match self {
            Route::Repository { .. } | Route::Model(_) => "repository",
            Route::Upload => "upload",
            Route::Federation => "federation",
            Route::Query(_) => "query",
            Route::NotFound => "",
        }
    }
}

/// A percent-encoded component decoded (`+` as a space in form data);
/// `None` when the escapes are broken or the bytes are not UTF-8.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                out.push(v);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The name–value pairs of form-encoded text; broken pairs are skipped.
pub fn form_params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((percent_decode(k, true)?, percent_decode(v, true)?))
        })
        .collect()
}

/// Text percent-encoded for a URL's path or query (everything but
/// `A–Z a–z 0–9 - _ . ~`).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages() {
        let repo = |q: &str, mode: &str| Route::Repository {
            q: q.into(),
            mode: mode.into(),
        };
        assert_eq!(Route::parse(""), repo("", ""));
        assert_eq!(Route::parse("#/"), repo("", ""));
        assert_eq!(
            Route::parse("#/?q=digit+cnn&mode=he"),
            repo("digit cnn", "he")
        );
        assert_eq!(Route::parse("#/?q=a%26b"), repo("a&b", ""));
        assert_eq!(
            Route::parse("#/model/digits"),
            Route::Model("digits".into())
        );
        assert_eq!(Route::parse("#/query/d%C3%BC"), Route::Query("dü".into()));
        assert_eq!(Route::parse("#/upload"), Route::Upload);
        assert_eq!(Route::parse("#/federation"), Route::Federation);
        assert_eq!(Route::parse("#/model"), Route::NotFound);
        assert_eq!(Route::parse("#/nothing"), Route::NotFound);
        // Broken escapes and bytes that are not UTF-8.
        assert_eq!(Route::parse("#/model/%E"), Route::NotFound);
        assert_eq!(Route::parse("#/model/%FF"), Route::NotFound);
        assert_eq!(Route::parse("#/?q=%ZZ&mode=he"), repo("", "he"));
        assert_eq!(Route::parse("#/model/x").nav(), "repository");
    }

    #[test]
    fn encoding_round_trips() {
        for s in ["digits", "a b&c=d/é", "100%", ""] {
            assert_eq!(
                percent_decode(&percent_encode(s), false).as_deref(),
                Some(s)
            );
        }
        assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
    }
}

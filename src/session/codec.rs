//! Sealing cookie values with AES-256-GCM (the cookie crate's private jar: the cookie name is
//! bound as associated data), with a previous key accepted while rotating, and splitting
//! values too large for one cookie into `name`, `name_1`, `name_2`, ...

use std::borrow::Cow;

use cookie::{Cookie, CookieJar, Key};
use http::header::{HeaderMap, HeaderValue, COOKIE};

use crate::identity::cookie_pairs_bytes;

/// Browsers keep at least 4096 bytes per cookie including name and attributes.
pub const CHUNK_SIZE: usize = 3800;
/// More chunks than this is not a session we wrote.
const MAX_CHUNKS: usize = 8;
const _: () = assert!(MAX_CHUNKS < 10, "read_cookie reads a one-digit chunk count");

pub struct Codec {
    /// Current key first, then the previous one.
    keys: Vec<Key>,
    /// The current secret, to compare with a re-read secret file.
    current: Vec<u8>,
    /// What a value is sealed for besides its cookie name: one of these (each provider's
    /// issuer and client id), so a gateway that shares the secret but signs in for another
    /// app cannot open it. Bound as associated data, with the name. Never empty.
    contexts: Vec<String>,
}

impl Codec {
    pub fn new(secret: &[u8], previous: Option<&[u8]>) -> Codec {
        let mut keys = vec![Key::derive_from(secret)];
        if let Some(p) = previous {
            keys.push(Key::derive_from(p));
        }
        Codec {
            keys,
            current: secret.to_vec(),
            contexts: vec![String::new()],
        }
    }

    /// This codec, sealing for one of `contexts` (see `Codec::contexts`), the first unless
    /// told (`seal_for`).
    pub fn bound_to(mut self, contexts: &[String]) -> Codec {
        if !contexts.is_empty() {
            self.contexts = contexts.to_vec();
        }
        self
    }

    /// A codec sealing with `secret` that still opens what this one sealed.
    pub fn rotated_to(&self, secret: &[u8]) -> Codec {
        Codec::new(secret, Some(&self.current)).bound_to(&self.contexts)
    }

    /// The associated data for cookie `name` in context `at`: the name and the context. A
    /// space cannot be in a cookie name, so no name and context run into another pair.
    fn bound_name(&self, name: &str, at: usize) -> String {
        match self.contexts.get(at).map(String::as_str) {
            None | Some("") => name.to_string(),
            Some(context) => format!("{name} {context}"),
        }
    }

    pub fn current_secret(&self) -> &[u8] {
        &self.current
    }

    /// Encrypts `plaintext` for a cookie called `name`, in the first context.
    pub fn seal(&self, name: &str, plaintext: &str) -> String {
        self.seal_for(0, name, plaintext)
    }

    /// Encrypts `plaintext` for a cookie called `name`, in context `at` (a provider's).
    pub fn seal_for(&self, at: usize, name: &str, plaintext: &str) -> String {
        let name = self.bound_name(name, at);
        let mut jar = CookieJar::new();
        jar.private_mut(&self.keys[0])
            .add(Cookie::new(name.clone(), plaintext.to_string()));
        jar.get(&name)
            .map(|c| c.value().to_string())
            .unwrap_or_default()
    }

    /// Decrypts a value sealed for `name` with the current or the previous key, in any
    /// context.
    pub fn open(&self, name: &str, sealed: &str) -> Option<String> {
        self.open_any(name, sealed).map(|(_, plain)| plain)
    }

    /// Decrypts a value sealed for `name`, and says the context it was sealed in. Tries
    /// every context and key: a handful of AES-GCM tag checks, off the hot path (decoded
    /// sessions are cached by cookie value).
    pub fn open_any(&self, name: &str, sealed: &str) -> Option<(usize, String)> {
        let jar = CookieJar::new();
        (0..self.contexts.len()).find_map(|at| {
            let name = self.bound_name(name, at);
            self.keys.iter().find_map(|k| {
                jar.private(k)
                    .decrypt(Cookie::new(name.clone(), sealed.to_string()))
                    .map(|c| (at, c.value().to_string()))
            })
        })
    }
}

/// The value of cookie `name` in the request, chunks joined. Borrows in the usual
/// one-chunk case.
pub fn read_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<Cow<'h, str>> {
    let first = find_cookie(headers, name)?;
    // A chunked value starts with "<count>:" (one digit: MAX_CHUNKS < 10); sealed values
    // (base64) hold no ':'. Looking only there spares a scan of the whole value.
    let Some((count, part0)) = first
        .get(..2)
        .filter(|head| head.ends_with(':'))
        .map(|_| (&first[..1], &first[2..]))
    else {
        return Some(Cow::Borrowed(first));
    };
    let count: usize = count
        .parse()
        .ok()
        .filter(|n| (2..=MAX_CHUNKS).contains(n))?;
    let mut joined = String::with_capacity(count * CHUNK_SIZE);
    joined.push_str(part0);
    for i in 1..count {
        joined.push_str(find_cookie(headers, &format!("{name}_{i}"))?);
    }
    Some(Cow::Owned(joined))
}

fn find_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| cookie_pairs_bytes(v.as_bytes()))
        .find(|(n, _)| *n == name.as_bytes())
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

/// Names of the request's cookies that start with `prefix`.
pub fn cookie_names_with_prefix<'h>(
    headers: &'h HeaderMap,
    prefix: &'h str,
) -> impl Iterator<Item = (&'h str, &'h str)> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| cookie_pairs_bytes(v.as_bytes()))
        .filter(move |(n, _)| n.starts_with(prefix.as_bytes()))
        .filter_map(|(n, v)| Some((std::str::from_utf8(n).ok()?, std::str::from_utf8(v).ok()?)))
}

/// How our cookies are set.
#[derive(Debug, Clone)]
pub struct CookieAttrs {
    pub secure: bool,
    pub path: String,
    /// `Domain=` (`session.cookie_domain`): the cookie goes to every host below it.
    /// `None`: a host-only cookie.
    pub domain: Option<String>,
}

/// A `Set-Cookie` header; `max_age` 0 deletes, `None` makes a browser-session cookie.
pub fn set_cookie(
    name: &str,
    value: &str,
    attrs: &CookieAttrs,
    max_age: Option<u64>,
) -> HeaderValue {
    let mut s = format!(
        "{name}={value}; Path={}; HttpOnly; SameSite=Lax",
        attrs.path
    );
    if let Some(domain) = &attrs.domain {
        s.push_str("; Domain=");
        s.push_str(domain);
    }
    if attrs.secure {
        s.push_str("; Secure");
    }
    if let Some(age) = max_age {
        s.push_str(&format!("; Max-Age={age}"));
        if age == 0 {
            s.push_str("; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
        }
    }
    // Names and sealed values are cookie-safe by construction (base64, digits, ':').
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// Whether `value` fits the cookies `set_chunked` may write (`MAX_CHUNKS` of `CHUNK_SIZE`);
/// a longer one would be cut, and the session read back from it would not open.
pub fn fits(value: &str) -> bool {
    value.len() <= MAX_CHUNKS * CHUNK_SIZE
}

/// How many cookies `value` takes.
pub fn chunks_for(value: &str) -> usize {
    value.len().div_ceil(CHUNK_SIZE).max(1)
}

/// `Set-Cookie` headers that store `value` under `name`, chunked when large, and delete
/// chunks left over from a larger earlier value.
pub fn set_chunked(
    headers: &HeaderMap,
    name: &str,
    value: &str,
    attrs: &CookieAttrs,
    max_age: u64,
) -> Vec<HeaderValue> {
    let mut out = Vec::new();
    let count = chunks_for(value);
    if count == 1 {
        out.push(set_cookie(name, value, attrs, Some(max_age)));
    } else {
        for (i, chunk) in value.as_bytes().chunks(CHUNK_SIZE).enumerate() {
            // base64 is ASCII, so byte chunks are valid str.
            let chunk = std::str::from_utf8(chunk).unwrap_or("");
            if i == 0 {
                out.push(set_cookie(
                    name,
                    &format!("{count}:{chunk}"),
                    attrs,
                    Some(max_age),
                ));
            } else {
                out.push(set_cookie(
                    &format!("{name}_{i}"),
                    chunk,
                    attrs,
                    Some(max_age),
                ));
            }
        }
    }
    out.extend(delete_chunks_from(headers, name, count, attrs));
    out
}

/// Deletes every chunk of `name` the request carries, from index `from` on (0 = all).
pub fn delete_chunks_from(
    headers: &HeaderMap,
    name: &str,
    from: usize,
    attrs: &CookieAttrs,
) -> Vec<HeaderValue> {
    let mut out = Vec::new();
    if from == 0 && find_cookie(headers, name).is_some() {
        out.push(set_cookie(name, "", attrs, Some(0)));
    }
    for i in from.max(1)..=MAX_CHUNKS {
        let chunk = format!("{name}_{i}");
        if find_cookie(headers, &chunk).is_some() {
            out.push(set_cookie(&chunk, "", attrs, Some(0)));
        }
    }
    out
}

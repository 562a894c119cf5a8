//! The session cookie codec (`session::codec`): garbage never panics and never opens, a
//! sealed value opens again (also after a key rotation, and split into chunked cookies and
//! read back from a Cookie header), and a value with one character changed never opens.
//!
//! Input: one byte choosing where to change a character, then the text (plaintext for the
//! round trip, garbage for the rest).
#![no_main]

use std::sync::OnceLock;

use http::header::{HeaderMap, HeaderValue, COOKIE};
use libfuzzer_sys::fuzz_target;
use ssogate::session::codec::{self, Codec, CookieAttrs};

const NAME: &str = "_ssogate";

fn codecs() -> &'static (Codec, Codec, Codec) {
    static CODECS: OnceLock<(Codec, Codec, Codec)> = OnceLock::new();
    CODECS.get_or_init(|| {
        let old = Codec::new(&[7u8; 32], None);
        let current = old.rotated_to(&[9u8; 64]);
        let stranger = Codec::new(&[1u8; 32], None);
        (old, current, stranger)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&at, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (old, current, stranger) = codecs();

    // Garbage: as a sealed value, and as a Cookie header.
    assert_eq!(current.open(NAME, &text), None, "garbage opened: {text:?}");
    if let Ok(value) = HeaderValue::from_bytes(rest) {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, value);
        if let Some(found) = codec::read_cookie(&headers, NAME) {
            assert_eq!(
                current.open(NAME, &found),
                None,
                "a Cookie header of garbage opened: {rest:?}"
            );
        }
        let _ = codec::cookie_names_with_prefix(&headers, NAME).count();
    }

    // Round trip, through the previous key too.
    let sealed = current.seal(NAME, &text);
    assert_eq!(current.open(NAME, &sealed).as_deref(), Some(&*text));
    assert_eq!(current.open("_other", &sealed), None, "the name is bound");
    assert_eq!(stranger.open(NAME, &sealed), None, "another key opened it");
    let by_old = old.seal(NAME, &text);
    assert_eq!(
        current.open(NAME, &by_old).as_deref(),
        Some(&*text),
        "the previous key is still accepted"
    );

    // Chunked into cookies and read back.
    if codec::fits(&sealed) {
        let attrs = CookieAttrs {
            secure: true,
            path: "/".into(),
            domain: None,
        };
        let set = codec::set_chunked(&HeaderMap::new(), NAME, &sealed, &attrs, 60);
        assert_eq!(set.len(), codec::chunks_for(&sealed));
        let pairs: Vec<&str> = set
            .iter()
            .map(|v| {
                v.to_str()
                    .expect("ASCII")
                    .split(';')
                    .next()
                    .expect("a pair")
            })
            .collect();
        let mut headers = HeaderMap::new();
        headers.append(
            COOKIE,
            HeaderValue::from_str(&pairs.join("; ")).expect("a cookie header"),
        );
        let read = codec::read_cookie(&headers, NAME).expect("the cookie is found");
        assert_eq!(read, sealed, "chunked cookies join to the sealed value");
    }

    // One character changed (to another printable one) never opens.
    let mut bytes = sealed.into_bytes();
    if bytes.is_empty() {
        return;
    }
    let i = usize::from(at) * bytes.len() / 256;
    let flip = 1 + (at % 0x3f);
    let changed = ((bytes[i] - 0x20) ^ flip) % 0x5f + 0x20;
    if changed == bytes[i] {
        return;
    }
    bytes[i] = changed;
    let tampered = String::from_utf8(bytes).expect("ASCII");
    assert_eq!(
        current.open(NAME, &tampered),
        None,
        "a changed byte at {i} still opened: {tampered:?}"
    );
});

//! The gateway's own request-head parser (`server::fast::parse`) against hyper's HTTP/1
//! server on the same bytes. See ../README.md for the relations and the accepted differences.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ssogate::fuzzing::{parse_request_head, RequestHead};
use ssogate_fuzz::{hyper_serve, SENTINEL};

/// The request loop's own limit (`server::fast::MAX_HEADERS`); hyper's is 100.
const MAX_HEADERS: usize = 64;

fuzz_target!(|data: &[u8]| check(data));

fn check(data: &[u8]) {
    let shown = format!("b\"{}\"", data.escape_ascii());
    let mut buf = BytesMut::from(data);
    match parse_request_head(&mut buf, MAX_HEADERS) {
        RequestHead::Handoff => {
            assert_eq!(&buf[..], data, "a handoff must leave the bytes for hyper");
        }
        RequestHead::Partial => {
            assert_eq!(&buf[..], data, "a partial head must stay in the buffer");
            let served = hyper_serve(data);
            assert!(
                served.requests.is_empty(),
                "the fast parser wants more bytes, but hyper served {:?} from {shown}",
                served.requests
            );
        }
        RequestHead::BadRequest => {
            // The loop answers 400 and closes: hyper must not serve these bytes either.
            let served = hyper_serve(data);
            assert!(
                served.requests.is_empty(),
                "the fast parser refused {shown}, hyper served {:?}",
                served.requests
            );
        }
        RequestHead::Request { head, keep_alive } => {
            let consumed = data.len() - buf.len();
            assert_eq!(&buf[..], &data[consumed..], "only the head is taken");
            // The head again, then a request of our own: hyper serves the second only when
            // it keeps the connection open and ended the first head where we did.
            let mut input = data[..consumed].to_vec();
            input.extend_from_slice(SENTINEL);
            let served = hyper_serve(&input);
            let Some(theirs) = served.requests.first() else {
                panic!(
                    "the fast parser took {:?} from {shown}; hyper refused it ({:?}, wrote {:?})",
                    &data[..consumed],
                    served.result,
                    String::from_utf8_lossy(&served.written)
                );
            };
            assert_eq!(head.method, theirs.method, "method of {shown}");
            assert_eq!(head.uri, theirs.uri, "target of {shown}");
            assert_eq!(
                head.uri.to_string(),
                theirs.uri.to_string(),
                "target of {shown}"
            );
            assert_eq!(head.version, theirs.version, "version of {shown}");
            let mut ours: Vec<_> = head.headers.iter().collect();
            // hyper keeps one of several equal Content-Length lines (all `0` here).
            let mut length_seen = false;
            ours.retain(|(name, _)| {
                *name != http::header::CONTENT_LENGTH || !std::mem::replace(&mut length_seen, true)
            });
            let hypers: Vec<_> = theirs.headers.iter().collect();
            assert_eq!(ours, hypers, "header fields of {shown}");
            let hyper_keeps = match served.requests.get(1) {
                Some(next) => {
                    assert_eq!(
                        next.uri.path(),
                        "/__sentinel__",
                        "hyper ended the head of {shown} elsewhere than the fast parser \
                         ({consumed} bytes)"
                    );
                    true
                }
                None => false,
            };
            assert_eq!(
                served.requests.len(),
                usize::from(hyper_keeps) + 1,
                "hyper served more than two requests from {}",
                input.escape_ascii()
            );
            // Closing is always safe; keeping open what hyper would close is not. The fast
            // parser also closes on a `close` token in a Connection value that is not UTF-8,
            // which hyper does not read at all (README, accepted differences).
            assert!(
                hyper_keeps || !keep_alive,
                "the fast parser keeps the connection open after {shown}, hyper does not ({:?})",
                served.result
            );
        }
    }
}

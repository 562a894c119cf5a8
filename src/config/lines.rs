//! Where a key sits in the config file, so that a problem with it can name its line.

use toml_edit::{ImDocument, Item};

/// A config file's text, parsed once to find keys in it.
pub struct Lines<'t> {
    text: &'t str,
    doc: Option<ImDocument<&'t str>>,
}

impl<'t> Lines<'t> {
    pub fn parse(text: &'t str) -> Lines<'t> {
        Lines {
            text,
            doc: ImDocument::parse(text).ok(),
        }
    }

    /// The line (from 1) of `key` (`server.listen`, `routes[0].upstream`,
    /// `server.trusted_proxies[1]`); for a key that is not written, the line of the nearest
    /// table that is (where it belongs). None when not even that is there.
    pub fn line_of(&self, key: &str) -> Option<usize> {
        line_of(self.text, self.doc.as_ref()?, key)
    }
}

fn line_of(text: &str, doc: &ImDocument<&str>, key: &str) -> Option<usize> {
    let mut item: &Item = doc.as_item();
    let mut span = None;
    'path: for part in key.split('.') {
        let (name, indexes) = match part.split_once('[') {
            Some((name, rest)) => (name, Some(rest)),
            None => (part, None),
        };
        let Some(next) = item.get(name) else {
            break;
        };
        item = next;
        span = item.span().or(span);
        for index in indexes.into_iter().flat_map(|r| r.split('[')) {
            let Some(next) = index
                .trim_end_matches(']')
                .parse::<usize>()
                .ok()
                .and_then(|i| item.get(i))
            else {
                break 'path;
            };
            item = next;
            span = item.span().or(span);
        }
    }
    let start = span?.start;
    Some(text[..start].bytes().filter(|&b| b == b'\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::Lines;

    fn line_of(text: &str, key: &str) -> Option<usize> {
        Lines::parse(text).line_of(key)
    }

    const TEXT: &str = "# ssogate\n[server]\nlisten = \"x\"\ntrusted_proxies = [\"10.0.0.0/8\",\n  \"bad\"]\n\n[[routes]]\npath_prefix = \"/\"\n\n[[routes]]\nupstream = \"y\"\n";

    #[test]
    fn keys_are_found_by_their_path() {
        assert_eq!(line_of(TEXT, "server.listen"), Some(3));
        assert_eq!(line_of(TEXT, "server.trusted_proxies[1]"), Some(5));
        assert_eq!(line_of(TEXT, "routes[1].upstream"), Some(11));
        // Not written: where its table is.
        assert_eq!(line_of(TEXT, "routes[0].upstream"), Some(7));
        assert_eq!(line_of(TEXT, "server.public_url"), Some(2));
        assert_eq!(line_of(TEXT, "session.secret"), None);
        assert_eq!(line_of("not = [toml", "server.listen"), None);
    }
}

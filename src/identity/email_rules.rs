//! `access.allowed_email_domains` and `access.allowed_emails`: which email addresses may
//! sign in. A domain matches exactly, without regard to ASCII case, the part after the last
//! `@` (no suffixes: `example.com` admits neither `evil-example.com` nor `example.com.evil`
//! nor `sub.example.com`). Pure; the file is read by whoever holds the rules.

use std::collections::HashSet;

/// The email rules; empty means no rule (everybody's email passes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailRules {
    domains: HashSet<String>,
    emails: HashSet<String>,
}

impl EmailRules {
    /// Rules from the domains and addresses as configured (compared in lower case).
    pub fn new<D, E>(domains: D, emails: E) -> EmailRules
    where
        D: IntoIterator,
        D::Item: AsRef<str>,
        E: IntoIterator,
        E::Item: AsRef<str>,
    {
        EmailRules {
            domains: domains
                .into_iter()
                .map(|d| d.as_ref().trim().to_ascii_lowercase())
                .collect(),
            emails: emails
                .into_iter()
                .map(|e| e.as_ref().trim().to_ascii_lowercase())
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty() && self.emails.is_empty()
    }

    /// Whether `email` is listed, or its domain is (either suffices, as in oauth2-proxy).
    pub fn admits(&self, email: &str) -> bool {
        if self.is_empty() {
            return true;
        }
        let email = email.trim().to_ascii_lowercase();
        if self.emails.contains(&email) {
            return true;
        }
        match email.rsplit_once('@') {
            Some((local, domain)) if !local.is_empty() => self.domains.contains(domain),
            _ => false,
        }
    }
}

/// The addresses in an `allowed_emails_file`: one a line; blank lines and `#` comments
/// are skipped.
pub fn parse_email_list(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// What is wrong with an `allowed_email_domains` entry, if anything.
pub fn domain_problem(domain: &str) -> Option<&'static str> {
    let d = domain.trim();
    if d.is_empty() {
        Some("is empty")
    } else if d.contains('@') {
        Some("write the domain alone, like \"example.com\" (addresses go in allowed_emails)")
    } else if d.starts_with('.') || d.contains('*') {
        Some("subdomains are not matched by a pattern: list each domain exactly, like \"example.com\" and \"eu.example.com\"")
    } else if d.contains(|c: char| c.is_whitespace() || c == '/' || c == ':') {
        Some("write a domain name alone, like \"example.com\"")
    } else {
        None
    }
}

/// What is wrong with an `allowed_emails` entry, if anything.
pub fn email_problem(email: &str) -> Option<&'static str> {
    match email.trim().rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() && domain_problem(domain).is_none() => None,
        _ => Some("is not an email address like \"alice@example.com\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_match_exactly_and_without_regard_to_case() {
        let rules = EmailRules::new(["Example.com"], [] as [&str; 0]);
        assert!(rules.admits("alice@example.com"));
        assert!(rules.admits("Alice@EXAMPLE.COM"));
        for refused in [
            "alice@evil-example.com",
            "alice@example.com.evil",
            "alice@sub.example.com",
            "alice@example.co",
            "example.com",
            "@example.com",
            "alice@evil.com@example.org",
            "",
        ] {
            assert!(!rules.admits(refused), "{refused}");
        }
        // The last '@' decides: a quoted local part may hold one.
        assert!(rules.admits("\"a@b\"@example.com"));
    }

    #[test]
    fn listed_addresses_pass_whatever_their_domain() {
        let rules = EmailRules::new(["example.com"], ["Bob@Partner.org"]);
        assert!(rules.admits("bob@partner.org"));
        assert!(!rules.admits("eve@partner.org"));
        assert!(EmailRules::default().admits("anyone@anywhere"));
    }

    #[test]
    fn the_file_holds_one_address_a_line_with_comments() {
        assert_eq!(
            parse_email_list("# staff\nalice@example.com\n\n  bob@example.com  # bob\n"),
            ["alice@example.com", "bob@example.com"]
        );
    }

    #[test]
    fn entries_that_would_never_match_are_named() {
        assert!(domain_problem("example.com").is_none());
        for bad in [
            "",
            ".example.com",
            "*.example.com",
            "a@example.com",
            "https://x.com",
        ] {
            assert!(domain_problem(bad).is_some(), "{bad}");
        }
        assert!(email_problem("a@example.com").is_none());
        for bad in ["example.com", "@example.com", "a@", "a b@example.com@"] {
            assert!(email_problem(bad).is_some(), "{bad}");
        }
    }
}

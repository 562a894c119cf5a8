//! A pool's password policy (`DescribeUserPool`'s `Policies.PasswordPolicy`) as the admin
//! tools use it: temporary passwords generated to meet it, and a password an admin chose
//! checked against it before Cognito is asked, so the refusal names the rules not met. Never
//! talks to the API itself (`pool::Pool::password_policy` reads it).

use super::pool::AdminError;

/// Cognito's symbols for `RequireSymbols` (its developer guide's list).
const SYMBOLS: &str = "^$*.[]{}()?\"!@#%&/\\,><':;|_~`=+-";
/// Generated passwords are at least this long, whatever a weaker policy allows.
const GENERATED_LENGTH: usize = 16;
/// Cognito's largest `MinimumLength`.
const LONGEST_MINIMUM: usize = 99;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub min_length: usize,
    pub upper: bool,
    pub lower: bool,
    pub digit: bool,
    pub symbol: bool,
}

impl Default for PasswordPolicy {
    /// Cognito's default policy: 8 characters, each class required.
    fn default() -> PasswordPolicy {
        PasswordPolicy {
            min_length: 8,
            upper: true,
            lower: true,
            digit: true,
            symbol: true,
        }
    }
}

impl PasswordPolicy {
    /// The rules `password` does not meet, in words.
    pub fn unmet(&self, password: &str) -> Vec<String> {
        let mut unmet = Vec::new();
        if password.chars().count() < self.min_length {
            unmet.push(format!("at least {} characters", self.min_length));
        }
        let rules = [
            (
                self.upper,
                "an upper-case letter",
                char::is_ascii_uppercase as fn(&char) -> bool,
            ),
            (self.lower, "a lower-case letter", char::is_ascii_lowercase),
            (self.digit, "a digit", char::is_ascii_digit),
            (self.symbol, "a symbol", |c: &char| SYMBOLS.contains(*c)),
        ];
        for (required, words, test) in rules {
            if required && !password.chars().any(|c| test(&c)) {
                unmet.push(words.to_string());
            }
        }
        unmet
    }

    /// `password`, or the refusal Cognito would give, naming what is missing.
    pub fn check(&self, password: &str) -> Result<(), AdminError> {
        let unmet = self.unmet(password);
        if unmet.is_empty() {
            return Ok(());
        }
        Err(AdminError::PasswordPolicy(format!(
            "the pool's policy asks for {} (DescribeUserPool)",
            unmet.join(", ")
        )))
    }

    /// A temporary password that meets this policy: every class (Cognito accepts a class a
    /// policy does not require), at least 16 characters or the policy's minimum, from the
    /// system's random source.
    pub fn generate(&self) -> String {
        use ring::rand::{SecureRandom, SystemRandom};
        // Without look-alikes (0/O, 1/l/I), and only symbols Cognito counts.
        const CLASSES: [&[u8]; 4] = [
            b"ABCDEFGHJKLMNPQRSTUVWXYZ",
            b"abcdefghijkmnopqrstuvwxyz",
            b"23456789",
            b"!#%+-=?@^_",
        ];
        let len = self.min_length.clamp(GENERATED_LENGTH, LONGEST_MINIMUM);
        let mut bytes = vec![0u8; len];
        // SystemRandom fails only without an OS random source, where nothing here could work.
        if SystemRandom::new().fill(&mut bytes).is_err() {
            bytes.fill(7);
        }
        bytes
            .iter()
            .enumerate()
            .map(|(i, b)| {
                // The first four positions take one of each class; the rest any class.
                let class = CLASSES[if i < 4 { i } else { usize::from(*b >> 6) }];
                char::from(class[usize::from(*b) % class.len()])
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_meet_the_policy_and_its_length() {
        let strict = PasswordPolicy {
            min_length: 24,
            ..PasswordPolicy::default()
        };
        for policy in [PasswordPolicy::default(), strict] {
            for _ in 0..50 {
                let p = policy.generate();
                assert_eq!(p.len(), policy.min_length.max(16));
                assert!(policy.unmet(&p).is_empty(), "{p}: {:?}", policy.unmet(&p));
            }
        }
    }

    #[test]
    fn a_weak_password_is_refused_with_the_rules_it_misses() {
        let policy = PasswordPolicy {
            min_length: 12,
            ..PasswordPolicy::default()
        };
        let e = policy.check("short1").unwrap_err();
        assert_eq!(e.kind(), "password_policy");
        assert_eq!(
            e.to_string(),
            "password policy not met: the pool's policy asks for at least 12 characters, an upper-case letter, a symbol (DescribeUserPool)"
        );
        assert!(policy.check("Long-enough-1").is_ok());
    }
}

//! `[roles]`: which role names each group carries. Owns the group -> roles table and the
//! roles of a list of groups; never does I/O. The gateway sends the roles upstream
//! (`X-Forwarded-Roles`, a `roles` claim in the `alb` assertion), route rules admit by them
//! (`allowed_roles`, turned into groups once at start), and the admin page shows them.

use std::collections::BTreeMap;

/// Group name -> role names, as written in `[roles]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleMap {
    by_group: BTreeMap<String, Vec<String>>,
}

impl RoleMap {
    pub fn new(by_group: BTreeMap<String, Vec<String>>) -> RoleMap {
        RoleMap { by_group }
    }

    /// No `[roles]` table (or an empty one): no roles header is sent.
    pub fn is_empty(&self) -> bool {
        self.by_group.is_empty()
    }

    /// The roles of someone in `groups`, each once, in the order first met.
    pub fn roles_of<S: AsRef<str>>(&self, groups: &[S]) -> Vec<String> {
        let mut roles: Vec<String> = Vec::new();
        for group in groups {
            for role in self.by_group.get(group.as_ref()).into_iter().flatten() {
                if !roles.contains(role) {
                    roles.push(role.clone());
                }
            }
        }
        roles
    }

    /// The groups that carry any of `roles`: how `allowed_roles` becomes a group rule.
    pub fn groups_with_any<S: AsRef<str>>(&self, roles: &[S]) -> Vec<String> {
        self.by_group
            .iter()
            .filter(|(_, has)| roles.iter().any(|r| has.iter().any(|h| h == r.as_ref())))
            .map(|(group, _)| group.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> RoleMap {
        RoleMap::new(BTreeMap::from([
            ("admins".to_string(), vec!["admin".into(), "editor".into()]),
            ("staff".to_string(), vec!["viewer".into()]),
            ("writers".to_string(), vec!["editor".into()]),
        ]))
    }

    #[test]
    fn roles_of_groups_are_unique_and_ordered() {
        assert_eq!(
            map().roles_of(&["writers", "admins", "nobody"]),
            vec!["editor", "admin"]
        );
        assert!(map().roles_of::<&str>(&[]).is_empty());
    }

    #[test]
    fn groups_carrying_a_role() {
        assert_eq!(
            map().groups_with_any(&["editor"]),
            vec!["admins", "writers"]
        );
        assert!(map().groups_with_any(&["ghost"]).is_empty());
    }
}

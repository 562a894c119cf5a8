//! Routing and access rules: which route a request belongs to (by host and the normalised
//! path, never the raw string or the query), what that route admits, and which redirect
//! targets are safe. Pure functions; never does I/O.

mod host;
mod path;
mod public;
mod redirect;

pub use host::{forwarded_host, parse_authority, request_host, Host, HostError, HostSource};
pub use path::{normalize, NormalizedPath, PathError};
pub use public::PublicPath;
pub use redirect::safe_redirect;

use crate::config::{Config, RouteConfig};

/// Who a route lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteRule {
    /// No sign-in; identity headers are still stripped.
    Public,
    /// Any signed-in user.
    SignedIn,
    /// Signed-in users in at least one of these groups.
    AnyOf(Vec<String>),
}

impl RouteRule {
    /// Any signed-in user when `groups` is empty, else those in one of them.
    pub fn from_groups(groups: &[String]) -> RouteRule {
        if groups.is_empty() {
            RouteRule::SignedIn
        } else {
            RouteRule::AnyOf(groups.to_vec())
        }
    }

    pub fn needs_sign_in(&self) -> bool {
        !matches!(self, RouteRule::Public)
    }

    /// Whether a signed-in user with these groups may pass.
    pub fn admits<S: AsRef<str>>(&self, groups: &[S]) -> bool {
        match self {
            RouteRule::Public | RouteRule::SignedIn => true,
            RouteRule::AnyOf(allowed) => groups
                .iter()
                .any(|g| allowed.iter().any(|a| a == g.as_ref())),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Route {
    /// Index of the route in the config, also the index of its upstream.
    pub id: usize,
    pub host: Option<String>,
    /// Normalised at start, so it compares with normalised request paths.
    pub path_prefix: String,
    /// Off by default: Express, ASP.NET and IIS route without regard to case, so `/ADMIN`
    /// must meet `/admin`'s rule.
    pub case_sensitive: bool,
    pub rule: RouteRule,
    /// Method + pattern pairs that need no sign-in on an otherwise protected route.
    pub public_paths: Vec<PublicPath>,
    /// The providers whose sessions and tokens count here (`routes[].providers`).
    pub providers: ProviderSet,
    /// For logs: the prefix as written.
    pub name: String,
}

/// The providers whose sessions a route accepts: a bit per place in `Config::providers`
/// (validation allows at most 64 providers), compared on every signed-in request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderSet(u64);

impl ProviderSet {
    /// Every provider: a route without `providers`.
    pub const ALL: ProviderSet = ProviderSet(u64::MAX);

    /// The providers called `names` in `config`.
    pub fn named(names: &[String], config: &Config) -> ProviderSet {
        ProviderSet(
            config
                .providers
                .iter()
                .enumerate()
                .filter(|(_, p)| names.contains(&p.name))
                .fold(0, |bits, (i, _)| bits | 1u64 << (i % 64)),
        )
    }

    pub fn has(self, provider: usize) -> bool {
        provider < 64 && self.0 & (1u64 << provider) != 0
    }

    /// The places in `0..count` this set holds.
    pub fn places(self, count: usize) -> impl Iterator<Item = usize> {
        (0..count.min(64)).filter(move |&i| self.has(i))
    }
}

/// All routes, searched by host then longest path prefix.
#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn from_config(config: &Config) -> RouteTable {
        let routes = config
            .routes
            .iter()
            .enumerate()
            .map(|(id, r)| Route::from_config(id, r, config))
            .collect();
        RouteTable { routes }
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route for a request: among routes naming this host, the longest matching prefix;
    /// when none of them matches, the same among routes without a host.
    pub fn lookup(&self, host: Option<&str>, match_path: &str) -> Option<&Route> {
        // `app.example.com.` is the same name, fully qualified.
        let host = host.map(|h| {
            let h = strip_port(h);
            h.strip_suffix('.').unwrap_or(h)
        });
        let best = |want_host: bool| {
            self.routes
                .iter()
                .filter(|r| match (&r.host, host) {
                    (Some(rh), Some(h)) if want_host => rh.eq_ignore_ascii_case(h),
                    (None, _) => !want_host,
                    _ => false,
                })
                .filter(|r| prefix_matches(match_path, &r.path_prefix, r.case_sensitive))
                .max_by_key(|r| r.path_prefix.len())
        };
        best(true).or_else(|| best(false))
    }
}

impl Route {
    fn from_config(id: usize, r: &RouteConfig, config: &Config) -> Route {
        let rule = if r.public {
            RouteRule::Public
        } else if let Some(roles) = &r.allowed_roles {
            // Roles come only from groups, so a role rule is the rule of the groups that
            // carry those roles (and of the route's own groups, either admitting), decided
            // once here instead of mapping groups to roles on every request.
            let mut groups = r.allowed_groups.clone().unwrap_or_default();
            groups.extend(config.roles.groups_with_any(roles));
            if groups.is_empty() {
                // Unreachable after validation (every role must be in [roles]); admit nobody.
                RouteRule::AnyOf(vec![String::new()])
            } else {
                RouteRule::AnyOf(groups)
            }
        } else {
            RouteRule::from_groups(
                r.allowed_groups
                    .as_deref()
                    .unwrap_or(&config.access.allowed_groups),
            )
        };
        let mut path_prefix = match normalize(&r.path_prefix) {
            Ok(p) => p.match_path().to_string(),
            Err(_) => r.path_prefix.clone(),
        };
        // Prefixes match whole segments, so `/admin/` is `/admin`: the bare `/admin` must not
        // fall through to a wider route (nginx redirects it to `/admin/`; apps serve both).
        while path_prefix.len() > 1 && path_prefix.ends_with('/') {
            path_prefix.pop();
        }
        Route {
            id,
            host: r.host.as_deref().map(|h| {
                let h = strip_port(h);
                h.strip_suffix('.').unwrap_or(h).to_ascii_lowercase()
            }),
            path_prefix,
            case_sensitive: r.case_sensitive,
            rule,
            public_paths: r.public_paths.clone(),
            providers: r
                .providers
                .as_deref()
                .map_or(ProviderSet::ALL, |names| ProviderSet::named(names, config)),
            name: match &r.host {
                Some(h) => format!("{h}{}", r.path_prefix),
                None => r.path_prefix.clone(),
            },
        }
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Segment-aware prefix match: `/app` matches `/app` and `/app/x`, not `/apple`; `/APP` too
/// unless the route is case-sensitive.
fn prefix_matches(path: &str, prefix: &str, case_sensitive: bool) -> bool {
    if prefix == "/" {
        return true;
    }
    let (path, prefix) = (path.as_bytes(), prefix.as_bytes());
    let Some(start) = path.get(..prefix.len()) else {
        return false;
    };
    let same = if case_sensitive {
        start == prefix
    } else {
        start.eq_ignore_ascii_case(prefix)
    };
    same && (prefix.ends_with(b"/") || path.len() == prefix.len() || path[prefix.len()] == b'/')
}

/// Why a request gets no route (400, or 404 for `NoRoute`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("no route for this host and path")]
    NoRoute,
}

/// The route decision for one request, made once, before anything is forwarded.
#[derive(Debug)]
pub struct Decision<'r, 'a> {
    pub route: &'r Route,
    /// The host the route was chosen by: the request's own, or a believed X-Forwarded-Host.
    /// It is what the upstream is told (Host, or X-Forwarded-Host when it came from there).
    pub host: Option<Host<'a>>,
    /// The path, normalised, when normalising changed it.
    pub forward_path: Option<String>,
    /// The route's `public_paths` entry this request matched: no sign-in for it.
    pub public_path: Option<&'r PublicPath>,
}

impl Decision<'_, '_> {
    /// Whether the request must come from a signed-in user.
    pub fn needs_sign_in(&self) -> bool {
        self.route.rule.needs_sign_in() && self.public_path.is_none()
    }
}

/// The host that names the site for a request that is not routed (the gateway's own
/// endpoints, forward-auth): a believed X-Forwarded-Host, else the request's own, validated.
pub fn site_host<'a>(source: &HostSource<'a>) -> Result<Option<Host<'a>>, HostError> {
    let own = request_host(source.headers, source.uri, source.version)?;
    Ok(forwarded_host(source)?.or(own))
}

impl RouteTable {
    /// The one route decision: validated host (see `host`), normalised path (see `path`), then
    /// the route. When a believed X-Forwarded-Host chooses the route, the request's own Host
    /// must not name a host route that says otherwise: the upstream reads Host, so the two
    /// would be decided differently. Last, whether the route's `public_paths` make this
    /// method and path public (regexes run only on routes that have them).
    pub fn decide<'a>(
        &self,
        method: &http::Method,
        source: &HostSource<'a>,
        raw_path: &'a str,
    ) -> Result<Decision<'_, 'a>, Refusal> {
        let path = normalize(raw_path)?;
        let own = request_host(source.headers, source.uri, source.version)?;
        let forwarded = forwarded_host(source)?;
        let host = forwarded.or(own);
        let route = self
            .lookup(host.map(|h| h.name), path.match_path())
            .ok_or(Refusal::NoRoute)?;
        if let (Some(_), Some(own)) = (forwarded, own) {
            if self.names_host(own.name) {
                let by_own = self.lookup(Some(own.name), path.match_path());
                if by_own.map(|r| r.id) != Some(route.id) {
                    return Err(HostError::Disagree.into());
                }
            }
        }
        let public_path = if route.rule.needs_sign_in() {
            route.public_paths.iter().find(|p| p.admits(method, &path))
        } else {
            None
        };
        Ok(Decision {
            route,
            host,
            forward_path: path.into_changed(),
            public_path,
        })
    }

    /// Whether some route is for this host name.
    fn names_host(&self, name: &str) -> bool {
        let name = name.strip_suffix('.').unwrap_or(name);
        self.routes.iter().any(|r| {
            r.host
                .as_deref()
                .is_some_and(|h| h.eq_ignore_ascii_case(name))
        })
    }
}

/// A CORS preflight: browsers send it before a cross-origin call, without cookies or
/// credentials, so it can never be signed in (`[access] skip_preflight`). Used by the
/// handler and by forward-auth, so it lives here rather than in either.
pub fn is_cors_preflight<B>(req: &http::Request<B>) -> bool {
    req.method() == http::Method::OPTIONS
        && req.headers().contains_key(http::header::ORIGIN)
        && req
            .headers()
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

#[cfg(test)]
mod tests;

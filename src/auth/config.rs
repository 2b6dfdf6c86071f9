//! The configuration file's `[auth]` and `[tls]` sections:
//!
//! ```toml
//! [auth]
//! method = "scram-sha-256"   # or "md5"; the default once users exist
//!
//! [[auth.users]]
//! name = "app"
//! password = "app-secret"
//!
//! [[auth.users]]
//! name = "dashboard"
//! password = "dashboard-secret"
//! read_only = true
//!
//! [tls]
//! cert = "server.crt"        # PEM; relative paths are from this file's directory
//! key = "server.key"
//! ```

use std::path::Path;

use serde::Deserialize;

use super::{AuthError, Method, TlsConfig, User};

/// Users, the password method and TLS, as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// `None`: SCRAM-SHA-256 if there are users, trust if there are none.
    pub method: Option<Method>,
    pub users: Vec<User>,
    pub tls: Option<TlsConfig>,
    /// The token every HTTP request must carry (`[http] token`), if any.
    pub http_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    auth: Option<AuthSection>,
    #[serde(default)]
    tls: Option<TlsSection>,
    #[serde(default)]
    http: Option<HttpSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpSection {
    token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthSection {
    method: Option<String>,
    #[serde(default)]
    users: Vec<UserSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserSection {
    name: String,
    password: String,
    #[serde(default)]
    read_only: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    cert: String,
    key: String,
}

impl AuthConfig {
    /// How connections authenticate.
    pub fn method(&self) -> Method {
        match self.method {
            Some(m) => m,
            None if self.users.is_empty() => Method::Trust,
            None => Method::ScramSha256,
        }
    }

    /// Reads the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AuthError::Config(format!("cannot read the configuration file {}: {e}", path.display())))?;
        Self::from_toml(&text, path.parent().unwrap_or(Path::new(".")))
            .map_err(|e| AuthError::Config(format!("{}: {e}", path.display())))
    }

    /// Parses a configuration file's text; TLS paths are relative to `dir`.
    pub fn from_toml(text: &str, dir: &Path) -> Result<Self, AuthError> {
        let file: File = toml::from_str(text).map_err(|e| AuthError::Config(e.to_string()))?;
        let mut config = AuthConfig::default();
        if let Some(auth) = file.auth {
            config.method = auth.method.as_deref().map(parse_method).transpose()?;
            for u in auth.users {
                if u.name.is_empty() || u.password.is_empty() {
                    return Err(AuthError::Config("every [[auth.users]] needs a name and a password".into()));
                }
                if config.users.iter().any(|x| x.name == u.name) {
                    return Err(AuthError::Config(format!("user \"{}\" is configured twice", u.name)));
                }
                config.users.push(User { name: u.name, password: u.password, read_only: u.read_only });
            }
            if config.method.is_some_and(|m| m != Method::Trust) && config.users.is_empty() {
                return Err(AuthError::Config(
                    "a password method needs users: add [[auth.users]] entries with name and password".into(),
                ));
            }
        }
        config.tls = file.tls.map(|t| TlsConfig { cert: dir.join(t.cert), key: dir.join(t.key) });
        config.http_token = file.http.and_then(|h| h.token);
        let url_safe = |t: &str| t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        if config.http_token.as_deref().is_some_and(|t| t.len() < 16 || !url_safe(t)) {
            return Err(AuthError::Config(
                "[http] token must be at least 16 characters of letters, digits and - . _ ~ (it may travel in a URL)"
                    .into(),
            ));
        }
        Ok(config)
    }
}

fn parse_method(name: &str) -> Result<Method, AuthError> {
    match name.to_ascii_lowercase().as_str() {
        "scram-sha-256" => Ok(Method::ScramSha256),
        "md5" => Ok(Method::Md5),
        "trust" => Ok(Method::Trust),
        other => Err(AuthError::Config(format!("auth method \"{other}\" is not one of scram-sha-256, md5, trust"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_methods_and_tls_paths() {
        let text = r#"
            [auth]
            method = "md5"
            [[auth.users]]
            name = "app"
            password = "s1"
            [[auth.users]]
            name = "dash"
            password = "s2"
            read_only = true
            [tls]
            cert = "server.crt"
            key = "/etc/eddy/server.key"
        "#;
        let c = AuthConfig::from_toml(text, Path::new("/conf")).unwrap();
        assert_eq!(c.method(), Method::Md5);
        assert_eq!(c.users.len(), 2);
        assert!(c.users[1].read_only && !c.users[0].read_only);
        let tls = c.tls.unwrap();
        assert_eq!(tls.cert, Path::new("/conf/server.crt"));
        assert_eq!(tls.key, Path::new("/etc/eddy/server.key"));
        assert_eq!(AuthConfig::default().method(), Method::Trust);
        let users_only = "[[auth.users]]\nname = \"a\"\npassword = \"b\"\n";
        assert_eq!(AuthConfig::from_toml(users_only, Path::new(".")).unwrap().method(), Method::ScramSha256);
    }

    #[test]
    fn mistakes_are_named() {
        let bad = |text: &str| AuthConfig::from_toml(text, Path::new(".")).unwrap_err().to_string();
        assert!(bad("[auth]\nmethod = \"ldap\"\n").contains("not one of scram-sha-256"));
        assert!(bad("[auth]\nmethod = \"md5\"\n").contains("needs users"));
        assert!(bad("[auth]\nmethd = \"md5\"\n").contains("unknown field"));
        let twice = "[[auth.users]]\nname = \"a\"\npassword = \"b\"\n[[auth.users]]\nname = \"a\"\npassword = \"c\"\n";
        assert!(bad(twice).contains("configured twice"));
    }
}

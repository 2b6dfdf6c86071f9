//! Who may connect, how they prove it, and what they may do.
//!
//! - **Users** come from the configuration file (`eddy serve --config
//!   eddy.toml`, [`AuthConfig::from_toml`]): a name, a password and whether
//!   the user is read-only.
//! - **Passwords** are checked with SCRAM-SHA-256 (the default once users
//!   exist) or md5, by pgwire's handlers ([`crate::pgwire`]'s startup).
//!   SCRAM's salted password is derived once per user at startup, as
//!   PostgreSQL stores a verifier, not on every login.
//! - **TLS** is offered when a certificate and key are configured; clients
//!   ask for it with `sslmode=require`.
//! - **Read-only users** may read views and catalogs, but every statement
//!   that writes (DDL, INSERT, COPY, Kafka and TTL functions, CHECKPOINT)
//!   fails with SQLSTATE 42501.
//!
//! With no users configured, every connection is trusted: the quick start
//! on loopback needs no set-up.

mod config;
mod tls;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use pgwire::api::auth::sasl::scram::gen_salted_password;
use pgwire::api::auth::{AuthSource, LoginInfo, Password};
use pgwire::error::{PgWireError, PgWireResult};

pub use config::AuthConfig;
pub use tls::{TlsConfig, tls_acceptor};

/// How passwords are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// No password: every connection is accepted (no users configured).
    Trust,
    /// PostgreSQL's md5 challenge.
    Md5,
    /// SCRAM-SHA-256, PostgreSQL's default since version 14.
    ScramSha256,
}

/// One configured user.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub password: String,
    /// May only read.
    pub read_only: bool,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User").field("name", &self.name).field("read_only", &self.read_only).finish_non_exhaustive()
    }
}

/// Errors in the authentication and TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The configuration file is wrong; the message says where.
    #[error("{0}")]
    Config(String),
    /// The certificate or key could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
    /// A read-only user ran a statement that writes.
    #[error("permission denied: user \"{user}\" is read-only and cannot {action}; connect as a user with write access")]
    ReadOnly { user: String, action: &'static str },
}

/// SCRAM iterations, as PostgreSQL's default `scram_iterations`.
const SCRAM_ITERATIONS: usize = 4096;

/// A user as the password check needs it.
#[derive(Clone)]
struct Credentials {
    password: String,
    scram_salt: Vec<u8>,
    scram_salted_password: Vec<u8>,
    read_only: bool,
}

/// The configured users, looked up by pgwire's authentication handlers.
#[derive(Clone)]
pub struct Users {
    method: Method,
    users: Arc<HashMap<String, Credentials>>,
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Users").field("method", &self.method).field("count", &self.users.len()).finish()
    }
}

impl Users {
    /// Prepares `config`'s users (SCRAM salts are derived here, once).
    pub fn new(config: &AuthConfig) -> Self {
        let users = config
            .users
            .iter()
            .map(|u| {
                let salt: [u8; 16] = rand_bytes();
                let salted = gen_salted_password(&u.password, &salt, SCRAM_ITERATIONS);
                let credentials = Credentials {
                    password: u.password.clone(),
                    scram_salt: salt.to_vec(),
                    scram_salted_password: salted,
                    read_only: u.read_only,
                };
                (u.name.clone(), credentials)
            })
            .collect();
        Self { method: config.method(), users: Arc::new(users) }
    }

    /// How connections authenticate.
    pub fn method(&self) -> Method {
        self.method
    }

    /// Whether `user` may only read (unknown users never get this far).
    pub fn is_read_only(&self, user: &str) -> bool {
        self.users.get(user).is_some_and(|c| c.read_only)
    }

    /// SCRAM's iteration count.
    pub fn scram_iterations() -> usize {
        SCRAM_ITERATIONS
    }
}

#[async_trait]
impl AuthSource for Users {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().ok_or(PgWireError::UserNameRequired)?;
        let Some(credentials) = self.users.get(user) else {
            return Err(PgWireError::InvalidPassword(user.to_string()));
        };
        Ok(match self.method {
            Method::Md5 => {
                let salt: [u8; 4] = rand_bytes();
                let hashed = pgwire::api::auth::md5pass::hash_md5_password(user, &credentials.password, &salt);
                Password::new(Some(salt.to_vec()), hashed.into_bytes())
            }
            Method::ScramSha256 | Method::Trust => {
                Password::new(Some(credentials.scram_salt.clone()), credentials.scram_salted_password.clone())
            }
        })
    }
}

/// Random bytes for salts, from the operating system's generator (through
/// ring, which pgwire's TLS and SCRAM already use).
fn rand_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; N];
    // SystemRandom reads getrandom(2); it fails only on a broken kernel, and
    // then a salt of zeros is still a valid (if predictable) salt.
    let _ = SystemRandom::new().fill(&mut bytes);
    bytes
}

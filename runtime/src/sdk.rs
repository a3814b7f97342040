//! The SDK the host provides to guests: one host trait per WIT interface.
//!
//! The runtime implements `log` and `runtime` itself (they only touch the invocation);
//! every other interface is provided by the embedder through [`Sdk`]. [`Unavailable`]
//! answers every call of an interface with `error::unavailable`, for hosts that do not
//! offer it (yet).

use crate::bindings::picloud::sdk::types::Error;
use crate::bindings::picloud::sdk::{
    dead_letters, docs, email, files, http, kv, pubsub, secrets, users,
};
use crate::bindings::shim::picloud::sdk::rhai_script;
use wasmtime::component::{HasData, Linker};

/// The services one invocation can reach, one per WIT interface. An embedder builds a
/// fresh value per invocation (it usually carries the app's identity and shared handles).
pub trait Sdk: Send + 'static {
    /// `picloud:sdk/kv`.
    type Kv: kv::Host + Send;
    /// `picloud:sdk/docs`.
    type Docs: docs::Host + Send;
    /// `picloud:sdk/files`.
    type Files: files::Host + Send;
    /// `picloud:sdk/http`.
    type Http: http::Host + Send;
    /// `picloud:sdk/email`.
    type Email: email::Host + Send;
    /// `picloud:sdk/secrets`.
    type Secrets: secrets::Host + Send;
    /// `picloud:sdk/users`.
    type Users: users::Host + Send;
    /// `picloud:sdk/pubsub`.
    type Pubsub: pubsub::Host + Send;
    /// `picloud:sdk/dead-letters`.
    type DeadLetters: dead_letters::Host + Send;
    /// `picloud:sdk/rhai-script`: the script and modules of a Rhai function.
    type Script: rhai_script::Host + Send;

    /// The kv service of this invocation.
    fn kv(&mut self) -> &mut Self::Kv;
    /// The docs service of this invocation.
    fn docs(&mut self) -> &mut Self::Docs;
    /// The files service of this invocation.
    fn files(&mut self) -> &mut Self::Files;
    /// The outbound http service of this invocation.
    fn http(&mut self) -> &mut Self::Http;
    /// The email service of this invocation.
    fn email(&mut self) -> &mut Self::Email;
    /// The secrets service of this invocation.
    fn secrets(&mut self) -> &mut Self::Secrets;
    /// The end-users service of this invocation.
    fn users(&mut self) -> &mut Self::Users;
    /// The pub/sub service of this invocation.
    fn pubsub(&mut self) -> &mut Self::Pubsub;
    /// The dead-letters service of this invocation.
    fn dead_letters(&mut self) -> &mut Self::DeadLetters;
    /// The script source of this invocation (Rhai functions only).
    fn script(&mut self) -> &mut Self::Script;
}

macro_rules! link_services {
    ($linker:expr, $state:ident, $($iface:ident => $getter:ident : $assoc:ident),* $(,)?) => {{
        $(
            struct $assoc<S>(std::marker::PhantomData<S>);
            impl<S: Sdk> HasData for $assoc<S> {
                type Data<'a> = &'a mut S::$assoc;
            }
            $iface::add_to_linker::<$state<S>, $assoc<S>>($linker, |s| s.sdk.$getter())?;
        )*
    }};
}

/// Adds every embedder-provided interface of the SDK to `linker`.
pub(crate) fn add_to_linker<S: Sdk>(
    linker: &mut Linker<crate::invoke::State<S>>,
) -> wasmtime::Result<()> {
    use crate::invoke::State;
    link_services!(linker, State,
        kv => kv: Kv,
        docs => docs: Docs,
        files => files: Files,
        http => http: Http,
        email => email: Email,
        secrets => secrets: Secrets,
        users => users: Users,
        pubsub => pubsub: Pubsub,
        dead_letters => dead_letters: DeadLetters,
        rhai_script => script: Script,
    );
    Ok(())
}

/// Answers every call of an interface with `error::unavailable("<interface> is not
/// available yet")`, for hosts that do not provide it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unavailable;

use crate::Answer;

fn unavailable<T>(interface: &str) -> Answer<T> {
    Ok(Err(Error::Unavailable(format!(
        "{interface} is not available yet"
    ))))
}

impl kv::Host for Unavailable {
    async fn get(&mut self, _: String, _: String) -> Answer<Option<String>> {
        unavailable("kv")
    }
    async fn set(&mut self, _: String, _: String, _: String, _: Option<u64>) -> Answer<()> {
        unavailable("kv")
    }
    async fn delete(&mut self, _: String, _: String) -> Answer<bool> {
        unavailable("kv")
    }
    async fn list(
        &mut self,
        _: String,
        _: String,
        _: Option<String>,
        _: Option<u32>,
    ) -> Answer<kv::Page> {
        unavailable("kv")
    }
    async fn increment(&mut self, _: String, _: String, _: i64) -> Answer<i64> {
        unavailable("kv")
    }
}

impl docs::Host for Unavailable {
    async fn insert(&mut self, _: String, _: Option<String>, _: String) -> Answer<String> {
        unavailable("docs")
    }
    async fn get(&mut self, _: String, _: String) -> Answer<Option<String>> {
        unavailable("docs")
    }
    async fn replace(&mut self, _: String, _: String, _: String) -> Answer<()> {
        unavailable("docs")
    }
    async fn patch(&mut self, _: String, _: String, _: String) -> Answer<String> {
        unavailable("docs")
    }
    async fn delete(&mut self, _: String, _: String) -> Answer<bool> {
        unavailable("docs")
    }
    async fn find(
        &mut self,
        _: String,
        _: String,
        _: docs::FindOptions,
    ) -> Answer<Vec<docs::Document>> {
        unavailable("docs")
    }
    async fn count(&mut self, _: String, _: String) -> Answer<u64> {
        unavailable("docs")
    }
}

impl files::Host for Unavailable {
    async fn put(&mut self, _: String, _: Vec<u8>, _: String) -> Answer<files::Stat> {
        unavailable("files")
    }
    async fn get(&mut self, _: String) -> Answer<Option<(files::Stat, Vec<u8>)>> {
        unavailable("files")
    }
    async fn head(&mut self, _: String) -> Answer<Option<files::Stat>> {
        unavailable("files")
    }
    async fn delete(&mut self, _: String) -> Answer<bool> {
        unavailable("files")
    }
    async fn list(&mut self, _: String, _: Option<String>, _: Option<u32>) -> Answer<files::Page> {
        unavailable("files")
    }
}

impl http::Host for Unavailable {
    async fn fetch(&mut self, _: http::OutgoingRequest) -> Answer<http::IncomingResponse> {
        unavailable("http")
    }
}

impl email::Host for Unavailable {
    async fn send(&mut self, _: email::Message) -> Answer<String> {
        unavailable("email")
    }
}

impl secrets::Host for Unavailable {
    async fn get(&mut self, _: String) -> Answer<Option<String>> {
        unavailable("secrets")
    }
    async fn set(&mut self, _: String, _: String) -> Answer<()> {
        unavailable("secrets")
    }
    async fn delete(&mut self, _: String) -> Answer<bool> {
        unavailable("secrets")
    }
    async fn list(&mut self) -> Answer<Vec<String>> {
        unavailable("secrets")
    }
}

impl users::Host for Unavailable {
    async fn create(&mut self, _: users::NewUser) -> Answer<users::User> {
        unavailable("users")
    }
    async fn get(&mut self, _: String) -> Answer<Option<users::User>> {
        unavailable("users")
    }
    async fn find_by_email(&mut self, _: String) -> Answer<Option<users::User>> {
        unavailable("users")
    }
    async fn update(&mut self, _: String, _: users::UserUpdate) -> Answer<users::User> {
        unavailable("users")
    }
    async fn delete(&mut self, _: String) -> Answer<bool> {
        unavailable("users")
    }
    async fn list(&mut self, _: Option<String>, _: Option<u32>) -> Answer<users::UserPage> {
        unavailable("users")
    }
    async fn login(&mut self, _: String, _: String) -> Answer<users::Session> {
        unavailable("users")
    }
    async fn verify(&mut self, _: String) -> Answer<users::User> {
        unavailable("users")
    }
    async fn logout(&mut self, _: String) -> Answer<()> {
        unavailable("users")
    }
    async fn request_password_reset(&mut self, _: String) -> Answer<()> {
        unavailable("users")
    }
    async fn reset_password(&mut self, _: String, _: String) -> Answer<()> {
        unavailable("users")
    }
    async fn request_verification(&mut self, _: String) -> Answer<()> {
        unavailable("users")
    }
    async fn verify_email(&mut self, _: String) -> Answer<users::User> {
        unavailable("users")
    }
    async fn invite(&mut self, _: String, _: Vec<String>) -> Answer<()> {
        unavailable("users")
    }
    async fn accept_invite(&mut self, _: String, _: String) -> Answer<users::User> {
        unavailable("users")
    }
    async fn add_role(&mut self, _: String, _: String) -> Answer<users::User> {
        unavailable("users")
    }
    async fn remove_role(&mut self, _: String, _: String) -> Answer<users::User> {
        unavailable("users")
    }
}

impl pubsub::Host for Unavailable {
    async fn publish(&mut self, _: String, _: String) -> Answer<()> {
        unavailable("pubsub")
    }
    async fn publish_durable(&mut self, _: String, _: String) -> Answer<()> {
        unavailable("pubsub")
    }
    async fn subscriber_token(&mut self, _: Vec<String>, _: u32) -> Answer<String> {
        unavailable("pubsub")
    }
}

impl dead_letters::Host for Unavailable {
    async fn replay(&mut self, _: String) -> Answer<()> {
        unavailable("dead-letters")
    }
    async fn resolve(&mut self, _: String) -> Answer<()> {
        unavailable("dead-letters")
    }
}

/// Functions that are not Rhai scripts have no script: asking traps.
impl rhai_script::Host for Unavailable {
    async fn main_source(&mut self) -> wasmtime::Result<String> {
        wasmtime::bail!("this function has no Rhai script")
    }
    async fn module_source(&mut self, _: String) -> wasmtime::Result<Option<String>> {
        wasmtime::bail!("this function has no Rhai script")
    }
    async fn limits(&mut self) -> wasmtime::Result<rhai_script::ScriptLimits> {
        wasmtime::bail!("this function has no Rhai script")
    }
}

/// An [`Sdk`] that offers no embedder service at all: every call answers `unavailable`.
/// Useful for guests that only compute, and for tests of the sandbox itself.
impl Sdk for Unavailable {
    type Kv = Unavailable;
    type Docs = Unavailable;
    type Files = Unavailable;
    type Http = Unavailable;
    type Email = Unavailable;
    type Secrets = Unavailable;
    type Users = Unavailable;
    type Pubsub = Unavailable;
    type DeadLetters = Unavailable;
    type Script = Unavailable;

    fn kv(&mut self) -> &mut Unavailable {
        self
    }
    fn docs(&mut self) -> &mut Unavailable {
        self
    }
    fn files(&mut self) -> &mut Unavailable {
        self
    }
    fn http(&mut self) -> &mut Unavailable {
        self
    }
    fn email(&mut self) -> &mut Unavailable {
        self
    }
    fn secrets(&mut self) -> &mut Unavailable {
        self
    }
    fn users(&mut self) -> &mut Unavailable {
        self
    }
    fn pubsub(&mut self) -> &mut Unavailable {
        self
    }
    fn dead_letters(&mut self) -> &mut Unavailable {
        self
    }
    fn script(&mut self) -> &mut Unavailable {
        self
    }
}

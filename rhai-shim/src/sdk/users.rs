//! `users`: end users of the app — accounts, sessions, verification and roles.
//!
//! A user is `#{ id, email, email_verified, roles, data, created }` (`data` is the
//! app-defined profile map, `created` milliseconds since the Unix epoch).
//!
//! ```rhai
//! let u = users::create(#{ email: "ada@example.com", password: "s3cret!", roles: ["admin"], data: #{ name: "Ada" } });
//! let token = users::login("ada@example.com", "s3cret!");   // a session token (throws on bad credentials)
//! let me = users::verify(token);                             // the user, or () for a bad or expired token
//! users::logout(token);
//! users::get(u.id);  users::find_by_email("ada@example.com");   // the user, or ()
//! users::update(u.id, #{ data: #{ name: "Ada L." }, roles: ["admin", "ops"] });
//! users::add_role(u.id, "billing");  users::remove_role(u.id, "billing");
//! let page = users::list(#{ limit: 50 });                    // #{ users: [..], cursor }
//! users::request_password_reset("ada@example.com");  users::reset_password(reset_token, "n3w!");
//! users::request_verification(u.id);  users::verify_email(verify_token);
//! users::invite("bob@example.com", ["viewer"]);  users::accept_invite(invite_token, "pw");
//! users::delete(u.id);                                       // true when it existed
//! ```

use super::{Fields, add_fn, int_of, json_value, or_unit, sdk_error, string_array, strings_arg};
use crate::host::{Host, NewUser, SdkError, User, UserUpdate};
use crate::sdk::RhaiResultOf;
use rhai::{Dynamic, Map, Module};
use std::rc::Rc;

pub(super) fn register(module: &mut Module, host: &Rc<dyn Host>) {
    let h = host.clone();
    add_fn(
        module,
        "create",
        move |user: Dynamic| -> RhaiResultOf<Map> {
            let fields = Fields::of("users::create", &user)?;
            let new_user = NewUser {
                email: fields.required_string("email")?,
                password: fields.required_string("password")?,
                roles: fields.strings("roles")?,
                data: fields.json("data")?,
            };
            let user = h
                .users_create(&new_user)
                .map_err(|e| sdk_error("users::create", e))?;
            user_map("users::create", user)
        },
    );

    let h = host.clone();
    add_fn(module, "get", move |id: &str| {
        let user = h.users_get(id).map_err(|e| sdk_error("users::get", e))?;
        optional_user("users::get", user)
    });

    for name in ["find_by_email", "find"] {
        let h = host.clone();
        let function = format!("users::{name}");
        add_fn(module, name, move |email: &str| {
            let user = h
                .users_find_by_email(email)
                .map_err(|e| sdk_error(&function, e))?;
            optional_user(&function, user)
        });
    }

    let h = host.clone();
    add_fn(
        module,
        "update",
        move |id: &str, update: Dynamic| -> RhaiResultOf<Map> {
            let fields = Fields::of("users::update", &update)?;
            let roles = match fields.get("roles") {
                Some(roles) => Some(strings_arg("users::update", "roles", &roles)?),
                None => None,
            };
            let update = UserUpdate {
                email: fields.string("email")?,
                password: fields.string("password")?,
                roles,
                data: fields.json("data")?,
            };
            let user = h
                .users_update(id, &update)
                .map_err(|e| sdk_error("users::update", e))?;
            user_map("users::update", user)
        },
    );

    let h = host.clone();
    add_fn(module, "delete", move |id: &str| {
        h.users_delete(id)
            .map_err(|e| sdk_error("users::delete", e))
    });

    let h = host.clone();
    add_fn(module, "list", move || list(&*h, None, None));

    let h = host.clone();
    add_fn(module, "list", move |options: Dynamic| {
        let options = Fields::of("users::list", &options)?;
        let cursor = options.string("cursor")?;
        list(&*h, cursor.as_deref(), options.u32("limit")?)
    });

    let h = host.clone();
    add_fn(module, "login", move |email: &str, password: &str| {
        h.users_login(email, password)
            .map(|session| session.token)
            .map_err(|e| sdk_error("users::login", e))
    });

    let h = host.clone();
    add_fn(
        module,
        "verify",
        move |token: &str| -> RhaiResultOf<Dynamic> {
            match h.users_verify(token) {
                Ok(user) => user_map("users::verify", user).map(Dynamic::from_map),
                Err(SdkError::NotFound | SdkError::Denied(_) | SdkError::Invalid(_)) => {
                    Ok(Dynamic::UNIT)
                }
                Err(e) => Err(sdk_error("users::verify", e)),
            }
        },
    );

    let h = host.clone();
    add_fn(module, "logout", move |token: &str| {
        h.users_logout(token)
            .map_err(|e| sdk_error("users::logout", e))
    });

    let h = host.clone();
    add_fn(module, "request_password_reset", move |email: &str| {
        h.users_request_password_reset(email)
            .map_err(|e| sdk_error("users::request_password_reset", e))
    });

    let h = host.clone();
    add_fn(
        module,
        "reset_password",
        move |token: &str, new_password: &str| {
            h.users_reset_password(token, new_password)
                .map_err(|e| sdk_error("users::reset_password", e))
        },
    );

    let h = host.clone();
    add_fn(module, "request_verification", move |id: &str| {
        h.users_request_verification(id)
            .map_err(|e| sdk_error("users::request_verification", e))
    });

    let h = host.clone();
    add_fn(
        module,
        "verify_email",
        move |token: &str| -> RhaiResultOf<Map> {
            let user = h
                .users_verify_email(token)
                .map_err(|e| sdk_error("users::verify_email", e))?;
            user_map("users::verify_email", user)
        },
    );

    let h = host.clone();
    add_fn(module, "invite", move |email: &str| {
        h.users_invite(email, &[])
            .map_err(|e| sdk_error("users::invite", e))
    });

    let h = host.clone();
    add_fn(module, "invite", move |email: &str, roles: Dynamic| {
        let roles = strings_arg("users::invite", "roles", &roles)?;
        h.users_invite(email, &roles)
            .map_err(|e| sdk_error("users::invite", e))
    });

    let h = host.clone();
    add_fn(
        module,
        "accept_invite",
        move |token: &str, password: &str| -> RhaiResultOf<Map> {
            let user = h
                .users_accept_invite(token, password)
                .map_err(|e| sdk_error("users::accept_invite", e))?;
            user_map("users::accept_invite", user)
        },
    );

    let h = host.clone();
    add_fn(
        module,
        "add_role",
        move |id: &str, role: &str| -> RhaiResultOf<Map> {
            let user = h
                .users_add_role(id, role)
                .map_err(|e| sdk_error("users::add_role", e))?;
            user_map("users::add_role", user)
        },
    );

    let h = host.clone();
    add_fn(
        module,
        "remove_role",
        move |id: &str, role: &str| -> RhaiResultOf<Map> {
            let user = h
                .users_remove_role(id, role)
                .map_err(|e| sdk_error("users::remove_role", e))?;
            user_map("users::remove_role", user)
        },
    );
}

fn list(host: &dyn Host, cursor: Option<&str>, limit: Option<u32>) -> RhaiResultOf<Map> {
    let page = host
        .users_list(cursor, limit)
        .map_err(|e| sdk_error("users::list", e))?;
    let users = page
        .users
        .into_iter()
        .map(|u| user_map("users::list", u).map(Dynamic::from_map))
        .collect::<RhaiResultOf<Vec<_>>>()?;
    let mut map = Map::new();
    map.insert("users".into(), Dynamic::from_array(users));
    map.insert("cursor".into(), or_unit(page.cursor));
    Ok(map)
}

fn optional_user(function: &str, user: Option<User>) -> RhaiResultOf<Dynamic> {
    match user {
        Some(user) => user_map(function, user).map(Dynamic::from_map),
        None => Ok(Dynamic::UNIT),
    }
}

/// A user as `#{ id, email, email_verified, roles, data, created }`.
fn user_map(function: &str, user: User) -> RhaiResultOf<Map> {
    let data = if user.data.trim().is_empty() {
        Dynamic::from_map(Map::new())
    } else {
        json_value(function, &user.data)?
    };
    let mut map = Map::new();
    map.insert("id".into(), user.id.into());
    map.insert("email".into(), user.email.into());
    map.insert("email_verified".into(), user.email_verified.into());
    map.insert("roles".into(), string_array(&user.roles));
    map.insert("data".into(), data);
    map.insert("created".into(), int_of(user.created));
    Ok(map)
}

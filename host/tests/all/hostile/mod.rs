//! Hostile tenants and clients (issue 11): each test here failed on the code before its
//! fix. Grouped by where the attack lands: the HTTP boundary, the sandbox, storage.

mod http;
mod sandbox;
mod storage;

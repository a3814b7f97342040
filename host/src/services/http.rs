//! `picloud:sdk/http`: outbound HTTP of one invocation, through the process's
//! [`Outbound`] (the SSRF guard and the shared client).

use crate::outbound::{Outbound, Scope};
use picloud_runtime::http::{Host, IncomingResponse, OutgoingRequest};
use picloud_runtime::{Answer, GuestError};
use std::sync::Arc;
use tracing::instrument;

pub use super::common::CallLog;

/// The http service of one invocation.
pub struct HttpService {
    /// `None` on hosts without outbound HTTP (host-side callers, tests of other
    /// services): every call answers `unavailable`.
    outbound: Option<Arc<Outbound>>,
    allow_hosts: Option<Arc<[String]>>,
    deadline: Option<tokio::time::Instant>,
    calls: u32,
    log: CallLog,
}

impl HttpService {
    /// The service of an invocation of an app whose allow-list of hosts is
    /// `allow_hosts` (`None`: any host the guard lets through), ending at `deadline`;
    /// its calls are logged into `log`.
    pub fn new(
        outbound: Arc<Outbound>,
        allow_hosts: Option<Arc<[String]>>,
        deadline: Option<tokio::time::Instant>,
        log: CallLog,
    ) -> Self {
        Self {
            outbound: Some(outbound),
            allow_hosts,
            deadline,
            calls: 0,
            log,
        }
    }

    /// A service that answers every call `unavailable`.
    pub fn unavailable() -> Self {
        Self {
            outbound: None,
            allow_hosts: None,
            deadline: None,
            calls: 0,
            log: CallLog::default(),
        }
    }
}

impl Host for HttpService {
    #[instrument(name = "picloud.http.fetch", skip_all)]
    async fn fetch(&mut self, request: OutgoingRequest) -> Answer<IncomingResponse> {
        let Some(outbound) = &self.outbound else {
            return Ok(Err(GuestError::Unavailable(
                "outbound http is not available here".into(),
            )));
        };
        let max_calls = outbound.config().max_calls;
        if self.calls >= max_calls {
            return Ok(Err(GuestError::Limit(format!(
                "an invocation may make at most {max_calls} outbound http calls"
            ))));
        }
        self.calls += 1;
        let scope = Scope {
            allow_hosts: self.allow_hosts.as_deref(),
            deadline: self.deadline,
        };
        let mut lines = Vec::new();
        let answer = outbound.fetch(request, &scope, &mut lines).await;
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(lines);
        Ok(answer)
    }
}

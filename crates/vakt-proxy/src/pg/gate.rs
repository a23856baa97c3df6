//! Enforcement: the guard's verdict for a connection's user and address,
//! taken at startup and per statement (each statement of a simple query,
//! each `Parse` and `Execute`), and the refusals the proxy answers itself.

use super::record::truncate;
use super::session::Ctx;
use super::wire;
use crate::guard::Verdict;
use crate::FailMode;
use bytes::BytesMut;
use std::time::Duration;

/// A refusal the proxy answers itself: an `ErrorResponse`, and for a
/// request (not a startup) then `ReadyForQuery`.
#[derive(Clone, Debug)]
pub(super) struct Refusal {
    pub(super) code: &'static str,
    pub(super) message: String,
    pub(super) detail: Option<String>,
    pub(super) hint: Option<String>,
}

pub(super) enum Gate {
    Pass,
    Delay(Duration),
    Refuse(Refusal),
}

/// Pass, hold back, or refuse a request of `ctx` now.
pub(super) fn gate(ctx: &Ctx) -> Gate {
    gate_with(ctx, true)
}

/// As [`gate`] for what reads nothing itself (a `Parse`): a throttle's
/// allowance is not spent, so a statement prepared and run once counts once.
pub(super) fn gate_prepare(ctx: &Ctx) -> Gate {
    gate_with(ctx, false)
}

fn gate_with(ctx: &Ctx, spend: bool) -> Gate {
    let shared = &ctx.shared;
    let contact = &shared.guard.config().contact;
    if shared.sink.fail_mode() == FailMode::Closed && !shared.sink.keeping_up() {
        return Gate::Refuse(Refusal {
            code: "57P03",
            message: "vakt's audit engine is behind, so requests are refused for now (fail-closed)"
                .into(),
            detail: None,
            hint: Some(format!(
                "retry in a moment; if this persists, contact {contact}"
            )),
        });
    }
    let verdict = if spend {
        shared.guard.verdict(Some(&ctx.user), Some(ctx.ip()))
    } else {
        shared
            .guard
            .verdict_without_spending(Some(&ctx.user), Some(ctx.ip()))
    };
    match verdict {
        Verdict::Pass => Gate::Pass,
        Verdict::Throttle { wait, .. } => Gate::Delay(wait.min(shared.config.throttle_delay)),
        Verdict::Block(d) => Gate::Refuse(Refusal {
            code: "42501",
            message: format!(
                "account \"{}\" is blocked by vakt until {}",
                ctx.user,
                d.expires.to_rfc3339()
            ),
            detail: Some(format!("reason: {} (decision {})", d.reason, d.id)),
            hint: Some(format!("contact {contact} if this is a mistake")),
        }),
        Verdict::StepUp(d) => Gate::Refuse(Refusal {
            code: "42501",
            message: format!(
                "account \"{}\" must confirm a second factor before reading customer data (vakt step-up, until {})",
                ctx.user,
                d.expires.to_rfc3339()
            ),
            detail: Some(format!("reason: {} (decision {})", d.reason, d.id)),
            hint: Some(format!(
                "the database protocol cannot ask for a code: confirm it in vakt's web console, or contact {contact}"
            )),
        }),
    }
}

/// The verdict for `n` statements sent at once (a simple query): each
/// asks the guard, so a throttle counts every statement and their waits
/// add up; one refusal refuses them all.
pub(super) fn gate_statements(ctx: &Ctx, n: usize) -> Gate {
    let mut wait = Duration::ZERO;
    for _ in 0..n.max(1) {
        match gate(ctx) {
            Gate::Pass => {}
            Gate::Delay(d) => wait = wait.saturating_add(d),
            refuse @ Gate::Refuse(_) => return refuse,
        }
    }
    if wait.is_zero() {
        Gate::Pass
    } else {
        Gate::Delay(wait)
    }
}

pub(super) fn refusal_bytes(r: &Refusal, severity: &str) -> BytesMut {
    wire::error_response(
        severity,
        r.code,
        truncate(&r.message, 2000),
        r.detail.as_deref().map(|d| truncate(d, 2000)),
        r.hint.as_deref().map(|h| truncate(h, 2000)),
    )
}

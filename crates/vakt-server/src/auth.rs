//! Who may call the API: bearer tokens with a role (ingest, read, analyst,
//! admin),
//! compared by their BLAKE3 hash; the secret is never logged or echoed.

use crate::State;
use axum::extract::ConnectInfo;
use axum::http::{header, Extensions, HeaderMap, StatusCode};
use std::sync::Arc;
use vakt_ledger::audit::Who;
use vakt_ledger::tokens::{Role, TokenInfo};

use crate::http::{blocking, lock, ApiError};

/// The token of the request, if it may do what `needed` allows. The
/// secret is never logged or echoed.
pub(crate) async fn authorize(
    state: &Arc<State>,
    headers: &HeaderMap,
    needed: Role,
) -> Result<TokenInfo, ApiError> {
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, m);
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "no token: send `Authorization: Bearer <token>`; `vakt token create --name NAME --role ROLE` makes one",
        ));
    };
    let secret = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim().to_owned())
        })
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
    let state2 = state.clone();
    let token = blocking(move || {
        lock(&state2.reader)
            .token(&secret)
            .map_err(ApiError::internal)
    })
    .await?
    .ok_or_else(|| {
        unauthorized(
            "the token is not known (mistyped, or revoked); `vakt token list` shows the tokens",
        )
    })?;
    if !token.role.allows(needed) {
        let why = match needed {
            Role::Ingest => "posting events needs an ingest token",
            Role::Read => "reading needs a read, analyst or admin token",
            Role::Analyst => "working incidents needs an analyst or admin token",
            Role::Admin => "changing decisions and drafting reports need an admin token",
        };
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("token {} has the role {}; {why}", token.name, token.role),
        ));
    }
    Ok(token)
}

/// Who a token's request is, for the audit trail: `token NAME`, over the
/// API, from the client's address.
pub(crate) fn who(token: &TokenInfo, ext: &Extensions) -> Who {
    Who::new(
        format!("token {}", token.name),
        "api",
        ext.get::<ConnectInfo<crate::ClientAddr>>()
            .map(|c| c.0 .0.ip().to_canonical().to_string()),
    )
}

//! The startup phase: the startup packet (encryption requests answered
//! `N`), cancel requests, and the refusal when PostgreSQL cannot be reached.

use super::gate::{refusal_bytes, Refusal};
use super::session::Shared;
use super::wire;
use super::{io, PgError};
use pgwire::messages::startup::{GssEncRequest, SslRequest};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads the startup packet, answering SSL and GSS encryption requests
/// with `N`. `None` when the client went away.
pub(super) async fn startup_packet(client: &mut TcpStream) -> Result<Option<Vec<u8>>, PgError> {
    // A client may ask for GSS, then SSL, then start: a few rounds at most.
    for _ in 0..4 {
        let mut head = [0u8; 4];
        match client.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(io("reading the startup packet")(e)),
        }
        // Checked against PostgreSQL's 10,000-byte cap before anything is allocated for it.
        let len = wire::startup_len(head)?;
        let mut packet = vec![0u8; len];
        packet[..4].copy_from_slice(&head);
        client
            .read_exact(&mut packet[4..])
            .await
            .map_err(io("reading the startup packet"))?;
        if len == 8
            && (SslRequest::is_ssl_request_packet(&packet)
                || GssEncRequest::is_gss_enc_request_packet(&packet))
        {
            client
                .write_all(b"N")
                .await
                .map_err(io("answering an encryption request"))?;
            continue;
        }
        return Ok(Some(packet));
    }
    Err(PgError::Malformed(
        "too many encryption requests before the startup packet".into(),
    ))
}

/// A cancel request goes to the upstream as it came; its keys are the
/// server's own (no pooling, `BackendKeyData` forwarded unchanged).
pub(super) async fn forward_cancel(packet: &[u8], shared: &Shared) -> Result<(), PgError> {
    let mut up = match tokio::time::timeout(
        shared.config.connect_timeout,
        TcpStream::connect(shared.config.upstream.as_str()),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(PgError::Upstream {
                upstream: shared.config.upstream.clone(),
                reason: e.to_string(),
            })
        }
        Err(_) => return Err(PgError::Timeout("PostgreSQL to accept a cancel request")),
    };
    up.write_all(packet)
        .await
        .map_err(io("forwarding a cancel request"))?;
    // PostgreSQL closes the connection once it has read the request.
    let mut sink = [0u8; 64];
    let _ = tokio::time::timeout(Duration::from_secs(5), up.read(&mut sink)).await;
    Ok(())
}

pub(super) async fn refuse_upstream(
    client: &mut TcpStream,
    shared: &Shared,
    reason: String,
) -> PgError {
    let r = Refusal {
        code: "08006",
        message: format!(
            "vakt's proxy cannot reach the database at {}",
            shared.config.upstream
        ),
        detail: Some(reason.clone()),
        hint: None,
    };
    let _ = client.write_all(&refusal_bytes(&r, "FATAL")).await;
    PgError::Upstream {
        upstream: shared.config.upstream.clone(),
        reason,
    }
}

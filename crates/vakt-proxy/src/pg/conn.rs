//! One client connection: the startup phase, the guard's verdict at
//! login, then two pumps, client -> server ([`Frontend`]) and server ->
//! client ([`Backend`]), each reading into one reusable buffer, looking at
//! whole frames and forwarding them in one write per read.

use super::backend::Backend;
use super::frontend::Frontend;
use super::gate::{gate, refusal_bytes, Gate, Refusal};
use super::pump::Announced;
use super::record::Access;
use super::session::{Ctx, Shared};
use super::startup::{forward_cancel, refuse_upstream, startup_packet};
use super::wire;
use super::{io, PgError};
use pgwire::messages::cancel::CancelRequest;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use vakt_event::{Action, Outcome};

/// Serves one client until either side closes; errors are logged here.
pub(crate) async fn connection(client: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    match run(client, peer, shared).await {
        Ok(()) => tracing::debug!("pg proxy: {peer} closed"),
        // A client or server going away mid-stream is routine.
        Err(e @ PgError::Io { .. }) => tracing::debug!("pg proxy: connection from {peer}: {e}"),
        Err(e) => tracing::warn!("pg proxy: connection from {peer}: {e}; connection closed"),
    }
}

async fn run(mut client: TcpStream, peer: SocketAddr, shared: Arc<Shared>) -> Result<(), PgError> {
    client
        .set_nodelay(true)
        .map_err(io("setting TCP_NODELAY"))?;
    let startup_timeout = shared.config.startup_timeout;
    let packet = match tokio::time::timeout(startup_timeout, startup_packet(&mut client)).await {
        Ok(r) => r?,
        Err(_) => return Err(PgError::Timeout("the startup packet")),
    };
    let Some(packet) = packet else {
        return Ok(());
    };
    if CancelRequest::is_cancel_request_packet(&packet) {
        return forward_cancel(&packet, &shared).await;
    }
    let startup = wire::startup(&packet)?;
    let Some(user) = startup.parameters.get("user").cloned() else {
        let r = Refusal {
            code: "28000",
            message: "no PostgreSQL user name specified in startup packet".into(),
            detail: None,
            hint: None,
        };
        let _ = client.write_all(&refusal_bytes(&r, "FATAL")).await;
        return Ok(());
    };
    if startup.parameters.contains_key("replication") {
        tracing::debug!("pg proxy: {peer}: a replication connection for {user}; passed through");
    }
    let ctx = Arc::new(Ctx {
        application: startup
            .parameters
            .get("application_name")
            .filter(|a| !a.is_empty())
            .cloned(),
        shared: shared.clone(),
        peer,
        user,
        session: OnceLock::new(),
        logged_in: AtomicBool::new(false),
    });
    match gate(&ctx) {
        Gate::Pass => {}
        Gate::Delay(d) => tokio::time::sleep(d).await,
        Gate::Refuse(r) => {
            ctx.submit(None, Access::bare(Action::Login, Outcome::Failure));
            let _ = client.write_all(&refusal_bytes(&r, "FATAL")).await;
            let _ = client.shutdown().await;
            return Ok(());
        }
    }
    let upstream = match tokio::time::timeout(
        shared.config.connect_timeout,
        TcpStream::connect(shared.config.upstream.as_str()),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(refuse_upstream(&mut client, &shared, e.to_string()).await),
        Err(_) => return Err(refuse_upstream(&mut client, &shared, "timed out".into()).await),
    };
    upstream
        .set_nodelay(true)
        .map_err(io("setting TCP_NODELAY upstream"))?;
    let (client_rd, client_wr) = client.into_split();
    let (up_rd, mut up_wr) = upstream.into_split();
    up_wr
        .write_all(&packet)
        .await
        .map_err(io("writing the startup packet to PostgreSQL"))?;
    let announced = Arc::new(Announced::default());
    let mut front = Frontend::new(ctx.clone(), announced.clone());
    let mut back = Backend::new(ctx.clone(), announced);
    tokio::select! {
        r = front.pump(client_rd, up_wr) => r,
        r = back.pump(up_rd, client_wr) => r,
    }
}

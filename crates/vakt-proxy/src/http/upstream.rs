//! The HTTP proxy's connections to its one upstream: HTTP/1.1 over TCP,
//! kept open and reused.
//!
//! A general pooled client (hyper-util's) serves many hosts: it hashes a
//! pool key per request, races a connect against each checkout and spawns
//! a task to put a connection back. There is one upstream here, so the
//! pool is a list of idle connections: a request takes the one returned
//! last, else opens one, and its answer's body gives the connection back
//! once it has been read to the end ([`UpstreamBody`]); one not read to
//! the end is closed, as hyper cannot tell where its next answer starts.
//! Connections still answering are never in the list, so a client reading
//! slowly cannot make other requests search past busy ones.
//!
//! Bounds, as a hostile client would probe them:
//! - at most `max_connections` are open (an HTTP/2 client multiplexing
//!   hundreds of streams cannot open hundreds of upstream connections);
//!   past it a request waits for one, up to `connect_timeout`, then fails;
//! - a connection idle longer than `idle_timeout` is closed, by the next
//!   request or by [`Upstream::close_idle_every`]'s timer;
//! - a request a reused connection hands back unsent (the upstream closed
//!   it meanwhile) is sent again on another connection, a few times at
//!   most; a request that was written is never sent twice.
//!
//! Blind spot: a request written on a reused connection at the moment the
//! upstream closes it fails (`502`) rather than being sent again, since
//! the upstream may have acted on it. An upstream keep-alive timeout
//! shorter than `idle_timeout` makes that moment likelier.

use super::Body;
use bytes::Bytes;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, HOST};
use hyper::{Request, Response, Uri, Version};
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// How many connections to the upstream, and for how long.
#[derive(Clone, Copy, Debug)]
pub struct UpstreamLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// An unused connection is closed after this long.
    pub idle_timeout: Duration,
    /// How long a request may wait for a connection, connecting included.
    pub connect_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("no connection to {address} within {waited:?}: it does not accept them, or all {open} allowed are busy")]
    NoConnection {
        address: String,
        waited: Duration,
        open: usize,
    },
    #[error("{0}")]
    Http(#[from] hyper::Error),
}

/// A connection given back, and since when it is unused.
struct Returned {
    sender: SendRequest<Body>,
    since: Instant,
}

pub struct Upstream {
    /// `host:port` to connect to.
    address: String,
    /// `Host` for requests without one (those that came over HTTP/2).
    host: HeaderValue,
    limits: UpstreamLimits,
    /// Idle connections, oldest first.
    returned: Mutex<VecDeque<Returned>>,
    /// One permit per open connection.
    open: Arc<Semaphore>,
    /// Told when a connection is returned or closes.
    freed: Arc<Notify>,
}

/// Times a request handed back unsent is sent again.
const RESENDS: usize = 4;

impl Upstream {
    /// The upstream of `uri` (`http://host[:port]`).
    pub fn new(uri: &Uri, limits: UpstreamLimits) -> Result<Upstream, String> {
        let authority = uri
            .authority()
            .ok_or_else(|| format!("`{uri}` names no host; write e.g. http://127.0.0.1:9000"))?;
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|_| format!("`{authority}` is not a valid Host header"))?;
        Ok(Upstream {
            address: format!(
                "{}:{}",
                authority.host(),
                authority.port_u16().unwrap_or(80)
            ),
            host,
            limits,
            returned: Mutex::new(VecDeque::new()),
            open: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            freed: Arc::new(Notify::new()),
        })
    }

    /// Sends `req` (its URI in origin form, `/path?query`) as HTTP/1.1,
    /// with `Host` set to the upstream's when it has none.
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<Body>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        if req.version() != Version::HTTP_10 {
            *req.version_mut() = Version::HTTP_11;
        }
        req.headers_mut()
            .entry(HOST)
            .or_insert_with(|| self.host.clone());
        let mut resends = 0;
        loop {
            let (mut sender, reused) = self.checkout().await?;
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    return Ok(resp.map(|body| UpstreamBody {
                        body,
                        ended: false,
                        connection: Some((sender, self.clone())),
                    }))
                }
                Err(mut e) => match e.take_message() {
                    // Never written: the reused connection had closed.
                    Some(unsent) if reused && resends < RESENDS => {
                        resends += 1;
                        req = unsent;
                    }
                    _ => return Err(e.into_error().into()),
                },
            }
        }
    }

    /// Closes the connections unused for longer than the idle timeout.
    pub fn close_idle(&self) {
        self.close_idle_at(&mut self.returned(), Instant::now());
    }

    fn close_idle_at(&self, returned: &mut VecDeque<Returned>, now: Instant) {
        while returned
            .front()
            .is_some_and(|r| now.duration_since(r.since) > self.limits.idle_timeout)
        {
            // Dropping the sender closes its connection.
            returned.pop_front();
        }
    }

    /// Closes idle connections on a timer too, so they do not outlive
    /// the timeout when no request comes; stops once `upstream` is dropped.
    pub fn close_idle_every(upstream: &Arc<Upstream>, every: Duration) {
        let upstream = Arc::downgrade(upstream);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match upstream.upgrade() {
                    Some(u) => u.close_idle(),
                    None => return,
                }
            }
        });
    }

    fn returned(&self) -> std::sync::MutexGuard<'_, VecDeque<Returned>> {
        self.returned.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection to send on, and whether it served before.
    async fn checkout(&self) -> Result<(SendRequest<Body>, bool), UpstreamError> {
        let deadline = tokio::time::Instant::now() + self.limits.connect_timeout;
        loop {
            if let Some(sender) = self.take_returned() {
                return Ok((sender, true));
            }
            if let Ok(slot) = self.open.clone().try_acquire_owned() {
                return Ok((self.connect(slot, deadline).await?, false));
            }
            // All open and answering: wait for one to be returned or to
            // close (a notice given before this wait began is kept for it,
            // so none is lost).
            if tokio::time::timeout_at(deadline, self.freed.notified())
                .await
                .is_err()
            {
                return Err(UpstreamError::NoConnection {
                    address: self.address.clone(),
                    waited: self.limits.connect_timeout,
                    open: self.limits.max_connections,
                });
            }
        }
    }

    /// The connection returned last; those the upstream closed meanwhile
    /// are dropped on the way.
    fn take_returned(&self) -> Option<SendRequest<Body>> {
        let mut returned = self.returned();
        while let Some(r) = returned.pop_back() {
            if !r.sender.is_closed() {
                return Some(r.sender);
            }
        }
        None
    }

    async fn connect(
        &self,
        slot: OwnedSemaphorePermit,
        deadline: tokio::time::Instant,
    ) -> Result<SendRequest<Body>, UpstreamError> {
        let stream =
            match tokio::time::timeout_at(deadline, TcpStream::connect(&self.address)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(source)) => {
                    return Err(UpstreamError::Connect {
                        address: self.address.clone(),
                        source,
                    })
                }
                Err(_) => {
                    return Err(UpstreamError::Connect {
                        address: self.address.clone(),
                        source: std::io::ErrorKind::TimedOut.into(),
                    })
                }
            };
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        let freed = self.freed.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("an upstream connection ended: {e}");
            }
            drop(slot);
            freed.notify_one();
        });
        Ok(sender)
    }

    /// Puts a connection back once its answer has been read. hyper may
    /// not have noticed the end yet; a request sent meanwhile waits for it.
    fn give_back(&self, sender: SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut returned = self.returned();
        self.close_idle_at(&mut returned, now);
        returned.push_back(Returned { sender, since: now });
        drop(returned);
        self.freed.notify_one();
    }

    /// Connections open now (idle ones and those answering).
    #[cfg(test)]
    fn open_now(&self) -> usize {
        self.limits.max_connections.max(1) - self.open.available_permits()
    }
}

/// An upstream answer's body: its connection goes back to the pool once
/// the body has been read to its end, and is closed if it was not.
pub struct UpstreamBody {
    body: Incoming,
    ended: bool,
    connection: Option<(SendRequest<Body>, Arc<Upstream>)>,
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl UpstreamBody {
    fn give_back(&mut self) {
        if let Some((sender, upstream)) = self.connection.take() {
            upstream.give_back(sender);
        }
    }
}

impl hyper::body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            this.ended = true;
            this.give_back();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // A server may drop a body it knows is done without polling its end.
        if self.ended || self.body.is_end_stream() {
            self.give_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A loopback HTTP/1.1 server that answers every request with the
    /// `Host` it was sent and counts the connections it accepted; with
    /// `close_after`, it closes each connection after that many answers
    /// without saying so; with `delay`, it waits that long before answering.
    struct Server {
        addr: std::net::SocketAddr,
        accepted: Arc<AtomicUsize>,
        /// Connections the server saw closed by the proxy.
        closed_by_peer: Arc<AtomicUsize>,
    }

    async fn server(close_after: Option<usize>, delay: Duration) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let closed_by_peer = Arc::new(AtomicUsize::new(0));
        let (a, c) = (accepted.clone(), closed_by_peer.clone());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                let c = c.clone();
                tokio::spawn(async move {
                    let mut answered = 0;
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let n = s.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            c.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                            buf.drain(..end + 4);
                            let host = head
                                .lines()
                                .find_map(|l| l.strip_prefix("host: "))
                                .unwrap_or("-")
                                .to_owned();
                            tokio::time::sleep(delay).await;
                            let answer = format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{host}",
                                host.len()
                            );
                            if s.write_all(answer.as_bytes()).await.is_err() {
                                return;
                            }
                            answered += 1;
                            if close_after == Some(answered) {
                                return;
                            }
                        }
                    }
                });
            }
        });
        Server {
            addr,
            accepted,
            closed_by_peer,
        }
    }

    fn upstream(
        addr: std::net::SocketAddr,
        max_connections: usize,
        idle: Duration,
    ) -> Arc<Upstream> {
        Arc::new(
            Upstream::new(
                &format!("http://{addr}").parse().unwrap(),
                UpstreamLimits {
                    max_connections,
                    idle_timeout: idle,
                    connect_timeout: Duration::from_secs(5),
                },
            )
            .unwrap(),
        )
    }

    fn get(path: &str, version: Version) -> Request<Body> {
        let mut req = Request::get(path)
            .body(Empty::<Bytes>::new().map_err(|n| match n {}).boxed())
            .unwrap();
        *req.version_mut() = version;
        req
    }

    async fn body(resp: Response<UpstreamBody>) -> String {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn one_connection_serves_requests_one_after_another() {
        let s = server(None, Duration::ZERO).await;
        let up = upstream(s.addr, 8, Duration::from_secs(30));
        for _ in 0..20 {
            let resp = up.send(get("/a", Version::HTTP_11)).await.unwrap();
            assert_eq!(resp.status(), 200);
            body(resp).await;
        }
        assert_eq!(s.accepted.load(Ordering::SeqCst), 1);
        assert_eq!(up.open_now(), 1);
    }

    #[tokio::test]
    async fn a_connection_is_reused_only_once_its_answer_was_read_to_the_end() {
        let s = server(None, Duration::ZERO).await;
        let up = upstream(s.addr, 8, Duration::from_secs(30));
        let within = |f| tokio::time::timeout(Duration::from_secs(2), f);
        // An answer not read yet holds its connection: the next request
        // gets another instead of waiting behind it.
        let unread = up.send(get("/a", Version::HTTP_11)).await.unwrap();
        let resp = within(up.send(get("/a", Version::HTTP_11)))
            .await
            .expect("a request waited behind an unread answer")
            .unwrap();
        body(resp).await;
        assert_eq!(s.accepted.load(Ordering::SeqCst), 2);
        // Read to the end, it serves again.
        body(unread).await;
        for _ in 0..2 {
            let resp = within(up.send(get("/a", Version::HTTP_11)))
                .await
                .unwrap()
                .unwrap();
            body(resp).await;
        }
        assert_eq!(s.accepted.load(Ordering::SeqCst), 2);
        // Dropped unread, it is closed: hyper cannot tell where its next
        // answer would start.
        let unread = up.send(get("/a", Version::HTTP_11)).await.unwrap();
        drop(unread);
        let resp = within(up.send(get("/a", Version::HTTP_11)))
            .await
            .unwrap()
            .unwrap();
        body(resp).await;
        assert!(s.accepted.load(Ordering::SeqCst) <= 3);
    }

    #[tokio::test]
    async fn a_request_without_host_is_sent_the_upstreams_as_http_1_1() {
        let s = server(None, Duration::ZERO).await;
        let up = upstream(s.addr, 8, Duration::from_secs(30));
        // As an HTTP/2 client's request arrives: no Host, version 2.
        let resp = up.send(get("/a", Version::HTTP_2)).await.unwrap();
        assert_eq!(resp.version(), Version::HTTP_11);
        assert_eq!(body(resp).await, s.addr.to_string());
        let mut req = get("/a", Version::HTTP_11);
        req.headers_mut()
            .insert(HOST, HeaderValue::from_static("api.example.net"));
        let resp = up.send(req).await.unwrap();
        assert_eq!(
            body(resp).await,
            "api.example.net",
            "a client's Host is kept"
        );
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_not_used_again() {
        // The upstream closes after each answer without `Connection: close`.
        let s = server(Some(1), Duration::ZERO).await;
        let up = upstream(s.addr, 8, Duration::from_secs(30));
        for i in 1..=10 {
            let resp = up.send(get("/a", Version::HTTP_11)).await.unwrap();
            assert_eq!(resp.status(), 200, "request {i}");
            body(resp).await;
            if i % 2 == 0 {
                // Sometimes the close is seen before the next request,
                // sometimes only when sending it: both must work.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        assert_eq!(s.accepted.load(Ordering::SeqCst), 10);
    }

    #[tokio::test]
    async fn connections_idle_past_the_timeout_are_closed_without_a_request() {
        let s = server(None, Duration::ZERO).await;
        let up = upstream(s.addr, 8, Duration::from_millis(100));
        Upstream::close_idle_every(&up, Duration::from_millis(50));
        let resp = up.send(get("/a", Version::HTTP_11)).await.unwrap();
        body(resp).await;
        let start = Instant::now();
        while s.closed_by_peer.load(Ordering::SeqCst) == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(3),
                "the idle connection was not closed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(start.elapsed() >= Duration::from_millis(90));
        let resp = up.send(get("/a", Version::HTTP_11)).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(s.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn past_the_cap_requests_wait_for_a_connection_instead_of_opening_one() {
        let s = server(None, Duration::from_millis(50)).await;
        let up = upstream(s.addr, 2, Duration::from_secs(30));
        let requests: Vec<_> = (0..8)
            .map(|_| {
                let up = up.clone();
                tokio::spawn(async move {
                    let resp = up.send(get("/a", Version::HTTP_11)).await.unwrap();
                    assert_eq!(resp.status(), 200);
                    body(resp).await
                })
            })
            .collect();
        for r in requests {
            r.await.unwrap();
        }
        assert_eq!(s.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_upstream_that_does_not_listen_is_a_connect_error_naming_it() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let up = upstream(addr, 2, Duration::from_secs(30));
        let e = up.send(get("/a", Version::HTTP_11)).await.unwrap_err();
        assert!(matches!(e, UpstreamError::Connect { .. }), "{e}");
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
        assert_eq!(up.open_now(), 0, "the failed connect holds no slot");
    }
}

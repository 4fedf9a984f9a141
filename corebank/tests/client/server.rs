//! A tiny HTTP/1.1 server playing the core bank: it checks each request's
//! signature with `SigningKey::verify`, hands the request to the test, and
//! answers what the test's script says — including misbehaviour (never
//! answering, closing early, a truncated body). One request per connection.

use std::net::SocketAddr;
use std::sync::Arc;

use kiosk_corebank::SigningKey;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// The key the tests share between kiosk and server.
pub const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
pub const KIOSK_ID: &str = "K-0101-03";

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The request target exactly as on the wire.
    pub target: String,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// `X-Signature` verifies over method, target, timestamp, nonce and the
    /// body bytes received.
    pub signature_ok: bool,
    /// A TLS client certificate was presented.
    pub client_cert: bool,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// What the server does with a request.
#[derive(Debug, Clone)]
pub enum Reply {
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Read the request, never answer, keep the connection open.
    Hang,
    /// Read the request and close the connection without a word.
    Close,
    /// Send the head announcing `body.len() + 100` bytes, then `body`, then
    /// close.
    Truncated { status: u16, body: Vec<u8> },
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply::Respond {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(&body).expect("serialise"),
        }
    }

    pub fn error(status: u16, code: &str) -> Reply {
        Reply::json(
            status,
            serde_json::json!({"code": code, "message": format!("{code} (test)")}),
        )
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        if let Reply::Respond { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }
}

pub type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

pub struct TestServer {
    pub addr: SocketAddr,
    requests: mpsc::UnboundedReceiver<Recorded>,
}

impl TestServer {
    /// A plain-HTTP server on 127.0.0.1.
    pub async fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> TestServer {
        TestServer::start_with(None, Arc::new(handler)).await
    }

    /// With `tls`, the server speaks TLS with that acceptor.
    pub async fn start_with(
        tls: Option<tokio_rustls::TlsAcceptor>,
        handler: Handler,
    ) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, requests) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let tx = tx.clone();
                let handler = handler.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve(stream, false, tx, handler).await,
                        Some(acceptor) => {
                            // A failed handshake is the test's point sometimes.
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let client_cert = stream.get_ref().1.peer_certificates().is_some();
                                serve(stream, client_cert, tx, handler).await;
                            }
                        }
                    }
                });
            }
        });
        TestServer { addr, requests }
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The next request the server received (in order of arrival).
    pub async fn next_request(&mut self) -> Recorded {
        self.requests.recv().await.expect("server task alive")
    }

    /// Requests received so far, without waiting.
    pub fn received(&mut self) -> Vec<Recorded> {
        let mut all = Vec::new();
        while let Ok(r) = self.requests.try_recv() {
            all.push(r);
        }
        all
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    client_cert: bool,
    tx: mpsc::UnboundedSender<Recorded>,
    handler: Handler,
) {
    let Some(recorded) = read_request(&mut stream, client_cert).await else {
        return;
    };
    let reply = handler(&recorded);
    let _ = tx.send(recorded);
    match reply {
        Reply::Respond {
            status,
            headers,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (n, v) in headers {
                head.push_str(&format!("{n}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body).await;
            let _ = stream.flush().await;
            let _ = stream.shutdown().await;
        }
        Reply::Hang => {
            std::future::pending::<()>().await;
        }
        Reply::Close => {
            let _ = stream.shutdown().await;
        }
        Reply::Truncated { status, body } => {
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len() + 100
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body).await;
            let _ = stream.flush().await;
            let _ = stream.shutdown().await;
        }
    }
}

async fn read_request<S: AsyncRead + Unpin>(stream: &mut S, client_cert: bool) -> Option<Recorded> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let key = SigningKey::new(hex::decode(KEY_HEX).expect("hex"));
    let path = target.split('?').next().unwrap_or_default();
    let signature_ok = key.verify(
        &method,
        path,
        &get("x-timestamp"),
        &get("x-nonce"),
        &body,
        &get("x-signature"),
    );
    Some(Recorded {
        method,
        target,
        headers,
        body,
        signature_ok,
        client_cert,
    })
}

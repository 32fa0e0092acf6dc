//! A small HTTP/1.1 server on 127.0.0.1 for the fetch tests: it records every request (path and
//! `Range` header), counts concurrent requests, and per route can return 404/503, drop the
//! connection mid-body, ignore `Range`, answer slowly, or not at all.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

#[derive(Clone, Default)]
pub struct Route {
    pub body: Vec<u8>,
    /// Answer every request with this status and no body.
    pub status: Option<u16>,
    /// Answer this many requests with 503 first.
    pub fail_first: usize,
    /// Cut this many responses after `cut_at` body bytes (headers promise the full length).
    pub drop_first: usize,
    pub cut_at: usize,
    /// Serve `Range: bytes=N-` requests with 206 (else: 200 and the whole body).
    pub honor_range: bool,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Never answer (until the client gives up).
    pub stall: bool,
}

impl Route {
    pub fn ok(body: &[u8]) -> Route {
        Route { body: body.to_vec(), honor_range: true, ..Route::default() }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub path: String,
    pub range: Option<String>,
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Route>,
    seen: Vec<Seen>,
    active: usize,
    max_active: usize,
}

pub struct Server {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let s = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || handle(conn, &s));
            }
        });
        Server { port, state }
    }

    pub fn route(&self, path: &str, route: Route) {
        self.state.lock().unwrap().routes.insert(path.to_string(), route);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    pub fn paths(&self) -> Vec<String> {
        self.requests().into_iter().map(|s| s.path).collect()
    }

    pub fn max_concurrent(&self) -> usize {
        self.state.lock().unwrap().max_active
    }
}

fn handle(mut conn: TcpStream, state: &Arc<Mutex<State>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    let route = {
        let mut st = state.lock().unwrap();
        st.seen.push(Seen { path: path.clone(), range: range.clone() });
        st.active += 1;
        st.max_active = st.max_active.max(st.active);
        let route = st.routes.get(&path).cloned();
        // Consume one-shot behaviours now, so concurrent requests see a consistent count.
        if let Some(r) = st.routes.get_mut(&path) {
            if r.fail_first > 0 {
                r.fail_first -= 1;
            } else if r.drop_first > 0 {
                r.drop_first -= 1;
            }
        }
        route
    };
    respond(&mut conn, route, range);
    state.lock().unwrap().active -= 1;
}

fn respond(conn: &mut TcpStream, route: Option<Route>, range: Option<String>) {
    let head = |conn: &mut TcpStream, status: &str, extra: &str, len: usize| {
        let _ = write!(conn, "HTTP/1.1 {status}\r\nContent-Length: {len}\r\nConnection: close\r\n{extra}\r\n");
    };
    let Some(route) = route else {
        head(conn, "404 Not Found", "", 0);
        return;
    };
    std::thread::sleep(route.delay);
    if route.stall {
        std::thread::sleep(Duration::from_secs(10));
        return;
    }
    if route.fail_first > 0 {
        head(conn, "503 Service Unavailable", "", 0);
        return;
    }
    if let Some(code) = route.status {
        head(conn, &format!("{code} Status"), "", 0);
        return;
    }
    let len = route.body.len();
    let start = range
        .as_deref()
        .filter(|_| route.honor_range)
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    let (status, extra, body) = match start {
        Some(s) if s >= len => {
            head(conn, "416 Range Not Satisfiable", &format!("Content-Range: bytes */{len}\r\n"), 0);
            return;
        }
        Some(s) => ("206 Partial Content", format!("Content-Range: bytes {s}-{}/{len}\r\n", len - 1), &route.body[s..]),
        None => ("200 OK", String::new(), &route.body[..]),
    };
    head(conn, status, &extra, body.len());
    if route.drop_first > 0 {
        let _ = conn.write_all(&body[..route.cut_at.min(body.len())]);
        let _ = conn.flush();
        let _ = conn.shutdown(Shutdown::Both);
        return;
    }
    let _ = conn.write_all(body);
}

pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Deterministic test content of `n` bytes.
pub fn content(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32).map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed) >> 13) as u8).collect()
}

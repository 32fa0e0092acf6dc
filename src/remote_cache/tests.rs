//! The client against a scripted server on 127.0.0.1: each connection gets one canned answer, so
//! every way a store can be wrong is tried without one. (The integration tests in
//! `tests/cache/` run the whole tier against a real nginx.)

use super::*;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// What the scripted server answers to every request.
#[derive(Clone)]
enum Answer {
    /// Status line and body (Content-Length = body's length).
    Full(u16, Vec<u8>),
    /// Announces `len` bytes, sends `body` (shorter), closes.
    Short { len: usize, body: Vec<u8> },
    /// Sends nothing for this long.
    Silent(Duration),
}

struct Server {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

fn serve(answer: Answer) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let answer = answer.clone();
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut head = String::new();
                let mut content_length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        content_length = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0u8; content_length];
                let _ = reader.read_exact(&mut body);
                seen.lock().unwrap().push(head);
                let _ = match answer {
                    Answer::Full(status, body) => {
                        let _ = write!(
                            conn,
                            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        conn.write_all(&body)
                    }
                    Answer::Short { len, body } => {
                        let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
                        conn.write_all(&body)
                    }
                    Answer::Silent(d) => {
                        std::thread::sleep(d);
                        Ok(())
                    }
                };
            });
        }
    });
    Server { url, requests }
}

fn client(url: &str, settings: &Settings) -> RemoteCache {
    RemoteCache::new(url, &RemoteOptions { timeout: Duration::from_secs(1) }, settings).unwrap()
}

#[test]
fn a_blob_is_kept_only_with_its_size_and_hash() {
    let content = b"the output".to_vec();
    let digest = digest_of(&content);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");

    let good = serve(Answer::Full(200, content.clone()));
    assert!(client(&good.url, &Settings::default()).get_blob(&digest, &dest).unwrap());
    assert_eq!(fs::read(&dest).unwrap(), content);
    assert!(good.requests.lock().unwrap()[0].starts_with(&format!("GET /cas/{} ", digest.hash)));
    fs::remove_file(&dest).unwrap();

    let mut flipped = content.clone();
    flipped[3] ^= 1;
    let e = client(&serve(Answer::Full(200, flipped)).url, &Settings::default()).get_blob(&digest, &dest).unwrap_err();
    assert!(matches!(e, RemoteError::WrongHash { .. }), "{e}");

    let e = client(&serve(Answer::Full(200, b"longer than that".to_vec())).url, &Settings::default())
        .get_blob(&digest, &dest)
        .unwrap_err();
    assert!(matches!(e, RemoteError::WrongSize { .. }), "{e}");

    let short = Answer::Short { len: content.len(), body: content[..4].to_vec() };
    let e = client(&serve(short).url, &Settings::default()).get_blob(&digest, &dest).unwrap_err();
    assert!(matches!(e, RemoteError::Body { .. } | RemoteError::WrongSize { .. }), "{e}");

    assert!(!client(&serve(Answer::Full(404, vec![])).url, &Settings::default()).get_blob(&digest, &dest).unwrap());
    assert!(!dest.exists(), "nothing but a verified blob gets the name");
    let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert!(leftovers.is_empty(), "no temporary left behind: {leftovers:?}");
}

#[test]
fn server_failures_are_typed() {
    let key = Digest { hash: "a".repeat(64), size_bytes: 76 };
    let e = client(&serve(Answer::Full(500, b"oops".to_vec())).url, &Settings::default()).get_action(&key).unwrap_err();
    assert!(matches!(e, RemoteError::Status { .. }) && !e.is_down(), "{e}");
    let e = client(&serve(Answer::Full(401, vec![])).url, &Settings::default())
        .put_action(&key, &ActionResult::default())
        .unwrap_err();
    assert!(e.is_denied(), "{e}");
    let e =
        client(&serve(Answer::Silent(Duration::from_secs(5))).url, &Settings::default()).get_action(&key).unwrap_err();
    assert!(matches!(e, RemoteError::Timeout { .. }) && e.is_down(), "{e}");
    // A port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let e = client(&format!("http://{closed}"), &Settings::default()).get_action(&key).unwrap_err();
    assert!(e.is_down(), "{e}");
    let e = client(&serve(Answer::Full(200, b"<html>hi</html>".to_vec())).url, &Settings::default())
        .get_action(&key)
        .unwrap_err();
    assert!(matches!(e, RemoteError::BadEntry { .. }), "{e}");
    assert!(client(&serve(Answer::Full(404, vec![])).url, &Settings::default()).get_action(&key).unwrap().is_none());
}

#[test]
fn credentials_come_from_the_environment_or_netrc_never_the_url() {
    let e = RemoteCache::new(
        "http://me:secret@cache.example/",
        &RemoteOptions { timeout: Duration::from_secs(1) },
        &Settings::default(),
    )
    .unwrap_err();
    assert!(matches!(e, RemoteError::CredentialsInUrl { .. }) && !e.to_string().contains("secret"), "{e}");

    let server = serve(Answer::Full(404, vec![]));
    let settings = Settings { cache_auth: Some("ci:s3cret".into()), ..Settings::default() };
    client(&server.url, &settings).get_action(&Digest { hash: "b".repeat(64), size_bytes: 76 }).unwrap();
    // Basic base64("ci:s3cret")
    assert!(server.requests.lock().unwrap()[0].contains("Y2k6czNjcmV0"), "{:?}", server.requests.lock().unwrap());

    let dir = tempfile::tempdir().unwrap();
    let netrc = dir.path().join("netrc");
    fs::write(&netrc, "machine other login x password y\nmachine 127.0.0.1\n  login ci\n  password s3cret\n").unwrap();
    let server = serve(Answer::Full(404, vec![]));
    let settings = Settings { netrc: Some(netrc), ..Settings::default() };
    client(&server.url, &settings).get_action(&Digest { hash: "b".repeat(64), size_bytes: 76 }).unwrap();
    assert!(server.requests.lock().unwrap()[0].contains("Y2k6czNjcmV0"));
}

#[test]
fn netrc_entries_are_read_as_curl_reads_them() {
    let text = "machine a login la password pa\nmacdef init\nmachine b login no\n\ndefault login d password pd\n";
    assert_eq!(parse_netrc(text, "a"), Some(("la".into(), "pa".into())));
    assert_eq!(parse_netrc(text, "b"), Some(("d".into(), "pd".into())), "b is inside a macro body");
    assert_eq!(parse_netrc("machine a login la", "a"), None, "no password");
    assert_eq!(
        parse_netrc("machine x login lx password px machine a password pa login la", "a"),
        Some(("la".into(), "pa".into()))
    );
}

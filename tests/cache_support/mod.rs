//! Remote caches for the tests: a real nginx with WebDAV (what a team would run, installed by
//! scripts/setup.sh) on a free 127.0.0.1 port with its pid, logs, temp and data dirs in the test's
//! own directory; a scripted server that answers from nginx's data dir wrongly on purpose; and a
//! real BuildGrid (REAPI over gRPC), from PyPI into a virtualenv of the tests', where a Python ≥
//! 3.13 exists.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The login the servers' write side accepts (HTTP Basic).
pub const USER: &str = "ci";
pub const PASSWORD: &str = "s3cret";

/// A running nginx serving bazel-remote's layout from `data`: reads for anyone, writes (PUT)
/// only with [`USER`]:[`PASSWORD`].
pub struct Nginx {
    child: Child,
    pub url: String,
    pub data: PathBuf,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

impl Nginx {
    pub fn start() -> Nginx {
        crate::build_support::require_tool("nginx");
        let dir =
            tempfile::Builder::new().prefix("nginx-").tempdir_in(crate::build_support::tmp_root()).expect("nginx dir");
        let d = dir.path();
        let data = d.join("data");
        for sub in ["data", "tmp", "logs"] {
            std::fs::create_dir_all(d.join(sub)).expect("nginx dirs");
        }
        std::fs::write(d.join("htpasswd"), format!("{USER}:{{PLAIN}}{PASSWORD}\n")).expect("htpasswd");
        let port = free_port();
        // As root nginx's workers would switch to `nobody`, who may not enter the test's
        // directories: a test server runs them as root instead (a team's server chowns its data
        // dir to the worker user, as the README says).
        let user = if nix::unistd::geteuid().is_root() { "user root root;" } else { "" };
        let conf = format!(
            "daemon off;\nworker_processes 2;\n{user}\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log;\n\
             events {{ worker_connections 128; }}\n\
             http {{\n access_log {d}/logs/access.log;\n client_body_temp_path {d}/tmp/body;\n\
             proxy_temp_path {d}/tmp/proxy;\n fastcgi_temp_path {d}/tmp/fastcgi;\n\
             uwsgi_temp_path {d}/tmp/uwsgi;\n scgi_temp_path {d}/tmp/scgi;\n\
             server {{\n  listen 127.0.0.1:{port};\n  root {data};\n  client_max_body_size 0;\n\
               location / {{\n   dav_methods PUT;\n   create_full_put_path on;\n   dav_access user:rw group:r all:r;\n\
                limit_except GET HEAD {{ auth_basic \"ovm cache\"; auth_basic_user_file {d}/htpasswd; }}\n  }}\n }}\n}}\n",
            d = d.display(),
            data = data.display(),
        );
        std::fs::write(d.join("nginx.conf"), conf).expect("nginx.conf");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(d)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting nginx");
        let url = format!("http://127.0.0.1:{port}");
        wait_listening(port, || std::fs::read_to_string(d.join("logs/error.log")).unwrap_or_default());
        Nginx { child, url, data, _dir: dir }
    }

    /// Every stored file under `kind` (`ac` or `cas`).
    pub fn stored(&self, kind: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.data.join(kind))
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: nginx's graceful stop, its workers with it.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGQUIT,
        );
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_listening(port: u16, log: impl Fn() -> String) {
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(60), "the server did not listen on {port}:\n{}", log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How the scripted server is wrong.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Every request gets a 500.
    Status500,
    /// Entries are served right, blobs cut to half their announced length.
    TruncatedBlobs,
    /// Nothing is answered for this long.
    Silent(Duration),
}

/// A server answering from a data dir in bazel-remote's layout, wrongly as [`Fault`] says.
pub struct FaultServer {
    pub url: String,
}

impl FaultServer {
    pub fn start(data: &Path, fault: Fault) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let data = data.to_path_buf();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let data = data.clone();
                std::thread::spawn(move || answer(conn, &data, fault));
            }
        });
        FaultServer { url }
    }
}

fn answer(mut conn: TcpStream, data: &Path, fault: Fault) {
    let Ok(clone) = conn.try_clone() else { return };
    let mut reader = BufReader::new(clone);
    let mut request = String::new();
    if reader.read_line(&mut request).unwrap_or(0) == 0 {
        return;
    }
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let _ = std::io::copy(&mut reader.by_ref().take(length as u64), &mut std::io::sink());
    let mut parts = request.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let reply = |conn: &mut TcpStream, status: &str, len: usize, body: &[u8]| {
        let _ = write!(conn, "HTTP/1.1 {status}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
        let _ = conn.write_all(body);
    };
    match fault {
        Fault::Silent(d) => std::thread::sleep(d),
        Fault::Status500 => reply(&mut conn, "500 Internal Server Error", 5, b"oops\n"),
        Fault::TruncatedBlobs => {
            let file = data.join(path.trim_start_matches('/'));
            match std::fs::read(&file) {
                Err(_) => reply(&mut conn, "404 Not Found", 0, b""),
                Ok(_) if method == "HEAD" => reply(&mut conn, "200 OK", 0, b""),
                Ok(body) if path.starts_with("/cas/") => {
                    reply(&mut conn, "200 OK", body.len(), &body[..body.len() / 2])
                }
                Ok(body) => reply(&mut conn, "200 OK", body.len(), &body),
            }
        }
    }
}

/// A running BuildGrid (REAPI: ActionCache, CAS, ByteStream; disk storage in the test's dir) on
/// a free 127.0.0.1 port, from PyPI into a virtualenv the tests own. BuildGrid needs Python ≥
/// 3.13: [`BuildGrid::start`] is `None`, with the reason printed, where there is none.
pub struct BuildGrid {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

/// A Python ≥ 3.13: on PATH, or one of pyenv's.
fn python_313() -> Option<PathBuf> {
    let on_path = ["python3.14", "python3.13"].into_iter().map(PathBuf::from);
    #[allow(clippy::disallowed_methods)] // The test's own environment, not ovm's settings.
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    let mut pyenv: Vec<PathBuf> = std::fs::read_dir(home.join(".pyenv/versions"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    pyenv.sort();
    pyenv.reverse();
    let pyenv = pyenv.into_iter().map(|v| v.join("bin/python3"));
    on_path.chain(pyenv).find(|p| {
        Command::new(p)
            .args(["-c", "import sys; sys.exit(0 if sys.version_info >= (3, 13) else 1)"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// `bgd` in a virtualenv under the test dir, made once per target dir (under a lock).
fn bgd() -> Result<PathBuf, String> {
    let venv = crate::build_support::tmp_root().join("buildgrid-venv");
    let bgd = venv.join("bin/bgd");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(crate::build_support::tmp_root().join("buildgrid-venv.lock"))
        .map_err(|e| e.to_string())?;
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| e.to_string())?;
    if bgd.exists() {
        return Ok(bgd);
    }
    let python = python_313().ok_or("no Python >= 3.13 (BuildGrid 0.9 needs one): not on PATH, not in ~/.pyenv")?;
    let run = |cmd: &mut Command| -> Result<(), String> {
        let out = cmd.output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr)))
        }
    };
    let _ = std::fs::remove_dir_all(&venv);
    run(Command::new(&python).args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(venv.join("bin/pip")).args(["install", "--quiet", "buildgrid==0.9.1"]))?;
    Ok(bgd)
}

impl BuildGrid {
    pub fn start() -> Option<BuildGrid> {
        let bgd = match bgd() {
            Ok(b) => b,
            Err(why) => {
                eprintln!("SKIPPED: BuildGrid unavailable: {why}");
                return None;
            }
        };
        let dir =
            tempfile::Builder::new().prefix("buildgrid-").tempdir_in(crate::build_support::tmp_root()).expect("dir");
        let port = free_port();
        let conf = format!(
            "server:\n  - !channel\n    address: \"127.0.0.1:{port}\"\n    insecure-mode: true\n\
             storages:\n  - !disk-storage &main-storage\n    path: {cas}\n\
             caches:\n  - !lru-action-cache &main-action\n    storage: *main-storage\n    max-cached-refs: 4096\n\
             \x20   allow-updates: true\n    cache-failed-actions: true\n\
             instances:\n  - name: main\n    services:\n      - !action-cache\n        cache: *main-action\n\
             \x20     - !cas\n        storage: *main-storage\n      - !bytestream\n        storage: *main-storage\n",
            cas = dir.path().join("cas").display()
        );
        std::fs::write(dir.path().join("bgd.yml"), conf).expect("bgd.yml");
        let log = std::fs::File::create(dir.path().join("bgd.log")).expect("bgd.log");
        let child = Command::new(&bgd)
            .args(["server", "start"])
            .arg(dir.path().join("bgd.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting bgd");
        let d = dir.path().to_path_buf();
        wait_listening(port, || std::fs::read_to_string(d.join("bgd.log")).unwrap_or_default());
        Some(BuildGrid { child, url: format!("grpc://127.0.0.1:{port}/main"), _dir: dir })
    }
}

impl Drop for BuildGrid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

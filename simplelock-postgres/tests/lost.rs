//! A lost lock: the holder's backend terminated by an administrator (as a server restart does
//! to every session), and its network cut while it holds the lock (a TCP proxy between client
//! and server, silenced with iptables). Each time the server releases within the bound, another
//! client gets the lock with a larger fencing token, and the cut-off holder learns it lost it.

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use simplelock_core::{ConcreteLock, SimpleLockError};
use simplelock_postgres::{LockLost, PostgresLock, Timeouts};

mod common;
use common::PATIENCE;

/// Checks everything a lost hold must show: the signal fired, `ensure_held` and `try_unlock`
/// report it, and the handle can lock again.
fn assert_lost(a: &mut PostgresLock, signal: &simplelock_postgres::LostSignal) {
    let lost = signal
        .wait(Some(PATIENCE))
        .expect("the lost-lock signal did not fire");
    println!("lost: {lost}");
    assert!(signal.is_lost().is_some());
    let err = a.ensure_held().expect_err("ensure_held on a lost lock");
    assert!(LockLost::find(&err).is_some(), "not a LockLost: {err:?}");
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::ConnectionAborted,
        "a lost lock's kind: {err:?}"
    );
    let err = a.try_unlock().expect_err("unlock of a lost lock");
    assert!(
        matches!(err, SimpleLockError::UnableToUnlock { .. }) && LockLost::find(&err).is_some(),
        "{err:?}"
    );
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionAborted, "{err:?}");
    expect_not_held(a.try_unlock());
}

fn expect_not_held(result: Result<(), SimpleLockError>) {
    match result {
        Err(SimpleLockError::NotHeld { .. }) => {}
        other => panic!("expected NotHeld, got {other:?}"),
    }
}

#[test]
fn terminated_backend_loses_the_lock_and_the_next_holder_gets_a_larger_token() {
    let name = common::name("terminate");
    let mut a = common::open(&name);
    let mut b = common::open(&name);
    a.hang_lock().unwrap();
    a.ensure_held().unwrap();
    let token_a = a.fencing_token().unwrap();
    let signal = a.lost_signal().unwrap();
    assert!(signal.is_lost().is_none());
    let holders = b.holders().unwrap();
    assert_eq!(holders.len(), 1);
    assert_eq!(holders[0].client_pid, Some(std::process::id()));
    let terminated: bool = common::raw()
        .query_one(
            "SELECT pg_terminate_backend($1)",
            &[&holders[0].backend_pid],
        )
        .unwrap()
        .get(0);
    assert!(terminated);
    b.timed_lock(PATIENCE)
        .expect("the lock of a terminated backend was not released");
    assert!(b.fencing_token().unwrap() > token_a);
    assert_lost(&mut a, &signal);
    b.try_unlock().unwrap();
    // The handle whose lock was lost works again, on a new connection.
    a.try_lock().unwrap();
    assert!(a.fencing_token().unwrap() > token_a);
    a.try_unlock().unwrap();
}

#[test]
fn a_clean_release_is_not_a_loss() {
    let mut a = common::open(&common::name("clean"));
    expect_not_held(a.ensure_held());
    assert!(a.lost_signal().is_err());
    a.try_lock().unwrap();
    let signal = a.lost_signal().unwrap();
    // Held and alive: a timed wait ends with its timeout, saying nothing was lost.
    assert!(signal.wait(Some(Duration::from_millis(50))).is_none());
    a.try_unlock().unwrap();
    assert!(signal.wait(Some(Duration::from_secs(5))).is_none());
    assert!(signal.is_lost().is_none());
    drop(a);
    assert!(
        signal.is_lost().is_none(),
        "closing after a release is not a loss"
    );
}

/// A TCP proxy between a client and the server: two threads per connection copying bytes, and
/// the ports of each connection so a test can cut exactly it.
struct Proxy {
    port: u16,
    /// Per connection: (the client's port, the proxy's port towards the server).
    connections: Arc<Mutex<Vec<(u16, u16)>>>,
}

impl Proxy {
    fn start(upstream: (String, u16)) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&connections);
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect((upstream.0.as_str(), upstream.1)) else {
                    continue;
                };
                seen.lock().unwrap().push((
                    client.peer_addr().unwrap().port(),
                    server.local_addr().unwrap().port(),
                ));
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    thread::spawn(move || {
                        let _ = io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
            }
        });
        Proxy { port, connections }
    }
}

/// iptables rules that drop every packet of the given local connections both ways, removed on
/// drop in every outcome of the test.
struct Cut(Vec<Vec<String>>);

impl Cut {
    fn new(ports: &[u16]) -> Cut {
        let mut cut = Cut(Vec::new());
        for port in ports {
            for dir in ["--sport", "--dport"] {
                let rule: Vec<String> = [
                    "INPUT",
                    "-p",
                    "tcp",
                    "-s",
                    "127.0.0.1",
                    dir,
                    &port.to_string(),
                    "-j",
                    "DROP",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                iptables("-I", &rule);
                cut.0.push(rule);
            }
        }
        cut
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        for rule in &self.0 {
            let _ = Command::new("iptables").arg("-D").args(rule).status();
        }
    }
}

fn iptables(op: &str, rule: &[String]) {
    let out = Command::new("iptables")
        .arg(op)
        .args(rule)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "the network-cut test needs iptables, run as root: {e}. Install it with \
             `apt-get install iptables` (.ci/run does)"
            )
        });
    assert!(
        out.status.success(),
        "iptables {op} {rule:?} failed (the test must run as root): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Where the test server listens over TCP.
fn upstream() -> (String, u16) {
    let config: postgres::Config = common::url().parse().unwrap();
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        other => panic!("the network-cut test needs the server over TCP, not {other:?}"),
    };
    (host, config.get_ports().first().copied().unwrap_or(5432))
}

/// The test URL with the host and port of the proxy.
fn through(proxy: &Proxy) -> String {
    let config: postgres::Config = common::url().parse().unwrap();
    let mut url = format!("host=127.0.0.1 port={}", proxy.port);
    if let Some(user) = config.get_user() {
        url.push_str(&format!(" user={user}"));
    }
    if let Some(db) = config.get_dbname() {
        url.push_str(&format!(" dbname={db}"));
    }
    if let Some(pw) = config.get_password() {
        url.push_str(&format!(" password={}", String::from_utf8_lossy(pw)));
    }
    url
}

#[test]
fn network_cut_releases_within_the_bound_and_the_holder_learns_it() {
    let name = common::name("cut");
    let proxy = Proxy::start(upstream());
    let mut a = PostgresLock::options()
        .with_url(through(&proxy))
        .named(&name)
        .unwrap();
    let mut b = common::open(&name);
    a.hang_lock().unwrap();
    let token_a = a.fencing_token().unwrap();
    let signal = a.lost_signal().unwrap();
    assert!(matches!(
        b.try_lock(),
        Err(SimpleLockError::AlreadyLocked { .. })
    ));
    let (client_port, upstream_port) = *proxy.connections.lock().unwrap().last().unwrap();
    let cut = Cut::new(&[client_port, upstream_port]);
    let start = Instant::now();
    b.timed_lock(PATIENCE)
        .expect("the server kept the lock of a cut-off holder");
    let released = start.elapsed();
    let learned = signal.wait(Some(PATIENCE)).map(|_| start.elapsed());
    println!(
        "network cut: the server released after {released:?}, the holder learned it after {learned:?}"
    );
    let bound = Timeouts::default().dead_peer;
    // Not a timing test: without the session settings the lock stays held for hours
    // (tcp_keepalives_idle = 7200 s); the margin only keeps a slow machine from failing.
    assert!(
        released < bound * 4,
        "released after {released:?}, bound {bound:?}"
    );
    assert!(learned.is_some(), "the cut-off holder was not told");
    assert!(b.fencing_token().unwrap() > token_a);
    assert_lost(&mut a, &signal);
    drop(cut);
    b.try_unlock().unwrap();
}

//! Errors in words, shared locks, integer keys and the name formula as other programs use
//! them, TLS, sequence tokens, and the same-thread deadlock check — against the real server.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpListener;
use std::thread;

use simplelock_core::{ConcreteLock, LockStatus, SimpleLockError};
use simplelock_postgres::{FencingTokens, PostgresLock, key_for_name};

mod common;

fn message(err: &SimpleLockError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(" / ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[test]
fn unreachable_server_is_named() {
    let err = PostgresLock::options()
        .with_url("postgres://127.0.0.1:1/test?connect_timeout=5")
        .named("x")
        .unwrap_err();
    let text = message(&err);
    assert!(
        matches!(err, SimpleLockError::UnknownError { .. }),
        "{err:?}"
    );
    assert!(
        text.contains("cannot reach the server") && text.contains("127.0.0.1:1"),
        "{text}"
    );
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err:?}");
}

#[test]
fn bad_urls_are_invalid_and_never_show_the_password() {
    for url in [
        "postgres://u:hunter2@127.0.0.1:notaport/db",
        "host=x sslmode=sometimes password=hunter2",
    ] {
        let err = PostgresLock::options()
            .with_url(url)
            .named("x")
            .unwrap_err();
        assert!(
            matches!(err, SimpleLockError::InvalidName { .. }),
            "{err:?}"
        );
        let text = message(&err);
        assert!(text.contains("invalid PostgreSQL connection URL"), "{text}");
        assert!(
            !text.contains("hunter2") && !format!("{err:?}").contains("hunter2"),
            "{text}"
        );
    }
    let err = PostgresLock::options()
        .with_url(common::url())
        .named("")
        .unwrap_err();
    assert!(
        matches!(err, SimpleLockError::InvalidName { .. }),
        "{err:?}"
    );
}

#[test]
fn missing_database_and_unknown_role_are_named() {
    let config: postgres::Config = common::url().parse().unwrap();
    let host = match &config.get_hosts()[0] {
        postgres::config::Host::Tcp(h) => h.clone(),
        postgres::config::Host::Unix(p) => p.display().to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let err = PostgresLock::options()
        .with_url(format!(
            "host={host} port={port} dbname=simplelock_no_such_db"
        ))
        .named("x")
        .unwrap_err();
    let text = message(&err);
    assert!(text.contains("database does not exist"), "{text}");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");
    let err = PostgresLock::options()
        .with_url(format!(
            "host={host} port={port} dbname=test user=simplelock_no_such_role"
        ))
        .named("x")
        .unwrap_err();
    assert!(
        matches!(err, SimpleLockError::PermissionDenied { .. }),
        "{err:?}"
    );
    assert!(
        message(&err).contains("refused the login"),
        "{}",
        message(&err)
    );
}

/// The local server trusts every login, so a server that asks for a password and refuses it
/// is played by a few lines of the protocol.
#[test]
fn wrong_password_is_permission_denied() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut startup = vec![0u8; u32::from_be_bytes(len) as usize - 4];
        s.read_exact(&mut startup).unwrap();
        // AuthenticationCleartextPassword, then read the password message.
        s.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).unwrap();
        let mut head = [0u8; 5];
        s.read_exact(&mut head).unwrap();
        let mut password =
            vec![0u8; u32::from_be_bytes(head[1..].try_into().unwrap()) as usize - 4];
        s.read_exact(&mut password).unwrap();
        let mut fields = Vec::new();
        for (code, value) in [
            (b'S', "FATAL"),
            (b'V', "FATAL"),
            (b'C', "28P01"),
            (b'M', "password authentication failed for user \"u\""),
        ] {
            fields.push(code);
            fields.extend_from_slice(value.as_bytes());
            fields.push(0);
        }
        fields.push(0);
        let mut error = vec![b'E'];
        error.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
        error.extend_from_slice(&fields);
        s.write_all(&error).unwrap();
    });
    let err = PostgresLock::options()
        .with_url(format!(
            "host=127.0.0.1 port={port} user=u password=wrong dbname=d sslmode=disable"
        ))
        .named("x")
        .unwrap_err();
    server.join().unwrap();
    assert!(
        matches!(err, SimpleLockError::PermissionDenied { .. }),
        "{err:?}"
    );
    let text = message(&err);
    assert!(
        text.contains("wrong password") && !text.contains("=wrong"),
        "{text}"
    );
}

/// With SSL on at the server (the machine's server has it on) `sslmode=require` encrypts;
/// against a server without SSL (a throwaway cluster of `cargo xtask ci`) it is refused with an
/// error, never a plain connection.
#[test]
fn sslmode_require_encrypts_or_is_refused() {
    let mut raw = common::raw();
    let ssl_on: String = raw.query_one("SHOW ssl", &[]).unwrap().get(0);
    let url = format!("{} sslmode=require", to_key_value(common::url()));
    match PostgresLock::options()
        .with_url(&url)
        .named(&common::name("tls"))
    {
        Ok(lock) => {
            assert_eq!(ssl_on, "on", "require connected to a server without SSL");
            let pid = lock.backend_pid().unwrap();
            let ssl: bool = raw
                .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = $1", &[&pid])
                .unwrap()
                .get(0);
            assert!(ssl, "the connection is not encrypted");
        }
        Err(e) => assert_eq!(
            ssl_on, "off",
            "require failed against a server with SSL: {e:?}"
        ),
    }
}

fn to_key_value(url: &str) -> String {
    let config: postgres::Config = url.parse().unwrap();
    let mut kv = String::new();
    match &config.get_hosts()[0] {
        postgres::config::Host::Tcp(h) => kv.push_str(&format!("host={h}")),
        postgres::config::Host::Unix(p) => kv.push_str(&format!("host={}", p.display())),
    }
    kv.push_str(&format!(
        " port={}",
        config.get_ports().first().copied().unwrap_or(5432)
    ));
    if let Some(db) = config.get_dbname() {
        kv.push_str(&format!(" dbname={db}"));
    }
    if let Some(user) = config.get_user() {
        kv.push_str(&format!(" user={user}"));
    }
    kv
}

#[test]
fn shared_locks_share_and_exclude_writers() {
    let name = common::name("shared");
    let mut r1 = PostgresLock::options()
        .with_url(common::url())
        .with_shared(true)
        .named(&name)
        .unwrap();
    let mut r2 = PostgresLock::options()
        .with_url(common::url())
        .with_shared(true)
        .named(&name)
        .unwrap();
    let mut w = common::open(&name);
    r1.try_lock().unwrap();
    assert_eq!(r2.status().unwrap(), LockStatus::Open);
    r2.try_lock().unwrap();
    assert_eq!(w.status().unwrap(), LockStatus::Taken);
    assert!(matches!(
        w.try_lock(),
        Err(SimpleLockError::AlreadyLocked { .. })
    ));
    r1.try_unlock().unwrap();
    r2.try_unlock().unwrap();
    w.try_lock().unwrap();
    assert_eq!(r1.status().unwrap(), LockStatus::Taken);
    assert!(matches!(
        r1.try_lock(),
        Err(SimpleLockError::AlreadyLocked { .. })
    ));
    w.try_unlock().unwrap();
}

#[test]
fn integer_keys_and_the_name_formula_meet_other_programs() {
    // Another program takes key 4242 and the key of a name computed in SQL.
    let name = common::name("formula");
    let mut raw = common::raw();
    let formula: i64 = raw
        .query_one(
            "SELECT ('x' || left(encode(sha256(convert_to($1, 'UTF8')), 'hex'), 16))::bit(64)::bigint",
            &[&name],
        )
        .unwrap()
        .get(0);
    assert_eq!(formula, key_for_name(&name));
    let key = 4_242_000 + i64::from(std::process::id());
    raw.execute(
        "SELECT pg_advisory_lock($1), pg_advisory_lock($2)",
        &[&key, &formula],
    )
    .unwrap();
    let mut by_key = PostgresLock::options()
        .with_url(common::url())
        .keyed(key)
        .unwrap();
    let mut by_name = common::open(&name);
    for lock in [&mut by_key, &mut by_name] {
        match lock.try_lock() {
            Err(SimpleLockError::AlreadyLocked {
                holder: Some(h), ..
            }) => {
                // Not a simplelock client: named by its server pid and application.
                assert!(
                    h.program.as_deref().unwrap_or("").contains("server pid"),
                    "{h:?}"
                );
            }
            other => panic!("expected AlreadyLocked with a holder, got {other:?}"),
        }
    }
    raw.execute("SELECT pg_advisory_unlock_all()", &[]).unwrap();
    by_key.try_lock().unwrap();
    by_name.try_lock().unwrap();
    assert_eq!(by_key.name(), format!("key {key}"));
}

#[test]
fn sequence_tokens_increase_and_a_cached_sequence_is_refused() {
    let seq = format!("simplelock_test_tokens_{}", std::process::id());
    let mut raw = common::raw();
    let mut lock = PostgresLock::options()
        .with_url(common::url())
        .with_fencing_tokens(FencingTokens::Sequence(String::from(&seq)))
        .named(&common::name("seq"))
        .unwrap();
    let mut last = 0;
    for _ in 0..5 {
        lock.try_lock().unwrap();
        let token = lock.fencing_token().unwrap();
        assert!(token > last);
        last = token;
        lock.try_unlock().unwrap();
    }
    raw.batch_execute(&format!("ALTER SEQUENCE {seq} CACHE 5"))
        .unwrap();
    let err = PostgresLock::options()
        .with_url(common::url())
        .with_fencing_tokens(FencingTokens::Sequence(String::from(&seq)))
        .named(&common::name("seq"))
        .unwrap_err();
    assert!(message(&err).contains("CACHE 5"), "{}", message(&err));
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err:?}");
    raw.batch_execute(&format!("DROP SEQUENCE {seq}")).unwrap();
    let err = PostgresLock::options()
        .with_url(common::url())
        .with_fencing_tokens(FencingTokens::Sequence(String::from("bad; DROP TABLE x")))
        .named("x")
        .unwrap_err();
    assert!(
        matches!(err, SimpleLockError::InvalidName { .. }),
        "{err:?}"
    );
}

#[test]
fn without_tokens_the_lock_still_excludes_and_has_no_token() {
    let name = common::name("notokens");
    let open = || {
        PostgresLock::options()
            .with_url(common::url())
            .with_fencing_tokens(FencingTokens::Disabled)
            .named(&name)
            .unwrap()
    };
    let (mut a, mut b) = (open(), open());
    a.try_lock().unwrap();
    assert_eq!(a.fencing_token(), None);
    assert!(matches!(
        b.try_lock(),
        Err(SimpleLockError::AlreadyLocked { .. })
    ));
    a.try_unlock().unwrap();
    b.timed_lock(std::time::Duration::from_secs(5)).unwrap();
    b.try_unlock().unwrap();
}

#[test]
fn waiting_on_a_lock_this_thread_holds_is_would_deadlock() {
    let name = common::name("deadlock");
    let mut a = common::open(&name);
    let mut b = common::open(&name);
    a.try_lock().unwrap();
    assert!(matches!(
        b.hang_lock(),
        Err(SimpleLockError::WouldDeadlock { .. })
    ));
    a.try_unlock().unwrap();
    b.hang_lock().unwrap();
}

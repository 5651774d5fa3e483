//! The server loop: graceful shutdown on SIGTERM (a request in flight completes, new
//! connections are refused, the store reopens intact), and the limits on slow clients
//! (`[server] header_read_timeout`, `request_timeout` → 408).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn addr_of(d: &Daemon) -> String {
    d.base_url.trim_start_matches("http://").to_string()
}

/// Read one HTTP/1.1 response with a Content-Length body: (status, head, body).
fn read_response(s: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut b).expect("read response head");
        assert_eq!(n, 1, "connection closed in the response head: {head:?}");
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (status, head, body)
}

/// Wait for the peer to close: true if it did within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_then_flushes_and_exits_0() {
    let setup = new_daemon_setup("").expect("setup");
    let d = start_daemon_on(&setup).expect("daemon");
    let addr = addr_of(&d);

    // An idle keep-alive connection must not hold the shutdown up.
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut idle).0, 200);

    // A request whose body is only half sent: the handler is waiting for the rest.
    let name = unique_name("graceful");
    let body = serde_json::to_vec(&json!({
        "name": name, "common_name": "Graceful Root", "ca_type": "root", "key_type": "ec"
    }))
    .unwrap();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST /v1/pki/ca HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        d.root_token,
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let half = body.len() / 2;
    s.write_all(&body[..half]).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    d.signal("TERM");
    assert!(
        d.wait_for_log("no longer accepting", 1, Duration::from_secs(10)),
        "{}",
        d.log_tail(3000)
    );
    // The listener is closed: no new connections.
    assert!(
        TcpStream::connect(&addr).is_err(),
        "a new connection was accepted after SIGTERM"
    );
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)),
        "the idle keep-alive connection was not closed"
    );
    assert!(
        d.wait_exit(Duration::from_millis(300)).is_none(),
        "exited with a request in flight"
    );

    // The rest of the body; the request completes normally.
    s.write_all(&body[half..]).unwrap();
    let (status, head, body) = read_response(&mut s);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 201, "{head}{v}");
    let ca_id = v["id"].as_str().unwrap().to_string();

    let started = Instant::now();
    let status = d
        .wait_exit(Duration::from_secs(20))
        .expect("the daemon did not exit after SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let log = d.log();
    let stopped = log.find("stopped").expect("no 'stopped' line");
    let served = log
        .find("route=/v1/pki/ca status=201")
        .expect("no access line");
    assert!(served < stopped, "{log}");
    assert!(!log.contains("final flush failed"), "{log}");

    // The store reopens with the CA created during shutdown.
    drop(d);
    let d2 = start_daemon_on(&setup).expect("restart");
    let (s2, v2) = d2.get(&format!("/v1/pki/ca/{ca_id}"));
    assert_eq!(s2, 200, "{v2}");
    assert_eq!(v2["name"], name.as_str());
}

#[test]
fn slow_clients_meet_the_header_and_request_timeouts() {
    let setup =
        new_daemon_setup("[server]\nheader_read_timeout = \"1s\"\nrequest_timeout = \"2s\"\n")
            .expect("setup");
    let d = start_daemon_on(&setup).expect("daemon");
    let addr = addr_of(&d);

    // A request head that never ends: the connection is closed after ~1 s.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let t = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(10)));
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(5),
        "{took:?}"
    );

    // An idle keep-alive connection is closed after the same time.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s).0, 200);
    let t = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(10)));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    // A body that never arrives: 408 request_timeout, JSON, and the connection closes.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST /v1/pki/roles HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":",
        d.root_token
    );
    s.write_all(head.as_bytes()).unwrap();
    let t = Instant::now();
    let (status, head, body) = read_response(&mut s);
    let took = t.elapsed();
    assert_eq!(status, 408, "{head}");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "request_timeout", "{v}");
    assert!(head.to_lowercase().contains("connection: close"), "{head}");
    assert!(head.to_lowercase().contains("x-request-id: req_"), "{head}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "{took:?}"
    );

    // Nothing of this disturbed anyone else.
    assert_eq!(d.get("/v1/pki/ca").0, 200);
}

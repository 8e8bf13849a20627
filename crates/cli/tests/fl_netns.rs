//! A federation across emulated hosts: the coordinator and three hospitals
//! each in their own network namespace, joined by veth pairs to a bridge,
//! every one at its own address. The processes are the real binary; the
//! hospitals dial the coordinator's address and verify the certificate
//! name the roster gives (not "localhost", not the address). Where the
//! kernel has `netem`, every hospital's link also gets latency and loss;
//! elsewhere the clients' transport emulates them (`fl client --shape`:
//! delayed calls, lost requests and lost replies), and the rounds must
//! still complete with a bounded number of retries.
//!
//! Needs root and `ip netns` (iproute2); skipped with a message otherwise.
//! `CIPHERFLOW_NETNS_BIN` runs another build of the binary instead of the
//! test build: the static musl binary of the container images
//! (`deploy/image/build.sh`), which cannot be run as containers here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> PathBuf {
    std::env::var_os("CIPHERFLOW_NETNS_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_cipherflow")),
        PathBuf::from,
    )
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn must(args: &[&str]) {
    assert!(ip(args), "ip {}", args.join(" "));
}

/// The namespaces, links and bridge of one test, removed on drop.
struct Net {
    tag: String,
    hosts: Vec<String>,
}

impl Net {
    fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.tag)
    }

    /// `hosts` get 10.231.S.(i+1)/24 on a bridge that has .254.
    fn build(tag: &str, subnet: u8, hosts: &[&str]) -> Option<Self> {
        let net = Net {
            tag: tag.to_string(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
        };
        let br = format!("{tag}br");
        if !ip(&["link", "add", &br, "type", "bridge"]) {
            return None;
        }
        must(&[
            "addr",
            "add",
            &format!("10.231.{subnet}.254/24"),
            "dev",
            &br,
        ]);
        must(&["link", "set", &br, "up"]);
        for (i, h) in hosts.iter().enumerate() {
            let ns = net.ns(h);
            let (outer, inner) = (format!("{tag}o{i}"), format!("{tag}i{i}"));
            must(&["netns", "add", &ns]);
            must(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ]);
            must(&["link", "set", &inner, "netns", &ns]);
            must(&["link", "set", &outer, "master", &br]);
            must(&["link", "set", &outer, "up"]);
            let addr = format!("10.231.{subnet}.{}/24", i + 1);
            must(&["-n", &ns, "addr", "add", &addr, "dev", &inner]);
            must(&["-n", &ns, "link", "set", &inner, "up"]);
            must(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        Some(net)
    }

    /// Adds `netem` latency and loss on host `i`'s link; false when the
    /// kernel lacks it.
    fn shape(&self, i: usize, host: &str) -> bool {
        let inner = format!("{}i{i}", self.tag);
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns(host),
                "tc",
                "qdisc",
                "add",
                "dev",
                &inner,
            ])
            .args(["root", "netem", "delay", "20ms", "5ms", "loss", "1%"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn exec(&self, host: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(host)]).arg(bin());
        c
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for h in &self.hosts {
            ip(&["netns", "del", &self.ns(h)]);
        }
        ip(&["link", "del", &format!("{}br", self.tag)]);
    }
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    let a: std::net::SocketAddr = addr.parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn wait_ok(child: &mut Child, what: &str, limit: Duration, stderr: &std::path::Path) -> String {
    let log = || {
        let text = std::fs::read_to_string(stderr).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    };
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            assert!(status.success(), "{what} failed: {out}\n{}", log());
            return out;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not finish within {limit:?}\n{}", log());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_federation_across_network_namespaces() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    if !root || !ip(&["netns", "list"]) {
        eprintln!("skipped: emulating hosts needs root and `ip netns` (iproute2)");
        return;
    }
    let pid = std::process::id();
    let tag = format!("cf{}", pid % 100_000);
    let subnet = (pid % 200) as u8 + 20;
    let hosts = ["coord", "h1", "h2", "h3"];
    let Some(net) = Net::build(&tag, subnet, &hosts) else {
        eprintln!("skipped: cannot create a bridge or namespaces here");
        return;
    };
    let shaped: Vec<bool> = (1..=3).map(|i| net.shape(i, hosts[i])).collect();
    let transport_shaping = shaped.iter().all(|s| !s);
    if transport_shaping {
        eprintln!(
            "netem is not available in this kernel: the clients' transport emulates latency \
             and loss (--shape)"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Identities: server names from the roster, not addresses.
    let ok = Command::new(bin())
        .args(["fl", "ca", "init", "--dir"])
        .arg(d.join("pki"))
        .args(["--federation", "netfed", "--clients", "3"])
        .status()
        .unwrap();
    assert!(ok.success());
    std::fs::write(
        d.join("fed.toml"),
        "name = \"netfed\"\nrounds = 2\nmodel = \"logreg\"\ninput = [30]\nclasses = 2\n\
         threshold = 2\nquorum = 3\nround_timeout_s = 20\n\
         [training]\nepochs = 1\nbatch_size = 16\nlr = 0.1\n",
    )
    .unwrap();
    let coord_addr = format!("10.231.{subnet}.1");
    let mut coord = net
        .exec("coord")
        .args(["fl", "coordinator", "--config"])
        .arg(d.join("fed.toml"))
        .arg("--pki")
        .arg(d.join("pki"))
        .arg("--state")
        .arg(d.join("state"))
        .args(["--listen", &format!("{coord_addr}:7443")])
        .args(["--metrics", &format!("{coord_addr}:9090"), "--json"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(d.join("coord.stderr")).unwrap())
        .spawn()
        .unwrap();
    let mut clients: Vec<Child> = (1..=3)
        .map(|i| {
            net.exec(hosts[i])
                .args(["fl", "client", "--config"])
                .arg(d.join("fed.toml"))
                .arg("--pki")
                .arg(d.join("pki"))
                .args(["--id", &format!("client-{i}"), "--shard", &format!("{i}/3")])
                .args(["--coordinator", &format!("https://{coord_addr}:7443")])
                .args(["--patience", "60", "--json"])
                .args(if transport_shaping {
                    &["--shape", "delay=20ms,jitter=5ms,loss=0.1"][..]
                } else {
                    &[][..]
                })
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(d.join(format!("client-{i}.stderr"))).unwrap())
                .spawn()
                .unwrap()
        })
        .collect();
    // The monitoring port, scraped from the root namespace across the
    // bridge while the federation runs (the coordinator exits when done).
    let mon = format!("{coord_addr}:9090");
    let scraped = std::sync::Arc::new(std::sync::Mutex::new((false, String::new())));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scraper = {
        let (scraped, stop, mon) = (scraped.clone(), stop.clone(), mon.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let ready =
                    http_get(&mon, "/readyz").is_some_and(|r| r.starts_with("HTTP/1.1 200"));
                if let Some(page) = http_get(&mon, "/metrics") {
                    let mut g = scraped.lock().unwrap();
                    g.0 |= ready;
                    if page.starts_with("HTTP/1.1 200") {
                        g.1 = page;
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let limit = Duration::from_secs(240);
    let (mut lost, mut replies_lost) = (0u64, 0u64);
    for (i, c) in clients.iter_mut().enumerate() {
        let err = d.join(format!("client-{}.stderr", i + 1));
        let out = wait_ok(c, &format!("client-{}", i + 1), limit, &err);
        let last = out.lines().last().unwrap_or_default();
        let v: serde_json::Value =
            serde_json::from_str(last).unwrap_or_else(|e| panic!("client-{}: {e}: {out}", i + 1));
        assert_eq!(v["uploads"], 2, "client-{}: {v}", i + 1);
        assert_eq!(v["counted_proofs"], 2, "client-{}: {v}", i + 1);
        // Retries stay bounded: every loss costs a few, waiting for the
        // others costs some, none runs away.
        let retries = v["retries"].as_u64().unwrap();
        assert!(retries <= 150, "client-{}: {retries} retries: {v}", i + 1);
        if transport_shaping {
            let s = &v["shaped"];
            lost += s["requests_lost"].as_u64().unwrap() + s["replies_lost"].as_u64().unwrap();
            replies_lost += s["replies_lost"].as_u64().unwrap();
        }
    }
    if transport_shaping {
        // At 10 % loss over hundreds of calls, losses happened (and the
        // rounds still closed with every update counted once).
        assert!(lost > 0, "no call was lost");
        eprintln!(
            "emulated losses: {lost} calls, {replies_lost} of them after the coordinator acted"
        );
    }
    let out = wait_ok(
        &mut coord,
        "coordinator",
        Duration::from_secs(60),
        &d.join("coord.stderr"),
    );
    assert!(out.contains("\"rounds\":2"), "{out}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    scraper.join().unwrap();
    let (ready, page) = scraped.lock().unwrap().clone();
    assert!(ready, "/readyz never answered 200");
    for i in 1..=3 {
        assert!(
            page.contains(&format!(
                "cipherflow_fed_client_rounds_joined_total{{client=\"client-{i}\"}} 2\n"
            )),
            "{page}"
        );
    }
    let shaped_note = if transport_shaping {
        "with latency and loss emulated by the transport"
    } else {
        "with netem latency and loss"
    };
    eprintln!("federation across 4 namespaces ({shaped_note}): 2 rounds, 3 hospitals");
}

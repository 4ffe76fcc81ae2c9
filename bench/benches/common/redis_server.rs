//! A Redis server for a bench: one it starts on a free loopback port
//! (`redis-server --save "" --appendonly no`, killed on drop), or the one
//! `REDIS_URL` names. Shared by `redis.rs`, `growth.rs` and `memory.rs`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Redis server of the run: one this bench started (killed on drop), or
/// the one `REDIS_URL` names.
pub struct Redis {
    pub url: String,
    pub child: Option<Child>,
}

impl Redis {
    /// `None` when `REDIS_URL` is unset and `redis-server` cannot be run
    /// (not installed): the bench is skipped, so a plain `cargo bench`
    /// still runs the others.
    pub fn start() -> Option<Self> {
        if let Ok(url) = std::env::var("REDIS_URL") {
            let redis = Self { url, child: None };
            assert_eq!(
                redis.cli(&["PING"]).trim(),
                "PONG",
                "REDIS_URL answers PING"
            );
            return Some(redis);
        }
        // A free loopback port: bind port 0, read the port, release it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--dir", &std::env::temp_dir().to_string_lossy()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let redis = Self {
            url: format!("redis://127.0.0.1:{port}/"),
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pong = Command::new("redis-cli")
                .args(["-u", &redis.url, "PING"])
                .stderr(Stdio::null())
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG");
            if pong {
                break;
            }
            assert!(Instant::now() < deadline, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(redis)
    }

    /// Runs `redis-cli -u <url> <args>` and returns its standard output.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-u", &self.url])
            .args(args)
            .output()
            .expect("redis-cli runs");
        assert!(output.status.success(), "redis-cli {args:?} failed");
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// `INFO <sections>` as `name -> value`.
    pub fn info(&self, sections: &[&str]) -> BTreeMap<String, String> {
        let mut args = vec!["INFO"];
        args.extend_from_slice(sections);
        self.cli(&args)
            .lines()
            .filter_map(|line| line.trim().split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// The server's CPU time so far (user + system, seconds).
    pub fn cpu_secs(&self) -> f64 {
        let info = self.info(&["cpu"]);
        let get = |k: &str| -> f64 { info[k].parse().expect("a number") };
        get("used_cpu_user") + get("used_cpu_sys")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

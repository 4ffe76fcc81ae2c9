//! Private Redis servers for tests: a single [`RedisServer`] (volatile or
//! persistent) and a three-master [`RedisCluster`], each started on free
//! loopback ports in a fresh temporary directory and owned by the test,
//! so that it can read `INFO commandstats` deltas, kill and restart a
//! server, and move a slot between cluster nodes.
//!
//! Nothing here touches a system Redis (such as one on port 6379): every
//! server is started by the harness on a port it picked, bound to
//! `127.0.0.1` only, and killed (and its directory removed) on drop.
//! Every wait is bounded.
//!
//! When the `redis-server` binary (or, for a cluster, `redis-cli`) is
//! missing, `start()` prints a loud `SKIPPED` line to stderr and returns
//! `None`, so that a test can `return` early; with `CI=true` it panics
//! instead, because CI must run these tests (`.ci/run` installs the
//! package).
//!
//! Commands go through a tiny RESP2 client over a fresh
//! [`TcpStream`] per command (see [`RedisServer::query`]): it sends exactly
//! the command given and nothing else, so the command statistics the
//! tests read see only that command.
//!
//! ```no_run
//! use typed_sessions_test_support::redis_server::{RedisServer, stats_delta};
//!
//! let Some(server) = RedisServer::start() else { return };
//! let before = server.command_stats();
//! server.command(&["SET", "a", "1"]);
//! let delta = stats_delta(&before, &server.command_stats());
//! assert_eq!(delta.into_iter().collect::<Vec<_>>(), [("set".to_owned(), 1)]);
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a starting (or restarting) server has to answer `PING`.
const BOOT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`RedisServer::restart`] retries when its old port is still taken.
const REBIND_TIMEOUT: Duration = Duration::from_secs(5);
/// How many fresh ports [`RedisServer::start`] tries when it loses a port race.
const START_ATTEMPTS: usize = 5;
/// How long `redis-cli --cluster create` may run.
const CLUSTER_CREATE_TIMEOUT: Duration = Duration::from_mins(1);
/// How long the nodes of a cluster have to agree (after creation or a slot move).
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(15);
/// Connect timeout of the harness's RESP client.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Read and write timeout of the harness's RESP client: longer than any
/// `DEBUG SLEEP` a test issues, short enough that nothing hangs forever.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Polling interval of every wait.
const POLL: Duration = Duration::from_millis(20);
/// Highest data port of a cluster node: its bus port is the data port + 10000.
const MAX_CLUSTER_PORT: u16 = 55_000;
/// The offset of a cluster node's bus port from its data port.
const CLUSTER_BUS_OFFSET: u16 = 10_000;
/// The number of hash slots of a Redis Cluster.
pub const CLUSTER_SLOTS: u16 = 16_384;

/// The command statistics names that the harness's own observation
/// commands produce (`INFO commandstats` for a snapshot, `CONFIG
/// RESETSTAT` for a reset): [`RedisServer::command_stats`] leaves them out,
/// so that a snapshot taken before and one taken after the code under test
/// differ only by what that code sent.
///
/// Everything else the harness sends counts like any client's command:
/// [`RedisServer::command`], [`RedisCluster::owner_of_slot`] (`cluster|slots`),
/// [`RedisCluster::wait_until_ok`] (`cluster|info`, `cluster|slots`) and
/// [`RedisCluster::move_slot`] between two snapshots show up in their
/// delta, so take snapshots around exactly the code under test.
pub const HARNESS_STAT_COMMANDS: [&str; 2] = ["info", "config|resetstat"];

/// One RESP2 reply, as the harness's client reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A simple string (`+OK`).
    Status(String),
    /// An error (`-MOVED 866 127.0.0.1:7001`), without the leading `-`.
    Error(String),
    /// An integer (`:5`).
    Integer(i64),
    /// A bulk string, as raw bytes.
    Bulk(Vec<u8>),
    /// A null bulk string or null array (`$-1`, `*-1`).
    Nil,
    /// An array of replies.
    Array(Vec<Reply>),
}

impl Reply {
    /// The error message, when this reply is an error.
    pub fn error(&self) -> Option<&str> {
        match self {
            Self::Error(message) => Some(message),
            _ => None,
        }
    }

    /// Whether this reply is an error.
    pub fn is_error(&self) -> bool {
        matches!(self, Self::Error(_))
    }
}

/// The text form that [`RedisServer::command`] returns, close to
/// `redis-cli --raw`: a simple string, bulk string or integer as its bare
/// text (bulk bytes decoded lossily as UTF-8); a nil as `(nil)`; an error
/// as `(error) ` followed by its message (`(error) MOVED 866
/// 127.0.0.1:7001`); an array as its elements' forms, one per line
/// (nested arrays flattened the same way; an empty array is `""`).
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(text) => f.write_str(text),
            Self::Error(message) => write!(f, "(error) {message}"),
            Self::Integer(n) => write!(f, "{n}"),
            Self::Bulk(bytes) => f.write_str(&String::from_utf8_lossy(bytes)),
            Self::Nil => f.write_str("(nil)"),
            Self::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str("\n")?;
                    }
                    write!(f, "{item}")?;
                }
                Ok(())
            }
        }
    }
}

/// What kind of server to start: the arguments that differ between kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// No persistence at all: data is gone after a restart.
    Volatile,
    /// An append-only file synced on every write: data survives `kill -9`.
    Persistent,
    /// A volatile cluster node.
    ClusterNode,
}

impl Mode {
    fn args(self) -> &'static [&'static str] {
        match self {
            Self::Volatile => &["--appendonly", "no"],
            Self::Persistent => &["--appendonly", "yes", "--appendfsync", "always"],
            Self::ClusterNode => &[
                "--appendonly",
                "no",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
            ],
        }
    }
}

/// Why one launch of `redis-server` did not come up.
#[derive(Debug)]
enum LaunchError {
    /// Its port (or cluster bus port) was taken: try again, elsewhere or later.
    PortTaken,
    /// Anything else: the message says what.
    Failed(String),
}

/// A private `redis-server` owned by a test: bound to `127.0.0.1` on a
/// port nobody else uses, with its own temporary directory (holding its
/// log, `redis.log`, and for a persistent server its append-only file).
///
/// Dropping it kills the process (SIGKILL) and removes the directory.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    mode: Mode,
    pid: u32,
    child: Mutex<Option<Child>>,
}

impl RedisServer {
    /// Starts a server that keeps nothing on disk (`--save ""
    /// --appendonly no`): after [`kill`](Self::kill) and
    /// [`restart`](Self::restart) it is empty.
    ///
    /// Returns `None` (after a loud `SKIPPED` message on stderr) when no
    /// `redis-server` binary is found, unless `CI=true`, where that panics.
    /// Panics, with the tail of the server's log, when the binary is there
    /// but the server does not answer `PING` within about 5 seconds.
    pub fn start() -> Option<Self> {
        binaries_present(&["redis-server"], "RedisServer::start")
            .then(|| Self::launch(Mode::Volatile))
    }

    /// Starts a server whose data survives `kill -9` and a restart: an
    /// append-only file synced on every write (`--appendonly yes
    /// --appendfsync always`). Otherwise like [`start`](Self::start).
    pub fn start_persistent() -> Option<Self> {
        binaries_present(&["redis-server"], "RedisServer::start_persistent")
            .then(|| Self::launch(Mode::Persistent))
    }

    /// Starts a server of `mode` on a fresh free port in a fresh directory,
    /// trying other ports when it loses a port race.
    fn launch(mode: Mode) -> Self {
        let mut server = Self {
            port: free_port(mode == Mode::ClusterNode),
            dir: fresh_dir(),
            mode,
            pid: 0,
            child: Mutex::new(None),
        };
        for attempt in 1..=START_ATTEMPTS {
            match server.spawn_and_wait() {
                Ok(()) => {
                    server.reset_stats();
                    return server;
                }
                Err(LaunchError::PortTaken) if attempt < START_ATTEMPTS => {
                    // A cluster node may have written its identity already;
                    // a new port gets a clean start.
                    let _ = fs::remove_file(server.dir.join("nodes.conf"));
                    server.port = free_port(mode == Mode::ClusterNode);
                }
                Err(error) => server.fail("start", &error),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// The full argument list of `redis-server` for this server.
    fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "--bind",
            "127.0.0.1",
            "--port",
            &self.port.to_string(),
            "--save",
            "",
            "--dir",
            &self.dir.display().to_string(),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            // Redis 7 refuses DEBUG (used for `DEBUG SLEEP`) unless enabled;
            // `local` enables it for loopback connections only.
            "--enable-debug-command",
            "local",
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .collect();
        args.extend(self.mode.args().iter().map(|arg| (*arg).to_owned()));
        args
    }

    /// The server's log file: its stdout and stderr (Redis logs to stdout
    /// when no `--logfile` is given), appended to across restarts.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// The server's own temporary directory (`--dir`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Spawns `redis-server` once and waits (bounded) until it answers `PING`.
    fn spawn_and_wait(&mut self) -> Result<(), LaunchError> {
        let log_path = self.log_path();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| LaunchError::Failed(format!("cannot open {}: {e}", log_path.display())))?;
        let log_start = log.metadata().map_or(0, |m| m.len());
        let stderr = log
            .try_clone()
            .map_err(|e| LaunchError::Failed(format!("cannot clone the log handle: {e}")))?;
        let child = Command::new("redis-server")
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|e| LaunchError::Failed(format!("cannot spawn redis-server: {e}")))?;
        self.pid = child.id();
        *self.child_slot() = Some(child);

        let deadline = Instant::now() + BOOT_TIMEOUT;
        loop {
            if let Some(status) = self.exit_status() {
                *self.child_slot() = None;
                let log = read_from(&log_path, log_start);
                return Err(if log.contains("Address already in use") {
                    LaunchError::PortTaken
                } else {
                    LaunchError::Failed(format!("redis-server exited with {status}"))
                });
            }
            if matches!(roundtrip(self.port, &[b"PING"]), Ok(Reply::Status(ref s)) if s == "PONG") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(LaunchError::Failed(format!(
                    "no PONG within {BOOT_TIMEOUT:?}"
                )));
            }
            thread::sleep(POLL);
        }
    }

    /// Panics with what went wrong and the tail of the server's log.
    fn fail(&self, what: &str, error: &LaunchError) -> ! {
        let reason = match error {
            LaunchError::PortTaken => "its port stayed taken".to_owned(),
            LaunchError::Failed(message) => message.clone(),
        };
        panic!(
            "redis-server on 127.0.0.1:{} failed to {what}: {reason}\n--- last lines of {} ---\n{}",
            self.port,
            self.log_path().display(),
            log_tail(&self.log_path(), 40),
        );
    }

    /// The slot holding the child process, poison-tolerant.
    fn child_slot(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The exit status, when the process has exited (and was not yet reaped by `kill`).
    fn exit_status(&self) -> Option<ExitStatus> {
        self.child_slot()
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server's port on `127.0.0.1` (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id of the current (or, after [`kill`](Self::kill), the
    /// last) `redis-server` process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the process is alive: started, not killed, not exited.
    pub fn is_running(&self) -> bool {
        let mut slot = self.child_slot();
        slot.as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Kills the server with SIGKILL (no shutdown save, like `kill -9`) and
    /// waits for it to exit. Does nothing when it is not running.
    pub fn kill(&mut self) {
        let child = self
            .child
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut child) = child {
            // An error means it had exited already; `wait` reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again, killing it first if it runs, on the same
    /// port, in the same directory, with the same arguments, and waits
    /// (bounded) until it answers `PING`. When the port is still taken the
    /// bind is retried for about 5 seconds.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + REBIND_TIMEOUT;
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(LaunchError::PortTaken) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(100));
                }
                Err(error) => self.fail("restart", &error),
            }
        }
    }

    /// Sends one command on a fresh connection and returns its reply.
    ///
    /// The connection sends nothing but this command (no `HELLO`, `SELECT`
    /// or `CLIENT` commands), speaks RESP2, and times out after 30 seconds.
    ///
    /// # Errors
    ///
    /// Any I/O error: the server is not running, the connection was reset,
    /// the reply did not come in time or was not valid RESP2.
    pub fn query(&self, args: &[&str]) -> io::Result<Reply> {
        let args: Vec<&[u8]> = args.iter().map(|arg| arg.as_bytes()).collect();
        roundtrip(self.port, &args)
    }

    /// Like [`query`](Self::query), with binary arguments.
    ///
    /// # Errors
    ///
    /// As for [`query`](Self::query).
    pub fn query_bytes(&self, args: &[&[u8]]) -> io::Result<Reply> {
        roundtrip(self.port, args)
    }

    /// Sends one command (as [`query`](Self::query) does) and returns its
    /// reply as text, in the form described at [`Reply`]'s `Display`:
    /// `OK`, `5`, `(nil)`, `(error) MOVED 866 127.0.0.1:7001`, an array as
    /// one element per line (`HGETALL` gives field, value, field, value…).
    ///
    /// An error reply is returned as text; an I/O error panics. For a
    /// command that blocks the server (`DEBUG SLEEP 3`) use
    /// [`command_in_background`](Self::command_in_background).
    pub fn command(&self, args: &[&str]) -> String {
        match self.query(args) {
            Ok(reply) => reply.to_string(),
            Err(error) => panic!("{args:?} to 127.0.0.1:{}: {error}", self.port),
        }
    }

    /// Sends one command on its own connection from a new thread and
    /// returns at once; the thread's result is the reply as text (as
    /// [`command`](Self::command) gives it). For commands that block the
    /// server, like `DEBUG SLEEP 3`. Bounded by the client's 30 s timeout;
    /// an I/O error (the server killed meanwhile) panics the thread, so
    /// `join` returns `Err`.
    pub fn command_in_background(&self, args: &[&str]) -> JoinHandle<String> {
        let port = self.port;
        let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        thread::spawn(move || {
            let bytes: Vec<&[u8]> = args.iter().map(String::as_bytes).collect();
            match roundtrip(port, &bytes) {
                Ok(reply) => reply.to_string(),
                Err(error) => panic!("{args:?} to 127.0.0.1:{port}: {error}"),
            }
        })
    }

    /// `INFO commandstats` as command name → `calls`: the names as Redis 7
    /// gives them, lowercase, a subcommand after a bar (`hgetall`,
    /// `evalsha`, `pexpireat`, `script|load`, `cluster|slots`). Commands
    /// with no successful call are absent; so are the harness's own
    /// observation commands ([`HARNESS_STAT_COMMANDS`]). Rejected calls
    /// (a `MOVED` redirection, a wrong arity) are not calls.
    pub fn command_stats(&self) -> BTreeMap<String, u64> {
        match self.query(&["INFO", "commandstats"]) {
            Ok(Reply::Bulk(info)) => parse_command_stats(&String::from_utf8_lossy(&info)),
            other => panic!("INFO commandstats on 127.0.0.1:{}: {other:?}", self.port),
        }
    }

    /// Zeroes the server's statistics (`CONFIG RESETSTAT`). A freshly
    /// started (not restarted) server starts with zeroed statistics.
    pub fn reset_stats(&self) {
        let reply = self.command(&["CONFIG", "RESETSTAT"]);
        assert_eq!(reply, "OK", "CONFIG RESETSTAT on 127.0.0.1:{}", self.port);
    }
}

impl Drop for RedisServer {
    /// Kills the process (SIGKILL), waits for it, and removes the directory.
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The differences `after - before` of two [`RedisServer::command_stats`]
/// (or [`RedisCluster::command_stats`]) snapshots, only the non-zero ones.
/// A count that went down (statistics reset in between) is left out.
pub fn stats_delta(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(name, &calls)| {
            let delta = calls.saturating_sub(before.get(name).copied().unwrap_or(0));
            (delta > 0).then(|| (name.clone(), delta))
        })
        .collect()
}

/// Parses the `cmdstat_NAME:calls=N,…` lines of `INFO commandstats`.
fn parse_command_stats(info: &str) -> BTreeMap<String, u64> {
    info.lines()
        .filter_map(|line| {
            let (name, fields) = line.trim_end().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls: u64 = fields
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))?
                .parse()
                .ok()?;
            (calls > 0 && !HARNESS_STAT_COMMANDS.contains(&name)).then(|| (name.to_owned(), calls))
        })
        .collect()
}

/// A three-master Redis Cluster (no replicas) of private servers, every
/// slot assigned, owned by a test. Dropping it kills every node and
/// removes their directories.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    ids: Vec<String>,
}

impl RedisCluster {
    /// Starts three cluster-enabled nodes (`--cluster-enabled yes
    /// --cluster-config-file nodes.conf --cluster-node-timeout 2000`) on
    /// free loopback ports below 55000 whose bus ports (+10000) are free
    /// too, joins them with `redis-cli --cluster create … --cluster-replicas
    /// 0 --cluster-yes`, and waits (bounded, about 15 s) until every node
    /// reports `cluster_state:ok`, 16384 slots assigned and 3 known nodes,
    /// and all nodes agree on the slot map. Statistics are zeroed before it
    /// returns.
    ///
    /// Returns `None` (after a loud `SKIPPED` message) when `redis-server`
    /// or `redis-cli` is missing, unless `CI=true`, where that panics.
    pub fn start() -> Option<Self> {
        if !binaries_present(&["redis-server", "redis-cli"], "RedisCluster::start") {
            return None;
        }
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| RedisServer::launch(Mode::ClusterNode))
            .collect();
        create_cluster(&nodes);
        let ids = nodes
            .iter()
            .map(|node| match node.query(&["CLUSTER", "MYID"]) {
                Ok(Reply::Bulk(id)) => String::from_utf8_lossy(&id).into_owned(),
                other => panic!("CLUSTER MYID on 127.0.0.1:{}: {other:?}", node.port),
            })
            .collect();
        let cluster = Self { nodes, ids };
        cluster.wait_until_settled("after `redis-cli --cluster create`", None);
        cluster.reset_stats();
        Some(cluster)
    }

    /// `redis://127.0.0.1:PORT/` of every node, in node order.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes, in the order the other methods index them.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Node `index`, mutably: to [`kill`](RedisServer::kill) and
    /// [`restart`](RedisServer::restart) it (its `nodes.conf` keeps its
    /// identity and slots across a restart).
    pub fn node_mut(&mut self, index: usize) -> &mut RedisServer {
        &mut self.nodes[index]
    }

    /// The cluster node id (`CLUSTER MYID`) of node `index`.
    pub fn node_id(&self, index: usize) -> &str {
        &self.ids[index]
    }

    /// The hash slot of `key`, as `CLUSTER KEYSLOT` computes it (CRC16 of
    /// the key, or of its `{hash tag}`, modulo 16384), computed locally so
    /// that it sends no command and leaves the statistics alone.
    pub fn slot_of(&self, key: &str) -> u16 {
        key_slot(key.as_bytes())
    }

    /// The index of the node that serves `slot`: the one node whose own
    /// slot map (`CLUSTER SLOTS`) names itself as the slot's master. Nodes
    /// that do not answer (killed) are skipped. Panics when not exactly one
    /// node claims the slot.
    pub fn owner_of_slot(&self, slot: u16) -> usize {
        let claims: Vec<usize> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, node)| {
                slot_map(node).is_ok_and(|map| map_owner(&map, slot) == Some(node.port))
            })
            .map(|(index, _)| index)
            .collect();
        match claims[..] {
            [index] => index,
            _ => panic!("slot {slot} is claimed by nodes {claims:?}, not by exactly one"),
        }
    }

    /// Moves `slot`, with its keys, to node `to`, as a resharding does:
    /// `CLUSTER SETSLOT slot IMPORTING <source-id>` on the target,
    /// `CLUSTER SETSLOT slot MIGRATING <target-id>` on the source, then
    /// `CLUSTER GETKEYSINSLOT` and `MIGRATE 127.0.0.1 <port> "" 0 5000 KEYS
    /// …` on the source until the slot is empty there, then `CLUSTER SETSLOT
    /// slot NODE <target-id>` on the target, the source and the third node,
    /// and waits (bounded) until every node agrees. Afterwards a command
    /// for a key of that slot sent to the old owner gets `MOVED`. Does
    /// nothing when `to` already owns the slot.
    pub fn move_slot(&self, slot: u16, to: usize) {
        assert!(slot < CLUSTER_SLOTS, "slot {slot} out of range");
        assert!(to < self.nodes.len(), "no node {to}");
        let from = self.owner_of_slot(slot);
        if from == to {
            return;
        }
        let (source, target) = (&self.nodes[from], &self.nodes[to]);
        let slot_text = slot.to_string();
        expect_ok(
            target,
            &[
                "CLUSTER",
                "SETSLOT",
                &slot_text,
                "IMPORTING",
                &self.ids[from],
            ],
        );
        expect_ok(
            source,
            &["CLUSTER", "SETSLOT", &slot_text, "MIGRATING", &self.ids[to]],
        );

        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        let target_port = target.port.to_string();
        loop {
            let keys = match source.query(&["CLUSTER", "GETKEYSINSLOT", &slot_text, "100"]) {
                Ok(Reply::Array(keys)) => keys,
                other => panic!("CLUSTER GETKEYSINSLOT {slot} on node {from}: {other:?}"),
            };
            if keys.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "slot {slot} still has keys on node {from} after {CLUSTER_TIMEOUT:?}"
            );
            let keys: Vec<Vec<u8>> = keys
                .into_iter()
                .map(|key| match key {
                    Reply::Bulk(key) => key,
                    other => panic!("CLUSTER GETKEYSINSLOT gave {other:?}"),
                })
                .collect();
            let mut args: Vec<&[u8]> = vec![
                b"MIGRATE",
                b"127.0.0.1",
                target_port.as_bytes(),
                b"",
                b"0",
                b"5000",
                b"KEYS",
            ];
            args.extend(keys.iter().map(Vec::as_slice));
            match source.query_bytes(&args) {
                Ok(Reply::Status(status)) if status == "OK" || status == "NOKEY" => {}
                other => panic!("MIGRATE of slot {slot} from node {from} to node {to}: {other:?}"),
            }
        }

        // The target first (it bumps its epoch and claims the slot), then
        // the source (it stops serving it), then the rest.
        let mut order = vec![to, from];
        order.extend((0..self.nodes.len()).filter(|&index| index != to && index != from));
        for index in order {
            expect_ok(
                &self.nodes[index],
                &["CLUSTER", "SETSLOT", &slot_text, "NODE", &self.ids[to]],
            );
        }
        self.wait_until_settled(
            &format!("after moving slot {slot} from node {from} to node {to}"),
            Some((slot, target.port)),
        );
    }

    /// The sum over the running nodes of their
    /// [`command_stats`](RedisServer::command_stats).
    pub fn command_stats(&self) -> BTreeMap<String, u64> {
        let mut total = BTreeMap::new();
        for node in self.nodes.iter().filter(|node| node.is_running()) {
            for (name, calls) in node.command_stats() {
                *total.entry(name).or_insert(0) += calls;
            }
        }
        total
    }

    /// [`reset_stats`](RedisServer::reset_stats) on every running node.
    pub fn reset_stats(&self) {
        for node in self.nodes.iter().filter(|node| node.is_running()) {
            node.reset_stats();
        }
    }

    /// Waits (bounded, about 15 s) until every node reports
    /// `cluster_state:ok`, all slots assigned and all nodes known, and all
    /// nodes agree on the slot map: after a node's
    /// [`restart`](RedisServer::restart), say. Panics when that does not
    /// happen in time (or a node is not running).
    pub fn wait_until_ok(&self) {
        self.wait_until_settled("on request", None);
    }

    /// Waits (bounded) until every node is `ok` with all slots assigned and
    /// all nodes known, all nodes have the same slot map, and, when given,
    /// `(slot, port)`: that map gives `slot` to the node on `port`.
    fn wait_until_settled(&self, when: &str, owner: Option<(u16, u16)>) {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        loop {
            let problem = match self.settled(owner) {
                Ok(()) => return,
                Err(problem) => problem,
            };
            assert!(
                Instant::now() < deadline,
                "the cluster did not settle {when} within {CLUSTER_TIMEOUT:?}: {problem}"
            );
            thread::sleep(POLL);
        }
    }

    /// Whether the cluster is settled, or what is not yet.
    fn settled(&self, owner: Option<(u16, u16)>) -> Result<(), String> {
        let mut maps = Vec::with_capacity(self.nodes.len());
        for (index, node) in self.nodes.iter().enumerate() {
            let info = node
                .query(&["CLUSTER", "INFO"])
                .map_err(|e| format!("node {index}: CLUSTER INFO: {e}"))?
                .to_string();
            for (field, wanted) in [
                ("cluster_state", "ok".to_owned()),
                ("cluster_slots_assigned", CLUSTER_SLOTS.to_string()),
                ("cluster_known_nodes", self.nodes.len().to_string()),
            ] {
                let value = info_field(&info, field);
                if value != Some(wanted.as_str()) {
                    return Err(format!("node {index}: {field} is {value:?}, not {wanted}"));
                }
            }
            let map = slot_map(node).map_err(|e| format!("node {index}: {e}"))?;
            if let Some((slot, port)) = owner {
                let found = map_owner(&map, slot);
                if found != Some(port) {
                    return Err(format!(
                        "node {index} gives slot {slot} to port {found:?}, not {port}"
                    ));
                }
            }
            maps.push(map);
        }
        if maps.windows(2).any(|pair| pair[0] != pair[1]) {
            return Err(format!("the nodes' slot maps differ: {maps:?}"));
        }
        Ok(())
    }
}

/// Runs `redis-cli --cluster create` over `nodes`, bounded, its output in
/// the first node's directory; panics with that output when it fails.
fn create_cluster(nodes: &[RedisServer]) {
    let output_path = nodes[0].dir.join("cluster-create.log");
    let output = File::create(&output_path).expect("create the cluster-create log");
    let stderr = output
        .try_clone()
        .expect("clone the cluster-create log handle");
    let mut command = Command::new("redis-cli");
    command.arg("--cluster").arg("create");
    for node in nodes {
        command.arg(format!("127.0.0.1:{}", node.port));
    }
    let mut child = command
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdin(Stdio::null())
        .stdout(Stdio::from(output))
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("spawn redis-cli --cluster create");
    let deadline = Instant::now() + CLUSTER_CREATE_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for redis-cli") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "redis-cli --cluster create did not finish within {CLUSTER_CREATE_TIMEOUT:?}:\n{}",
                log_tail(&output_path, 60)
            );
        }
        thread::sleep(POLL);
    };
    assert!(
        status.success(),
        "redis-cli --cluster create exited with {status}:\n{}",
        log_tail(&output_path, 60)
    );
}

/// Sends `args` to `node` and panics unless the reply is `+OK`.
fn expect_ok(node: &RedisServer, args: &[&str]) {
    match node.query(args) {
        Ok(Reply::Status(status)) if status == "OK" => {}
        other => panic!("{args:?} on 127.0.0.1:{}: {other:?}", node.port),
    }
}

/// The value of `field` in a `name:value` per line text (`CLUSTER INFO`).
fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.trim_end().strip_prefix(field)?.strip_prefix(':'))
}

/// `CLUSTER SLOTS` of `node` as sorted `(first slot, last slot, master port)`.
fn slot_map(node: &RedisServer) -> Result<Vec<(u16, u16, u16)>, String> {
    let reply = node
        .query(&["CLUSTER", "SLOTS"])
        .map_err(|e| format!("CLUSTER SLOTS: {e}"))?;
    let Reply::Array(ranges) = reply else {
        return Err(format!("CLUSTER SLOTS gave {reply:?}"));
    };
    let number = |reply: Option<&Reply>| match reply {
        Some(Reply::Integer(n)) => u16::try_from(*n).ok(),
        _ => None,
    };
    let mut map = ranges
        .iter()
        .map(|range| {
            let Reply::Array(parts) = range else {
                return None;
            };
            let Some(Reply::Array(master)) = parts.get(2) else {
                return None;
            };
            Some((
                number(parts.first())?,
                number(parts.get(1))?,
                number(master.get(1))?,
            ))
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("unexpected CLUSTER SLOTS reply {ranges:?}"))?;
    map.sort_unstable();
    Ok(map)
}

/// The master port that `map` gives `slot` to.
fn map_owner(map: &[(u16, u16, u16)], slot: u16) -> Option<u16> {
    map.iter()
        .find(|&&(first, last, _)| (first..=last).contains(&slot))
        .map(|&(_, _, port)| port)
}

/// The Redis Cluster hash slot of `key`: CRC16 (XMODEM) of the key, or of
/// its hash tag (the bytes between the first `{` and the first `}` after
/// it, when there are any), modulo 16384.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16_xmodem(hashed) % CLUSTER_SLOTS
}

/// CRC-16/XMODEM (polynomial 0x1021, initial value 0, no reflection).
fn crc16_xmodem(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 == 0 {
                crc << 1
            } else {
                (crc << 1) ^ 0x1021
            };
        }
    }
    crc
}

/// Whether every binary in `names` is found; when one is not, prints a loud
/// `SKIPPED` message and returns `false`, or, with `CI=true`, panics.
fn binaries_present(names: &[&str], caller: &str) -> bool {
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| {
            !Command::new(name)
                .arg("--version")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "{} not found; install {} (apt-get install redis-server) to run the Redis tests",
        missing.join(" and "),
        if missing.len() == 1 { "it" } else { "them" },
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{caller}: {message}. CI=true, so the Redis tests must run: .ci/run installs redis-server before the tests"
    );
    // Straight to the process's stderr, not through `eprintln!`, which the
    // test harness captures (and shows only for failing tests).
    let bar = "*".repeat(78);
    let _ = writeln!(
        io::stderr().lock(),
        "\n{bar}\nSKIPPED: {message} ({caller})\n{bar}\n"
    );
    false
}

/// A free loopback port; for a cluster node, one below 55000 whose bus
/// port (+10000) is free too.
fn free_port(cluster: bool) -> u16 {
    for _ in 0..500 {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port on 127.0.0.1");
        let port = listener.local_addr().expect("a bound address").port();
        if !cluster {
            return port;
        }
        if port < MAX_CLUSTER_PORT
            && TcpListener::bind((Ipv4Addr::LOCALHOST, port + CLUSTER_BUS_OFFSET)).is_ok()
        {
            return port;
        }
    }
    panic!("no free loopback port below {MAX_CLUSTER_PORT} with a free bus port");
}

/// A new, empty directory under the system's temporary directory.
fn fresh_dir() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    for _ in 0..100 {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "typed-sessions-redis-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
        ));
        match fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => panic!("create {}: {error}", dir.display()),
        }
    }
    panic!("no fresh temporary directory for redis-server");
}

/// The text of `path` from byte `offset` on (lossy), or `""`.
fn read_from(path: &Path, offset: u64) -> String {
    fs::read(path)
        .map(|bytes| {
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        })
        .unwrap_or_default()
}

/// The last `lines` lines of `path`, or a note that it cannot be read.
fn log_tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(error) => format!("(cannot read the log: {error})"),
    }
}

/// Sends one command on a fresh loopback connection to `port` and reads
/// its reply.
fn roundtrip(port: u16, args: &[&[u8]]) -> io::Result<Reply> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    stream.write_all(&encode(args))?;
    read_reply(&mut BufReader::new(stream))
}

/// A command as a RESP array of bulk strings.
fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one RESP2 reply.
fn read_reply(reader: &mut impl BufRead) -> io::Result<Reply> {
    let line = read_line(reader)?;
    let Some((&kind, rest)) = line.split_first() else {
        return Err(invalid("an empty reply line"));
    };
    let text = || String::from_utf8_lossy(rest).into_owned();
    match kind {
        b'+' => Ok(Reply::Status(text())),
        b'-' => Ok(Reply::Error(text())),
        b':' => Ok(Reply::Integer(parse_int(rest)?)),
        b'$' => {
            let Ok(len) = usize::try_from(parse_int(rest)?) else {
                return Ok(Reply::Nil);
            };
            let mut bulk = vec![0; len + 2];
            reader.read_exact(&mut bulk)?;
            if !bulk.ends_with(b"\r\n") {
                return Err(invalid("a bulk string without its CRLF"));
            }
            bulk.truncate(len);
            Ok(Reply::Bulk(bulk))
        }
        b'*' => {
            let Ok(len) = usize::try_from(parse_int(rest)?) else {
                return Ok(Reply::Nil);
            };
            (0..len)
                .map(|_| read_reply(reader))
                .collect::<io::Result<Vec<_>>>()
                .map(Reply::Array)
        }
        other => Err(invalid(&format!(
            "an unknown reply type {:?}",
            char::from(other)
        ))),
    }
}

/// One CRLF-terminated line, without its CRLF.
fn read_line(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\r\n") {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the connection closed in the middle of a reply",
        ));
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

/// A decimal integer of a RESP header line.
fn parse_int(digits: &[u8]) -> io::Result<i64> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| invalid("a malformed integer"))
}

/// An `InvalidData` error for a malformed reply.
fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("RESP: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    /// Writes `SET a 1` as raw RESP on a plain `TcpStream` and checks `+OK`.
    fn raw_set(port: u16) {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream
            .write_all(b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n")
            .unwrap();
        let mut reply = [0; 5];
        stream.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"+OK\r\n");
    }

    fn only(name: &str, calls: u64) -> BTreeMap<String, u64> {
        BTreeMap::from([(name.to_owned(), calls)])
    }

    #[test]
    fn a_server_starts_answers_and_restarts_empty() {
        let Some(mut server) = RedisServer::start() else {
            return;
        };
        assert_eq!(
            server.url(),
            format!("redis://127.0.0.1:{}/", server.port())
        );
        assert!(server.is_running());
        assert_ne!(server.port(), 6379, "never the system server's port");
        assert_eq!(server.command(&["PING"]), "PONG");
        assert_eq!(server.command(&["SET", "k", "v"]), "OK");
        assert_eq!(server.command(&["GET", "k"]), "v");
        let (port, pid) = (server.port(), server.pid());

        server.kill();
        assert!(!server.is_running());
        assert!(
            server.query(&["PING"]).is_err(),
            "killed means not answering"
        );
        server.kill(); // idempotent

        server.restart();
        assert!(server.is_running());
        assert_eq!(server.port(), port, "same port after a restart");
        assert_ne!(server.pid(), pid, "a new process");
        assert_eq!(
            server.command(&["GET", "k"]),
            "(nil)",
            "volatile: data gone"
        );
        assert!(
            fs::read_to_string(server.log_path())
                .unwrap()
                .contains("Ready to accept connections"),
            "the server logs to its own file"
        );

        let dir = server.dir().to_owned();
        drop(server);
        assert!(!dir.exists(), "the directory is removed on drop");
        assert!(
            roundtrip(port, &[b"PING"]).is_err(),
            "the process is killed on drop"
        );
    }

    #[test]
    fn restart_waits_for_a_lingering_port() {
        let Some(mut server) = RedisServer::start() else {
            return;
        };
        server.kill();
        let squatter = TcpListener::bind((Ipv4Addr::LOCALHOST, server.port())).unwrap();
        let release = thread::spawn(move || {
            thread::sleep(Duration::from_millis(700));
            drop(squatter);
        });
        server.restart();
        release.join().unwrap();
        assert_eq!(server.command(&["PING"]), "PONG");
    }

    #[test]
    fn a_persistent_server_keeps_its_data_across_kill_9() {
        let Some(mut server) = RedisServer::start_persistent() else {
            return;
        };
        assert_eq!(server.command(&["HSET", "h", "f", "1", "g", "2"]), "2");
        assert_eq!(server.command(&["SET", "k", "v", "PX", "600000"]), "OK");
        server.kill();
        server.restart();
        assert_eq!(server.command(&["GET", "k"]), "v");
        assert_eq!(server.command(&["HGETALL", "h"]), "f\n1\ng\n2");
        let pttl: i64 = server.command(&["PTTL", "k"]).parse().unwrap();
        assert!(pttl > 0 && pttl <= 600_000, "the expiry survives: {pttl}");
    }

    #[test]
    fn the_commandstats_delta_is_exactly_what_a_client_sent() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        assert_eq!(server.command_stats(), BTreeMap::new(), "fresh: zeroed");
        server.reset_stats();
        let before = server.command_stats();
        assert_eq!(
            before,
            BTreeMap::new(),
            "reset: nothing, not even the reset"
        );
        raw_set(server.port());
        let after = server.command_stats();
        assert_eq!(stats_delta(&before, &after), only("set", 1));

        // Snapshots do not count themselves, however many are taken.
        let again = server.command_stats();
        assert_eq!(stats_delta(&after, &again), BTreeMap::new());

        // The harness's own client sends only the command given.
        server.command(&["HSET", "h", "f", "v"]);
        let last = server.command_stats();
        assert_eq!(stats_delta(&again, &last), only("hset", 1));
        assert_eq!(
            last,
            BTreeMap::from([("hset".to_owned(), 1), ("set".to_owned(), 1)])
        );

        // Subcommands are named as Redis 7 names them.
        server.command(&["SCRIPT", "LOAD", "return 1"]);
        assert_eq!(
            stats_delta(&last, &server.command_stats()),
            only("script|load", 1)
        );
    }

    #[test]
    fn command_renders_replies_and_background_commands_do_not_block() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        assert_eq!(server.command(&["HSET", "h", "a", "1"]), "1");
        assert_eq!(server.command(&["KEYS", "*"]), "h");
        assert_eq!(server.command(&["PTTL", "h"]), "-1");
        assert_eq!(server.command(&["PTTL", "missing"]), "-2");
        assert_eq!(server.command(&["KEYS", "nothing*"]), "");
        let usage: u64 = server.command(&["MEMORY", "USAGE", "h"]).parse().unwrap();
        assert!(usage > 0);
        assert!(
            server
                .command(&["NOSUCHCOMMAND"])
                .starts_with("(error) ERR")
        );
        assert!(server.query(&["NOSUCHCOMMAND"]).unwrap().is_error());
        assert_eq!(
            server.query_bytes(&[b"SET", b"bin", b"\xff\x00"]).unwrap(),
            Reply::Status("OK".to_owned())
        );
        assert_eq!(
            server.query(&["GET", "bin"]).unwrap(),
            Reply::Bulk(b"\xff\x00".to_vec())
        );

        let started = Instant::now();
        let sleeper = server.command_in_background(&["DEBUG", "SLEEP", "1"]);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "returns at once"
        );
        assert_eq!(sleeper.join().unwrap(), "OK");
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "the server slept"
        );
    }

    #[test]
    fn key_slots_match_cluster_keyslot() {
        assert_eq!(key_slot(b"123456789"), 0x31C3 % CLUSTER_SLOTS);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(
            key_slot(b"foo{}{bar}"),
            crc16_xmodem(b"foo{}{bar}") % CLUSTER_SLOTS
        );
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
    }

    #[test]
    fn a_cluster_serves_keys_and_moves_a_slot() {
        let Some(cluster) = RedisCluster::start() else {
            return;
        };
        assert_eq!(cluster.nodes().len(), 3);
        assert_eq!(cluster.urls().len(), 3);
        assert_eq!(cluster.command_stats(), BTreeMap::new(), "fresh: zeroed");
        for key in ["session:abc", "{tag}x", "foo{}{bar}", "", "123456789"] {
            let by_server = cluster.nodes()[0].command(&["CLUSTER", "KEYSLOT", key]);
            assert_eq!(by_server, cluster.slot_of(key).to_string(), "{key:?}");
        }

        let key = "session:harness";
        let slot = cluster.slot_of(key);
        let from = cluster.owner_of_slot(slot);
        let owner = &cluster.nodes()[from];
        assert_eq!(owner.command(&["SET", key, "value"]), "OK");
        assert_eq!(owner.command(&["GET", key]), "value");
        let other = &cluster.nodes()[(from + 1) % 3];
        assert_eq!(
            other.query(&["GET", key]).unwrap(),
            Reply::Error(format!("MOVED {slot} 127.0.0.1:{}", owner.port()))
        );

        let to = (from + 1) % 3;
        cluster.move_slot(slot, to);
        assert_eq!(cluster.owner_of_slot(slot), to);
        let target = &cluster.nodes()[to];
        assert_eq!(
            owner.query(&["GET", key]).unwrap(),
            Reply::Error(format!("MOVED {slot} 127.0.0.1:{}", target.port())),
            "the old owner redirects"
        );
        cluster.reset_stats();
        let before = cluster.command_stats();
        assert_eq!(
            target.command(&["GET", key]),
            "value",
            "the key moved along"
        );
        assert_eq!(
            stats_delta(&before, &cluster.command_stats()),
            only("get", 1)
        );
    }

    #[test]
    fn a_cluster_node_comes_back_after_kill_and_restart() {
        let Some(mut cluster) = RedisCluster::start() else {
            return;
        };
        let key = "session:node-restart";
        let slot = cluster.slot_of(key);
        let owner = cluster.owner_of_slot(slot);
        assert_eq!(cluster.nodes()[owner].command(&["SET", key, "v"]), "OK");
        let id = cluster.node_id(owner).to_owned();

        cluster.node_mut(owner).kill();
        assert!(!cluster.nodes()[owner].is_running());
        cluster.node_mut(owner).restart();
        cluster.wait_until_ok();
        assert_eq!(
            cluster.owner_of_slot(slot),
            owner,
            "same identity and slots"
        );
        assert_eq!(cluster.nodes()[owner].command(&["CLUSTER", "MYID"]), id);
        assert_eq!(
            cluster.nodes()[owner].command(&["GET", key]),
            "(nil)",
            "volatile node: data gone"
        );
    }

    #[test]
    fn replies_parse_and_render() {
        let mut input: &[u8] = b"*4\r\n+OK\r\n:-3\r\n$-1\r\n*2\r\n$5\r\nhello\r\n-ERR no\r\n";
        let reply = read_reply(&mut input).unwrap();
        assert_eq!(
            reply,
            Reply::Array(vec![
                Reply::Status("OK".to_owned()),
                Reply::Integer(-3),
                Reply::Nil,
                Reply::Array(vec![
                    Reply::Bulk(b"hello".to_vec()),
                    Reply::Error("ERR no".to_owned())
                ]),
            ])
        );
        assert_eq!(reply.to_string(), "OK\n-3\n(nil)\nhello\n(error) ERR no");
        assert!(read_reply(&mut &b"$5\r\nhel"[..]).is_err(), "truncated");
        assert_eq!(
            encode(&[b"GET", b"k"]),
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n".to_vec()
        );
        let info = "# Commandstats\r\ncmdstat_info:calls=4,usec=1\r\ncmdstat_script|load:calls=2,usec=3,rejected_calls=0\r\ncmdstat_get:calls=0,usec=0,rejected_calls=1\r\n";
        assert_eq!(parse_command_stats(info), only("script|load", 2));
        let before = BTreeMap::from([("get".to_owned(), 2), ("set".to_owned(), 5)]);
        let after = BTreeMap::from([("get".to_owned(), 3), ("set".to_owned(), 5)]);
        assert_eq!(stats_delta(&before, &after), only("get", 1));
    }
}

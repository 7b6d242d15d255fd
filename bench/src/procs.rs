//! The child processes of a run — the netget registry, etcd and the node holders — and the
//! temporary directories they use. Every one is SIGKILLed when its handle is dropped, so an error
//! or an interrupt anywhere in the run leaves nothing behind.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};

use crate::Res;

/// A directory removed (with its contents) when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `path` afresh.
    pub fn create(path: PathBuf) -> Res<TempDir> {
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(|e| format!("cannot create {path:?}: {e}"))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process, SIGKILLed when dropped.
pub struct Proc {
    child: tokio::process::Child,
    what: &'static str,
    log: Option<PathBuf>,
}

impl Proc {
    /// Its pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILLs it now; returns the moment the signal was sent.
    pub fn kill(&mut self) -> Res<Instant> {
        let at = Instant::now();
        self.child
            .start_kill()
            .map_err(|e| format!("cannot kill {}: {e}", self.what))?;
        Ok(at)
    }

    /// An error if it has exited, with the end of its log.
    pub fn check_alive(&mut self) -> Res<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Err(format!("{} exited ({status}){}", self.what, self.log_tail()).into());
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        let Some(log) = &self.log else {
            return String::new();
        };
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        format!("; last lines of {}:\n{tail}", log.display())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        // Reap it (it dies within milliseconds of SIGKILL), so no zombie outlives the run.
        for _ in 0..200 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A free 127.0.0.1 port, found by binding port 0 (for etcd, which cannot report the port it
/// picked).
pub fn free_port() -> Res<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Reads the next stdout line of a child, within `limit`.
async fn line_within(lines: &mut Lines<BufReader<ChildStdout>>, limit: Duration) -> Res<String> {
    let line = tokio::time::timeout(limit, lines.next_line())
        .await
        .map_err(|_| format!("no output within {limit:?}"))??
        .ok_or("exited before it was ready")?;
    Ok(line)
}

/// Keeps reading a child's stdout so it never writes into a closed pipe.
fn drain(mut lines: Lines<BufReader<ChildStdout>>) {
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
}

/// Starts `netget registry` on 127.0.0.1 port 0 with `dir` as its data dir; returns it and its
/// URL. Rate limits are lifted as in `netget bench` (the load generator is one IP sending far
/// more than a node would).
pub async fn start_netget(exe: &Path, dir: &Path) -> Res<(Proc, String)> {
    start_netget_with(exe, dir, &[]).await
}

/// The same, with more arguments (`--join URL`, `--gossip-listen ADDR`).
pub async fn start_netget_with(exe: &Path, dir: &Path, extra: &[String]) -> Res<(Proc, String)> {
    let config = dir.join("netget.toml");
    std::fs::write(
        &config,
        "[limits]\nrequests_per_second_per_session = 0\nrequests_per_second_per_ip = 0\n\
         max_instances_per_session = 1000000\nmax_sessions = 16384\n\
         max_connections = 1000000\nmax_connections_per_ip = 1000000\n",
    )?;
    let log = dir.join("registry.log");
    let mut child = Command::new(exe)
        .args(["registry", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(dir)
        .args(extra)
        .env("NETGET_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log)?)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut proc = Proc {
        child,
        what: "netget registry",
        log: Some(log),
    };
    let mut lines = BufReader::new(stdout).lines();
    let line = match line_within(&mut lines, Duration::from_secs(10)).await {
        Ok(l) => l,
        Err(e) => {
            proc.check_alive()?;
            return Err(format!("netget registry: {e}").into());
        }
    };
    drain(lines);
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .ok_or_else(|| format!("unexpected registry output: {line}"))?
        .to_string();
    Ok((proc, url))
}

/// Starts a single-node etcd on 127.0.0.1 with `dir` as its data dir, and waits until it answers.
pub async fn start_etcd(exe: &Path, dir: &Path) -> Res<(Proc, String)> {
    start_etcd_cluster(exe, dir, 1)
        .await?
        .pop()
        .ok_or_else(|| "no etcd started".into())
}

/// Starts an etcd cluster of `n` members on 127.0.0.1 (data dirs under `dir`), and waits until
/// each answers; returns them with their client URLs.
pub async fn start_etcd_cluster(exe: &Path, dir: &Path, n: usize) -> Res<Vec<(Proc, String)>> {
    let ports: Vec<(u16, u16)> = (0..n)
        .map(|_| Ok((free_port()?, free_port()?)))
        .collect::<Res<_>>()?;
    let initial: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
        .collect();
    let initial = initial.join(",");
    let mut members = Vec::with_capacity(n);
    for (i, (client, peer)) in ports.iter().enumerate() {
        members.push(etcd_member(
            exe,
            dir,
            &format!("m{i}"),
            *client,
            *peer,
            &initial,
            "new",
        )?);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for (proc, url) in members.iter_mut() {
        loop {
            proc.check_alive()?;
            let ready = async {
                let mut c = etcd_client::Client::connect([url.as_str()], None).await?;
                c.get("ready-probe", None).await
            };
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), ready).await {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the etcd cluster did not answer within 30 s{}",
                    proc.log_tail()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(members)
}

/// Adds a member to the etcd cluster behind `client` (`member add`) and starts it with its data
/// dir under `dir`, joining the existing members; returns it and its client URL as soon as the
/// process runs (it catches up by itself).
pub async fn join_etcd_member(
    exe: &Path,
    dir: &Path,
    client: &mut etcd_client::Client,
) -> Res<(Proc, String)> {
    let (port, peer) = (free_port()?, free_port()?);
    let peer_url = format!("http://127.0.0.1:{peer}");
    let list = client.member_list().await?;
    let mut initial: Vec<String> = list
        .members()
        .iter()
        .filter_map(|m| Some(format!("{}={}", m.name(), m.peer_urls().first()?)))
        .collect();
    client.member_add([peer_url.as_str()], None).await?;
    initial.push(format!("joiner={peer_url}"));
    etcd_member(
        exe,
        dir,
        "joiner",
        port,
        peer,
        &initial.join(","),
        "existing",
    )
}

/// Starts etcd member `name` on 127.0.0.1 (`client` and `peer` ports, data and log under
/// `dir`) in the cluster `initial` (`name=peer-url,...`), `state` `new` or `existing`.
fn etcd_member(
    exe: &Path,
    dir: &Path,
    name: &str,
    client: u16,
    peer: u16,
    initial: &str,
    state: &str,
) -> Res<(Proc, String)> {
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let log = dir.join(format!("etcd-{name}.log"));
    let child = Command::new(exe)
        .arg(format!("--name={name}"))
        .arg(format!("--data-dir={}", dir.join(name).display()))
        .arg(format!("--listen-client-urls={client_url}"))
        .arg(format!("--advertise-client-urls={client_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster={initial}"))
        .arg(format!("--initial-cluster-state={state}"))
        .arg("--initial-cluster-token=netget-bench")
        .args(["--logger=zap", "--log-outputs=stderr", "--log-level=warn"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    Ok((
        Proc {
            child,
            what: "etcd member",
            log: Some(log),
        },
        client_url,
    ))
}

/// Starts this binary as a node holder (`hold-netget` / `hold-etcd`) and waits for its `ready`
/// line. The holder exits by itself when its stdin closes, so it cannot outlive this process.
pub async fn start_holder(args: &[String], limit: Duration) -> Res<Proc> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut proc = Proc {
        child,
        what: "node holder",
        log: None,
    };
    let mut lines = BufReader::new(stdout).lines();
    let line = match line_within(&mut lines, limit).await {
        Ok(l) => l,
        Err(e) => {
            proc.check_alive()?;
            return Err(format!("node holder: {e}").into());
        }
    };
    drain(lines);
    if !line.starts_with("ready") {
        return Err(format!("node holder said: {line}").into());
    }
    Ok(proc)
}

/// VmRSS and RssAnon of a process, KiB.
pub fn rss(pid: Option<u32>) -> (Option<u64>, Option<u64>) {
    let Some(pid) = pid else {
        return (None, None);
    };
    let anon = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("RssAnon:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        });
    (netget::testsuite::rss_kib(Some(pid)), anon)
}

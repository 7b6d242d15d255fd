//! The one table: each figure for netget and etcd, netget ÷ etcd, and the target.

use std::time::Duration;

use serde::Serialize;

use crate::{Figures, Opts};

/// What the issue asks of a figure.
#[derive(Debug, Clone, Copy)]
enum Goal {
    /// netget ÷ etcd at least this.
    RatioAtLeast(f64),
    /// netget ÷ etcd at most this.
    RatioAtMost(f64),
    /// netget's own figure at most this (in the row's unit).
    NetgetAtMost(f64),
    /// netget's own figure at least this.
    NetgetAtLeast(f64),
    /// No target; shown for context.
    None,
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// What is measured.
    pub figure: String,
    /// Unit of `netget` and `etcd`.
    pub unit: String,
    /// netget's figure.
    pub netget: f64,
    /// etcd's figure.
    pub etcd: f64,
    /// netget ÷ etcd.
    pub ratio: f64,
    /// The target, in words.
    pub target: String,
    /// Whether it is met (none without a target).
    pub met: Option<bool>,
    /// Whether a bigger figure is better (for the plot).
    pub higher_is_better: bool,
    /// The ratio in each round (the figures above are the rounds' means).
    pub round_ratios: Vec<f64>,
}

/// The machine the run was on.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Machine {
    /// Logical CPUs.
    pub nproc: usize,
    /// CPU model.
    pub model: String,
    /// Kernel release.
    pub kernel: String,
    /// Memory, GiB.
    pub mem_gib: f64,
    /// `etcd --version`, first line.
    pub etcd_version: String,
    /// /proc/loadavg when the run ended (other work on the machine skews the figures).
    pub loadavg_at_end: String,
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The command line.
    pub command: String,
    /// The machine.
    pub machine: Machine,
    /// The options.
    pub opts: Opts,
    /// Seconds the whole comparison took.
    pub elapsed_secs: f64,
    /// /proc/loadavg when the run started.
    pub loadavg_at_start: String,
    /// The table.
    pub rows: Vec<Row>,
    /// netget's figures.
    pub netget: Figures,
    /// etcd's figures.
    pub etcd: Figures,
    /// Each round's figures: netget's, then etcd's.
    pub rounds: Vec<(Figures, Figures)>,
    /// Set when the time budget ran out: which rounds the table holds, and where it stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial: Option<String>,
}

fn machine(opts: &Opts) -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_default();
    let mem_kib: f64 = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let etcd_version = std::process::Command::new(&opts.etcd)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_default();
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        model,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        mem_gib: mem_kib / 1024.0 / 1024.0,
        etcd_version,
        loadavg_at_end: read("/proc/loadavg").trim().to_string(),
    }
}

fn kib_to_mib(v: Option<u64>) -> f64 {
    v.map_or(f64::NAN, |k| k as f64 / 1024.0)
}

fn per_instance(f: &Figures, rss: Option<u64>, n: usize) -> f64 {
    match (f.rss_empty_kib, rss) {
        (Some(b), Some(a)) => a.saturating_sub(b) as f64 * 1024.0 / n.max(1) as f64,
        _ => f64::NAN,
    }
}

impl Report {
    /// Builds the table from both sides' figures in each round: the means of the rounds, with
    /// each round's ratio beside them.
    pub fn new(
        opts: &Opts,
        netget: &[Figures],
        etcd: &[Figures],
        elapsed: Duration,
        loadavg_at_start: String,
    ) -> crate::Res<Report> {
        let n = crate::stats::mean_of(netget)?;
        let e = crate::stats::mean_of(etcd)?;
        let mut report = Report::table(opts, n, e, elapsed, loadavg_at_start);
        for (rn, re) in netget.iter().zip(etcd) {
            let round = Report::table(opts, rn.clone(), re.clone(), elapsed, String::new());
            for (row, r) in report.rows.iter_mut().zip(&round.rows) {
                row.round_ratios.push(r.ratio);
            }
            report.rounds.push((rn.clone(), re.clone()));
        }
        Ok(report)
    }

    fn table(
        opts: &Opts,
        n: Figures,
        e: Figures,
        elapsed: Duration,
        loadavg_at_start: String,
    ) -> Report {
        let mut rows = Vec::new();
        let mut row = |figure: String, unit: &str, netget: f64, etcd: f64, goal: Goal| {
            let ratio = netget / etcd;
            let (target, met) = match goal {
                Goal::RatioAtLeast(x) => (format!("≥ {x}×"), Some(ratio >= x)),
                Goal::RatioAtMost(x) => (format!("≤ {x}×"), Some(ratio <= x)),
                Goal::NetgetAtMost(x) => (format!("netget ≤ {x} {unit}"), Some(netget <= x)),
                Goal::NetgetAtLeast(x) => (format!("netget ≥ {x}"), Some(netget >= x)),
                Goal::None => (String::new(), None),
            };
            let higher_is_better = !matches!(unit, "ms" | "s" | "MiB" | "B");
            rows.push(Row {
                figure,
                unit: unit.into(),
                netget,
                etcd,
                ratio,
                target,
                met,
                higher_is_better,
                round_ratios: Vec::new(),
            });
        };
        let k = |v: usize| {
            if v >= 1000 && v.is_multiple_of(1000) {
                format!("{}k", v / 1000)
            } else {
                v.to_string()
            }
        };
        row(
            format!(
                "registrations/s, first {} (netget: WebSocket sessions, pipelined; etcd: lease grant + put)",
                k(opts.small)
            ),
            "/s",
            n.registrations_small_per_sec,
            e.registrations_small_per_sec,
            Goal::RatioAtLeast(10.0),
        );
        row(
            format!(
                "registrations/s, {} → {} (same)",
                k(opts.small),
                k(opts.large)
            ),
            "/s",
            n.registrations_large_per_sec,
            e.registrations_large_per_sec,
            Goal::None,
        );
        row(
            "durable registrations/s (netget: REST PUT with a TTL, answered after fsync; etcd: lease grant + put, fsync)"
                .into(),
            "/s",
            n.durable_per_sec,
            e.durable_per_sec,
            Goal::RatioAtLeast(2.0),
        );
        row(
            "durable writes/s, stricter (netget: as above; etcd: bare put, no lease, nothing expires)"
                .into(),
            "/s",
            n.durable_per_sec,
            e.durable_put_per_sec.unwrap_or(f64::NAN),
            Goal::None,
        );
        row(
            "discovery/s, 10 instances per answer (netget: client sessions, WebSocket, as the client libraries discover; etcd: get by prefix, gRPC)".into(),
            "/s",
            n.discovery_session_per_sec.unwrap_or(0.0),
            e.discovery_per_sec,
            Goal::RatioAtLeast(5.0),
        );
        row(
            "discovery/s, 10 instances per answer (netget: HTTP GET, keep-alive; etcd: as above)"
                .into(),
            "/s",
            n.discovery_per_sec,
            e.discovery_per_sec,
            Goal::RatioAtLeast(5.0),
        );
        let wrk = format!(
            "wrk, 1 thread, {} connections, {} s",
            opts.wrk_connections, opts.wrk_secs
        );
        row(
            format!("discovery/s, both driven by {wrk} (netget: HTTP GET; etcd: JSON gateway, POST /v3/kv/range by prefix)"),
            "/s",
            n.discovery_wrk_per_sec.unwrap_or(f64::NAN),
            e.discovery_wrk_per_sec.unwrap_or(f64::NAN),
            Goal::RatioAtLeast(5.0),
        );
        row(
            format!("discovery/s, netget driven by {wrk}, etcd by its gRPC client (netget: HTTP GET; etcd: get by prefix, gRPC, as above)"),
            "/s",
            n.discovery_wrk_per_sec.unwrap_or(f64::NAN),
            e.discovery_per_sec,
            Goal::RatioAtLeast(5.0),
        );
        for (lat_n, lat_e, w) in [
            (&n.watch_one, &e.watch_one, 1),
            (&n.watch_many, &e.watch_many, opts.watchers),
        ] {
            let ms = |v: f64| v / 1000.0;
            row(
                format!("watch push latency p50, {w} watcher(s)"),
                "ms",
                ms(lat_n.p50_us),
                ms(lat_e.p50_us),
                Goal::None,
            );
            row(
                format!("watch push latency p99, {w} watcher(s)"),
                "ms",
                ms(lat_n.p99_us),
                ms(lat_e.p99_us),
                Goal::RatioAtMost(0.5),
            );
            row(
                format!("watch push latency p99.9, {w} watcher(s)"),
                "ms",
                ms(lat_n.p999_us),
                ms(lat_e.p999_us),
                Goal::None,
            );
        }
        row(
            format!("registry RSS with {} instances", k(opts.small)),
            "MiB",
            kib_to_mib(n.rss_small_kib),
            kib_to_mib(e.rss_small_kib),
            Goal::None,
        );
        row(
            format!("registry RSS with {} instances", k(opts.large)),
            "MiB",
            kib_to_mib(n.rss_large_kib),
            kib_to_mib(e.rss_large_kib),
            // 100 MB = 95.4 MiB.
            Goal::NetgetAtMost(95.4),
        );
        row(
            format!("bytes per instance (RSS growth ÷ {})", k(opts.large)),
            "B",
            per_instance(&n, n.rss_large_kib, opts.large),
            per_instance(&e, e.rss_large_kib, opts.large),
            Goal::RatioAtMost(0.5),
        );
        row(
            "nodes alive at once, one instance each (netget: WebSocket sessions open on the registry; etcd: keys on leases kept alive)".into(),
            "",
            n.held as f64,
            e.held as f64,
            Goal::NetgetAtLeast(opts.killed as f64),
        );
        row(
            "registry RSS while holding them".into(),
            "MiB",
            kib_to_mib(n.rss_held_kib),
            kib_to_mib(e.rss_held_kib),
            Goal::None,
        );
        row(
            format!(
                "{} killed nodes gone from discovery (netget: SIGKILLed sessions; etcd: leases, TTL {} s)",
                k(opts.killed),
                opts.etcd_ttl
            ),
            "s",
            n.vanish_secs,
            e.vanish_secs,
            Goal::NetgetAtMost(5.0),
        );
        Report {
            command: std::env::args().collect::<Vec<_>>().join(" "),
            machine: machine(opts),
            opts: opts.clone(),
            elapsed_secs: elapsed.as_secs_f64(),
            loadavg_at_start,
            rows,
            netget: n,
            etcd: e,
            rounds: Vec::new(),
            partial: None,
        }
    }

    /// Prints the table as Markdown.
    pub fn print(&self) {
        let m = &self.machine;
        println!(
            "netget vs etcd — {} × {}, {:.0} GiB, Linux {}, {}; {:.0} s; load average {} → {}",
            m.nproc,
            m.model,
            m.mem_gib,
            m.kernel,
            m.etcd_version,
            self.elapsed_secs,
            self.loadavg_at_start,
            m.loadavg_at_end
        );
        println!();
        if let Some(p) = &self.partial {
            println!("**Partial run**: {p}. The table holds the rounds completed.");
            println!();
        }
        println!(
            "Each figure is the mean of {} rounds (netget and etcd in alternating order); the \
             ratio of each round is in the last column.",
            self.rounds.len()
        );
        println!();
        println!("| figure | netget | etcd | netget ÷ etcd | target | met | ratio per round |");
        println!("|---|---|---|---|---|---|---|");
        for r in &self.rows {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            };
            let rounds: Vec<String> = r.round_ratios.iter().map(|&x| ratio(x)).collect();
            println!(
                "| {} | {} | {} | {} | {} | {met} | {} |",
                r.figure,
                fmt(r.netget, &r.unit),
                fmt(r.etcd, &r.unit),
                ratio(r.ratio),
                r.target,
                rounds.join(", ")
            );
        }
        println!();
        println!(
            "Cost per operation: CPU µs of the registry / the load generator (/proc/PID/stat), \
             bytes the registry wrote to disk (/proc/PID/io):"
        );
        println!();
        println!(
            "| phase | netget registry CPU | netget load gen. CPU | netget disk | etcd registry CPU | etcd load gen. CPU | etcd disk |"
        );
        println!("|---|---|---|---|---|---|---|");
        let phases: std::collections::BTreeSet<&String> =
            self.netget.cpu.keys().chain(self.etcd.cpu.keys()).collect();
        let cells = |c: Option<&crate::stats::PhaseCpu>| match c {
            Some(c) => format!(
                "{:.1} µs | {:.1} µs | {} B",
                c.registry_us_per_op,
                c.loadgen_us_per_op,
                group(c.registry_disk_bytes_per_op)
            ),
            None => "— | — | —".into(),
        };
        for phase in phases {
            println!(
                "| {phase} | {} | {} |",
                cells(self.netget.cpu.get(phase)),
                cells(self.etcd.cpu.get(phase))
            );
        }
    }
}

fn ratio(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.0}×")
    } else if r >= 0.1 {
        format!("{r:.2}×")
    } else {
        format!("{r:.3}×")
    }
}

fn fmt(v: f64, unit: &str) -> String {
    match unit {
        "/s" => group(v),
        "ms" if v < 10.0 => format!("{v:.2} ms"),
        "ms" => format!("{v:.1} ms"),
        "s" => format!("{v:.2} s"),
        "MiB" => format!("{v:.1} MiB"),
        "B" => format!("{} B", group(v)),
        _ => format!("{v}"),
    }
}

/// 12345.6 → "12,346".
fn group(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

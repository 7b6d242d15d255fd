//! Discovery driven by wrk (Debian's C load generator) against either side. The same lean
//! generator drives both, so neither figure is bounded by this harness's own decoding, which on
//! 2 shared cores costs more CPU per query than netget's registry spends answering it.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::stats::{CpuMeter, PhaseCpu};
use crate::Res;

/// wrk's threads: one, so the registry under test keeps the other core.
const THREADS: usize = 1;

/// A request wrk repeats: `GET path`, or `POST path` with a JSON body.
pub struct Request<'a> {
    /// `http://host:port`.
    pub base: &'a str,
    /// Path and query.
    pub path: &'a str,
    /// The JSON body of a POST.
    pub json: Option<&'a str>,
}

impl Request<'_> {
    fn authority(&self) -> Res<&str> {
        Ok(self
            .base
            .strip_prefix("http://")
            .ok_or_else(|| format!("not an http:// URL: {}", self.base))?
            .trim_end_matches('/'))
    }

    /// Sends the request once over a fresh connection; returns the status and the body, so the
    /// caller can check the answer is what wrk will be counting.
    pub async fn once(&self) -> Res<(u16, String)> {
        let authority = self.authority()?;
        let mut stream = tokio::net::TcpStream::connect(authority).await?;
        let (method, body) = match self.json {
            Some(b) => ("POST", b),
            None => ("GET", ""),
        };
        let head = format!(
            "{method} {} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.path,
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await??;
        let text = String::from_utf8(raw)?;
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or("an HTTP answer without a blank line after its head")?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no status in {head:?}"))?;
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            unchunk(body)?
        } else {
            body.to_string()
        };
        Ok((status, body))
    }

    /// The phase `what`: wrk for `--wrk-secs` with `--wrk-connections`; requests/s, and the
    /// CPU of the system under test (`pid`) and of wrk per request.
    pub async fn measure(
        &self,
        what: &str,
        opts: &crate::Opts,
        pid: Option<u32>,
        dir: &Path,
    ) -> Res<(f64, PhaseCpu)> {
        let meter = CpuMeter::start(pid);
        let (rate, wrk_cpu_ms) =
            crate::bounded(what, self.drive(opts.wrk_secs, opts.wrk_connections, dir)).await?;
        let ops = (rate * opts.wrk_secs as f64) as usize;
        Ok((rate, meter.stop(ops).with_loadgen(wrk_cpu_ms)))
    }

    /// Runs wrk for `secs` with `connections` open; returns requests/s and wrk's CPU,
    /// milliseconds. Fails if wrk saw any answer other than 2xx/3xx or any socket error.
    pub async fn drive(&self, secs: u64, connections: usize, dir: &Path) -> Res<(f64, f64)> {
        let url = format!("{}{}", self.base.trim_end_matches('/'), self.path);
        let mut cmd = Command::new("wrk");
        cmd.arg(format!("-t{THREADS}"))
            .arg(format!("-c{connections}"))
            .arg(format!("-d{secs}s"))
            .kill_on_drop(true);
        if let Some(body) = self.json {
            let script = dir.join("wrk-post.lua");
            std::fs::write(
                &script,
                format!(
                    "wrk.method = \"POST\"\nwrk.body = '{body}'\n\
                     wrk.headers[\"Content-Type\"] = \"application/json\"\n"
                ),
            )?;
            cmd.arg("-s").arg(&script);
        }
        cmd.arg(&url)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run wrk (bench/deps.sh installs it): {e}"))?;
        // wrk's CPU is read from /proc while it runs (gone once it is reaped): the last reading
        // misses at most the final poll interval of a run of seconds.
        let pid = child.id().map(|p| p.to_string());
        let waiting = tokio::spawn(child.wait_with_output());
        let mut cpu_ticks = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs + 30);
        while !waiting.is_finished() {
            if tokio::time::Instant::now() > deadline {
                waiting.abort();
                return Err(format!("wrk against {url} did not end").into());
            }
            if let Some(t) = pid.as_deref().and_then(crate::stats::ticks) {
                cpu_ticks = t;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let out = waiting.await??;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "wrk failed ({}): {text}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        let rate = parse(&text).map_err(|e| format!("wrk against {url}: {e}\n{text}"))?;
        // Linux reports CPU time in clock ticks of 1/100 s.
        Ok((rate, cpu_ticks as f64 * 10.0))
    }
}

/// Requests/s from wrk's report, refusing a run with errors.
fn parse(report: &str) -> Result<f64, String> {
    for line in report.lines().map(str::trim) {
        if line.starts_with("Non-2xx or 3xx responses:") || line.starts_with("Socket errors:") {
            return Err(format!("errors in the run: {line}"));
        }
    }
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| "no Requests/sec line".to_string())
}

/// The body of a chunked HTTP/1.1 answer.
fn unchunk(mut body: &str) -> Res<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").ok_or("a chunk without its size")?;
        let size = usize::from_str_radix(size.trim(), 16)?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..size).ok_or("a chunk shorter than its size")?);
        body = rest.get(size + 2..).ok_or("a chunk without its end")?;
    }
}

/// Standard base64 (etcd's JSON gateway takes keys as base64 bytes).
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"/services/"), "L3NlcnZpY2VzLw==");
    }

    #[test]
    fn a_wrk_report_with_errors_is_refused() {
        let ok = "Running 5s test\n  1 threads and 64 connections\nRequests/sec:  40712.55\nTransfer/sec: 1MB\n";
        assert_eq!(parse(ok), Ok(40712.55));
        let bad = format!("{ok}  Non-2xx or 3xx responses: 12\n");
        assert!(parse(&bad).is_err());
        assert!(parse("Running\n").is_err());
    }

    #[test]
    fn a_chunked_body_is_joined() {
        assert_eq!(
            unchunk("4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n").unwrap_or_default(),
            "abcdef"
        );
    }
}

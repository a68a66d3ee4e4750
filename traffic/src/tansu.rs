//! tansu, an independently written Kafka broker, started on loopback with in-memory storage.
//!
//! The interop tests and the ingest benchmark need a broker that is not librdkafka's own mock: the
//! mock keeps only about 5 MB per partition, so it cannot hold a benchmark's backlog, and a second
//! implementation of the protocol catches what one alone would hide. tansu creates no topics by
//! itself, so `start` creates them with its own command.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// A running tansu broker; killed on drop.
#[derive(Debug)]
pub struct Tansu {
    child: Child,
    binary: PathBuf,
    bootstrap: String,
}

impl Tansu {
    /// Finds the tansu binary: `$TANSU_BIN`, then `PATH`, then `~/.cargo/bin`.
    pub fn binary() -> Option<PathBuf> {
        if let Ok(p) = std::env::var("TANSU_BIN") {
            return Some(PathBuf::from(p));
        }
        let on_path = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("tansu"))
                .find(|p| p.is_file())
        });
        on_path.or_else(|| {
            let home = std::env::var_os("HOME")?;
            let p = PathBuf::from(home).join(".cargo/bin/tansu");
            p.is_file().then_some(p)
        })
    }

    /// Starts `binary` on a free loopback port with in-memory storage, waits until it listens, and
    /// creates `topics` with `partitions` partitions each.
    pub fn start(binary: PathBuf, topics: &[&str], partitions: u32) -> Result<Tansu> {
        let port = free_port()?;
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::Broker(format!("starting {}: {e}", binary.display())))?;
        let tansu = Tansu {
            child,
            binary,
            bootstrap: format!("127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(Error::Broker(format!(
                    "tansu did not listen on {port} within 30 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for topic in topics {
            tansu.create_topic(topic, partitions)?;
        }
        Ok(tansu)
    }

    /// Creates a topic (tansu has no auto-creation).
    pub fn create_topic(&self, topic: &str, partitions: u32) -> Result<()> {
        let url = format!("tcp://{}", self.bootstrap);
        let status = Command::new(&self.binary)
            .args(["topic", "create", topic, "--partitions"])
            .arg(partitions.to_string())
            .args(["--broker", &url])
            .stdout(Stdio::null())
            .status()
            .map_err(|e| Error::Broker(format!("running tansu topic create: {e}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::Broker(format!(
                "tansu topic create {topic} failed ({status})"
            )))
        }
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::Broker(format!("finding a free loopback port: {e}")))
}

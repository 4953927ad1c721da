//! `dvb2ip serve` as a child process with a configuration file: its RTSP port read from the
//! banner, its log lines (stdout and stderr) echoed and searchable, killed on drop.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (free when asked; a server binds it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `dvb2ip serve --rtsp-port 0 --config FILE [args]`.
pub struct ServeChild {
    pub child: Child,
    pub rtsp_port: u16,
    log: mpsc::Receiver<String>,
}

impl ServeChild {
    /// Starts the server on `conf` with `args` added, and waits (bounded) for its RTSP banner.
    pub fn start(conf: &Path, args: &[&str]) -> ServeChild {
        Self::start_on(conf, 0, args)
    }

    /// [`ServeChild::start`] on RTSP port `rtsp_port` (0: a free one), e.g. to restart a
    /// server on the port its clients know.
    pub fn start_on(conf: &Path, rtsp_port: u16, args: &[&str]) -> ServeChild {
        let mut child = Command::new(super::dvb2ip_bin())
            .args(["serve", "--rtsp-port", &rtsp_port.to_string(), "--config"])
            .arg(conf)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dvb2ip serve starts");
        let (tx, log) = mpsc::channel::<String>();
        for r in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    eprintln!("serve: {line}");
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut s = ServeChild {
            child,
            rtsp_port: 0,
            log,
        };
        let line = s.wait_line(
            "dvb2ip: serving RTSP on 127.0.0.1:",
            Duration::from_secs(120),
        );
        s.rtsp_port = line.rsplit(':').next().unwrap().trim().parse().unwrap();
        s
    }

    /// Waits (bounded) for a log line containing `needle`.
    pub fn wait_line(&mut self, needle: &str, limit: Duration) -> String {
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {needle:?} from the server within {limit:?}"
            );
            match self.log.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("server gone before {needle:?}: {:?}", self.child.try_wait())
                }
            }
        }
    }

    /// Sends `signal` to the server.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

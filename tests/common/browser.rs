//! Headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`) for the
//! browser tests: one `chromedriver` per [`Browser`], a session whose browser may reach
//! nothing but loopback (no background networking, no component updates, every host name but
//! localhost unresolvable), console messages read back, screenshots saved under
//! `target/screenshots/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};

/// Chromium's switches: headless, and nothing leaves loopback.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--metrics-recording-only",
    "--no-pings",
    "--autoplay-policy=no-user-gesture-required",
    "--mute-audio",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1 , EXCLUDE [::1]",
    "--window-size=1280,900",
];

/// `POST /session/{id}/se/log` (chromedriver's log endpoint): the browser console since the
/// last call.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or("")))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// One console message: level (`SEVERE`, `WARNING`, `INFO`, …) and text.
#[derive(Debug, Clone)]
pub struct ConsoleMessage {
    pub level: String,
    pub message: String,
}

/// A headless Chromium session and its chromedriver; both end on drop.
pub struct Browser {
    pub rt: tokio::runtime::Runtime,
    pub client: Client,
    driver: Child,
    profile: PathBuf,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a session (bounded waits).
    pub fn start() -> Browser {
        for tool in ["chromium", "chromedriver"] {
            assert!(
                Command::new("sh")
                    .args(["-c", &format!("command -v {tool}")])
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success()),
                "{tool} not found: install the Debian packages chromium and chromium-driver"
            );
        }
        let port = super::serve_child::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        // A profile of its own per browser: two Chromiums on one profile are one browser (the
        // second hands its window to the first), so parallel tests drove each other's pages.
        static BROWSERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = BROWSERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let profile = super::temp_dir(&format!("chromium-profile-{n}"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "args": args }),
        );
        caps.insert(
            "goog:loggingPrefs".into(),
            serde_json::json!({ "browser": "ALL" }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let end = Instant::now() + Duration::from_secs(60);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match rt.block_on(
                ClientBuilder::new(connector)
                    .capabilities(caps.clone())
                    .connect(&url),
            ) {
                Ok(c) => break c,
                Err(e) if Instant::now() < end => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("no WebDriver session from chromedriver on {url}: {e}"),
            }
        };
        Browser {
            rt,
            client,
            driver,
            profile,
        }
    }

    /// Runs `f` with the session on the browser's runtime.
    pub fn run<F: std::future::Future>(&self, f: impl FnOnce(Client) -> F) -> F::Output {
        self.rt.block_on(f(self.client.clone()))
    }

    /// Opens `url`.
    pub fn goto(&self, url: &str) {
        self.run(|c| async move { c.goto(url).await })
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// The page's value of the JavaScript expression `expr` (as `return (expr);`).
    pub fn eval(&self, expr: &str) -> serde_json::Value {
        let script = format!("return ({expr});");
        self.run(|c| async move { c.execute(&script, vec![]).await })
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    /// Waits (bounded) until `expr` is truthy in the page; returns its value.
    pub fn wait_for(&self, expr: &str, limit: Duration) -> serde_json::Value {
        let end = Instant::now() + limit;
        loop {
            let v = self.eval(expr);
            let truthy = !matches!(&v, serde_json::Value::Null | serde_json::Value::Bool(false))
                && v != serde_json::json!(0)
                && v != serde_json::json!("");
            if truthy {
                return v;
            }
            assert!(Instant::now() < end, "{expr} within {limit:?}: last {v}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The console messages since the last call.
    pub fn console(&self) -> Vec<ConsoleMessage> {
        let v = self
            .run(|c| async move { c.issue_cmd(BrowserLog).await })
            .expect("browser log");
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|m| ConsoleMessage {
                        level: m["level"].as_str().unwrap_or("").to_owned(),
                        message: m["message"].as_str().unwrap_or("").to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The console errors (`SEVERE`) since the last call.
    pub fn console_errors(&self) -> Vec<ConsoleMessage> {
        self.console()
            .into_iter()
            .filter(|m| m.level == "SEVERE")
            .collect()
    }

    /// Saves a screenshot as `target/screenshots/<name>.png`; returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .run(|c| async move { c.screenshot().await })
            .expect("screenshot");
        let dir = super::plugin_dir().join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let c = self.client.clone();
        let _ = self.rt.block_on(async move {
            tokio::time::timeout(Duration::from_secs(10), c.close()).await
        });
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

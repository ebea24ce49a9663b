//! A headless Chromium driven through `chromedriver` over the W3C WebDriver protocol (JSON over HTTP/1.1 on
//! loopback), for the dashboard's browser test: just the commands it needs (navigate, find, click, type, read,
//! run a script, take a screenshot), each a blocking request.
// Indexing a `serde_json::Value` by key reads `Null` when absent (it never panics); slicing is bounds-checked first.
#![allow(clippy::missing_panics_doc, clippy::indexing_slicing)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// WebDriver failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebDriverError {
    /// Talking to chromedriver.
    #[error("chromedriver: {0}")]
    Io(#[from] std::io::Error),
    /// chromedriver answered an error or something unreadable.
    #[error("webdriver {0}: {1}")]
    Protocol(String, String),
}

type Result<T> = std::result::Result<T, WebDriverError>;

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where Debian installs them (`apt-get install chromium chromium-driver`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// See [`CHROMIUM`].
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Whether both are installed.
pub fn available() -> bool {
    Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists()
}

/// A chromedriver process and one headless browser session; both end on drop.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    profile: tempfile::TempDir,
}

fn protocol(what: &str, detail: impl std::fmt::Display) -> WebDriverError {
    WebDriverError::Protocol(what.to_owned(), detail.to_string())
}

/// One HTTP/1.1 request to `127.0.0.1:port` (`Connection: close`), its status and JSON body.
fn request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<(u16, serde_json::Value)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let body = body.map(serde_json::Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    // chromedriver may keep the connection open: read the head, then exactly the body it announces.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(protocol(path, "connection closed before the header's end"));
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| protocol(path, "no status"))?;
    let length = head.lines().find_map(|l| {
        l.strip_prefix("content-length:")
            .and_then(|v| v.trim().parse::<usize>().ok())
    });
    let chunked =
        head.contains("transfer-encoding: chunked") || head.contains("transfer-encoding:chunked");
    loop {
        let have = raw.len() - head_end;
        let complete = match length {
            Some(n) => have >= n,
            None if chunked => raw.ends_with(b"0\r\n\r\n"),
            None => false,
        };
        if complete {
            break;
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let rest = String::from_utf8_lossy(&raw[head_end..]).into_owned();
    let body = if chunked { dechunk(&rest) } else { rest };
    let v = if body.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&body).map_err(|e| protocol(path, e))?
    };
    Ok((status, v))
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session (`--no-sandbox`: CI runs as root).
    pub fn start(log: &Path) -> Result<Self> {
        let port = crate::broker::free_port()?;
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let profile = tempfile::tempdir()?;
        let mut browser = Self {
            driver,
            port,
            session: String::new(),
            profile,
        };
        crate::cluster::wait_for("chromedriver", Duration::from_secs(30), || {
            Ok(request(port, "GET", "/status", None)
                .is_ok_and(|(_, v)| v["value"]["ready"] == true))
        })
        .map_err(|e| protocol("status", e))?;
        let caps = serde_json::json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                         format!("--user-data-dir={}", browser.profile.path().display())]
            }
        }}});
        let v = browser.call("POST", "/session", Some(&caps))?;
        v["sessionId"]
            .as_str()
            .ok_or_else(|| protocol("session", &v))?
            .clone_into(&mut browser.session);
        Ok(browser)
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let (status, v) = request(self.port, method, path, body)?;
        if status != 200 {
            return Err(protocol(path, &v["value"]));
        }
        Ok(v["value"].clone())
    }

    fn s(&self, tail: &str) -> String {
        format!("/session/{}{tail}", self.session)
    }

    /// Opens `url`.
    pub fn goto(&self, url: &str) -> Result<()> {
        self.call(
            "POST",
            &self.s("/url"),
            Some(&serde_json::json!({ "url": url })),
        )
        .map(drop)
    }

    /// The element matching the CSS selector.
    pub fn find(&self, css: &str) -> Result<String> {
        let v = self.call(
            "POST",
            &self.s("/element"),
            Some(&serde_json::json!({ "using": "css selector", "value": css })),
        )?;
        v[ELEMENT]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| protocol(css, &v))
    }

    /// Clicks the element matching `css`.
    pub fn click(&self, css: &str) -> Result<()> {
        let e = self.find(css)?;
        self.call(
            "POST",
            &self.s(&format!("/element/{e}/click")),
            Some(&serde_json::json!({})),
        )
        .map(drop)
    }

    /// Types `text` into the element matching `css`.
    pub fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let e = self.find(css)?;
        self.call(
            "POST",
            &self.s(&format!("/element/{e}/value")),
            Some(&serde_json::json!({ "text": text })),
        )
        .map(drop)
    }

    /// The rendered text of the element matching `css`.
    pub fn text(&self, css: &str) -> Result<String> {
        let e = self.find(css)?;
        let v = self.call("GET", &self.s(&format!("/element/{e}/text")), None)?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns its value.
    pub fn exec(&self, script: &str, args: &[serde_json::Value]) -> Result<serde_json::Value> {
        self.call(
            "POST",
            &self.s("/execute/sync"),
            Some(&serde_json::json!({ "script": script, "args": args })),
        )
    }

    /// Runs async `script`, which must call `arguments[arguments.length - 1]` with its result.
    pub fn exec_async(&self, script: &str) -> Result<serde_json::Value> {
        self.call(
            "POST",
            &self.s("/execute/async"),
            Some(&serde_json::json!({ "script": script, "args": [] })),
        )
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Result<Vec<u8>> {
        let v = self.call("GET", &self.s("/screenshot"), None)?;
        v.as_str()
            .and_then(tessera_proto::b64_decode)
            .ok_or_else(|| protocol("screenshot", "not base64"))
    }

    /// Saves a screenshot as `dir/name.png` when `dir` is set.
    pub fn save_screenshot(&self, dir: Option<&PathBuf>, name: &str) -> Result<()> {
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir)?;
            std::fs::write(dir.join(format!("{name}.png")), self.screenshot()?)?;
        }
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = request(
                self.port,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

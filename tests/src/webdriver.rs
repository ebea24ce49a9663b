//! A headless Chromium driven through `chromedriver` over the W3C WebDriver protocol, for the dashboard's browser
//! test: `fantoccini` speaks the protocol; this wraps it in the blocking calls the test makes (navigate, click, type,
//! read, run a script, take a screenshot) on a runtime of its own, and owns the chromedriver process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{wd::Capabilities, Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

/// WebDriver failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebDriverError {
    /// Starting chromedriver, or writing a screenshot.
    #[error("chromedriver: {0}")]
    Io(#[from] std::io::Error),
    /// No browser session could be opened.
    #[error("webdriver session: {0}")]
    Session(String),
    /// A WebDriver command failed.
    #[error("webdriver: {0}")]
    Command(#[from] fantoccini::error::CmdError),
}

type Result<T> = std::result::Result<T, WebDriverError>;

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
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session (`--no-sandbox`: CI runs as root).
    pub fn start(log: &Path) -> Result<Self> {
        let port = crate::broker::free_port()?;
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let profile = tempfile::tempdir()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut caps = Capabilities::new();
        caps.insert("browserName".into(), "chrome".into());
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                         format!("--user-data-dir={}", profile.path().display())]
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        // chromedriver takes a moment to listen: retry the session until it does, or 30 s pass.
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let attempt = rt.block_on(
                ClientBuilder::new(HttpConnector::new())
                    .capabilities(caps.clone())
                    .connect(&url),
            );
            match attempt {
                Ok(c) => break c,
                Err(e) if Instant::now() >= deadline => {
                    let _ = driver.kill();
                    let _ = driver.wait();
                    return Err(WebDriverError::Session(e.to_string()));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        Ok(Self {
            rt,
            client: Some(client),
            driver,
            _profile: profile,
        })
    }

    fn client(&self) -> Result<&Client> {
        self.client
            .as_ref()
            .ok_or_else(|| WebDriverError::Session("closed".into()))
    }

    /// Opens `url`.
    pub fn goto(&self, url: &str) -> Result<()> {
        let c = self.client()?;
        Ok(self.rt.block_on(c.goto(url))?)
    }

    /// Clicks the element matching `css`.
    pub fn click(&self, css: &str) -> Result<()> {
        let c = self.client()?;
        self.rt.block_on(async {
            c.find(Locator::Css(css)).await?.click().await?;
            Ok(())
        })
    }

    /// Types `text` into the element matching `css`.
    pub fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let c = self.client()?;
        self.rt.block_on(async {
            c.find(Locator::Css(css)).await?.send_keys(text).await?;
            Ok(())
        })
    }

    /// The rendered text of the element matching `css`.
    pub fn text(&self, css: &str) -> Result<String> {
        let c = self.client()?;
        self.rt
            .block_on(async { Ok(c.find(Locator::Css(css)).await?.text().await?) })
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns its value.
    pub fn exec(&self, script: &str, args: &[serde_json::Value]) -> Result<serde_json::Value> {
        let c = self.client()?;
        Ok(self.rt.block_on(c.execute(script, args.to_vec()))?)
    }

    /// Runs async `script`, which must call `arguments[arguments.length - 1]` with its result.
    pub fn exec_async(&self, script: &str) -> Result<serde_json::Value> {
        let c = self.client()?;
        Ok(self.rt.block_on(c.execute_async(script, Vec::new()))?)
    }

    /// The cookies the browser holds for the current page: `(name, value, domain)`.
    pub fn cookies(&self) -> Result<Vec<(String, String, Option<String>)>> {
        let c = self.client()?;
        let all = self.rt.block_on(c.get_all_cookies())?;
        Ok(all
            .iter()
            .map(|k| {
                (
                    k.name().to_owned(),
                    k.value().to_owned(),
                    k.domain().map(str::to_owned),
                )
            })
            .collect())
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Result<Vec<u8>> {
        let c = self.client()?;
        Ok(self.rt.block_on(c.screenshot())?)
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
        if let Some(c) = self.client.take() {
            let _ = self.rt.block_on(c.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

//! The last rendered `/metrics` text and when it was rendered. A scrape within [`ScrapeCache::window`] of the last
//! render gets that text; otherwise one render runs on a blocking thread (`spawn_blocking`: the store reads whole
//! tables) while concurrent scrapes wait for it and then share its text. So however many scrapes arrive, the store
//! is read at most about once a window, and never on a runtime worker. docs/operations.md "Health and metrics".

use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::metrics::RenderError;

/// How long a rendered text is served again: about once a second, as the brief Prometheus scrape intervals go.
pub const WINDOW: Duration = Duration::from_secs(1);

/// The cached text, shared by the health listener's and the admin API's `/metrics`.
#[derive(Debug)]
pub struct ScrapeCache {
    window: Duration,
    last: Mutex<Option<(Instant, String)>>,
}

impl Default for ScrapeCache {
    fn default() -> Self {
        Self::new(WINDOW)
    }
}

impl ScrapeCache {
    /// A cache that serves a render again for `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            last: Mutex::new(None),
        }
    }

    /// How long a render is served again.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The text rendered within the window, else `render`'s (run on a blocking thread, its text kept). A failed
    /// render is not kept: the next scrape tries again (one at a time).
    pub async fn get_or_render<F>(&self, render: F) -> Result<String, RenderError>
    where
        F: FnOnce() -> Result<String, RenderError> + Send + 'static,
    {
        let mut last = self.last.lock().await;
        if let Some((at, text)) = last.as_ref() {
            if at.elapsed() < self.window {
                return Ok(text.clone());
            }
        }
        let text = tokio::task::spawn_blocking(render)
            .await
            .map_err(|_| RenderError::Interrupted)??;
        *last = Some((Instant::now(), text.clone()));
        Ok(text)
    }
}

#[cfg(test)]
mod tests;

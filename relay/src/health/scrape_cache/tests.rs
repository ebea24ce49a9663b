use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::*;

/// A render that counts its store reads.
fn counting(
    reads: &Arc<AtomicUsize>,
) -> impl FnOnce() -> Result<String, RenderError> + Send + 'static {
    let reads = reads.clone();
    move || {
        let n = reads.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(format!("render {n}\n"))
    }
}

#[tokio::test]
async fn two_renders_within_the_window_read_the_store_once() {
    let cache = ScrapeCache::new(Duration::from_secs(3600));
    let reads = Arc::new(AtomicUsize::new(0));
    let first = cache.get_or_render(counting(&reads)).await.unwrap();
    let second = cache.get_or_render(counting(&reads)).await.unwrap();
    assert_eq!(reads.load(Ordering::SeqCst), 1);
    assert_eq!(first, second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_scrapes_share_one_render() {
    let cache = Arc::new(ScrapeCache::new(Duration::from_secs(3600)));
    let reads = Arc::new(AtomicUsize::new(0));
    let scrapes: Vec<_> = (0..32)
        .map(|_| {
            let (cache, render) = (cache.clone(), counting(&reads));
            tokio::spawn(async move { cache.get_or_render(render).await.unwrap() })
        })
        .collect();
    for s in scrapes {
        assert_eq!(s.await.unwrap(), "render 1\n");
    }
    assert_eq!(reads.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn past_the_window_and_after_a_failure_the_store_is_read_again() {
    let cache = ScrapeCache::new(Duration::ZERO);
    let reads = Arc::new(AtomicUsize::new(0));
    cache.get_or_render(counting(&reads)).await.unwrap();
    let again = cache.get_or_render(counting(&reads)).await.unwrap();
    assert_eq!(
        (reads.load(Ordering::SeqCst), again.as_str()),
        (2, "render 2\n")
    );

    let cache = ScrapeCache::new(Duration::from_secs(3600));
    assert!(cache
        .get_or_render(|| Err(RenderError::Encode))
        .await
        .is_err());
    assert_eq!(
        cache.get_or_render(counting(&reads)).await.unwrap(),
        "render 3\n"
    );
}

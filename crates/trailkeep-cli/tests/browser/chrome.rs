//! Headless Chromium for the dashboard tests, driven over the DevTools protocol by `chromiumoxide`.
//!
//! The browser is the system's (Debian's `chromium`, which `./scripts/test` installs when it can), never
//! one downloaded by a tool. Each test gets a fresh profile. Waiting is done by polling a condition in
//! the page with a generous deadline, never by sleeping a fixed time or asserting how long anything took.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chromiumoxide::Page;
use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::browser::{
    PermissionDescriptor, PermissionSetting, SetDownloadBehaviorBehavior, SetDownloadBehaviorParams,
    SetPermissionParams,
};
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::page::ScreenshotParams;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// How long a condition may take before a test gives up on it: long, because CI machines are slow and
/// shared, and a condition that holds returns at once.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The Chromium to drive: `$CHROMIUM`, else the first of the usual names found on `PATH`.
pub fn executable() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let names = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"];
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "the dashboard's browser tests need headless Chromium and found none on PATH: install Debian's \
         `chromium` (`apt-get install -y chromium`; ./scripts/test does this itself when run as root) or set \
         CHROMIUM to the browser's path"
    );
}

/// A running headless Chromium with its own profile.
pub struct Chrome {
    pub browser: Browser,
    handler: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl Chrome {
    pub async fn launch() -> Chrome {
        let profile = tempfile::tempdir().expect("a profile directory");
        let config = BrowserConfig::builder()
            .chrome_executable(executable())
            .no_sandbox()
            .user_data_dir(profile.path())
            .viewport(Viewport { width: 1280, height: 900, ..Viewport::default() })
            .window_size(1280, 900)
            .launch_timeout(Duration::from_secs(60))
            .request_timeout(Duration::from_secs(60))
            .args([
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
            ])
            .build()
            .expect("a browser configuration");
        let (browser, mut handler) = Browser::launch(config).await.expect("launch headless chromium");
        // The handler carries every message between the browser and the pages: it must be polled.
        let handler = tokio::spawn(async move { while handler.next().await.is_some() {} });
        Chrome { browser, handler, _profile: profile }
    }

    /// A new tab with hooks installed before any page script runs: dialogs (`alert`, `confirm`,
    /// `prompt`) are counted instead of shown, Content-Security-Policy violations are recorded, and so is
    /// every element that could run or load something (a script other than the dashboard's own, an
    /// iframe, an object, an image) added to any document of the tab.
    pub async fn tab(&self) -> Page {
        let page = self.browser.new_page("about:blank").await.expect("a new tab");
        page.evaluate_on_new_document(
            r#"(() => {
                window.__tk = { dialogs: [], csp: [], elements: [] };
                for (const name of ['alert', 'confirm', 'prompt', 'print']) {
                    window[name] = (...args) => { window.__tk.dialogs.push(name + ':' + args.join(',')); };
                }
                document.addEventListener('securitypolicyviolation', (e) => {
                    window.__tk.csp.push(e.violatedDirective + ' ' + e.blockedURI);
                });
                new MutationObserver((records) => {
                    for (const r of records) for (const n of r.addedNodes) {
                        if (!(n instanceof Element)) continue;
                        for (const el of [n, ...n.querySelectorAll('script, iframe, object, embed, img, svg, frame')]) {
                            const tag = el.tagName.toLowerCase();
                            const ours = tag === 'script' && /^\/assets\/app\.[0-9a-f]+\.js$/.test(el.getAttribute('src') || '');
                            if (['script', 'iframe', 'object', 'embed', 'img', 'svg', 'frame'].includes(tag) && !ours) {
                                window.__tk.elements.push(tag);
                            }
                        }
                    }
                }).observe(document, { childList: true, subtree: true });
            })()"#,
        )
        .await
        .expect("install the page hooks");
        page
    }

    /// Lets pages of `origin` use the clipboard, as a person allowing it would.
    pub async fn allow_clipboard(&self, origin: &str) {
        for name in ["clipboard-read", "clipboard-write"] {
            let grant = SetPermissionParams::builder()
                .permission(PermissionDescriptor::new(name))
                .setting(PermissionSetting::Granted)
                .origin(origin)
                .build()
                .expect("a permission grant");
            self.browser.execute(grant).await.expect("grant clipboard access");
        }
    }

    /// Saves what pages download into `dir`, under the names the server gives.
    pub async fn allow_downloads(&self, dir: &Path) {
        let allow = SetDownloadBehaviorParams::builder()
            .behavior(SetDownloadBehaviorBehavior::Allow)
            .download_path(dir.to_string_lossy())
            .build()
            .expect("a download behaviour");
        self.browser.execute(allow).await.expect("allow downloads");
    }

    pub async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

/// Evaluates `expression` (awaiting a promise) and returns its JSON value.
pub async fn eval<T: DeserializeOwned>(page: &Page, expression: &str) -> T {
    page.evaluate(expression)
        .await
        .unwrap_or_else(|e| panic!("evaluating `{expression}`: {e}"))
        .into_value()
        .unwrap_or_else(|e| panic!("reading the value of `{expression}`: {e}"))
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// Polls `expression` until it is truthy and returns its value; panics naming `what` after
/// [`DEADLINE`]. An expression that throws (the element is not there yet) counts as not yet.
pub async fn until(page: &Page, what: &str, expression: &str) -> Value {
    let wrapped = format!("(async () => {{ try {{ return await ({expression}); }} catch (e) {{ return null; }} }})()");
    let started = Instant::now();
    let mut last = Value::Null;
    while started.elapsed() < DEADLINE {
        if let Ok(result) = page.evaluate(wrapped.as_str()).await {
            last = result.into_value().unwrap_or(Value::Null);
            if truthy(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("waited {DEADLINE:?} for {what}; `{expression}` was last {last}");
}

/// Saves a screenshot of the whole page as `<name>.png` among the test artifacts and returns its path.
pub async fn screenshot(page: &Page, name: &str) -> PathBuf {
    let dir = artifacts_dir();
    std::fs::create_dir_all(&dir).expect("the artifacts directory");
    let path = dir.join(format!("{name}.png"));
    page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), &path).await.expect("a screenshot");
    path
}

/// `target/tmp/dashboard-screenshots`, kept after the run for people (and CI) to look at.
pub fn artifacts_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots")
}

/// The finished download in `dir` whose name ends with `.<ext>`, once the browser has written it whole.
pub async fn downloaded(dir: &Path, ext: &str) -> PathBuf {
    let started = Instant::now();
    while started.elapsed() < DEADLINE {
        let found = std::fs::read_dir(dir)
            .expect("the downloads directory")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == ext));
        // Chromium writes to `<name>.crdownload` and renames the file once it is complete.
        if let Some(path) = found {
            return path;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no .{ext} file was downloaded into {} within {DEADLINE:?}", dir.display());
}
